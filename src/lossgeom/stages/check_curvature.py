"""The ``check_curvature`` step: the principal curvatures of a model's computed surfaces vs exact ones.

Rebuilds the surfaces step's directions from its recorded settings, checks that they are the ones the
grids were computed along (the random directions by their norms, the Hessian pair by the eigenvector file's
parameter layout), measures the exact projected Hessian and gradient where the checks need them
(:func:`measure`), and compares the narrowest 2D train-loss grid's curvatures with them
(:mod:`lossgeom.checks.surface_curvature`). Writes the rows (CSV) and a record with verdict counts (JSON).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from ..checks.rows import count_verdicts
from ..checks.surface_curvature import surface_curvature_rows
from ..device import DTYPES, deterministic_torch
from ..engine.hessian import HessianOperator
from ..errors import ConfigError
from ..io.atomic import write_csv, write_json
from ..io.provenance import input_record, provenance, require_same_input
from ..geometry.curvature import exact_projection
from ..geometry.grid_curvature import off_centre, principal_curvatures
from ..problems.data import Dataset
from ..problems.losses import loss_function
from ..problems.models import count_parameters
from .surfaces import SurfaceSettings, direction_pair, load, load_eigenvectors


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
            directions: Mapping[str, tuple[torch.Tensor, torch.Tensor]], grids: Mapping[str, np.ndarray], r: float,
            batch_size: int, log: Callable[[str], None] = print) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per direction pair, the exact (M, g) in float64 at the 2D grid's centre (the trained point) and at its point halfway to the
    corner (:func:`lossgeom.geometry.grid_curvature.off_centre`): two Hessian-vector products and one gradient each.

    ``model``, x and y are in float64; ``directions`` maps a pair name to the (eta, delta) the surfaces step used;
    ``grids`` (the surfaces step's arrays) give the coordinates of the range-``r`` grid's points.
    """
    make_operator = lambda: HessianOperator(model, loss_function(task), x, y, batch_size=batch_size)  # noqa: E731
    exact = {}
    for pair, (eta, delta) in directions.items():
        name = f"{pair}_r{r:g}_2d"
        eta, delta = eta.to(torch.float64), delta.to(torch.float64)
        a, b = grids[f"{name}_a"], grids[f"{name}_b"]
        away = off_centre(a, b)
        exact[pair] = {"centre": exact_projection(model, make_operator, eta, delta, 0.0, 0.0),  # the trained point
                       "away": exact_projection(model, make_operator, eta, delta, float(a[away[0]]), float(b[away[1]]))}
        log(f"{name}: exact kappa+- {principal_curvatures(exact[pair]['centre'][0])}")
    return exact


def compute(model, dataset: Dataset, eigenvectors: Mapping[str, Any] | None, grids: Mapping[str, np.ndarray],
            meta: Mapping[str, Any], experiment: str, log=print) -> pd.DataFrame:
    """Check rows for every direction pair of the surfaces (``grids``, ``meta``: the surfaces step's npz and json),
    on the narrowest range's 2D train-loss grid; ``model`` as :func:`lossgeom.stages.surfaces.load` returns it."""
    settings = SurfaceSettings.from_mapping(meta["settings"])
    if "train" not in settings.splits:
        raise ConfigError("the surface curvature check needs surfaces.splits to include train")
    directions = {pair: direction_pair(model, settings, eigenvectors, pair) for pair in settings.pairs}
    for pair, (eta, delta) in directions.items():
        recorded = meta["surfaces"][pair]
        if not np.allclose([float(eta.norm()), float(delta.norm())], [recorded["eta_norm"], recorded["delta_norm"]], rtol=1e-6):
            raise ConfigError(f"the {pair} directions rebuilt here do not match the surfaces' norms; "
                              "rerun the surfaces step for this model")
    model = copy.deepcopy(model).to(torch.float64)  # the exact side; the caller's model stays as it is
    device = next(model.parameters()).device
    y = dataset.y_train.to(device, torch.float64) if dataset.task == "regression" else dataset.y_train.to(device)
    x = dataset.x_train.to(device, torch.float64)
    eps = float(torch.finfo(DTYPES[settings.dtype]).eps)
    r = min(settings.ranges)
    exact = measure(model, x, y, dataset.task, directions, grids, r, settings.curvature_batch_size or settings.batch_size,
                    log=log)
    return surface_curvature_rows(experiment, count_parameters(model), grids, r, eps, exact)


def write(rows: pd.DataFrame, inputs: dict[str, Any], experiment: str, rows_path, meta_path) -> None:
    write_json({"experiment": experiment, "inputs": input_record(**inputs),
                "verdicts": count_verdicts(rows), "provenance": provenance()}, meta_path)
    write_csv(rows, rows_path)


def run(model_path, eigenvectors_path, surfaces_npz, surfaces_json, experiment: str, rows_path, meta_path,
        log=print) -> pd.DataFrame:
    deterministic_torch()  # before any torch work: see lossgeom.device
    meta = json.loads(Path(surfaces_json).read_text())
    settings = SurfaceSettings.from_mapping(meta["settings"])
    model, dataset = load(model_path, settings)  # the directions are built exactly as the surfaces step built them
    require_same_input(meta.get("inputs"), "model", model_path, surfaces_json)
    hessian = "hessian" in settings.pairs
    eigenvectors = load_eigenvectors(eigenvectors_path, model_path, model) if hessian else None
    try:
        with np.load(surfaces_npz) as grids:
            rows = compute(model, dataset, eigenvectors, grids, meta, experiment, log=log)
    except ConfigError as err:
        raise ConfigError(f"{surfaces_json}: {err}") from None
    write(rows, {"model": model_path, "eigenvectors": eigenvectors_path if hessian else None, "surfaces": surfaces_npz},
          experiment, rows_path, meta_path)
    return rows


def add_commands(steps) -> None:
    """CLI: ``lossgeom check-curvature``."""
    command = steps.add_parser("check-curvature", help="principal curvatures of a model's surface grids vs exact")
    command.add_argument("--name", required=True)
    command.add_argument("--model", required=True, type=Path)
    command.add_argument("--eigenvectors", required=True, type=Path, help="hessian/eigenvectors.pt of the model")
    command.add_argument("--surfaces", required=True, type=Path, help="surfaces/surfaces.npz of the model")
    command.add_argument("--surfaces-meta", required=True, type=Path, help="surfaces/surfaces.json of the model")
    command.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    command.add_argument("--meta-out", required=True, type=Path, help="JSON with verdict counts and provenance")
    command.set_defaults(func=lambda args: run(args.model, args.eigenvectors, args.surfaces, args.surfaces_meta, args.name,
                                               args.out, args.meta_out, log=logging.getLogger(__name__).info))
