"""Trace and spectral density of a symmetric operator from products alone.

Hutchinson: for z with i.i.d. Rademacher entries, E[z^T H z] = tr(H); the estimate is the sample mean
over S probes, and its standard error the sample standard deviation over sqrt(S).

Stochastic Lanczos quadrature (SLQ; Golub & Meurant; Ghorbani et al. 2019): for a unit probe q, m Lanczos
steps from q give T_m = S diag(theta) S^T; the Gauss rule with nodes theta_i and weights tau_i = S[0, i]^2
integrates polynomials of degree <= 2m - 1 exactly against the spectral measure
mu_q = sum_j (q . u_j)^2 delta(lambda_j). With q = z / ||z||, E[mu_q] = (1/N) sum_j delta(lambda_j), the
eigenvalue density, so the average of the Gauss rules over probes estimates it: its weights sum to one and
its first two moments are unbiased estimates of tr(H)/N and tr(H^2)/N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .lanczos import lanczos_tridiagonal


def rademacher(n: int, generator: torch.Generator, device, dtype) -> torch.Tensor:
    return (torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8) * 2 - 1).to(device, dtype)


@dataclass
class TraceEstimate:
    """Hutchinson estimate of tr(H): ``estimate`` +- ``standard_error`` from ``samples`` (z^T H z each)."""

    estimate: float
    standard_error: float
    samples: np.ndarray
    hvps: int


def hutchinson_trace(op, samples: int = 100, seed: int = 0) -> TraceEstimate:
    """Estimate tr(H) from ``samples`` Rademacher probes (one product each)."""
    if samples < 2:
        raise ValueError("Hutchinson needs at least 2 samples for a standard error")
    g = torch.Generator().manual_seed(seed)
    values = np.empty(samples)
    for i in range(samples):
        z = rademacher(op.n_params, g, op.device, op.dtype)
        values[i] = float(torch.dot(z, op.matvec(z)))
    return TraceEstimate(
        estimate=float(values.mean()),
        standard_error=float(values.std(ddof=1) / math.sqrt(samples)),
        samples=values,
        hvps=samples,
    )


@dataclass
class SpectralDensity:
    """SLQ Gauss rules, one row per probe: ``nodes`` and ``weights`` (each row of weights sums to 1)."""

    nodes: np.ndarray  # (probes, steps); rows may be shorter (padded with nan) if Lanczos broke down early
    weights: np.ndarray
    hvps: int

    def moment(self, power: int) -> np.ndarray:
        """Per-probe Gauss estimate of q^T H^power q; its mean estimates tr(H^power)/N."""
        return np.nansum(self.weights * self.nodes**power, axis=1)

    def smoothed(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Density on ``grid``: the averaged Gauss rules broadened by Gaussians of width ``sigma``."""
        nodes, weights = self.nodes[np.isfinite(self.nodes)], self.weights[np.isfinite(self.nodes)]
        kernel = np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return kernel @ weights / len(self.nodes)

    def default_grid(self, points: int = 1000, sigma_fraction: float = 0.01) -> tuple[np.ndarray, float]:
        """A grid covering all nodes with a margin of 5 sigma, sigma = ``sigma_fraction`` of the node range."""
        lo, hi = np.nanmin(self.nodes), np.nanmax(self.nodes)
        sigma = sigma_fraction * max(hi - lo, 1e-12)
        return np.linspace(lo - 5 * sigma, hi + 5 * sigma, points), sigma


def slq_density(op, probes: int = 8, steps: int = 64, seed: int = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``probes`` Rademacher probes of ``steps`` Lanczos steps each."""
    g = torch.Generator().manual_seed(seed)
    steps = min(steps, op.n_params)
    nodes = np.full((probes, steps), np.nan)
    weights = np.full((probes, steps), np.nan)
    hvps = 0
    for p in range(probes):
        z = rademacher(op.n_params, g, op.device, op.dtype)
        T, used = lanczos_tridiagonal(op, z / z.norm(), steps)
        hvps += used
        theta, S = torch.linalg.eigh(0.5 * (T + T.T))
        nodes[p, : len(theta)] = theta.numpy()
        weights[p, : len(theta)] = (S[0] ** 2).numpy()
    return SpectralDensity(nodes=nodes, weights=weights, hvps=hvps)
