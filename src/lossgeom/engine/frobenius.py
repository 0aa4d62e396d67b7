"""How far apart two operators are: ||A - B||_F / ||A||_F from matrix-vector products, with a standard error.

For a probe z with independent entries of mean 0 and variance 1 (Rademacher here), E[z z^T] = I, so for any
matrix M

    E ||M z||^2 = E[z^T M^T M z] = tr(M^T M) = ||M||_F^2,

an unbiased estimate from one product. With the same probes z_1..z_m for both terms, d_i = ||(A - B) z_i||^2 and
s_i = ||A z_i||^2, the ratio of means R = mean(d) / mean(s) estimates ||A - B||_F^2 / ||A||_F^2 (consistent, with a
bias of order 1/m), and the delta method gives its standard error

    se(R) = sqrt( sum_i (d_i - R s_i)^2 / (m (m - 1)) ) / mean(s),

which the shared probes keep small when A z and B z are close (their fluctuations cancel). The reported distance is
sqrt(R) with se(sqrt R) = se(R) / (2 sqrt R). Each probe costs one product with A and one with B.

Rademacher probes (z_i^2 = 1) make the estimate exact, with zero variance, for diagonal matrices; the variance
comes from off-diagonal entries. Example (diagonal: exact; the exact ratio computed beside it)::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> A = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)); B = A.clone(); B[2, 2] = 0.0
    >>> est = relative_distance(MatrixOperator(A), MatrixOperator(B), probes=10, seed=0)
    >>> exact = float(torch.linalg.norm(A - B) / torch.linalg.norm(A))
    >>> round(est.estimate, 4), round(exact, 4), est.standard_error < 1e-12
    (0.2673, 0.2673, True)
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .operator import apply_rows, block_size


@dataclasses.dataclass(frozen=True)
class DistanceEstimate:
    """||A - B||_F / ||A||_F from ``probes`` shared Rademacher probes, with its standard error."""

    estimate: float
    standard_error: float
    probes: int
    squared_norm_a: float  # mean ||A z||^2: the estimate of ||A||_F^2
    squared_norm_difference: float  # mean ||(A - B) z||^2: the estimate of ||A - B||_F^2

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def rademacher_probes(count: int, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(count, n) probes with entries +-1, from a seeded CPU generator (the same on every device)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (count, n), generator=g) * 2 - 1).to(dtype)


def relative_distance(a, b, probes: int = 20, seed: int = 0) -> DistanceEstimate:
    """||A - B||_F / ||A||_F of two operators on the same space (see the module docstring); needs probes >= 2."""
    if probes < 2:
        raise ValueError(f"probes must be >= 2 for a standard error, got {probes}")
    if a.n_params != b.n_params:
        raise ValueError(f"the operators act on different spaces: {a.n_params} vs {b.n_params} parameters")
    z = rademacher_probes(probes, a.n_params, seed)
    d, s = [], []
    block = max(block_size(a), block_size(b))
    for start in range(0, probes, block):
        chunk = z[start : start + block]
        az = apply_rows(a, chunk.to(a.device, a.dtype)).to(torch.float64).cpu()
        bz = apply_rows(b, chunk.to(b.device, b.dtype)).to(torch.float64).cpu()
        d.append(((az - bz) ** 2).sum(dim=1))
        s.append((az**2).sum(dim=1))
    d, s = torch.cat(d), torch.cat(s)
    ratio = float(d.mean() / s.mean())
    se_ratio = float(torch.sqrt(((d - ratio * s) ** 2).sum() / (probes * (probes - 1))) / s.mean())
    root = math.sqrt(ratio)
    se = se_ratio / (2 * root) if root > 0 else 0.0  # root 0: every d_i is 0, so se_ratio is 0 too
    return DistanceEstimate(root, se, probes, float(s.mean()), float(d.mean()))
