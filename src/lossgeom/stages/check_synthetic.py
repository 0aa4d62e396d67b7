"""The ``check_synthetic`` step: check (a) on quadratic saddles, and the projected Hessians behind it (F2).

Writes the check rows (CSV) and an npz with, per case i, the measured (``measured_i``, from Hessian-vector
products) and predicted (``predicted_i``) projected Hessians (rows M11, M12, M22) plus the case facts
(``case``, ``n``, ``mean_curvature``, ``trace``, ``trace_sq``, ``lambda_max``, ``lambda_min``,
``predicted_by``, ``hessian_kappa``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

import torch

from ..checks.rows import count_verdicts, rows_to_frame
from ..checks.synthetic import SaddleMeasurements, synthetic_rows
from ..device import deterministic_torch
from ..engine.lanczos import extreme_eigenpairs
from ..geometry.curvature import principal_curvatures, projected_hessian, random_projections
from ..io.atomic import write_csv, write_npz
from ..settings import settings_help
from ..settings.checks import SyntheticCheckSettings
from ..theory.spectra import quadratic_operator, saddle_spectrum


def unit_curvatures(op, count: int, seed: int) -> np.ndarray:
    """u^T H u for ``count`` directions u uniform on the unit sphere (normalized Gaussians, one generator)."""
    g = torch.Generator().manual_seed(seed)
    values = np.empty(count)
    for k in range(count):
        u = torch.randn(op.n_params, generator=g, dtype=torch.float64)
        u /= u.norm()
        values[k] = float(u @ op.matvec(u))
    return values


def measure(n: int, mean_curvature: float, projections: int, seed: int) -> SaddleMeasurements:
    """Products on the saddle with spectrum ``saddle_spectrum(n, mean_curvature)``: ``projections`` random Gaussian 2D
    projections (seed ``seed``), as many unit directions (``seed + 1``), and the projection onto the top and bottom
    eigenvectors from the eigensolver (``seed``)."""
    lam = saddle_spectrum(n, mean_curvature)
    op = quadratic_operator(lam)
    P = random_projections(op, projections, seed)
    units = unit_curvatures(op, projections, seed + 1)
    eig = extreme_eigenpairs(op, k_top=1, k_bottom=1, tol=1e-8, seed=seed)
    M = projected_hessian(op, eig.top.vectors[0], eig.bottom.vectors[0])
    return SaddleMeasurements(spectrum=lam, mean_curvature=mean_curvature, projections=P, unit_curvatures=units,
                              hessian_kappa=principal_curvatures(M),
                              converged=bool(eig.top.converged.all() and eig.bottom.converged.all()), hvps=eig.hvps)


def compute(settings: SyntheticCheckSettings) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """(rows, samples): the check rows and, per case name, the projections behind them."""
    measured = [measure(n, m, settings.projections, settings.seed)
                for n in settings.dimensions for m in settings.mean_curvatures]
    samples: dict[str, dict[str, Any]] = {}
    rows = synthetic_rows(measured, prediction_samples=settings.prediction_samples, seed=settings.seed, samples=samples)
    return rows_to_frame(rows), samples


def samples_arrays(samples: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The npz layout of the projections (see the module docstring), cases in the order of the rows."""
    cases = list(samples)
    arrays = {"case": np.array(cases)}
    for key in ("n", "mean_curvature", "trace", "trace_sq", "lambda_max", "lambda_min", "predicted_by"):
        arrays[key] = np.array([samples[c][key] for c in cases])
    arrays["hessian_kappa"] = np.array([samples[c]["hessian_kappa"] for c in cases])
    for i, c in enumerate(cases):
        arrays[f"measured_{i}"] = samples[c]["measured"]
        arrays[f"predicted_{i}"] = samples[c]["predicted"]
    return arrays


def write(rows: pd.DataFrame, samples, rows_path, samples_path=None) -> None:
    if samples_path:
        write_npz(samples_arrays(samples), samples_path)
    write_csv(rows, rows_path)


def run(settings: SyntheticCheckSettings, rows_path, samples_path=None) -> pd.DataFrame:
    deterministic_torch()  # before any torch work: see lossgeom.device
    rows, samples = compute(settings)
    write(rows, samples, rows_path, samples_path)
    return rows


def add_commands(steps) -> None:
    """CLI: ``lossgeom check-synthetic``."""
    command = steps.add_parser("check-synthetic", help="theory vs measurement on quadratic saddles (check a)",
                              **settings_help(SyntheticCheckSettings, "checks.synthetic"))
    command.add_argument("--settings", default="{}", help="the checks.synthetic config block as JSON")
    command.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    command.add_argument("--samples-out", type=Path, help="npz of the projected Hessians behind the rows")
    command.set_defaults(func=_command)


def _command(args) -> None:
    rows = run(SyntheticCheckSettings.from_mapping(json.loads(args.settings)), args.out, args.samples_out)
    logging.getLogger(__name__).info("%d checks: %s", len(rows), count_verdicts(rows))
