"""The ``check_sweep`` step: the companion papers' rows of one sweep, from its tables.

Kinds (each a module of :mod:`lossgeom.checks` with its stated criteria):

- ``local``: the local Hessian phenomena along training (:mod:`lossgeom.checks.local`), from the trajectory table
  (``results/sweeps/<sweep>/trajectory.csv``, with the local-geometry columns);
- ``spectra``: bulk and outliers across sweeps of the data and the width (:mod:`lossgeom.checks.spectra`), from the
  run table (``results/sweeps/<sweep>/runs.csv`` of a sweep with local geometry);
- ``goldilocks``: the Goldilocks zone and subspace training (:mod:`lossgeom.checks.goldilocks`), from the run table
  (``results/sweeps/<sweep>/runs.csv`` of a sweep over ``model.init_scale`` and ``train.subspace_dim``).

Across sweeps (``lossgeom check-trends``): whether learning rate, width and L2 move lambda_max and tr(H) the same
way (:mod:`lossgeom.checks.trends`), from the run tables of one sweep per hyperparameter.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..checks import goldilocks, local, spectra, trends
from ..checks.rows import rows_to_frame
from ..errors import InputMismatch
from ..io.atomic import write_csv

# kind -> (the rows of one table, the columns they need, what the sweep must compute to have them)
KINDS = {
    "local": (local.local_rows, ("run", "step", "lambda_max", "classes", "gap_k", "gap_ratio", "gap_second_ratio",
                                 "ggn_distance", "ggn_distance_se"),
              "hessian and local: true (and snapshots)"),
    "spectra": (spectra.spectra_rows, spectra.NEEDED, "hessian and local (and, for the bulk rows, models small "
                "enough for local.exact_max_parameters)"),
    "goldilocks": (goldilocks.goldilocks_rows, goldilocks.NEEDED,
                   "a grid over model.init_scale and train.subspace_dim (and train.seed)"),
}


def compute(table: pd.DataFrame, sweep: str, kind: str = "local", source: str = "the sweep's table") -> pd.DataFrame:
    rows_of, needed, requirement = KINDS[kind]
    missing = [c for c in needed if c not in table]
    if missing:
        raise InputMismatch(f"{source}: no column(s) {', '.join(missing)}; the sweep {sweep!r} needs {requirement} "
                            f"for its {kind} checks")
    return rows_to_frame(rows_of(table, sweep))


def run(table_path, sweep: str, kind: str, out) -> pd.DataFrame:
    rows = compute(pd.read_csv(table_path), sweep, kind, str(table_path))
    write_csv(rows, out)
    return rows


def run_trends(tables: dict[str, Path], out) -> pd.DataFrame:
    """The trend rows from {sweep: runs.csv}; a table without lambda_max and trace_hutchinson is refused by name."""
    frames = {}
    for sweep, path in tables.items():
        frame = pd.read_csv(path)
        missing = [c for c in ("n_parameters", *trends.MEASURES) if c not in frame]
        if missing:
            raise InputMismatch(f"{path}: no column(s) {', '.join(missing)}; the sweep {sweep!r} needs hessian: true "
                                "for the trend checks")
        frames[sweep] = frame
    rows = rows_to_frame(trends.trend_rows(frames))
    write_csv(rows, out)
    return rows


def add_commands(steps) -> None:
    """CLI: ``lossgeom check-sweep``."""
    command = steps.add_parser("check-sweep", help="rows of the companion papers' phenomena from a sweep's table")
    command.add_argument("--sweep", required=True, help="the sweep's name (the rows' case)")
    command.add_argument("--kind", required=True, choices=sorted(KINDS), help="which phenomena")
    command.add_argument("--table", required=True, type=Path, help="results/sweeps/<sweep>/trajectory.csv or runs.csv")
    command.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    command.set_defaults(func=lambda args: run(args.table, args.sweep, args.kind, args.out))
    trend = steps.add_parser("check-trends", help="whether lr, width and L2 move the curvature alike (across sweeps)")
    trend.add_argument("--tables", required=True, nargs="+", metavar="SWEEP=RUNS_CSV",
                       help="each trend sweep's runs.csv, as sweep=path")
    trend.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    trend.set_defaults(func=lambda args: run_trends(dict(item.split("=", 1) for item in args.tables), args.out))
