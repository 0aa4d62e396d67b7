"""The ``train`` step: train one experiment (resumably) and write its model, metrics and summary.

Writes into one directory: ``model.pt`` (final weights plus the resolved experiment spec), ``metrics.csv``
(train/test metrics per epoch, kept current during training), ``train.json`` (summary and provenance),
the resumable training state ``checkpoint/last.pt`` and, when ``train.snapshots`` asks for them, the
weights along training in ``snapshots/step=<k>.pt`` with their metrics in ``snapshots/steps.csv``.
:func:`table` gathers train.json files into the
one-row-per-experiment training summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..device import deterministic_torch
from ..io.atomic import write_csv, write_json
from ..io.provenance import provenance
from ..settings import settings_help
from ..training.checkpoints import save_model
from ..training.loop import TrainResult, TrainSettings, train_experiment
from ..training.snapshots import Snapshots


@dataclass(frozen=True)
class TrainPaths:
    """Where one experiment's results go; ``checkpoint`` is the resumable training state."""

    model: Path
    metrics: Path
    summary: Path
    checkpoint: Path
    snapshots: Path  # a folder, written only when the spec asks for snapshots

    @classmethod
    def in_directory(cls, directory: str | os.PathLike) -> "TrainPaths":
        d = Path(directory)
        return cls(d / "model.pt", d / "metrics.csv", d / "train.json", d / "checkpoint" / "last.pt", d / "snapshots")


def compute(name: str, spec: Mapping[str, Any], paths: TrainPaths, *, progress: bool = True) -> TrainResult:
    """Train to completion, resuming from ``paths.checkpoint``; metrics.csv follows every epoch."""
    return train_experiment(name, spec, paths.checkpoint, progress=progress, snapshot_dir=paths.snapshots,
                            on_epoch=lambda history: write_csv(pd.DataFrame(history), paths.metrics))


def summary(result: TrainResult) -> dict[str, Any]:
    """The train.json record: spec, data, N, final metrics, wall time, device, the subspace's curvature at the start
    (subspace training only), provenance."""
    return {
        "experiment": result.name,
        "spec_hash": result.fingerprint,
        "spec": result.experiment,
        "dataset": result.dataset.summary(),
        "n_parameters": result.n_parameters,
        "epochs": result.history[-1]["epoch"],  # trained: fewer than train.epochs when train.target_loss stopped it
        "final": result.history[-1],
        "train_wall_s": result.elapsed_s,
        "device": str(result.device),
        "subspace": result.subspace,
        "provenance": provenance(seed=result.experiment["train"]["seed"]),
    }


def write(result: TrainResult, paths: TrainPaths) -> dict[str, Any]:
    """metrics.csv, the snapshot table, model.pt and, last (its presence means the step is complete), train.json."""
    record = summary(result)
    write_csv(pd.DataFrame(result.history), paths.metrics)
    steps = result.experiment["train"]["snapshots"]
    if steps:
        write_csv(Snapshots(paths.snapshots, tuple(steps)).table(), paths.snapshots / "steps.csv")
    save_model(paths.model, result.model, result.experiment, {k: v for k, v in record.items() if k != "spec"})
    write_json(record, paths.summary)
    return record


def run(name: str, spec: Mapping[str, Any], out: str | os.PathLike | TrainPaths, *, progress: bool = True) -> dict[str, Any]:
    """Train (resuming) and write; ``out`` is a directory or explicit :class:`TrainPaths`. Returns the train.json record."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    paths = out if isinstance(out, TrainPaths) else TrainPaths.in_directory(out)
    return write(compute(name, spec, paths, progress=progress), paths)


def table(summary_files: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per experiment from its train.json: model, dataset, N, final metrics, wall time, device."""
    rows = []
    for path in summary_files:
        s = json.loads(Path(path).read_text())
        row = {
            "experiment": s["experiment"],
            "model": s["spec"]["model"]["name"],
            "dataset": s["dataset"]["name"],
            "task": s["dataset"]["task"],
            "output_dim": s["dataset"]["output_dim"],  # classes, or regression outputs
            "n_train": s["dataset"]["n_train"],
            "n_parameters": s["n_parameters"],
            "epochs": s["epochs"],
        }
        row.update({k: v for k, v in s["final"].items() if k.startswith(("train_", "test_"))})
        row.update({"train_wall_s": s["train_wall_s"], "device": s["device"]})
        if s.get("subspace"):  # subspace training: the restricted Hessian at the start (Goldilocks)
            row.update({f"subspace_{k}": v for k, v in s["subspace"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def add_commands(steps) -> None:
    """CLI: ``lossgeom train`` and ``lossgeom summarize-training``."""
    command = steps.add_parser("train", help="train one experiment (resumes from its checkpoint)",
                              **settings_help(TrainSettings, "train block of --spec, i.e. experiments.<name>.train"))
    command.add_argument("--name", required=True, help="experiment name, used in messages")
    command.add_argument("--spec", required=True, help="experiment as JSON: {dataset, model, train}")
    command.add_argument("--out-dir", required=True, type=Path, help="writes model.pt, metrics.csv, train.json")
    command.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    command.set_defaults(func=_train_command)
    summarize = steps.add_parser("summarize-training", help="one CSV row per experiment from train.json files")
    summarize.add_argument("summaries", nargs="+", type=Path, help="train.json files")
    summarize.add_argument("--out", required=True, type=Path, help="CSV to write")
    summarize.set_defaults(func=lambda args: write_csv(table(args.summaries), args.out))


def _train_command(args: argparse.Namespace) -> None:
    record = run(args.name, json.loads(args.spec), args.out_dir, progress=not args.no_progress)
    final = {k: round(v, 6) for k, v in record["final"].items()}
    logging.getLogger(__name__).info("finished %s: %s", args.name, final)
