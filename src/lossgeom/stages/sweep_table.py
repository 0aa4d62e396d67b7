"""The ``sweep_table`` step: one row per run of a sweep, its grid values beside what its stages measured.

Columns: ``run``, one per grid key path (the run's value; lists as JSON), the training summary's columns
(N, final train/test metrics, wall time) and, when the sweep computes Hessians, lambda_max, lambda_min,
tr(H) +- standard error and tr(H)/N; with ``local: true`` also the local geometry (:func:`local_columns`). For a
sweep with snapshots these are of the final point of the run's trajectory (:mod:`lossgeom.stages.run_trajectory`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..io.atomic import write_csv
from . import hessian, train
from .run_trajectory import final_folder


SPECTRUM_COLUMNS = ("near_zero_fraction", "outlier_mean", "bulk_abs_q50", "bulk_abs_q90")  # small models only
HESSIAN_COLUMNS = ("lambda_max", "lambda_min", "trace_hutchinson", "trace_se", "mean_curvature", "converged")


def grid_columns(point: Mapping[str, Any]) -> dict[str, Any]:
    """A run's grid values as table cells (lists and blocks as JSON)."""
    return {path: json.dumps(v) if isinstance(v, (list, dict)) else v for path, v in point.items()}


def hessian_columns(summary: Path) -> dict[str, Any]:
    """The Hessian summary's headline numbers, or nothing when the sweep computes no Hessians."""
    if not summary.exists():
        return {}
    h = hessian.table([summary]).iloc[0]
    return {k: h[k] for k in HESSIAN_COLUMNS}


def local_columns(path: Path) -> dict[str, Any]:
    """The local-geometry step's numbers (``local.json``, :mod:`lossgeom.stages.local_geometry`) as table cells:
    gradient norm, overlap with the top-k eigenspace (k = C - 1, C) and its random baseline, the outlier gap,
    ||H - G||_F / ||H||_F +- standard error (and exact, when computed), the whole spectrum's bulk and outliers (small
    models), logit-gradient cosines; nothing when the
    sweep computes no local geometry."""
    if not path.exists():
        return {}
    local = json.loads(path.read_text())
    row: dict[str, Any] = {"n_parameters": local["n_parameters"], "classes": local["classes"],
                           "gradient_norm": local["gradient_norm"]}
    for o in local["overlap"]:
        row[f"overlap_k{o['k']}"] = o["overlap"]
        row[f"overlap_baseline_k{o['k']}"] = o["random_baseline"]
    gap = local.get("outlier_gap") or {}
    row.update({"gap_k": gap.get("k"), "gap_ratio": gap.get("ratio"), "gap_second_k": gap.get("second_k"),
                "gap_second_ratio": gap.get("second_ratio"), "gap_k_max": gap.get("k_max")})
    distance = local["gauss_newton_distance"]
    row.update({"ggn_distance": distance["estimate"], "ggn_distance_se": distance["standard_error"],
                "ggn_distance_exact": distance.get("exact")})
    spectrum = local.get("spectrum") or {}
    row.update({k: spectrum.get(k) for k in SPECTRUM_COLUMNS})
    for group, stats in local["logit_cosines"].items():
        if isinstance(stats, dict):
            row[f"cos_{group}"] = stats["mean"]
    return row


def compute(grid: Mapping[str, Mapping[str, Any]], run_dirs: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """``grid``: {run id: {key path: value}}; ``run_dirs``: {run id: its results folder}."""
    rows = []
    for run, folder in run_dirs.items():
        folder = Path(folder)
        row: dict[str, Any] = {"run": run, **grid_columns(grid[run])}
        row.update(train.table([folder / "train.json"]).iloc[0].drop("experiment").to_dict())
        measured = final_folder(folder) or folder  # a trajectory's final point, else the run's own folder
        row.update(hessian_columns(measured / "hessian" / "summary.json"))
        row.update(local_columns(measured / "local.json"))
        rows.append(row)
    return pd.DataFrame(rows)


def run(grid, run_dirs, out) -> pd.DataFrame:
    table = compute(grid, run_dirs)
    write_csv(table, out)
    return table


def add_table_command(steps, name: str, help: str, compute_table) -> None:
    """A subcommand that tabulates a sweep: ``--grid``, ``--runs`` (JSON) in, one CSV out."""
    command = steps.add_parser(name, help=help)
    command.add_argument("--grid", required=True, help="JSON: run id -> {key path: value}")
    command.add_argument("--runs", required=True, help="JSON: run id -> its results folder")
    command.add_argument("--out", required=True, type=Path, help="CSV to write")
    command.set_defaults(func=lambda args: write_csv(compute_table(json.loads(args.grid), json.loads(args.runs)), args.out))


def add_commands(steps) -> None:
    """CLI: ``lossgeom sweep-table``."""
    add_table_command(steps, "sweep-table", "one CSV row per run of a sweep: grid values and measurements", compute)
