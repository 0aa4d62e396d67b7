"""Metrics of a model over a whole data split: mean loss and accuracy, or MSE and R^2.

The loss is the training loss of :func:`lossgeom.problems.losses.loss_function` (its batch sums, added up and
divided once), not a second definition of it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..problems.losses import loss_function
from ..problems.models import keep_modes


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, batch_size: int) -> dict[str, float]:
    """Mean loss and accuracy (classification) or MSE and R^2 (regression) over a whole split, eval mode.

    The mode is switched (and every submodule's own mode given back afterwards) only when the model is in training
    mode: switching walks every submodule, which costs a fifth of a point's time on a small MLP when a surface calls
    this once per grid point.
    """
    if model.training:
        with keep_modes(model):  # every submodule's own mode given back
            model.eval()
            return evaluate(model, x, y, task, batch_size)
    summed = loss_function(task, reduction="sum")
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        out = model(xb)
        loss_sum += summed(out, yb).item()
        if task == "classification":
            correct += (out.argmax(1) == yb).sum().item()
    loss = loss_sum / y.numel()  # classification: / examples; regression: / elements (loss_sum is the SSE)
    if task == "classification":
        return {"loss": loss, "accuracy": correct / len(x)}
    total = ((y - y.mean()) ** 2).sum().item()
    return {"loss": loss, "mse": loss, "r2": 1.0 - loss_sum / total if total > 0 else float("nan")}

