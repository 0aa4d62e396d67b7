"""Synthetic quadratic losses with a prescribed Hessian spectrum, for checks with known answers.

L(theta) = 1/2 sum_i lambda_i theta_i^2, so H = diag(lambda) exactly, at any theta. It is a real
``nn.Module`` and goes through the same HessianOperator, Lanczos and projection code as a network.

Example::

    >>> import torch
    >>> op = quadratic_operator(saddle_spectrum(5, 0.5))
    >>> op.matvec(torch.ones(5, dtype=torch.float64)).tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..engine.hessian import HessianOperator


class DiagonalQuadratic(nn.Module):
    """The loss 1/2 sum_i lambda_i theta_i^2 as the module's output (the input is ignored)."""

    def __init__(self, eigenvalues, dtype=torch.float64) -> None:
        super().__init__()
        lam = torch.as_tensor(np.asarray(eigenvalues), dtype=dtype)
        self.register_buffer("eigenvalues", lam)
        self.theta = nn.Parameter(torch.zeros_like(lam))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.eigenvalues * self.theta**2).sum()


def saddle_spectrum(n: int, mean_curvature: float, spread: float = 1.0) -> np.ndarray:
    """n eigenvalues evenly spaced on [m - spread, m + spread]: tr(H)/N = m, a saddle whenever |m| < spread."""
    return mean_curvature + spread * np.linspace(-1.0, 1.0, n)


def quadratic_operator(eigenvalues, dtype=torch.float64) -> HessianOperator:
    """The Hessian operator of a :class:`DiagonalQuadratic` (its output is the loss)."""
    model = DiagonalQuadratic(eigenvalues, dtype)
    dummy = torch.zeros(1, 1, dtype=dtype)
    return HessianOperator(model, lambda out, _: out, dummy, dummy)


SPECTRUM_KINDS = ("outliers", "clustered", "negative_end")


def known_spectrum(kind: str, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A, values, Q): a dense symmetric (n, n) float64 matrix A = Q diag(values) Q^T with a known spectrum in a random
    orthonormal basis Q, the eigensolvers' test cases (n > 13):

    outliers      10 well-separated tops (100 ... 36) over a bulk uniform in [-0.5, 5], three negatives -20, -8, -6;
    clustered     the top 10 within 1% of each other (10, 9.99, ..., 9.91) over a bulk in [-1, 7], -3, -2.9, -2.8;
    negative_end  as a trained network: 10 outliers in [0.6, 5], three negatives -0.012, -0.011, -0.0105 just below
                  a cluster of n - 13 values within 0.01 of zero.

    ``values`` ascending. One generator seeded with ``seed`` draws the bulk, then Q.
    """
    if kind not in SPECTRUM_KINDS:
        raise ValueError(f"spectrum kind {kind!r} is unknown; allowed values: {', '.join(SPECTRUM_KINDS)}")
    g = torch.Generator().manual_seed(seed)
    if kind == "outliers":
        special = torch.tensor([100.0, 80, 70, 65, 60, 50, 45, 40, 38, 36, -20, -8, -6], dtype=torch.float64)
        bulk = -0.5 + 5.5 * torch.rand(n - 13, generator=g, dtype=torch.float64)
    elif kind == "clustered":
        special = torch.cat([10.0 - 0.01 * torch.arange(10, dtype=torch.float64), torch.tensor([-3.0, -2.9, -2.8])])
        bulk = -1.0 + 8.0 * torch.rand(n - 13, generator=g, dtype=torch.float64)
    else:
        special = torch.tensor([5.0, 4.0, 3.0, 2.5, 2.0, 1.5, 1.2, 1.0, 0.8, 0.6, -0.012, -0.011, -0.0105],
                               dtype=torch.float64)
        bulk = 0.01 * torch.randn(n - 13, generator=g, dtype=torch.float64).clamp(-1, 1)
    values, _ = torch.sort(torch.cat([special, bulk]))
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (Q * values) @ Q.T, values, Q

