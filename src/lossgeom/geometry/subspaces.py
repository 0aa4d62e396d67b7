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

import math

import torch

from ..engine.operator import apply_rows, block_size


def random_subspace(n_params: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """P (n_params, d): Gaussian entries from a seeded CPU generator, each column rescaled to unit norm."""
    if not 1 <= d <= n_params:
        raise ValueError(f"subspace dimension d must be in 1..{n_params} (the number of parameters), got {d}")
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(n_params, d, generator=g, dtype=torch.float64)
    return (P / torch.linalg.vector_norm(P, dim=0, keepdim=True)).to(dtype)


def restricted_hessian(op, P: torch.Tensor) -> torch.Tensor:
    """H_d = P^T H P (d, d) in float64 from d products (in the operator's blocks), symmetrized against rounding."""
    rows = []
    columns = P.T.contiguous()
    for start in range(0, len(columns), block_size(op)):
        rows.append(apply_rows(op, columns[start : start + block_size(op)].to(op.device, op.dtype)).to(torch.float64).cpu())
    HP = torch.cat(rows).T  # (N, d)
    Hd = P.to(torch.float64).cpu().T @ HP
    return (Hd + Hd.T) / 2


def trace_over_frobenius(matrix: torch.Tensor) -> float:
    """tr(M) / ||M||_F, in [-sqrt(d), sqrt(d)] for a symmetric d x d matrix M (nan for M = 0)."""
    norm = float(torch.linalg.matrix_norm(matrix))
    return float(torch.trace(matrix)) / norm if norm > 0 else math.nan


def gradient_overlap(gradient: torch.Tensor, eigenvectors: torch.Tensor) -> float:
    """||V^T g||^2 / ||g||^2 for orthonormal rows ``eigenvectors`` (k, N) and a flat ``gradient`` (N,)."""
    g = gradient.to(torch.float64).cpu()
    V = eigenvectors.to(torch.float64).cpu()
    return float((V @ g).pow(2).sum() / g.pow(2).sum())
