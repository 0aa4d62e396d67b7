"""gauss_newton_trace: tr(G) from per-example Jacobians equals the trace of the dense G for any model, and the trace of
the dense Hessian exactly when the outputs are piecewise linear in each parameter (ReLU, max-pooling), not for tanh."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossgeom.engine.gauss_newton import dense_gauss_newton, gauss_newton_trace
from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.operator import dense_matrix
from lossgeom.problems.losses import loss_function, mean_squared_error

cross_entropy = loss_function("classification")


def _cnn(activation: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 3, 3, padding=1), activation(), nn.MaxPool1d(2), nn.Flatten(),
                         nn.Linear(12, 5), activation(), nn.Linear(5, 4)).double()


def _data(n: int = 13):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
def test_it_is_the_trace_of_the_dense_gauss_newton_matrix(activation):
    model, (x, y) = _cnn(activation), _data()
    dense = float(torch.trace(dense_gauss_newton(model, cross_entropy, x, y)))
    assert gauss_newton_trace(model, cross_entropy, x, y, batch_size=5) == pytest.approx(dense, rel=1e-12)


def test_with_relu_and_max_pooling_it_is_the_hessian_trace():
    model, (x, y) = _cnn(nn.ReLU), _data()
    hessian = dense_matrix(HessianOperator(model, cross_entropy, x, y, method="double-backward"))
    gauss_newton = dense_gauss_newton(model, cross_entropy, x, y)
    assert float((hessian - gauss_newton).abs().max()) > 1e-3 * float(hessian.abs().max())  # H != G off the diagonal
    assert gauss_newton_trace(model, cross_entropy, x, y) == pytest.approx(float(torch.trace(hessian)), rel=1e-12)


def test_with_tanh_it_is_not():
    model, (x, y) = _cnn(nn.Tanh), _data()
    hessian = dense_matrix(HessianOperator(model, cross_entropy, x, y, method="double-backward"))
    assert abs(gauss_newton_trace(model, cross_entropy, x, y) - float(torch.trace(hessian))) > 1e-3 * abs(
        float(torch.trace(hessian)))


def test_squared_error_regression():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    x, y = torch.randn(11, 3, dtype=torch.float64), torch.randn(11, 2, dtype=torch.float64)
    hessian = dense_matrix(HessianOperator(model, mean_squared_error, x, y, method="double-backward"))
    assert gauss_newton_trace(model, mean_squared_error, x, y, batch_size=4) == pytest.approx(
        float(torch.trace(hessian)), rel=1e-12)
