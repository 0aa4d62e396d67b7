"""The training loss, the one definition of it: training, evaluation (the metrics, the surface grids) and curvature
(the Hessian operator) all take it from :func:`loss_function`, so H is the Hessian of what was trained and measured.

Regression uses :func:`mean_squared_error` rather than ``F.mse_loss``: the same number, but written with
elementary operations, which have forward-mode derivatives (``F.mse_loss`` has none in torch 2.13, so
forward-over-reverse Hessian-vector products would fail on it).

``reduction="sum"`` gives the sum whose mean is the loss: over examples (cross-entropy) or over all elements of
the target (squared error); either way the loss is that sum divided by ``target.numel()``. Evaluation over a
split in batches adds the batches' sums and divides once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of (prediction - target)^2, as ``F.mse_loss(reduction="mean")``."""
    return (prediction - target).square().mean()


def sum_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over all elements of (prediction - target)^2."""
    return (prediction - target).square().sum()


def summed_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over examples."""
    return F.cross_entropy(logits, target, reduction="sum")


def loss_function(task: str, reduction: str = "mean") -> LossFunction:
    """Cross-entropy (mean over examples) for classification, mean squared error for regression; with
    ``reduction="sum"`` their sums (the loss times ``target.numel()``)."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if task == "classification":
        return F.cross_entropy if reduction == "mean" else summed_cross_entropy
    return mean_squared_error if reduction == "mean" else sum_squared_error
