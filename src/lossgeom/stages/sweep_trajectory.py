"""The ``sweep_trajectory`` step: one row per snapshot of every run of a sweep, along training.

Columns: ``run``, the run's grid values, the snapshot's ``step`` and ``epoch`` with its train/test metrics
(from the run's ``snapshots/steps.csv``) and, when the sweep computes Hessians, the snapshot's lambda_max,
lambda_min, tr(H) +- standard error and tr(H)/N (from ``trajectory/step=<k>/hessian/summary.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io.atomic import write_csv
from .sweep_table import grid_columns, hessian_columns


def compute(grid: Mapping[str, Mapping[str, Any]], run_dirs: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """``grid``: {run id: {key path: value}}; ``run_dirs``: {run id: its results folder}."""
    rows = []
    for run, folder in run_dirs.items():
        folder = Path(folder)
        for snapshot in pd.read_csv(folder / "snapshots" / "steps.csv").to_dict("records"):
            row: dict[str, Any] = {"run": run, **grid_columns(grid[run]), **snapshot}
            row.update(hessian_columns(folder / "trajectory" / f"step={snapshot['step']}" / "hessian" / "summary.json"))
            rows.append(row)
    return pd.DataFrame(rows)


def run(grid, run_dirs, out) -> pd.DataFrame:
    table = compute(grid, run_dirs)
    write_csv(table, out)
    return table


def add_commands(steps) -> None:
    """CLI: ``lossgeom sweep-trajectory``."""
    command = steps.add_parser("sweep-trajectory", help="one CSV row per snapshot of every run of a sweep")
    command.add_argument("--grid", required=True, help="JSON: run id -> {key path: value}")
    command.add_argument("--runs", required=True, help="JSON: run id -> its results folder")
    command.add_argument("--out", required=True, type=Path, help="CSV to write")
    command.set_defaults(func=lambda args: run(json.loads(args.grid), json.loads(args.runs), args.out))
