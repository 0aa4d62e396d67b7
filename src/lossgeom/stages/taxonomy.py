"""The ``taxonomy`` step: Yang et al.'s phase diagram of one sweep over width x batch size (or label noise).

Reads the sweep's run table (``runs.csv``: each run's final train loss, test accuracy, lambda_max and tr(H) on
the Hessian stage's examples) and its connectivity summary (mc along trained Bezier curves and CKA per cell), and writes
the cell table with each cell's phase (``cells.csv``, :func:`lossgeom.checks.taxonomy.cell_table`) and the check
rows (:func:`lossgeom.checks.taxonomy.taxonomy_rows`). Both inputs' fingerprints go into ``cells.json`` beside
the table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..checks.rows import rows_to_frame
from ..checks.taxonomy import assign_phases, cell_table, taxonomy_rows
from ..io.atomic import write_csv, write_json
from ..io.provenance import input_record, provenance


def compute(runs_table, connectivity_summary, sweep: str) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """The cell table with phases, its record (``cells.json``) and the check rows, in memory."""
    runs = pd.read_csv(runs_table)
    summary = json.loads(Path(connectivity_summary).read_text())
    missing = [c for c in ("lambda_max", "trace_hutchinson") if c not in runs]
    if missing:
        raise ValueError(f"{runs_table}: no column {', '.join(missing)}; the phase diagram needs each run's Hessian "
                         f"(set hessian: true, or a mapping, on sweeps.{sweep})")
    if "output_dim" not in runs:
        raise ValueError(f"{runs_table}: no column output_dim (a run table written by an older version); rebuild it: "
                         f"snakemake --forcerun sweep_table results/sweeps/{sweep}/runs.csv")
    classes = int(runs["output_dim"].iloc[0])
    try:
        cells = assign_phases(cell_table(runs, summary), classes)
    except ValueError as err:
        raise ValueError(f"{runs_table} and {connectivity_summary}: {err}") from None
    axis = cells["axis_key"].iloc[0]
    frame = rows_to_frame(taxonomy_rows(cells, sweep, axis, classes))
    record = {"sweep": sweep, "axis": axis, "classes": classes, "cells": len(cells),
              "phases": cells["phase"].value_counts().to_dict(),
              "inputs": input_record(runs=runs_table, connectivity=connectivity_summary), "provenance": provenance()}
    return cells, record, frame


def write(cells: pd.DataFrame, record: dict[str, Any], frame: pd.DataFrame, cells_out, rows_out) -> None:
    """``cells.csv`` with ``cells.json`` beside it, and the rows."""
    write_csv(cells, cells_out)
    write_json(record, Path(cells_out).with_suffix(".json"))
    write_csv(frame, rows_out)


def run(runs_table, connectivity_summary, sweep: str, cells_out, rows_out, log: Callable = print) -> pd.DataFrame:
    cells, record, frame = compute(runs_table, connectivity_summary, sweep)
    write(cells, record, frame, cells_out, rows_out)
    log(f"taxonomy of {sweep}: {len(cells)} cells over width x {record['axis']}; phases "
        + ", ".join(f"{k} {v}" for k, v in sorted(cells["phase"].value_counts().items()))
        + "; rows: " + ", ".join(f"{v} {n}" for v, n in frame["verdict"].value_counts().items()))
    return cells


def add_commands(steps) -> None:
    """CLI: ``lossgeom taxonomy``."""
    command = steps.add_parser("taxonomy", help="Yang et al.'s phase diagram of a width x batch-size sweep")
    command.add_argument("--sweep", required=True)
    command.add_argument("--runs-table", required=True, type=Path, help="the sweep's runs.csv")
    command.add_argument("--connectivity", required=True, type=Path, help="the sweep's connectivity summary.json")
    command.add_argument("--cells", required=True, type=Path, help="the cell table (CSV; cells.json beside it)")
    command.add_argument("--rows", required=True, type=Path, help="the check rows (CSV)")
    command.set_defaults(func=lambda args: run(args.runs_table, args.connectivity, args.sweep, args.cells, args.rows,
                                               log=logging.getLogger(__name__).info))
