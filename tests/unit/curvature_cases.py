"""Small models on real data, in float64, with their dense Hessians: the references for curvature tests.

Each case is trained briefly (full-batch Adam) so that its spectrum looks like a trained network's: a few
large outliers, a cluster near zero, small negative eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pytest
import torch
from torch import nn

from lossgeom.problems.data import load_dataset
from lossgeom.engine.hessian import dense_hessian
from lossgeom.problems.losses import loss_function
from lossgeom.problems.models import build_model


@dataclass
class Case:
    name: str
    model: nn.Module
    loss_fn: object
    x: torch.Tensor
    y: torch.Tensor
    H: torch.Tensor  # dense float64 Hessian of the mean loss over (x, y)
    eigenvalues: torch.Tensor  # ascending
    eigenvectors: torch.Tensor  # columns


class BatchNormMLP(nn.Sequential):
    """Linear -> BatchNorm1d -> tanh -> Linear, evaluated with (non-trivial) running statistics."""

    def __init__(self, d_in: int, width: int, d_out: int) -> None:
        super().__init__(nn.Flatten(), nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.Tanh(), nn.Linear(width, d_out))


def _data(spec, n):
    ds = load_dataset(spec)
    return ds, ds.x_train[:n].double(), ds.y_train[:n] if ds.task == "classification" else ds.y_train[:n].double()


def _train_briefly(model, loss_fn, x, y, steps=60):
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    model.eval()


BUILDERS = {
    "mlp_tanh_digits": lambda: ({"name": "digits"}, 200, {"name": "mlp", "hidden": [12], "activation": "tanh"}),
    "mlp_relu_digits": lambda: ({"name": "digits"}, 200, {"name": "mlp", "hidden": [10], "activation": "relu"}),
    "cnn_digits": lambda: ({"name": "digits"}, 150, {"name": "lenet", "channels": [3, 4], "kernel_size": 3, "hidden": [8]}),
    "batchnorm_digits": lambda: ({"name": "digits"}, 200, None),
    "mlp_tanh_sines": lambda: ({"name": "sines", "n_train": 128, "n_test": 8}, 128,
                               {"name": "mlp", "hidden": [16, 16], "activation": "tanh"}),
}
CASES = list(BUILDERS)


def one_fast(keep: str, names=CASES) -> list:
    """Parameters of a family of dense-reference tests over ``names``: ``keep`` runs in the fast tier, every other
    case is marked ``slow`` (the full run still checks them all)."""
    assert keep in names, keep
    return [name if name == keep else pytest.param(name, marks=pytest.mark.slow) for name in names]


@lru_cache(maxsize=None)
def case(name: str) -> Case:
    data_spec, n, model_spec = BUILDERS[name]()
    ds, x, y = _data(data_spec, n)
    torch.manual_seed(0)
    if model_spec is None:
        model = BatchNormMLP(64, 10, 10)
    else:
        model = build_model(model_spec, ds.input_shape, ds.output_dim)
    model = model.double()
    loss_fn = loss_function(ds.task)
    _train_briefly(model, loss_fn, x, y)
    if model_spec is None:  # running statistics far from (0, 1), so eval mode matters
        bn = model[2]
        bn.running_mean.copy_(torch.linspace(-0.5, 0.5, 10, dtype=torch.float64))
        bn.running_var.copy_(torch.linspace(0.5, 2.0, 10, dtype=torch.float64))
    H = dense_hessian(model, loss_fn, x, y)
    H = 0.5 * (H + H.T)
    values, vectors = torch.linalg.eigh(H)
    return Case(name, model, loss_fn, x, y, H, values, vectors)
