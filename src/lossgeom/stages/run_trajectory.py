"""The ``run_trajectory`` step: the Hessian (and, optionally, the local geometry) of every snapshot of one training
run, and of its final model, in one process.

A sweep's run saves its weights at a handful of steps; each point needs the same two computations (the hessian step,
then the local-geometry step). Run as separate jobs, a trajectory of six points costs twelve process starts (about
4 s each on two cores, more than the small models' own compute); here it is one. The outputs are the files the two
steps write, one folder per point::

    <out_dir>/step=<k>/hessian/{summary.json, eigenvectors.pt, ...}
    <out_dir>/step=<k>/local.json
    <out_dir>/final/...            only when the final weights differ from the last snapshot's
    <out_dir>/points.json          the manifest, written last: step -> folder, and which folder is the final model

Resuming: a point whose outputs were computed from the same model file (by content) with the same settings is kept,
so a job killed midway continues with the next point (and within a point, the hessian step resumes its own loops from
``partial.pt``). The final model usually equals the last snapshot (a snapshot at the last step of training): then its
folder is that snapshot's, not a copy.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..device import deterministic_torch
from ..errors import CheckpointError, ConfigError
from ..io.atomic import write_json
from ..io.provenance import file_fingerprint, input_record, provenance
from ..training.checkpoints import MODEL_FORMAT, load_file
from . import hessian, local_geometry

MANIFEST = "points.json"


def _settings_json(settings) -> str:
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)


def is_current(result_path: Path, model_path: Path, settings) -> bool:
    """Whether ``result_path`` (a summary.json or local.json) was computed from ``model_path``'s bytes with
    ``settings``, so that a resumed trajectory may keep it."""
    if not result_path.exists():
        return False
    try:
        result = json.loads(result_path.read_text())
    except json.JSONDecodeError:
        return False
    stored = (result.get("inputs") or {}).get("model", {}).get("sha256")
    same_settings = json.dumps(json.loads(json.dumps(result.get("settings"), default=str)), sort_keys=True) == \
        _settings_json(settings)
    return stored == file_fingerprint(model_path) and same_settings


def same_weights(a: Path, b: Path) -> bool:
    """Whether two model files hold identical weights (the final model and the last snapshot usually do)."""
    first, second = (load_file(p, MODEL_FORMAT)["state_dict"] for p in (a, b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def compute_point(model_path: Path, folder: Path, hessian_settings, local_settings, log: Callable) -> dict[str, Any]:
    """The hessian step (and the local-geometry step) of one model into ``folder``, unless already current there."""
    tick = time.perf_counter()
    summary = folder / "hessian" / "summary.json"
    kept = []
    if is_current(summary, model_path, hessian_settings):
        kept.append("hessian")
    else:
        hessian.run(model_path, hessian_settings, summary.parent, log=log)
    if local_settings is not None:
        local = folder / "local.json"
        # local.json is built on the Hessian's eigenvectors: kept only when they were kept too
        if "hessian" in kept and is_current(local, model_path, local_settings):
            kept.append("local")
        else:
            local_geometry.run(model_path, summary, summary.parent / "eigenvectors.pt", local_settings, local, log=log)
    return {"folder": folder.name, "model": input_record(model=model_path)["model"], "kept": kept,
            "wall_s": time.perf_counter() - tick}


def run(snapshot_dir, final_model, hessian_settings, local_settings, out_dir, log=print) -> dict[str, Any]:
    """Every snapshot of ``snapshot_dir`` (in step order), then ``final_model`` unless it equals the last snapshot;
    ``local_settings`` None: Hessians only. Writes the manifest last (its presence means the trajectory is complete)."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    steps = snapshot_steps(snapshot_dir)
    if final_model is not None and not Path(final_model).is_file():  # before the points, not after their hours
        raise CheckpointError(f"{final_model}: final model file not found; give the run's model.pt as --final-model "
                              "(or omit it), or rerun the run's training step")
    points: dict[str, Any] = {}
    for number, step in enumerate(steps, 1):
        log(f"point {number} of {len(steps)}: step {step}")
        points[str(step)] = compute_point(snapshot_dir / f"step={step}.pt", out_dir / f"step={step}",
                                          hessian_settings, local_settings, log)
    last = snapshot_dir / f"step={steps[-1]}.pt"
    if final_model is not None and same_weights(Path(final_model), last):
        final = points[str(steps[-1])]["folder"]
        log(f"the final model has the weights of the snapshot at step {steps[-1]}: its point is that one")
    elif final_model is not None:
        log("the final model differs from the last snapshot: computing its point too")
        final = compute_point(Path(final_model), out_dir / "final", hessian_settings, local_settings, log)["folder"]
    else:
        final = None
    manifest = {"points": points, "final": final, "steps": steps,
                "settings": {"hessian": dataclasses.asdict(hessian_settings),
                             "local": None if local_settings is None else dataclasses.asdict(local_settings)},
                "provenance": provenance()}
    write_json(manifest, out_dir / MANIFEST)
    return manifest


def snapshot_steps(snapshot_dir: Path) -> list[int]:
    """The steps of the snapshot files ``step=<k>.pt`` in ``snapshot_dir``, in order; CheckpointError when the folder
    is missing, holds none, or holds a ``step=*.pt`` file whose step is not an integer."""
    if not snapshot_dir.is_dir():
        raise CheckpointError(f"{snapshot_dir}: no such snapshots folder; give the run's snapshots folder as "
                              "--snapshots, or rerun the run's training step (its spec must ask for train.snapshots)")
    steps = []
    for path in sorted(snapshot_dir.glob("step=*.pt")):
        match = re.fullmatch(r"step=(\d+)\.pt", path.name)
        if match is None:
            raise CheckpointError(f"{path}: not a snapshot file name (step=<k>.pt with an integer k >= 0); "
                                  "move it out of the snapshots folder")
        steps.append(int(match.group(1)))
    if not steps:
        raise CheckpointError(f"{snapshot_dir}: no snapshot files (step=<k>.pt); rerun the run's training step")
    return sorted(steps)


def settings_block(text: str | None, cls, option: str):
    """``cls`` from a settings option's JSON text (None stays None); ConfigError when it is not a JSON object."""
    if text is None:
        return None
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ConfigError(f"{option}: expected a JSON object of the config block's keys, e.g. '{{\"k_top\": 20}}', got "
                          f"{text!r}")
    return cls.from_mapping(values)


def final_folder(run_dir: Path) -> Path | None:
    """The folder holding a run's final-model point (from its trajectory manifest), or None without a trajectory."""
    manifest = Path(run_dir) / "trajectory" / MANIFEST
    if not manifest.exists():
        return None
    final = json.loads(manifest.read_text())["final"]
    return None if final is None else manifest.parent / final


def add_commands(steps) -> None:
    """CLI: ``lossgeom run-trajectory``."""
    command = steps.add_parser("run-trajectory", help="Hessian (and local geometry) of every snapshot of one run")
    command.add_argument("--snapshots", required=True, type=Path, help="the run's snapshots folder (step=<k>.pt)")
    command.add_argument("--final-model", type=Path, help="the run's model.pt (its point is the last snapshot's when "
                         "the weights are equal)")
    command.add_argument("--hessian-settings", default="{}", help="the hessian config block as JSON")
    command.add_argument("--local-settings", help="the local config block as JSON (omit: Hessians only)")
    command.add_argument("--out-dir", required=True, type=Path, help="the run's trajectory folder")
    command.set_defaults(func=lambda args: run(
        args.snapshots, args.final_model,
        settings_block(args.hessian_settings, hessian.HessianSettings, "--hessian-settings"),
        settings_block(args.local_settings, local_geometry.LocalSettings, "--local-settings"),
        args.out_dir, log=logging.getLogger(__name__).info))
