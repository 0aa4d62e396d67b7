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
    (:mod:`lossgeom.geometry.second_differences`); the rows judge the chosen r and its neighbours. The default r
    follows that measurement (:data:`lossgeom.stages.check_model.DEFAULT_STEPS`).
Sign question: does the trained point look like a minimum in random projections (kappa+ > 0 and
kappa- > 0) while the Hessian has negative eigenvalues? The fraction of projections that look like a
minimum, a maximum and a saddle is reported next to lambda_min, lambda_max and tr(H)/N; the saddle
fraction is compared with its prediction from the computed extreme eigenvalues (exact) and the rest of the
spectrum by the central limit, from tr(H) (Hutchinson) and tr(H^2) (SLQ).

This module only judges: the measurements (products, slices, the finite-difference errors) are taken by
:func:`lossgeom.stages.check_model.measure` and arrive here as numbers (:class:`ModelMeasurements`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..geometry.grid_curvature import principal_curvatures
from ..theory.projections import saddle_fraction_spiked
from .rows import CheckRow, rows_to_frame


@dataclass
class ModelMeasurements:
    """What the ``check_model`` stage measured on one model (:func:`lossgeom.stages.check_model.measure`).

    ``projections``: (P, 3) rows M11, M12, M22 of P random Gaussian 2D projections; ``trace_samples``: the
    Hutchinson probes z^T H z, with their mean and standard error; ``exact_trace``: tr(H) from N unit vectors
    (small models, else None); ``slice_curvatures``: the second differences of the 1D slices at
    ``relative_step``, taken in ``slices_dtype``; ``bias``: per slice, step and dtype, the second difference
    against eta^T H eta (:func:`lossgeom.geometry.second_differences.bias_versus_step`); ``hvp_choice``: how the
    products were computed.
    """

    n_parameters: int
    projections: np.ndarray
    trace_samples: np.ndarray
    trace_estimate: float
    trace_standard_error: float
    exact_trace: float | None
    slice_curvatures: np.ndarray
    relative_step: float
    slices_dtype: str
    bias: pd.DataFrame
    hvp_choice: dict | None = None


def running_mean(samples: np.ndarray) -> pd.DataFrame:
    s = np.arange(1, len(samples) + 1)
    mean = np.cumsum(samples) / s
    sq = np.cumsum(samples**2)
    var = np.where(s > 1, (sq - s * mean**2) / np.maximum(s - 1, 1), np.nan)
    return pd.DataFrame({"S": s, "estimate": mean, "standard_error": np.sqrt(np.maximum(var, 0) / s)})


def model_rows(measured: ModelMeasurements, hessian_summary: Mapping[str, Any], experiment: str, *, seed: int,
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Rows of checks (b), (c) and the sign question; the trace-vs-S table; the sign-question record.

    ``hessian_summary`` is the hessian step's summary.json of the same model (extreme eigenvalues, SLQ tr(H^2)),
    the inputs of the saddle-fraction prediction; ``seed`` seeds that prediction's Monte Carlo.
    """
    n = measured.n_parameters
    case = f"{experiment} (N={n})"
    rows: list[CheckRow] = []
    M = measured.projections
    P = len(M)
    diag = np.concatenate([M[:, 0], M[:, 2]])
    proj_mean, proj_se = diag.mean(), diag.std(ddof=1) / math.sqrt(len(diag))
    h_mean, h_se = measured.trace_estimate, measured.trace_standard_error
    exact = measured.exact_trace

    # (b) random 2D projections vs the trace
    rows.append(CheckRow.compare("model_random_projection", case, "mean projected curvature (Gaussian) vs Hutchinson tr(H)",
                                 h_mean, proj_mean, math.hypot(proj_se, h_se),
                                 f"95% CI {proj_mean - 1.96 * proj_se:.5g} .. {proj_mean + 1.96 * proj_se:.5g}; {P} projections"))
    if exact is not None:
        rows.append(CheckRow.compare("model_random_projection", case, "mean projected curvature (Gaussian) vs exact tr(H)",
                                     exact, proj_mean, proj_se))

    # (c) the HVP-free trace from loss values on random 1D slices
    curvatures = measured.slice_curvatures
    slices, relative_step = len(curvatures), measured.relative_step
    f_mean, f_se = curvatures.mean(), curvatures.std(ddof=1) / math.sqrt(slices)
    rows.append(CheckRow.compare("hvp_free_trace", case, "HVP-free trace (finite differences of 1D slices) vs Hutchinson tr(H)",
                                 h_mean, f_mean, math.hypot(f_se, h_se), f"S = {slices} slices, r = {relative_step:g}"))
    if exact is not None:
        rows.append(CheckRow.compare("hvp_free_trace", case, "HVP-free trace vs exact tr(H)", exact, f_mean, f_se))
    # the error of the second differences against eta^T H eta at the chosen step and its neighbours
    bias = measured.bias
    scale = max(abs(h_mean), 1e-300)
    near = [r for r in bias["relative_step"].unique()
            if relative_step / 10 * (1 - 1e-9) <= r <= relative_step * 10 * (1 + 1e-9)]
    for r, group in bias[(bias["dtype"] == measured.slices_dtype) & bias["relative_step"].isin(near)].groupby("relative_step"):
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
        "hvp_choice": measured.hvp_choice,  # the product method and block auto kept, with its timings
    }
    trace_table = running_mean(curvatures).rename(columns={"estimate": "hvp_free", "standard_error": "hvp_free_se"})
    hut = running_mean(measured.trace_samples).rename(columns={"estimate": "hutchinson", "standard_error": "hutchinson_se"})
    trace_table = trace_table.merge(hut, on="S", how="outer")
    trace_table["exact"] = exact if exact is not None else np.nan
    return rows_to_frame(rows), trace_table, sign
