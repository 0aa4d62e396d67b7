"""Theory-vs-measurement checks: each a row (check, case, quantity, theory, measured, tolerance, verdict).

A check passes when |measured - theory| <= tolerance; tolerances are stated multiples (4) of the standard
error of the Monte Carlo quantities involved, never tuned to pass. A failed check is kept, with its numbers.

Random 2D projections of a Hessian H (Gaussian directions eta, delta with E[eta eta^T] = I), with
M the projected Hessian (:mod:`lossgeom.curvature`):
  E[M11] = tr(H),  Var[M11] = 2 tr(H^2),  E[M12] = 0,  Var[M12] = tr(H^2);
for unit directions u = eta / |eta|: E[u^T H u] = tr(H)/N, Var = 2 (tr(H^2)/N - (tr(H)/N)^2) / (N + 2).
The probability that a projection shows a saddle, P(kappa+ kappa- < 0) = P(det M < 0), is predicted by a
Monte Carlo in the eigenbasis (independent random numbers, numpy, no Hessian products), and for large N by
the central-limit approximation M11, M22 ~ N(tr H, 2 tr H^2), M12 ~ N(0, tr H^2), independent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from .curvature import principal_curvatures, projected_hessian
from .lanczos import extreme_eigenpairs
from .synthetic import quadratic_operator, saddle_spectrum

SIGMAS = 4.0  # tolerance = SIGMAS standard errors


@dataclass
class CheckRow:
    check: str
    case: str
    quantity: str
    theory: float
    measured: float
    tolerance: float
    passed: bool
    detail: str = ""

    @classmethod
    def compare(cls, check, case, quantity, theory, measured, standard_error, detail=""):
        return cls.within(check, case, quantity, theory, measured, SIGMAS * standard_error, detail)

    @classmethod
    def within(cls, check, case, quantity, theory, measured, tolerance, detail=""):
        """A row with a stated tolerance (for deterministic estimates, where there is no standard error)."""
        return cls(check, case, quantity, float(theory), float(measured), float(tolerance),
                   bool(abs(measured - theory) <= tolerance), detail)


def random_projections(op, count: int, seed: int) -> np.ndarray:
    """Projected Hessians of ``count`` Gaussian direction pairs: array (count, 3) of M11, M12, M22."""
    g = torch.Generator().manual_seed(seed)
    out = np.empty((count, 3))
    for k in range(count):
        eta = torch.randn(op.n_params, generator=g, dtype=torch.float64).to(op.device, op.dtype)
        delta = torch.randn(op.n_params, generator=g, dtype=torch.float64).to(op.device, op.dtype)
        M = projected_hessian(op, eta, delta)
        out[k] = M[0, 0], M[0, 1], M[1, 1]
    return out


def eigenbasis_projections(eigenvalues: np.ndarray, samples: int, seed: int, chunk: int = 2_000_000) -> np.ndarray:
    """Projected Hessians of Gaussian direction pairs drawn directly in the eigenbasis (numpy only).

    M11 = sum_i lambda_i eta_i^2, M12 = sum_i lambda_i eta_i delta_i, M22 = sum_i lambda_i delta_i^2: the
    exact distribution of :func:`random_projections` with independent random numbers and no Hessian products.
    Returns an array (samples, 3) of M11, M12, M22.
    """
    rng = np.random.default_rng(seed)
    lam = np.asarray(eigenvalues, dtype=float)
    per_chunk = max(1, chunk // len(lam))
    out = np.empty((samples, 3))
    done = 0
    while done < samples:
        k = min(per_chunk, samples - done)
        eta, delta = rng.standard_normal((k, len(lam))), rng.standard_normal((k, len(lam)))
        out[done : done + k] = np.stack([(eta**2) @ lam, (eta * delta) @ lam, (delta**2) @ lam], axis=1)
        done += k
    return out


def saddle_fraction_eigenbasis(eigenvalues: np.ndarray, samples: int, seed: int, chunk: int = 2_000_000) -> float:
    """P(det M < 0) by Monte Carlo directly in the eigenbasis (:func:`eigenbasis_projections`)."""
    return float(shows_saddle(eigenbasis_projections(eigenvalues, samples, seed, chunk)).mean())


def shows_saddle(projections: np.ndarray) -> np.ndarray:
    """Whether each projected Hessian (rows M11, M12, M22) has kappa+ kappa- = det M < 0."""
    m11, m12, m22 = np.asarray(projections).T
    return m11 * m22 - m12**2 < 0


def clt_projections(trace: float, trace_sq: float, samples: int, seed: int) -> np.ndarray:
    """Projected Hessians in the central-limit approximation: M11, M22 ~ N(tr H, 2 tr H^2), M12 ~ N(0, tr H^2)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((samples, 3))
    s = math.sqrt(trace_sq)
    return np.stack([trace + math.sqrt(2) * s * z[:, 0], s * z[:, 1], trace + math.sqrt(2) * s * z[:, 2]], axis=1)


def saddle_fraction_clt(trace: float, trace_sq: float, samples: int, seed: int) -> float:
    """P(det M < 0) in the central-limit approximation; it depends on t = tr(H) / sqrt(tr(H^2)) only."""
    return float(shows_saddle(clt_projections(trace, trace_sq, samples, seed)).mean())


def saddle_fraction_spiked(outliers, trace: float, trace_sq: float, samples: int, seed: int) -> float:
    """P(det M < 0) with the ``outliers`` (known eigenvalues) exact and only the rest by the central limit.

    M11 = sum_j lambda_j eta_j^2 + B11 with the bulk B11 ~ N(t_b, 2 s_b), t_b = tr(H) - sum lambda_j,
    s_b = tr(H^2) - sum lambda_j^2; likewise M22, and M12 = sum_j lambda_j eta_j delta_j + B12 with
    B12 ~ N(0, s_b). Needed when a few eigenvalues carry much of tr(H) or tr(H^2), where the plain
    central-limit approximation (no outliers) fails.
    """
    lam = np.asarray(outliers, dtype=float)
    rng = np.random.default_rng(seed)
    t_b = trace - lam.sum()
    s_b = max(trace_sq - (lam**2).sum(), 0.0)
    eta, delta = rng.standard_normal((samples, len(lam))), rng.standard_normal((samples, len(lam)))
    m11 = (eta**2) @ lam + t_b + math.sqrt(2 * s_b) * rng.standard_normal(samples)
    m22 = (delta**2) @ lam + t_b + math.sqrt(2 * s_b) * rng.standard_normal(samples)
    m12 = (eta * delta) @ lam + math.sqrt(s_b) * rng.standard_normal(samples)
    return float(np.mean(m11 * m22 - m12**2 < 0))


def synthetic_checks(
    dimensions=(10, 100, 1000, 10_000, 100_000),
    mean_curvatures=(0.5, -0.5, 0.0),
    projections: int = 1000,
    prediction_samples: int = 20_000,
    seed: int = 0,
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
            rows.append(CheckRow.compare(check, case, "mean eta^T H delta (Gaussian) vs 0", 0.0, m12.mean(), math.sqrt(trace_sq / projections)))
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
            rows.append(CheckRow("synthetic_hessian_projection", case, "Hessian directions show a saddle (kappa+ kappa- < 0)",
                                 1.0, float(kp * km < 0), 0.0, bool(kp * km < 0),
                                 f"kappa+ = {kp:.6g} (lambda_max {lam.max():.6g}), kappa- = {km:.6g} (lambda_min {lam.min():.6g})"))
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


def rows_to_frame(rows: list[CheckRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows])
    frame["verdict"] = np.where(frame["passed"], "pass", "FAIL")
    return frame.drop(columns="passed")
