"""Check (a): random vs Hessian projections of quadratic saddles with prescribed spectra.

For each dimension N and mean curvature tr(H)/N, the saddle L = 1/2 sum lambda_i theta_i^2 with an evenly
spaced spectrum (:func:`lossgeom.theory.spectra.saddle_spectrum`) goes through the same operator, Lanczos
and projection code as a network (measured by :func:`lossgeom.stages.check_synthetic.measure`). Here the
measurements, made with Hessian-vector products over random Gaussian and unit directions, are compared with the
closed forms of :mod:`lossgeom.theory.projections` (mean, variance, saddle fraction), each with a tolerance of
:data:`~lossgeom.checks.rows.SIGMAS` standard errors; and the projection onto the extreme eigenvectors must show
the saddle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..theory.projections import clt_projections, eigenbasis_projections, saddle_fraction_clt, shows_saddle
from .rows import CheckRow


@dataclass
class SaddleMeasurements:
    """What was measured on one quadratic saddle (N = ``len(spectrum)``, tr(H)/N = ``mean_curvature``).

    ``projections``: (P, 3) rows M11, M12, M22 of random Gaussian 2D projections; ``unit_curvatures``: u^T H u
    for P random unit directions; ``hessian_kappa``: kappa+- of the projection onto the computed top and bottom
    eigenvectors, which the eigensolver reached (``converged``) in ``hvps`` products.
    """

    spectrum: np.ndarray
    mean_curvature: float
    projections: np.ndarray
    unit_curvatures: np.ndarray
    hessian_kappa: tuple[float, float]
    converged: bool
    hvps: int


def case_name(n: int, mean_curvature: float) -> str:
    return f"N={n}, tr(H)/N={mean_curvature:+g}"


def synthetic_rows(measured: list[SaddleMeasurements], *, prediction_samples: int, seed: int,
                   samples: dict | None = None) -> list[CheckRow]:
    """The rows of check (a), case by case in the order of ``measured``.

    The saddle fraction is predicted by Monte Carlo in the eigenbasis (``prediction_samples`` draws, seeded with
    ``seed + 2``) for N <= 1e4, else by the central limit. With a dict ``samples``, each case's measured and
    predicted projections are stored in it under the case name, for figures.
    """
    rows: list[CheckRow] = []
    check = "synthetic_random_projection"
    for case_measured in measured:
        lam, P = case_measured.spectrum, case_measured.projections
        n, m, projections = len(lam), case_measured.mean_curvature, len(P)
        case = case_name(n, m)
        trace, trace_sq = float(lam.sum()), float((lam**2).sum())
        m11, m12, m22 = P.T
        se_mean = math.sqrt(2 * trace_sq / projections)
        rows.append(CheckRow.compare(check, case, "mean eta^T H eta (Gaussian) vs tr(H)", trace, m11.mean(), se_mean))
        rows.append(CheckRow.compare(check, case, "mean eta^T H delta (Gaussian) vs 0", 0.0, m12.mean(),
                                     math.sqrt(trace_sq / projections)))
        rows.append(_unit_direction_row(lam, case_measured.unit_curvatures, case))
        kappa4 = 48 * float((lam**4).sum())  # fourth cumulant of eta^T H eta
        var_theory = 2 * trace_sq
        se_var = math.sqrt((kappa4 + 2 * var_theory**2) / projections)
        rows.append(CheckRow.compare(check, case, "var eta^T H eta vs 2 tr(H^2)", var_theory, m11.var(ddof=1), se_var))
        measured_fraction = float(shows_saddle(P).mean())
        if n <= 10_000:
            Q = eigenbasis_projections(lam, prediction_samples, seed + 2)
            predicted = float(shows_saddle(Q).mean())
            how, pred_samples = "Monte Carlo in the eigenbasis", prediction_samples
        else:
            predicted = saddle_fraction_clt(trace, trace_sq, 1_000_000, seed + 2)
            Q = clt_projections(trace, trace_sq, prediction_samples, seed + 3)
            how, pred_samples = "central-limit approximation", 1_000_000
        p = min(max(predicted, 1.0 / projections), 1 - 1.0 / projections)
        se_frac = math.sqrt(p * (1 - p) / projections + p * (1 - p) / pred_samples)
        rows.append(CheckRow.compare(check, case, "fraction of projections showing a saddle", predicted, measured_fraction,
                                     se_frac, f"predicted by {how}"))
        kp, km = case_measured.hessian_kappa
        if samples is not None:
            samples[case] = {"n": n, "mean_curvature": m, "trace": trace, "trace_sq": trace_sq,
                             "lambda_max": float(lam.max()), "lambda_min": float(lam.min()),
                             "measured": P, "predicted": Q, "predicted_by": how,
                             "hessian_kappa": (kp, km)}
        converged = case_measured.converged
        rows.append(CheckRow.within("synthetic_hessian_projection", case,
                                    "Hessian directions show a saddle (kappa+ kappa- < 0)", 1.0, float(kp * km < 0), 0.0,
                                    f"kappa+ = {kp:.6g} (lambda_max {lam.max():.6g}), kappa- = {km:.6g} (lambda_min "
                                    f"{lam.min():.6g})" + ("" if converged else "; the eigensolver did not converge "
                                                           f"({case_measured.hvps} products): unresolved"),
                                    decidable=converged))
    return rows


def _unit_direction_row(lam: np.ndarray, values: np.ndarray, case: str) -> CheckRow:
    """E[u^T H u] = tr(H)/N for u uniform on the sphere, with variance 2 (mean(lambda^2) - mean(lambda)^2) / (N + 2)."""
    n = len(lam)
    mean = float(lam.mean())
    var = 2 * (float((lam**2).mean()) - mean**2) / (n + 2)
    return CheckRow.compare("synthetic_random_projection", case, "mean u^T H u (unit) vs tr(H)/N", mean, values.mean(),
                            math.sqrt(var / len(values)))
