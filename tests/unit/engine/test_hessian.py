"""Hessian-vector products against dense float64 Hessians and closed forms."""

from __future__ import annotations

import pytest
import torch

from lossgeom.engine.hessian import HessianOperator, dense_hessian
from lossgeom.problems.losses import mean_squared_error

from tests.unit.curvature_cases import case, one_fast


@pytest.mark.parametrize("method", ["forward-over-reverse", "double-backward"])
@pytest.mark.parametrize("name", one_fast("batchnorm_digits"))  # eval-mode BatchNorm: both methods
def test_hvp_equals_dense_hessian(name, method):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=37, method=method)  # uneven last batch
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(op.n_params, generator=g, dtype=torch.float64)
        torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    assert op.hvps == 3 and op.method == method


def test_batch_size_does_not_change_the_product():
    c = case("cnn_digits")
    v = torch.randn(sum(p.numel() for p in c.model.parameters()), dtype=torch.float64)
    products = [HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=b).matvec(v) for b in (1, 16, 150)]
    for p in products[1:]:
        torch.testing.assert_close(p, products[0], rtol=1e-10, atol=1e-12)


def test_linear_least_squares_closed_form():
    """MSE of a linear model: H = 2 X_1^T X_1 / n with X_1 = [X, 1] (weights, then bias)."""
    from lossgeom.problems.data import load_dataset

    ds = load_dataset({"name": "digits"})
    X = ds.x_train[:300].flatten(1).double()
    y = (ds.y_train[:300].double() / 9).unsqueeze(1)
    model = torch.nn.Linear(64, 1).double()
    op = HessianOperator(model, mean_squared_error, X, y, batch_size=64)
    X1 = torch.cat([X, torch.ones(300, 1, dtype=torch.float64)], dim=1)
    H = 2 * X1.T @ X1 / 300
    dense = torch.stack([op.matvec(e) for e in torch.eye(65, dtype=torch.float64)])
    torch.testing.assert_close(dense, H, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dense_hessian(model, mean_squared_error, X, y), H, rtol=1e-12, atol=1e-12)


def test_auto_falls_back_to_double_backward_for_losses_without_forward_ad():
    c = case("mlp_tanh_sines")
    op = HessianOperator(c.model, torch.nn.functional.mse_loss, c.x, c.y)  # no forward-mode AD in torch 2.13
    v = torch.randn(op.n_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-12)
    assert op.method == "double-backward"


def test_parameters_are_shared_not_copied_and_products_are_eval_mode_without_changing_the_model():
    c = case("batchnorm_digits")
    c.model.train()
    try:
        op = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse")
        assert c.model.training, "constructing the operator leaves the model's mode alone"
        for (name, p) in c.model.named_parameters():
            assert op.params[name].data_ptr() == p.data_ptr(), name
        running = c.model[2].running_mean.clone()
        v = torch.randn(op.n_params, dtype=torch.float64)
        hv = op.matvec(v)
        assert torch.equal(c.model[2].running_mean, running), "products do not touch BatchNorm statistics"
        assert c.model.training and all(m.training for m in c.model.modules()), "the model's mode is restored"
        torch.testing.assert_close(hv, c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))  # eval-mode H
    finally:
        c.model.eval()


def test_float32_operator_of_a_float64_model():
    c = case("mlp_tanh_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, dtype=torch.float32)
    v = torch.randn(op.n_params, dtype=torch.float64)
    hv = op.matvec(v)
    assert hv.dtype == torch.float32
    torch.testing.assert_close(hv.double(), c.H @ v, rtol=1e-4, atol=1e-5 * float((c.H @ v).abs().max()))


def test_loss_and_gradient_are_full_batch():
    c = case("mlp_relu_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=33)
    c.model.zero_grad()
    loss = c.loss_fn(c.model(c.x), c.y)
    loss.backward()
    assert op.loss() == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(op.gradient(), torch.cat([p.grad.flatten() for p in c.model.parameters()]))
