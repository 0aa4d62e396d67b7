"""The ``local_geometry`` step: the companion papers' local measures of one model (a trained one, or a snapshot
along training), beside the Hessian step's eigenpairs of the same model.

Writes ``local.json`` with, on the examples the hessian step used (its recorded split and subset):
- the loss and the gradient g (its norm);
- the gradient's share in the top-k Hessian eigenspace, ||V_k^T g||^2 / ||g||^2 for k = C - 1 and C (C classes;
  softmax leaves one logit direction free), beside the random baseline k/N (Gur-Ari et al. 2018; Fort & Ganguli 2019);
- the outlier gap, the largest lambda_k / lambda_{k+1} over k <= 2C of the hessian step's top eigenvalues
  (Sagun et al. 2017; :mod:`lossgeom.engine.outliers`); its k_top must be >= 2C + 1 for the whole range;
- ||H - G||_F / ||H||_F, G the Gauss-Newton matrix, from shared Rademacher probes with a standard error
  (:mod:`lossgeom.engine.frobenius`), and exactly from dense float64 matrices for models of at most
  ``exact_max_parameters`` parameters;
- for those small models also the whole spectrum of H (Sagun et al.'s bulk and outliers): every eigenvalue, the
  share near zero (|lambda| < ``near_zero`` * max |lambda|), the mean of the top C - 1 (the outliers) and the 50% and
  90% quantiles of |lambda| over the rest (the bulk);
- per-example logit-gradient cosines by group (same logit same class, same logit different class, different logits;
  :mod:`lossgeom.engine.logit_gradients`) on a seeded subset of ``logit_examples`` examples.
Classification models only (C logits); the products run in ``dtype`` (float64 by default: these models are small).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..device import DTYPES, deterministic_torch, pick_device
from ..engine.frobenius import relative_distance
from ..engine.gauss_newton import GaussNewtonOperator
from ..engine.hessian import HessianOperator
from ..engine.logit_gradients import cosine_statistics, logit_gradients
from ..engine.operator import dense_matrix
from ..engine.outliers import near_zero_fraction, outlier_gap
from ..errors import ConfigError
from ..geometry.subspaces import gradient_overlap
from ..io.atomic import write_json
from ..io.provenance import input_record, provenance, require_same_input
from ..problems.data import Dataset, example_subset
from ..problems.losses import loss_function
from ..settings import settings_help
from ..settings.local import LocalSettings
from ..training.checkpoints import load_model
from .hessian import loss_examples
from .surfaces import load_eigenvectors

DENSE_BLOCK = 128  # unit vectors per product pass when forming dense H and G (small models only)


def spectrum_summary(eigenvalues, classes: int, near_zero: float) -> dict[str, Any]:
    """Bulk and outliers of a whole spectrum: the eigenvalues (descending), the share near zero, the mean of the top
    C - 1 (the outliers; at least the top one) and the 50% / 90% quantiles of |lambda| over the rest (the bulk)."""
    values = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    top = max(classes - 1, 1)
    bulk = np.abs(values[top:])
    return {"eigenvalues": values.tolist(), "near_zero": near_zero,
            "near_zero_fraction": near_zero_fraction(values, near_zero), "outliers": top,
            "outlier_mean": float(values[:top].mean()), "bulk_abs_q50": float(np.quantile(bulk, 0.5)),
            "bulk_abs_q90": float(np.quantile(bulk, 0.9))}


def compute(model, dataset: Dataset, hessian_summary: Mapping[str, Any], eigen: Mapping[str, Any],
            settings: LocalSettings, log=print) -> dict[str, Any]:
    """Every measure of the module docstring for ``model`` (copied to ``dtype``); ``eigen``: the hessian step's
    eigenvectors.pt of the same model."""
    if dataset.task != "classification":
        raise ConfigError(f"local geometry needs a classifier (C logits); {dataset.name} is a {dataset.task} task")
    timings: dict[str, float] = {}
    dtype = DTYPES[settings.dtype]
    model = copy.deepcopy(model).to(dtype)
    device = next(model.parameters()).device
    recorded = hessian_summary.get("settings", {})
    x, y = loss_examples(dataset, recorded.get("split", "train"), recorded.get("examples", 0), recorded.get("seed", 0))
    x, y = x.to(device, dtype), y.to(device)
    loss_fn = loss_function(dataset.task)
    classes = dataset.output_dim
    H = HessianOperator(model, loss_fn, x, y, batch_size=settings.batch_size, method="forward-over-reverse")
    G = GaussNewtonOperator(model, loss_fn, x, y, batch_size=settings.batch_size)
    n = H.n_params

    tick = time.perf_counter()
    loss = H.loss()
    g = H.gradient()
    top_values = [float(v) for v in eigen["top_values"]]
    top_vectors = eigen["top_vectors"]
    overlap = [{"k": k, "overlap": gradient_overlap(g, top_vectors[:k]), "random_baseline": k / n}
               for k in (classes - 1, classes) if 1 <= k <= len(top_vectors)]
    k_max = min(2 * classes, len(top_values) - 1)
    gap = {**outlier_gap(top_values, k_max), "k_max": k_max} if k_max >= 1 else None
    timings["gradient_s"] = time.perf_counter() - tick
    log(f"N = {n}, C = {classes}: loss {loss:.6g}, |g| = {float(g.norm()):.4g}, overlap "
        + ", ".join(f"k={o['k']}: {o['overlap']:.3f} (random {o['random_baseline']:.2g})" for o in overlap)
        + (f"; outlier gap at k = {gap['k']} (ratio {gap['ratio']:.3g})" if gap else ""))

    tick = time.perf_counter()
    distance = relative_distance(H, G, probes=settings.ggn_probes, seed=settings.seed).as_dict()
    if n <= settings.exact_max_parameters:
        # N products each, DENSE_BLOCK at a time (wide blocks: 2.5x faster than Lanczos' 8 for N ~ 500)
        dense_h = dense_matrix(HessianOperator(model, loss_fn, x, y, batch_size=settings.batch_size,
                                               method="forward-over-reverse", block=DENSE_BLOCK))
        dense_g = dense_matrix(GaussNewtonOperator(model, loss_fn, x, y, batch_size=settings.batch_size,
                                                   block=DENSE_BLOCK))
        distance["exact"] = float(torch.linalg.matrix_norm(dense_h - dense_g) / torch.linalg.matrix_norm(dense_h))
        del dense_g  # memory: at most H, G and H - G (3 N^2 doubles), then H and eigvalsh's copy
        spectrum = spectrum_summary(torch.linalg.eigvalsh(dense_h).cpu().numpy(), classes, settings.near_zero)
        log(f"spectrum: {spectrum['near_zero_fraction']:.3f} near zero, outliers (top C - 1) mean "
            f"{spectrum['outlier_mean']:.4g}, bulk |lambda| median {spectrum['bulk_abs_q50']:.3g}")
    else:
        spectrum = None
    timings["gauss_newton_s"] = time.perf_counter() - tick
    log(f"||H - G||_F / ||H||_F = {distance['estimate']:.4g} +- {distance['standard_error']:.2g} "
        f"({settings.ggn_probes} probes)" + (f", exact {distance['exact']:.4g}" if "exact" in distance else ""))

    tick = time.perf_counter()
    cosines, compared = {}, 0  # logit_examples 0: none compared (example_subset would read 0 as "all")
    if settings.logit_examples:
        xs, ys = example_subset(x, y, settings.logit_examples, settings.seed)
        cosines, compared = cosine_statistics(logit_gradients(model, xs), ys), len(xs)
    timings["logit_gradients_s"] = time.perf_counter() - tick
    log("logit-gradient cosines: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in cosines.items()))

    return {
        "n_parameters": n, "classes": classes, "n_examples": len(x), "dtype": settings.dtype, "device": str(device),
        "loss": loss, "gradient_norm": float(g.norm()), "top_eigenvalues": top_values,
        "lambda_max": top_values[0] if top_values else None, "overlap": overlap, "outlier_gap": gap,
        "gauss_newton_distance": distance, "spectrum": spectrum, "logit_cosines": {**cosines, "examples": compared},
        "timings": timings, "settings": dataclasses.asdict(settings), "provenance": provenance(seed=settings.seed),
    }


def run(model_path, hessian_summary_path, eigenvectors_path, settings: LocalSettings, out, log=print) -> dict[str, Any]:
    """Load the model and its hessian step's outputs (checked to be of the same model file), compute, write ``out``."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    model, dataset, stored = load_model(model_path, pick_device(settings.device))
    hessian_summary = json.loads(Path(hessian_summary_path).read_text())
    require_same_input(hessian_summary.get("inputs"), "model", model_path, hessian_summary_path)
    eigen = load_eigenvectors(eigenvectors_path, model_path, model, need_bottom=False)
    result = compute(model, dataset, hessian_summary, eigen, settings, log=log)
    result.update({"experiment": stored["info"].get("experiment"), "step": stored["info"].get("step"),
                   "inputs": input_record(model=model_path, hessian=hessian_summary_path, eigenvectors=eigenvectors_path)})
    write_json(result, out)
    return result


def add_commands(steps) -> None:
    """CLI: ``lossgeom local-geometry``."""
    command = steps.add_parser("local-geometry", help="gradient overlap, outlier gap, ||H - G||, logit-gradient "
                               "cosines of one classifier", **settings_help(LocalSettings, "local"))
    command.add_argument("--model", required=True, type=Path)
    command.add_argument("--hessian", required=True, type=Path, help="hessian/summary.json of the model")
    command.add_argument("--eigenvectors", required=True, type=Path, help="hessian/eigenvectors.pt of the model")
    command.add_argument("--settings", default="{}", help="the local config block as JSON")
    command.add_argument("--out", required=True, type=Path, help="local.json to write")
    command.set_defaults(func=lambda args: run(args.model, args.hessian, args.eigenvectors,
                                               LocalSettings.from_mapping(json.loads(args.settings)), args.out,
                                               log=logging.getLogger(__name__).info))
