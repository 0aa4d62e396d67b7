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
