"""The ``check_local`` step: the local Hessian phenomena's rows (:mod:`lossgeom.checks.local`) of one sweep, from its
trajectory table (``results/sweeps/<sweep>/trajectory.csv``, written by the ``sweep_trajectory`` step with the
local-geometry columns)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..checks.local import local_rows
from ..checks.rows import rows_to_frame
from ..errors import InputMismatch
from ..io.atomic import write_csv

NEEDED = ("run", "step", "lambda_max", "classes", "gap_k", "gap_ratio", "gap_second_ratio", "ggn_distance", "ggn_distance_se")


def compute(trajectory: pd.DataFrame, sweep: str, source: str = "trajectory table") -> pd.DataFrame:
    missing = [c for c in NEEDED if c not in trajectory]
    if missing:
        raise InputMismatch(f"{source}: no column(s) {', '.join(missing)}; the sweep {sweep!r} needs hessian and "
                            "local: true (and snapshots) for its local checks")
    return rows_to_frame(local_rows(trajectory, sweep))


def run(trajectory_path, sweep: str, out) -> pd.DataFrame:
    rows = compute(pd.read_csv(trajectory_path), sweep, str(trajectory_path))
    write_csv(rows, out)
    return rows


def add_commands(steps) -> None:
    """CLI: ``lossgeom check-local``."""
    command = steps.add_parser("check-local", help="rows of the local Hessian phenomena along a sweep's training")
    command.add_argument("--sweep", required=True, help="the sweep's name (the rows' case)")
    command.add_argument("--trajectory", required=True, type=Path, help="results/sweeps/<sweep>/trajectory.csv")
    command.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    command.set_defaults(func=lambda args: run(args.trajectory, args.sweep, args.out))
