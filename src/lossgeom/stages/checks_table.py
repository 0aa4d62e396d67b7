"""The ``checks_table`` step: every check's rows in one table, and the sign question with one row per model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..io.atomic import write_csv


def compute(row_tables: Iterable[str | os.PathLike],
            sign_records: Iterable[str | os.PathLike] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(all check rows, in the order of the files; the sign-question records without settings and provenance)."""
    rows = pd.concat([pd.read_csv(p) for p in row_tables], ignore_index=True)
    signs = [json.loads(Path(p).read_text()) for p in sign_records]
    sign_table = pd.DataFrame([{k: v for k, v in s.items() if k not in ("settings", "provenance")} for s in signs])
    return rows, sign_table


def run(row_tables, out, sign_records=(), sign_out=None) -> pd.DataFrame:
    rows, signs = compute(row_tables, sign_records)
    write_csv(rows, out)
    if sign_out:
        write_csv(signs, sign_out)
    return rows


def add_commands(steps) -> None:
    """CLI: ``lossgeom checks-table``."""
    command = steps.add_parser("checks-table", help="concatenate check CSVs into one table")
    command.add_argument("tables", nargs="+", type=Path)
    command.add_argument("--out", required=True, type=Path)
    command.add_argument("--signs", nargs="*", type=Path, default=[], help="sign_question.json files to tabulate")
    command.add_argument("--sign-out", type=Path, help="CSV of the sign question, one row per model")
    command.set_defaults(func=lambda args: run(args.tables, args.out, args.signs, args.sign_out))
