"""Low-dimensional subspaces of parameter space: random affine subspaces, the Hessian restricted to them, and how
much of a vector lies in the top Hessian eigenspace.

- Random affine subspace (Li et al. 2018; Fort & Ganguli 2019): theta = theta_0 + P theta_d, P a Gaussian N x d
  matrix whose columns are rescaled to unit norm, theta_d in R^d (0 at the start).
- Restricted Hessian H_d = P^T H P (d x d, d products). Its ratio tr(H_d) / ||H_d||_F lies in [-sqrt(d), sqrt(d)]
  (Cauchy-Schwarz on the eigenvalues), is sqrt(d) when H_d is a multiple of the identity and near 0 when its
  eigenvalues cancel; Fort & Scherlis 2019 find it large in the "Goldilocks zone" of initialization scales where
  training in such subspaces succeeds.
- Gradient overlap (Gur-Ari et al. 2018): with V_k the top-k eigenvectors (orthonormal), the share of the gradient in
  their span, ||V_k^T g||^2 / ||g||^2, against k/N for a random direction.

Example (a diagonal H: P = the first two coordinates gives H_d = diag(3, 1), ratio 4 / sqrt(10))::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> H = MatrixOperator(torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64)))
    >>> P = torch.eye(3, dtype=torch.float64)[:, :2]
    >>> round(trace_over_frobenius(restricted_hessian(H, P)), 4), gradient_overlap(torch.tensor([1.0, 1.0, 0.0]), P.T)
    (1.2649, 1.0)
"""

from __future__ import annotations

import torch

from ..engine.operator import apply_rows, block_size

# Defined with the subspace training, which draws P and reports tr(H_d) / ||H_d||_F (training sits below geometry:
# geometry's fits and surfaces use training's evaluation and optimizer step, so training must not import geometry).
from ..training.subspace import random_subspace, trace_over_frobenius

__all__ = ["gradient_overlap", "random_subspace", "restricted_hessian", "trace_over_frobenius"]


def restricted_hessian(op, P: torch.Tensor) -> torch.Tensor:
    """H_d = P^T H P (d, d) in float64 from d products (in the operator's blocks), symmetrized against rounding."""
    rows = []
    columns = P.T.contiguous()
    for start in range(0, len(columns), block_size(op)):
        rows.append(apply_rows(op, columns[start : start + block_size(op)].to(op.device, op.dtype)).to(torch.float64).cpu())
    HP = torch.cat(rows).T  # (N, d)
    Hd = P.to(torch.float64).cpu().T @ HP
    return (Hd + Hd.T) / 2


def gradient_overlap(gradient: torch.Tensor, eigenvectors: torch.Tensor) -> float:
    """||V^T g||^2 / ||g||^2 for orthonormal rows ``eigenvectors`` (k, N) and a flat ``gradient`` (N,)."""
    g = gradient.to(torch.float64).cpu()
    V = eigenvectors.to(torch.float64).cpu()
    return float((V @ g).pow(2).sum() / g.pow(2).sum())
