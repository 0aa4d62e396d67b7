"""The ``sweep_batch`` step: several runs of a sweep, each trained and measured in turn, in one process.

A sweep's runs on small models train in a second or two; as separate jobs each also pays a process start (Python,
torch, the first optimizer: about 4 s on two cores), so a sweep of dozens of runs spends most of its time starting.
A sweep with ``batch: n`` gives n runs to one job, which does for each what the per-run jobs do, into the same files:
the train step (:mod:`lossgeom.stages.train`), then, when the sweep computes Hessians, the run's trajectory
(:mod:`lossgeom.stages.run_trajectory`; sweeps with snapshots) or its hessian and local-geometry steps.

Resuming: Snakemake deletes a failed job's declared outputs (each run's model, tables, snapshots folder and
measurement summaries), so a killed batch is retried whole; each step then resumes from what it keeps outside them:
training from ``checkpoint/last.pt`` (afresh when its snapshots folder is gone), a trajectory's points computed from
byte-identical model files, the hessian step from ``partial.pt``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ..device import deterministic_torch
from ..errors import ConfigError
from ..training.loop import resolve_experiment
from . import hessian, local_geometry, run_trajectory, train

RUNS_FORM = '{"<run name>": {"spec": {dataset, model, train}, "out_dir": "<folder>"}, ...}'


def check_runs(runs: Any) -> None:
    """ConfigError naming the run and key when ``runs`` is not {name: {"spec": experiment, "out_dir": folder}} or a
    run's spec is not a valid experiment, before any run is trained."""
    if not isinstance(runs, Mapping) or not runs:
        raise ConfigError(f"--runs: expected a non-empty JSON object {RUNS_FORM}, got {json.dumps(runs)[:80]}")
    for name, item in runs.items():
        if not isinstance(item, Mapping) or set(item) != {"spec", "out_dir"}:
            keys = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise ConfigError(f"--runs: run {name!r} must have exactly the keys 'spec' and 'out_dir', got {keys}; "
                              f"the form is {RUNS_FORM}")
        if not isinstance(item["out_dir"], str) or not item["out_dir"]:
            raise ConfigError(f"--runs: run {name!r}: out_dir must be a folder name, got {item['out_dir']!r}")
        if not isinstance(item["spec"], Mapping):
            raise ConfigError(f"--runs: run {name!r}: spec must be an experiment {{dataset, model, train}}, got "
                              f"{item['spec']!r}")
        try:
            resolve_experiment(item["spec"])
        except ConfigError as err:
            raise ConfigError(f"--runs: run {name!r}: {err}") from None


def run(runs: Mapping[str, Mapping[str, Any]], hessian_settings=None, local_settings=None, log=print) -> list[str]:
    """``runs``: {name: {"spec": experiment spec, "out_dir": the run's folder}} in order. Returns the names done."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    check_runs(runs)
    done = []
    for number, (name, item) in enumerate(runs.items(), 1):
        folder = Path(item["out_dir"])
        log(f"run {number} of {len(runs)}: {name}")
        paths = train.TrainPaths.in_directory(folder)
        train.run(name, item["spec"], paths, progress=False)
        if hessian_settings is not None:
            if item["spec"].get("train", {}).get("snapshots"):
                run_trajectory.run(paths.snapshots, paths.model, hessian_settings, local_settings,
                                   folder / "trajectory", log=log)
            else:
                hessian.run(paths.model, hessian_settings, folder / "hessian", log=log)
                if local_settings is not None:
                    local_geometry.run(paths.model, folder / "hessian" / "summary.json",
                                       folder / "hessian" / "eigenvectors.pt", local_settings, folder / "local.json",
                                       log=log)
        done.append(name)
    return done


def add_commands(steps) -> None:
    """CLI: ``lossgeom sweep-batch``."""
    command = steps.add_parser("sweep-batch", help="train (and measure) several runs of a sweep in one process")
    command.add_argument("--runs", required=True, help='JSON: run name -> {"spec": experiment, "out_dir": folder}')
    command.add_argument("--hessian-settings", help="the hessian config block as JSON (omit: training only)")
    command.add_argument("--local-settings", help="the local config block as JSON (omit: no local geometry)")
    command.set_defaults(func=lambda args: run(
        json.loads(args.runs),
        run_trajectory.settings_block(args.hessian_settings, hessian.HessianSettings, "--hessian-settings"),
        run_trajectory.settings_block(args.local_settings, local_geometry.LocalSettings, "--local-settings"),
        log=logging.getLogger(__name__).info))
