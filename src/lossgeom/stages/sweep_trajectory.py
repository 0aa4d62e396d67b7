"""The ``sweep_trajectory`` step: one row per snapshot of every run of a sweep, along training.

Columns: ``run``, the run's grid values, the snapshot's ``step`` and ``epoch`` with its train/test metrics
(from the run's ``snapshots/steps.csv``) and, when the sweep computes Hessians, the snapshot's lambda_max,
lambda_min, tr(H) +- standard error and tr(H)/N (from ``trajectory/step=<k>/hessian/summary.json``) and, with
``local: true``, the snapshot's local geometry (``trajectory/step=<k>/local.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io.atomic import write_csv
from .sweep_table import add_table_command, grid_columns, hessian_columns, local_columns


def compute(grid: Mapping[str, Mapping[str, Any]], run_dirs: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """``grid``: {run id: {key path: value}}; ``run_dirs``: {run id: its results folder}."""
    rows = []
    for run, folder in run_dirs.items():
        folder = Path(folder)
        for snapshot in pd.read_csv(folder / "snapshots" / "steps.csv").to_dict("records"):
            row: dict[str, Any] = {"run": run, **grid_columns(grid[run]), **snapshot}
            point = folder / "trajectory" / f"step={snapshot['step']}"
            row.update(hessian_columns(point / "hessian" / "summary.json"))
            row.update(local_columns(point / "local.json"))
            rows.append(row)
    return pd.DataFrame(rows)


def run(grid, run_dirs, out) -> pd.DataFrame:
    table = compute(grid, run_dirs)
    write_csv(table, out)
    return table


def add_commands(steps) -> None:
    """CLI: ``lossgeom sweep-trajectory``."""
    add_table_command(steps, "sweep-trajectory", "one CSV row per snapshot of every run of a sweep", compute)
