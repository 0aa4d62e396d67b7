"""Random 2D projections of a Hessian: their statistics and the probability that they show a saddle.

For Gaussian directions eta, delta (E[eta eta^T] = I) and M the projected Hessian
(:mod:`lossgeom.geometry.curvature`):
  E[M11] = tr(H),  Var[M11] = 2 tr(H^2),  E[M12] = 0,  Var[M12] = tr(H^2);
for unit directions u = eta / |eta|: E[u^T H u] = tr(H)/N, Var = 2 (tr(H^2)/N - (tr(H)/N)^2) / (N + 2).
The probability that a projection shows a saddle, P(kappa+ kappa- < 0) = P(det M < 0), is predicted by a
Monte Carlo in the eigenbasis (independent random numbers, numpy, no Hessian products), for large N by
the central-limit approximation M11, M22 ~ N(tr H, 2 tr H^2), M12 ~ N(0, tr H^2), independent, and for
spectra with outliers by keeping the known extreme eigenvalues exact (:func:`saddle_fraction_spiked`).

Example (a semi-definite spectrum never shows a saddle; a symmetric one often does)::

    >>> import numpy as np
    >>> saddle_fraction_eigenbasis(np.linspace(0.0, 2.0, 100), samples=2000, seed=0)
    0.0
    >>> 0.3 < saddle_fraction_eigenbasis(np.linspace(-1.0, 1.0, 100), samples=2000, seed=0) < 0.8
    True
"""

from __future__ import annotations

import math

import numpy as np


def eigenbasis_projections(eigenvalues: np.ndarray, samples: int, seed: int, chunk: int = 2_000_000) -> np.ndarray:
    """Projected Hessians of Gaussian direction pairs drawn directly in the eigenbasis (numpy only).

    M11 = sum_i lambda_i eta_i^2, M12 = sum_i lambda_i eta_i delta_i, M22 = sum_i lambda_i delta_i^2: the
    exact distribution of :func:`lossgeom.geometry.curvature.random_projections` with independent random numbers
    and no Hessian products.
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
