"""Check (a): random vs Hessian projections of quadratic saddles with prescribed spectra.

For each dimension N and mean curvature tr(H)/N, the saddle L = 1/2 sum lambda_i theta_i^2 with an evenly
spaced spectrum (:func:`lossgeom.theory.spectra.saddle_spectrum`) goes through the same operator, Lanczos
and projection code as a network. Measured with Hessian-vector products over random Gaussian and unit
directions, compared with the closed forms of :mod:`lossgeom.theory.projections` (mean, variance, saddle
fraction), each with a tolerance of :data:`~lossgeom.checks.rows.SIGMAS` standard errors; and the
projection onto the extreme eigenvectors must show the saddle.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..engine.lanczos import extreme_eigenpairs
from ..geometry.curvature import principal_curvatures, projected_hessian, random_projections
from ..theory.projections import clt_projections, eigenbasis_projections, saddle_fraction_clt, shows_saddle
from ..theory.spectra import quadratic_operator, saddle_spectrum
from .rows import CheckRow


def synthetic_checks(
    *,
    dimensions,
    mean_curvatures,
    projections: int,
    prediction_samples: int,
    seed: int,
    samples: dict | None = None,
) -> list[CheckRow]:
    """Check (a): random vs Hessian projections of quadratic saddles with prescribed spectra.

    With a dict ``samples``, each case's measured projections (HVPs) and predicted ones (eigenbasis Monte
    Carlo, or central limit for N > 1e4) are stored in it under the case name, for figures.
    """
    rows: list[CheckRow] = []
    for n in dimensions:
        for m in mean_curvatures:
            lam = saddle_spectrum(n, m)
            case = f"N={n}, tr(H)/N={m:+g}"
            trace, trace_sq = float(lam.sum()), float((lam**2).sum())
            op = quadratic_operator(lam)
            P = random_projections(op, projections, seed)
            m11, m12, m22 = P.T
            check = "synthetic_random_projection"
            se_mean = math.sqrt(2 * trace_sq / projections)
            rows.append(CheckRow.compare(check, case, "mean eta^T H eta (Gaussian) vs tr(H)", trace, m11.mean(), se_mean))
            rows.append(CheckRow.compare(check, case, "mean eta^T H delta (Gaussian) vs 0", 0.0, m12.mean(),
                                         math.sqrt(trace_sq / projections)))
            rows.append(_unit_direction_row(op, lam, projections, seed + 1, case))
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
            eig = extreme_eigenpairs(op, k_top=1, k_bottom=1, tol=1e-8, seed=seed)
            M = projected_hessian(op, eig.top.vectors[0], eig.bottom.vectors[0])
            kp, km = principal_curvatures(M)
            if samples is not None:
                samples[case] = {"n": n, "mean_curvature": m, "trace": trace, "trace_sq": trace_sq,
                                 "lambda_max": float(lam.max()), "lambda_min": float(lam.min()),
                                 "measured": P, "predicted": Q, "predicted_by": how,
                                 "hessian_kappa": (kp, km)}
            converged = bool(eig.top.converged.all() and eig.bottom.converged.all())
            rows.append(CheckRow.within("synthetic_hessian_projection", case,
                                        "Hessian directions show a saddle (kappa+ kappa- < 0)", 1.0, float(kp * km < 0), 0.0,
                                        f"kappa+ = {kp:.6g} (lambda_max {lam.max():.6g}), kappa- = {km:.6g} (lambda_min "
                                        f"{lam.min():.6g})" + ("" if converged else "; the eigensolver did not converge "
                                                               f"({eig.hvps} products): unresolved"),
                                        decidable=converged))
    return rows


def _unit_direction_row(op, lam: np.ndarray, projections: int, seed: int, case: str) -> CheckRow:
    g = torch.Generator().manual_seed(seed)
    values = np.empty(projections)
    for k in range(projections):
        u = torch.randn(op.n_params, generator=g, dtype=torch.float64)
        u /= u.norm()
        values[k] = float(u @ op.matvec(u))
    n = len(lam)
    mean = float(lam.mean())
    var = 2 * (float((lam**2).mean()) - mean**2) / (n + 2)
    return CheckRow.compare("synthetic_random_projection", case, "mean u^T H u (unit) vs tr(H)/N", mean, values.mean(),
                            math.sqrt(var / projections))
