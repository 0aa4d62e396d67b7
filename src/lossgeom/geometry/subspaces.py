"""Low-dimensional subspaces of parameter space: random affine subspaces, the Hessian restricted to them, and how
much of a vector lies in the top Hessian eigenspace.

- Random affine subspace (Li et al. 2018; Fort & Ganguli 2019): theta = theta_0 + B^T theta_d, B a Gaussian d x N
  basis whose rows are rescaled to unit norm, theta_d in R^d (0 at the start). Sets of vectors are rows (k, N) in
  the whole library, as Lanczos' eigenvectors are.
- Restricted Hessian H_d = B H B^T (d x d, d products). Its ratio tr(H_d) / ||H_d||_F lies in [-sqrt(d), sqrt(d)]
  (Cauchy-Schwarz on the eigenvalues), is sqrt(d) when H_d is a multiple of the identity and near 0 when its
  eigenvalues cancel; Fort & Scherlis 2019 find it large in the "Goldilocks zone" of initialization scales where
  training in such subspaces succeeds.
- Gradient overlap (Gur-Ari et al. 2018): with V_k the top-k eigenvectors (orthonormal rows), the share of the
  gradient in their span, ||V_k g||^2 / ||g||^2, against k/N for a random direction.

Example (a diagonal H: B = the first two coordinates gives H_d = diag(3, 1), ratio 4 / sqrt(10))::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> H = MatrixOperator(torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64)))
    >>> B = torch.eye(3, dtype=torch.float64)[:2]
    >>> round(trace_over_frobenius(restricted_hessian(H, B)), 4), gradient_overlap(torch.tensor([1.0, 1.0, 0.0]), B)
    (1.2649, 1.0)
"""

from __future__ import annotations

import torch

from ..engine.operator import apply_rows, block_size

# Defined with the subspace training, which draws P and reports tr(H_d) / ||H_d||_F (training sits below geometry:
# geometry's fits and surfaces use training's evaluation and optimizer step, so training must not import geometry).
from ..training.subspace import random_subspace, trace_over_frobenius

__all__ = ["gradient_overlap", "random_subspace", "restricted_hessian", "trace_over_frobenius"]


def restricted_hessian(op, basis: torch.Tensor) -> torch.Tensor:
    """H_d = B H B^T (d, d) in float64 for a basis B of rows (d, N), e.g. :func:`random_subspace`, from d products
    (in the operator's blocks), symmetrized against rounding."""
    rows = []
    basis = basis.contiguous()
    for start in range(0, len(basis), block_size(op)):
        rows.append(apply_rows(op, basis[start : start + block_size(op)].to(op.device, op.dtype)).to(torch.float64).cpu())
    HB = torch.cat(rows)  # (d, N): the rows H b_i
    # B as the transpose of a column-major copy: the memory layout of the former column form P (N, d), whose product
    # P^T (H P) BLAS rounds differently from a row-major B's; this keeps H_d bitwise equal to it
    Hd = basis.to(torch.float64).cpu().T.contiguous().T @ HB.T
    return (Hd + Hd.T) / 2


def gradient_overlap(gradient: torch.Tensor, eigenvectors: torch.Tensor) -> float:
    """||V^T g||^2 / ||g||^2 for orthonormal rows ``eigenvectors`` (k, N) and a flat ``gradient`` (N,)."""
    g = gradient.to(torch.float64).cpu()
    V = eigenvectors.to(torch.float64).cpu()
    return float((V @ g).pow(2).sum() / g.pow(2).sum())
