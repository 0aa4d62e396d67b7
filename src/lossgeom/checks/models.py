"""Checks on a trained model: random-projection curvature vs the trace (b), the HVP-free trace (c), and
the paper's sign question.

(b) For Gaussian directions eta (i.i.d. N(0, 1) per parameter), E[eta^T H eta] = tr(H): the mean of the
    projected curvatures M11, M22 over P random 2D projections (2P Gaussian directions) is compared with
    the Hutchinson estimate (Rademacher probes) and, for small models, with the exact trace.
(c) The same mean from loss values alone: for each random 1D slice, the central second difference
    kappa(eta) = [L(theta + h eta) - 2 L(theta) + L(theta - h eta)] / h^2 = eta^T H eta + O(h^2).
    Step rule: h = r ||theta|| / ||eta||, i.e. the probe moves the weights by a fixed fraction r of their
    norm. Its error is measured, not assumed: on a subset of slices kappa(eta) is compared with the exact
    eta^T H eta from one Hessian-vector product, for r from 1e-1 to 1e-6 in float64 and float32
    (:mod:`lossgeom.checks.finite_differences`); the rows judge the chosen r and its neighbours. The default r
    follows that measurement (:data:`lossgeom.stages.check_model.DEFAULT_STEPS`).
Sign question: does the trained point look like a minimum in random projections (kappa+ > 0 and
kappa- > 0) while the Hessian has negative eigenvalues? The fraction of projections that look like a
minimum, a maximum and a saddle is reported next to lambda_min, lambda_max and tr(H)/N; the saddle
fraction is compared with its prediction from the computed extreme eigenvalues (exact) and the rest of the
spectrum by the central limit, from tr(H) (Hutchinson) and tr(H^2) (SLQ).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from ..engine.hessian import HessianOperator
from ..engine.operator import apply_rows, block_size
from ..engine.resume import ResumeSlot, restore_samples, save_samples
from ..engine.trace import hutchinson_trace
from ..geometry.curvature import principal_curvatures, random_projections
from ..geometry.parameters import ParameterShifter
from ..problems.losses import loss_function
from ..progress import Progress
from ..theory.projections import saddle_fraction_spiked
from ..training.evaluation import evaluate
from .finite_differences import STEPS, bias_versus_step
from .rows import CheckRow, rows_to_frame


def _gaussian(n: int, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(n, generator=g, dtype=torch.float64).to(like.device, like.dtype)


def slice_curvature(shifter: ParameterShifter, loss_at, eta: torch.Tensor, h: float, centre: float) -> float:
    """Central second difference of the loss along ``eta`` (loss values only); restores the parameters."""
    shifter.eta = eta
    shifter.move(h)
    plus = loss_at()
    shifter.move(-h)
    minus = loss_at()
    shifter.restore()
    return (plus - 2.0 * centre + minus) / h**2


def exact_trace(op) -> float:
    """tr(H) = sum_i e_i^T H e_i from N products with the unit vectors (in blocks of the operator's ``block``)."""
    n, block, total = op.n_params, block_size(op), 0.0
    for first in range(0, n, block):
        columns = torch.arange(first, min(first + block, n), device=op.device)
        rows = torch.arange(len(columns), device=op.device)  # unit vector e_(first + r) in row r
        units = torch.zeros(len(columns), n, device=op.device, dtype=op.dtype)
        units[rows, columns] = 1.0
        total += float(apply_rows(op, units)[rows, columns].double().sum())
    return total


def running_mean(samples: np.ndarray) -> pd.DataFrame:
    s = np.arange(1, len(samples) + 1)
    mean = np.cumsum(samples) / s
    sq = np.cumsum(samples**2)
    var = np.where(s > 1, (sq - s * mean**2) / np.maximum(s - 1, 1), np.nan)
    return pd.DataFrame({"S": s, "estimate": mean, "standard_error": np.sqrt(np.maximum(var, 0) / s)})


def model_checks(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, hessian_summary: Mapping[str, Any],
                 experiment: str, *, projections: int, slices: int, hutchinson_samples: int, relative_step: float,
                 bias_slices: int, exact_max_parameters: int, batch_size: int, seed: int,
                 slices_dtype: torch.dtype | None = None, prior_trace_samples: np.ndarray | None = None,
                 hvp_method: str = "auto", hvp_block: int | None = None,
                 log: Callable[[str], None] = print,
                 resume: Callable[[str], ResumeSlot | None] = lambda key: None,
                 ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame]:
    """Rows of checks (b), (c) and the sign question; the trace-vs-S table; the sign-question record; the
    finite-difference error per slice over a grid of steps in float64 and float32 (:mod:`.finite_differences`).

    ``model`` and the data (x, y) are already on the device and in the precision to check in;
    ``hessian_summary`` is the hessian step's summary.json of the same model (extreme eigenvalues, SLQ tr(H^2)).
    One generator seeded with ``seed`` draws, in this order, the projections' directions, the Hutchinson
    probes and the slices' directions. ``prior_trace_samples``: the Hutchinson samples the hessian step took
    on the same loss in the same precision; they are the first probes here, and only the rest are drawn.
    ``hvp_method``, ``hvp_block``: how products are computed (the stage passes what the hessian step's ``auto``
    chose and recorded, so that one model is timed once and both steps compute products the same way).
    ``resume(key)`` gives each loop a place to save its work in progress (with the generator's state), so
    that a killed run continues where it was.
    """
    planned = 2 * projections + hutchinson_samples + bias_slices
    op = HessianOperator(model, loss_function(task), x, y, batch_size=batch_size, method=hvp_method, block=hvp_block,
                         expected_products=planned)
    n = op.n_params
    g = torch.Generator().manual_seed(seed)
    case = f"{experiment} (N={n})"
    rows: list[CheckRow] = []

    # (b) random 2D projections: M from two products each
    P = projections
    M = random_projections(op, P, generator=g, resume=resume("projections"))
    diag = np.concatenate([M[:, 0], M[:, 2]])
    proj_mean, proj_se = diag.mean(), diag.std(ddof=1) / math.sqrt(len(diag))
    log(f"(b) {P} projections: mean eta^T H eta = {proj_mean:.6g} +- {proj_se:.2g}")

    # Hutchinson with many probes (for the trace-vs-S curves)
    trace = hutchinson_trace(op, hutchinson_samples, generator=g, resume=resume("hutchinson"), prior=prior_trace_samples)
    hutch, h_mean, h_se = trace.samples, trace.estimate, trace.standard_error
    log(f"Hutchinson, {len(hutch)} probes ({len(hutch) - trace.hvps} from the hessian step): tr(H) = {h_mean:.6g} +- {h_se:.2g}")

    exact = None
    if n <= exact_max_parameters:
        exact = exact_trace(op)
        log(f"exact tr(H) = {exact:.6g} (N products)")

    rows.append(CheckRow.compare("model_random_projection", case, "mean projected curvature (Gaussian) vs Hutchinson tr(H)",
                                 h_mean, proj_mean, math.hypot(proj_se, h_se),
                                 f"95% CI {proj_mean - 1.96 * proj_se:.5g} .. {proj_mean + 1.96 * proj_se:.5g}; {P} projections"))
    if exact is not None:
        rows.append(CheckRow.compare("model_random_projection", case, "mean projected curvature (Gaussian) vs exact tr(H)",
                                     exact, proj_mean, proj_se))

    # (c) HVP-free trace from loss values on random 1D slices, in their own precision (second differences
    # lose ~eps L / h^2 to rounding: float64 lets the step go below the kinks of a ReLU network)
    slices_dtype = slices_dtype or op.dtype
    sliced = model if slices_dtype == op.dtype else copy.deepcopy(model).to(slices_dtype)
    xs = x.to(slices_dtype)
    ys = y.to(slices_dtype) if task == "regression" else y
    shifter = ParameterShifter(sliced, torch.zeros(n, device=op.device, dtype=slices_dtype))
    theta_norm = float(shifter.theta.norm())

    def loss_at() -> float:
        return evaluate(sliced, xs, ys, task, batch_size)["loss"]

    centre = loss_at()
    curvatures = np.empty(slices)
    slot = resume("slices")
    start = restore_samples(slot, "curvatures", curvatures, g)
    progress = Progress("hvp-free slices", slices, "slices")
    for k in range(start, slices):
        eta = _gaussian(n, g, shifter.theta)
        h = relative_step * theta_norm / float(eta.norm())
        curvatures[k] = slice_curvature(shifter, loss_at, eta, h, centre)
        (progress.finish if k == slices - 1 else progress.update)(k + 1, mean=lambda k=k: f"{curvatures[: k + 1].mean():.6g}")
        save_samples(slot, "curvatures", curvatures[: k + 1], g, final=k == slices - 1)
    f_mean, f_se = curvatures.mean(), curvatures.std(ddof=1) / math.sqrt(slices)
    log(f"(c) {slices} slices: HVP-free tr(H) = {f_mean:.6g} +- {f_se:.2g}")
    rows.append(CheckRow.compare("hvp_free_trace", case, "HVP-free trace (finite differences of 1D slices) vs Hutchinson tr(H)",
                                 h_mean, f_mean, math.hypot(f_se, h_se), f"S = {slices} slices, r = {relative_step:g}"))
    if exact is not None:
        rows.append(CheckRow.compare("hvp_free_trace", case, "HVP-free trace vs exact tr(H)", exact, f_mean, f_se))
    # the error of the second differences against eta^T H eta, over a grid of steps in both precisions
    steps = sorted(set(STEPS) | {relative_step}, reverse=True)
    bias = bias_versus_step(model, x, y, task, slices=bias_slices, seed=seed + 1, batch_size=batch_size, steps=steps,
                            method=op.method)
    dtype_name = {torch.float32: "float32", torch.float64: "float64"}[slices_dtype]
    scale = max(abs(h_mean), 1e-300)
    near = [r for r in steps if relative_step / 10 * (1 - 1e-9) <= r <= relative_step * 10 * (1 + 1e-9)]
    for r, group in bias[(bias["dtype"] == dtype_name) & bias["relative_step"].isin(near)].groupby("relative_step"):
        err = group["error"].to_numpy()
        se = err.std(ddof=1) / math.sqrt(len(err)) if len(err) > 1 else abs(err).max()
        chosen = "chosen step" if math.isclose(r, relative_step) else "neighbouring step"
        rows.append(CheckRow.compare("hvp_free_trace", case, f"finite-difference bias per slice at r = {r:g} vs 0",
                                     0.0, err.mean(), se, f"{chosen}; mean |error| / tr(H) = {np.abs(err).mean() / scale:.2e}",
                                     scale=h_mean))  # a bias as large as tr(H) itself is what matters

    # sign question
    kappas = np.array([principal_curvatures(np.array([[a, b], [b, c]])) for a, b, c in M])
    minimum = float(np.mean((kappas[:, 0] > 0) & (kappas[:, 1] > 0)))
    maximum = float(np.mean((kappas[:, 0] < 0) & (kappas[:, 1] < 0)))
    saddle = float(np.mean(kappas[:, 0] * kappas[:, 1] < 0))
    eig = hessian_summary["eigen"]
    lam_min = eig["bottom"]["values"][0] if eig["bottom"]["values"] else float("nan")
    lam_max = eig["top"]["values"][0] if eig["top"]["values"] else float("nan")
    density = hessian_summary.get("density_moments", {})
    trace_sq = density.get("trace_h2")
    if trace_sq is not None:
        outliers = list(eig["top"]["values"]) + list(eig["bottom"]["values"])

        def predict(trace: float, trace2: float) -> float:  # one seed: common random numbers across the inputs
            return saddle_fraction_spiked(outliers, trace, trace2, 200_000, seed)

        predicted = predict(h_mean, trace_sq)
        # The inputs are estimates too: their standard errors (Hutchinson tr(H), SLQ tr(H^2)) move the prediction;
        # propagated to first order by central differences, added in quadrature to the projections' binomial error.
        sq_se = density.get("trace_h2_se", float("nan"))
        from_trace = 0.5 * (predict(h_mean + h_se, trace_sq) - predict(h_mean - h_se, trace_sq))
        from_trace_sq = (0.5 * (predict(h_mean, trace_sq + sq_se) - predict(h_mean, max(trace_sq - sq_se, 0.0)))
                         if math.isfinite(sq_se) else float("nan"))
        p = min(max(predicted, 1 / P), 1 - 1 / P)
        sampling = math.sqrt(p * (1 - p) / P)
        se = math.sqrt(sampling**2 + from_trace**2 + from_trace_sq**2)
        rows.append(CheckRow.compare("model_random_projection", case, "fraction of random projections showing a saddle",
                                     predicted, saddle, se,
                                     f"predicted with the {len(outliers)} computed extreme eigenvalues exact and the bulk by "
                                     f"the central limit (Hutchinson tr(H), SLQ tr(H^2)); SE {sampling:.2g} from {P} "
                                     f"projections, {abs(from_trace):.2g} from tr(H), {abs(from_trace_sq):.2g} from tr(H^2)"))
    sign = {
        "experiment": experiment,
        "n_parameters": n,
        "lambda_max": lam_max,
        "lambda_min": lam_min,
        "trace": h_mean,
        "mean_curvature": h_mean / n,
        "fraction_minimum": minimum,
        "fraction_maximum": maximum,
        "fraction_saddle": saddle,
        "looks_like_minimum_despite_negative_curvature": bool(lam_min < 0 and minimum > 0.5),
        "hvp_choice": getattr(op, "choice", None),  # the product method and block auto kept, with its timings
    }
    trace_table = running_mean(curvatures).rename(columns={"estimate": "hvp_free", "standard_error": "hvp_free_se"})
    hut = running_mean(hutch).rename(columns={"estimate": "hutchinson", "standard_error": "hutchinson_se"})
    trace_table = trace_table.merge(hut, on="S", how="outer")
    trace_table["exact"] = exact if exact is not None else np.nan
    return rows_to_frame(rows), trace_table, sign, bias
