"""Data behind the synthetic-saddle figures: loss surfaces along random vs Hessian directions (F1) and the
probability that a random projection shows a saddle, vs dimension and spectrum (F3).

The surfaces use the confined saddle L(theta) = 1/2 sum_i lambda_i theta_i^2 + c/4 sum_i theta_i^4 with the
spectrum of :func:`lossgeom.theory.spectra.saddle_spectrum`: its Hessian at 0 is diag(lambda) exactly (the quartic
term only confines it far away), so a zoomed view along the Hessian's extreme eigenvectors shows the saddle
while a wide one shows the confinement; random unit directions show the mean curvature tr(H)/N at any range.
Along theta = a eta + b delta the surface has a closed form in eight sums over the parameters
(:func:`confined_saddle_grid`), so grids are exact and cheap at any N.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .projections import eigenbasis_projections, saddle_fraction_clt, shows_saddle
from .spectra import saddle_spectrum


def confined_saddle_grid(eigenvalues, eta, delta, a, b, quartic: float) -> np.ndarray:
    """L(a_i, b_j) = 1/2 sum lambda theta^2 + c/4 sum theta^4 at theta = a_i eta + b_j delta, shape (len(a), len(b)).

    Exact: the quadratic part is 1/2 (a^2 M11 + 2ab M12 + b^2 M22) with M the projected Hessian, and
    sum (a eta + b delta)^4 expands into the five mixed fourth moments of (eta, delta).
    """
    lam, eta, delta = (np.asarray(v, dtype=float) for v in (eigenvalues, eta, delta))
    A, B = np.meshgrid(np.asarray(a, dtype=float), np.asarray(b, dtype=float), indexing="ij")
    m11, m12, m22 = lam @ eta**2, lam @ (eta * delta), lam @ delta**2
    quadratic = 0.5 * (A**2 * m11 + 2 * A * B * m12 + B**2 * m22)
    moments = [np.sum(eta ** (4 - k) * delta**k) for k in range(5)]
    binomial = [1, 4, 6, 4, 1]
    fourth = sum(c * m * A ** (4 - k) * B**k for k, (c, m) in enumerate(zip(binomial, moments)))
    return quadratic + 0.25 * quartic * fourth


def _basis_vector(n: int, i: int) -> np.ndarray:
    """e_i in R^n (the eigenvector of lambda_i of a diagonal Hessian), without forming the n x n identity."""
    e = np.zeros(n)
    e[i] = 1.0
    return e


def synthetic_landscapes(*, dimension: int, mean_curvatures, quartic: float, ranges, points: int,
                         seed: int) -> dict[str, np.ndarray]:
    """Grids of the confined saddle for every tr(H)/N and range, along random unit and Hessian directions.

    Keys: "<case>_<random|hessian>_r<range>" (grids), "<case>_<random|hessian>_r<range>_axis", and per case
    "<case>_kappa" (kappa+, kappa- of the projected Hessian at 0, both direction kinds: random first).
    Cases are "m<index>" in the order of ``mean_curvatures``; ``dimension`` is N, ``quartic`` the confinement c.
    """
    rng = np.random.default_rng(seed)
    n = dimension
    out: dict[str, np.ndarray] = {"mean_curvatures": np.asarray(mean_curvatures, dtype=float)}
    for index, m in enumerate(mean_curvatures):
        lam = saddle_spectrum(n, m)
        eta, delta = rng.standard_normal(n), rng.standard_normal(n)
        delta -= (delta @ eta) / (eta @ eta) * eta  # orthogonal pair, both unit length
        directions = {"random": (eta / np.linalg.norm(eta), delta / np.linalg.norm(delta)),
                      "hessian": (_basis_vector(n, int(np.argmax(lam))), _basis_vector(n, int(np.argmin(lam))))}
        kappas = []
        for kind, (u, v) in directions.items():
            M = np.array([[lam @ u**2, lam @ (u * v)], [lam @ (u * v), lam @ v**2]])
            kappas.append(np.sort(np.linalg.eigvalsh(M))[::-1])
            for r in ranges:
                axis = np.linspace(-r, r, points)
                out[f"m{index}_{kind}_r{r:g}"] = confined_saddle_grid(lam, u, v, axis, axis, quartic)
                out[f"m{index}_{kind}_r{r:g}_axis"] = axis
        out[f"m{index}_kappa"] = np.array(kappas)
        out[f"m{index}_lambda"] = np.array([lam.max(), lam.min()])
    return out


def saddle_probability_sweep(*, dimensions, steps: int, samples: int, clt_samples: int, seed: int,
                             log=None) -> pd.DataFrame:
    """P(a random 2D projection shows a saddle) for saddle spectra of every N and tr(H)/N in [-1, 1].

    Two independent estimates per row: a Monte Carlo in the eigenbasis (``samples`` Gaussian direction
    pairs, with its binomial standard error) and the central-limit prediction (``clt_samples``), which depends on
    t = tr(H) / sqrt(tr(H^2)) only. Exact values are known at the ends: tr(H)/N = +-1 is semi-definite (P = 0).
    """
    rows = []
    for n in dimensions:
        for k, m in enumerate(np.linspace(-1.0, 1.0, steps)):
            lam = saddle_spectrum(n, float(m))
            trace, trace_sq = float(lam.sum()), float((lam**2).sum())
            p = float(shows_saddle(eigenbasis_projections(lam, samples, seed + k)).mean())
            rows.append({
                "n": n, "mean_curvature": float(m), "t": trace / math.sqrt(trace_sq),
                "monte_carlo": p, "monte_carlo_se": math.sqrt(p * (1 - p) / samples),
                "clt": saddle_fraction_clt(trace, trace_sq, clt_samples, seed + 10_000 + k),
                "samples": samples,
            })
        if log:
            log(f"saddle probability: N={n} done")
    return pd.DataFrame(rows)
