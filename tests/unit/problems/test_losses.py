"""The one loss definition: textbook formulas, and evaluation's values bitwise those of the code it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossgeom.problems.losses import loss_function
from lossgeom.problems.models import build_model
from lossgeom.training.evaluation import evaluate


def textbook(task: str, out: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy, log sum_k exp(z_k) - z_y, or mean squared error over elements, in float64 numpy."""
    if task == "classification":
        top = out.max(axis=1, keepdims=True)
        log_sum_exp = np.log(np.exp(out - top).sum(axis=1)) + top[:, 0]
        return float(np.mean(log_sum_exp - out[np.arange(len(y)), y]))
    return float(np.mean((out - y) ** 2))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_loss_is_the_textbook_formula(task):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(37, 4, dtype=torch.float64, generator=g)
    y = torch.randint(0, 4, (37,), generator=g) if task == "classification" else torch.randn(37, 4, generator=g,
                                                                                            dtype=torch.float64)
    mean = float(loss_function(task)(out, y))
    assert mean == pytest.approx(textbook(task, out.numpy(), y.numpy()), rel=1e-13)
    assert float(loss_function(task, "sum")(out, y)) == pytest.approx(mean * y.numel(), rel=1e-13)
    with pytest.raises(ValueError, match="reduction"):
        loss_function(task, "none")


def old_evaluate_loss(model, x, y, task, batch_size) -> dict[str, float]:
    """The loss of evaluate before it took it from loss_function (its own cross-entropy and squared error)."""
    loss_sum, sse = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            out = model(xb)
            if task == "classification":
                loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
            else:
                sse += ((out - yb) ** 2).sum().item()
    if task == "classification":
        return {"loss": loss_sum / len(x)}
    total = ((y - y.mean()) ** 2).sum().item()
    return {"loss": sse / y.numel(), "mse": sse / y.numel(), "r2": 1.0 - sse / total}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("task, outputs", [("classification", 5), ("regression", 1), ("regression", 3)])
def test_evaluation_gives_bitwise_the_values_of_the_old_code(task, outputs, dtype):
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, (6,), outputs).to(dtype).eval()
    x = torch.randn(203, 6, dtype=dtype)
    y = torch.randint(0, outputs, (203,)) if task == "classification" else torch.randn(203, outputs, dtype=dtype)
    for batch_size in (1000, 64, 7):  # one batch, and sums over batches of uneven size
        new, old = evaluate(model, x, y, task, batch_size), old_evaluate_loss(model, x, y, task, batch_size)
        for key, value in old.items():
            assert new[key] == value, (key, batch_size)  # bitwise: the surfaces' grids and summary.csv stay as they were
