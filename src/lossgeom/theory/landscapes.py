"""Data behind the synthetic-saddle figures: loss surfaces along random vs Hessian directions (F1) and the
probability that a random projection shows a saddle, vs dimension and spectrum (F3).

The surfaces use the confined saddle L(theta) = 1/2 sum_i lambda_i theta_i^2 + c/4 sum_i theta_i^4 with the
spectrum of :func:`lossgeom.synthetic.saddle_spectrum`: its Hessian at 0 is diag(lambda) exactly (the quartic
term only confines it far away), so a zoomed view along the Hessian's extreme eigenvectors shows the saddle
while a wide one shows the confinement; random unit directions show the mean curvature tr(H)/N at any range.
Along theta = a eta + b delta the surface has a closed form in eight sums over the parameters
(:func:`confined_saddle_grid`), so grids are exact and cheap at any N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .checks import eigenbasis_projections, saddle_fraction_clt, shows_saddle
from .settings import settings_from_mapping
from .synthetic import saddle_spectrum


@dataclass(frozen=True)
class LandscapeSettings:
    """Config block ``figures.landscapes``."""

    dimension: int = 1000
    mean_curvatures: tuple[float, ...] = (0.5, -0.5, 0.0)
    quartic: float = 1.0
    ranges: tuple[float, ...] = (2.0, 0.2)
    points: int = 51
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LandscapeSettings":
        s = settings_from_mapping(cls, values, "figures.landscapes", {})
        return cls(**{**s.__dict__, "mean_curvatures": tuple(s.mean_curvatures), "ranges": tuple(s.ranges)})


@dataclass(frozen=True)
class SaddleProbabilitySettings:
    """Config block ``figures.saddle_probability``: tr(H)/N on ``steps`` points of [-1, 1] for each N."""

    dimensions: tuple[int, ...] = (10, 100, 1000, 10_000)
    steps: int = 21
    samples: int = 2000
    clt_samples: int = 200_000
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SaddleProbabilitySettings":
        s = settings_from_mapping(cls, values, "figures.saddle_probability", {})
        return cls(**{**s.__dict__, "dimensions": tuple(s.dimensions)})


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


def synthetic_landscapes(settings: LandscapeSettings) -> dict[str, np.ndarray]:
    """Grids of the confined saddle for every tr(H)/N and range, along random unit and Hessian directions.

    Keys: "<case>_<random|hessian>_r<range>" (grids), "<case>_<random|hessian>_r<range>_axis", and per case
    "<case>_kappa" (kappa+, kappa- of the projected Hessian at 0, both direction kinds: random first).
    Cases are "m<index>" in the order of ``settings.mean_curvatures``.
    """
    rng = np.random.default_rng(settings.seed)
    n = settings.dimension
    out: dict[str, np.ndarray] = {"mean_curvatures": np.asarray(settings.mean_curvatures, dtype=float)}
    for index, m in enumerate(settings.mean_curvatures):
        lam = saddle_spectrum(n, m)
        eta, delta = rng.standard_normal(n), rng.standard_normal(n)
        delta -= (delta @ eta) / (eta @ eta) * eta  # orthogonal pair, both unit length
        directions = {"random": (eta / np.linalg.norm(eta), delta / np.linalg.norm(delta)),
                      "hessian": (np.eye(n)[np.argmax(lam)], np.eye(n)[np.argmin(lam)])}
        kappas = []
        for kind, (u, v) in directions.items():
            M = np.array([[lam @ u**2, lam @ (u * v)], [lam @ (u * v), lam @ v**2]])
            kappas.append(np.sort(np.linalg.eigvalsh(M))[::-1])
            for r in settings.ranges:
                axis = np.linspace(-r, r, settings.points)
                out[f"m{index}_{kind}_r{r:g}"] = confined_saddle_grid(lam, u, v, axis, axis, settings.quartic)
                out[f"m{index}_{kind}_r{r:g}_axis"] = axis
        out[f"m{index}_kappa"] = np.array(kappas)
        out[f"m{index}_lambda"] = np.array([lam.max(), lam.min()])
    return out


def saddle_probability_sweep(settings: SaddleProbabilitySettings, log=None) -> pd.DataFrame:
    """P(a random 2D projection shows a saddle) for saddle spectra of every N and tr(H)/N in [-1, 1].

    Two independent estimates per row: a Monte Carlo in the eigenbasis (``samples`` Gaussian direction
    pairs, with its binomial standard error) and the central-limit prediction, which depends on
    t = tr(H) / sqrt(tr(H^2)) only. Exact values are known at the ends: tr(H)/N = +-1 is semi-definite (P = 0).
    """
    rows = []
    for n in settings.dimensions:
        for k, m in enumerate(np.linspace(-1.0, 1.0, settings.steps)):
            lam = saddle_spectrum(n, float(m))
            trace, trace_sq = float(lam.sum()), float((lam**2).sum())
            p = float(shows_saddle(eigenbasis_projections(lam, settings.samples, settings.seed + k)).mean())
            rows.append({
                "n": n, "mean_curvature": float(m), "t": trace / math.sqrt(trace_sq),
                "monte_carlo": p, "monte_carlo_se": math.sqrt(p * (1 - p) / settings.samples),
                "clt": saddle_fraction_clt(trace, trace_sq, settings.clt_samples, settings.seed + 10_000 + k),
                "samples": settings.samples,
            })
        if log:
            log(f"saddle probability: N={n} done")
    return pd.DataFrame(rows)
