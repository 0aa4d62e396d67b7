"""How similar two models' outputs are on the same inputs: linear CKA (Kornblith et al. 2019), as Yang et al. 2021 use
it between the softmax outputs of networks trained from different seeds.

With X (n x p) and Y (n x q) the two models' outputs on the same n inputs, each column centred,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)      (the biased HSIC estimator, linear kernel),

in [0, 1]; 1 for X = Y; invariant to orthogonal transforms and isotropic scaling of either side (not to arbitrary
invertible linear maps), which is why it compares representations whose coordinates mean nothing by themselves.

Example (a rotated and rescaled copy is as similar as the original)::

    >>> import torch
    >>> X = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> Q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))[0]
    >>> round(linear_cka(X, 2.5 * X @ Q), 12)
    1.0
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA of two output matrices with the same rows (inputs), computed in float64."""
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA compares outputs on the same inputs: {X.shape[0]} rows against {Y.shape[0]}")
    X = X.to(torch.float64).reshape(len(X), -1)
    Y = Y.to(torch.float64).reshape(len(Y), -1)
    X = X - X.mean(0, keepdim=True)
    Y = Y - Y.mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(Y.T @ X) ** 2
    norms = torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y)
    return float(cross / norms) if norms > 0 else float("nan")


def mixup_inputs(x: torch.Tensor, count: int, concentration: float = 16.0, seed: int = 0) -> torch.Tensor:
    """``count`` inputs lambda x_i + (1 - lambda) x_j with i, j drawn uniformly from ``x`` and lambda ~
    Beta(concentration, concentration) per input (Yang et al.: Beta(16, 16), 768 training images): points between the
    training examples, where models that agree on the data may still differ."""
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(len(x), (count,), generator=g)
    j = torch.randint(len(x), (count,), generator=g)
    gamma = torch.distributions.Gamma(torch.tensor(float(concentration)), torch.tensor(1.0))
    with torch.random.fork_rng(devices=[]):  # Gamma samples from the global generator: seed it, then restore it
        torch.manual_seed(seed)
        a, b = gamma.sample((count,)), gamma.sample((count,))
    lam = (a / (a + b)).to(x).view(-1, *([1] * (x.dim() - 1)))
    return lam * x[i] + (1 - lam) * x[j]


def mean_pairwise_cka(outputs: Sequence[torch.Tensor]) -> float:
    """The mean of CKA over all ordered pairs of distinct models (Yang et al.: over the seeds of one cell; CKA is
    symmetric, so the mean over unordered pairs is the same)."""
    if len(outputs) < 2:
        raise ValueError("a mean over pairs of models needs two models at least")
    values = [linear_cka(a, b) for a, b in itertools.combinations(outputs, 2)]
    return float(sum(values) / len(values))
