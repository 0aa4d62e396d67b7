"""The training losses, shared by training and curvature so that H is the Hessian of what was trained.

Regression uses :func:`mean_squared_error` rather than ``F.mse_loss``: the same number, but written with
elementary operations, which have forward-mode derivatives (``F.mse_loss`` has none in torch 2.13, so
forward-over-reverse Hessian-vector products would fail on it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mean_squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of (prediction - target)^2, as ``F.mse_loss(reduction="mean")``."""
    return (prediction - target).square().mean()


def loss_function(task: str):
    """Cross-entropy (mean over examples) for classification, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else mean_squared_error
