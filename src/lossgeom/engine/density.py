"""Spectral density of a symmetric operator from products alone: stochastic Lanczos quadrature (SLQ).

(Golub & Meurant; Ghorbani et al. 2019.) For a unit probe q, m Lanczos steps from q give T_m = S diag(theta) S^T;
the Gauss rule with nodes theta_i and weights tau_i = S[0, i]^2
integrates polynomials of degree <= 2m - 1 exactly against the spectral measure
mu_q = sum_j (q . u_j)^2 delta(lambda_j). With q = z / ||z||, E[mu_q] = (1/N) sum_j delta(lambda_j), the
eigenvalue density, so the average of the Gauss rules over probes estimates it: its weights sum to one and
its first two moments are unbiased estimates of tr(H)/N and tr(H^2)/N.

Example (the spectrum 1..4: the Gauss rules' first moment is tr(H)/N = 2.5 for every probe, since
q^T H q averages to it and 4 steps span the whole space)::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> op = MatrixOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)))
    >>> density = slq_density(op, probes=3, steps=4, seed=0)
    >>> [round(float(m), 12) for m in density.moment(1)], density.weights.sum(axis=1).round(12).tolist()
    ([2.5, 2.5, 2.5], [1.0, 1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import Progress
from .lanczos import lanczos_tridiagonal
from .operator import LinearOperator
from .resume import ResumeSlot
from .trace import rademacher


@dataclass
class SpectralDensity:
    """SLQ Gauss rules, one row per probe: ``nodes`` and ``weights`` (each row of weights sums to 1)."""

    nodes: np.ndarray  # (probes, steps); rows may be shorter (padded with nan) if Lanczos broke down early
    weights: np.ndarray
    hvps: int
    reused_first_probe: bool = False  # the first row came from another Lanczos run (no products here)

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


def slq_density(op: LinearOperator, probes: int = 8, steps: int = 64, seed: int = 0, *,
                resume: ResumeSlot | None = None, first: torch.Tensor | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature with ``probes`` Rademacher probes of ``steps`` Lanczos steps each.

    ``first``: a ``steps`` x ``steps`` tridiagonal another Lanczos run already built from a random unit start
    vector independent of these probes (the eigenpair search's first steps): it is the first probe, and only
    ``probes - 1`` are computed. A unit vector uniform on the sphere gives E[v^T f(H) v] = tr f(H) / N, as a
    normalized Rademacher probe does, so every probe's Gauss rule stays an unbiased estimate.
    With ``resume`` the probes done so far are saved (with the generator's state) and a killed run goes on."""
    g = torch.Generator().manual_seed(seed)
    steps = min(steps, op.n_params)
    nodes = np.full((probes, steps), np.nan)
    weights = np.full((probes, steps), np.nan)
    hvps = start = 0
    saved = resume.load() if resume is not None else None
    if saved is not None:
        start, hvps = saved["done"], saved["hvps"]
        nodes[:start], weights[:start] = saved["nodes"].numpy(), saved["weights"].numpy()
        g.set_state(saved["generator"])
    reuse = first is not None and first.shape == (steps, steps)
    progress = Progress("slq", probes, "probes")
    for p in range(start, probes):
        if reuse and p == 0:
            T = first.to(torch.float64).cpu()
        else:
            z = rademacher(op.n_params, g, op.device, op.dtype)
            T, used = lanczos_tridiagonal(op, z / z.norm(), steps)
            hvps += used
        theta, S = torch.linalg.eigh(0.5 * (T + T.T))
        nodes[p, : len(theta)] = theta.numpy()
        weights[p, : len(theta)] = (S[0] ** 2).numpy()
        (progress.finish if p == probes - 1 else progress.update)(p + 1, products=hvps)
        if resume is not None:
            resume.save({"done": p + 1, "hvps": hvps, "nodes": torch.from_numpy(nodes[: p + 1].copy()),
                         "weights": torch.from_numpy(weights[: p + 1].copy()), "generator": g.get_state()},
                        final=p == probes - 1)
    return SpectralDensity(nodes=nodes, weights=weights, hvps=hvps, reused_first_probe=reuse)
