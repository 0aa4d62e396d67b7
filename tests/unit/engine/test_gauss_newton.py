"""The Gauss-Newton product against dense float64 references: J^T H_ell J formed from full Jacobians, the closed
forms of models linear in their parameters (G = H), and G assembled from per-example logit gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossgeom.engine.gauss_newton import GaussNewtonOperator, dense_gauss_newton
from lossgeom.engine.hessian import dense_hessian
from lossgeom.engine.logit_gradients import logit_gradients
from lossgeom.problems.losses import mean_squared_error
from tests.unit.curvature_cases import CASES, case, one_fast


def _dense_of(op) -> torch.Tensor:
    return torch.stack([op.matvec(e) for e in torch.eye(op.n_params, dtype=torch.float64)], dim=1)


@pytest.mark.parametrize("name", one_fast("mlp_relu_digits"))
def test_products_equal_the_dense_gauss_newton_matrix(name):
    c = case(name)
    G = dense_gauss_newton(c.model, c.loss_fn, c.x, c.y)
    op = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64)  # several batches, weighted
    v = torch.randn(op.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scale = torch.linalg.matrix_norm(G, ord=2)
    assert torch.allclose(op.matvec(v), G @ v, atol=1e-10 * scale * v.norm(), rtol=0)
    block = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, block=3)
    vs = torch.randn(5, op.n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(block.matmat(vs), vs @ G, atol=1e-10 * scale * vs.norm(), rtol=0)
    assert block.hvps == 5


@pytest.mark.parametrize("name", one_fast("mlp_tanh_digits", [n for n in CASES if n != "mlp_tanh_sines"]))
def test_gauss_newton_of_cross_entropy_is_positive_semidefinite_and_differs_from_the_hessian(name):
    c = case(name)
    G = dense_gauss_newton(c.model, c.loss_fn, c.x, c.y)
    eigenvalues = torch.linalg.eigvalsh((G + G.T) / 2)
    assert eigenvalues.min() > -1e-12 * eigenvalues.max()
    # a nonlinear network away from a perfect fit: the residual term is not negligible
    assert torch.linalg.matrix_norm(c.H - G) > 1e-3 * torch.linalg.matrix_norm(c.H)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_models_linear_in_their_parameters_have_g_equal_to_h(loss):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    if loss == "cross_entropy":
        loss_fn, y, outputs = F.cross_entropy, torch.randint(0, 3, (30,), generator=g), 3
    else:
        loss_fn, y, outputs = mean_squared_error, torch.randn(30, 2, generator=g, dtype=torch.float64), 2
    torch.manual_seed(0)
    model = torch.nn.Linear(4, outputs).double()
    H = dense_hessian(model, loss_fn, x, y)
    assert torch.allclose(dense_gauss_newton(model, loss_fn, x, y), H, atol=1e-12)
    assert torch.allclose(_dense_of(GaussNewtonOperator(model, loss_fn, x, y, batch_size=7)), H, atol=1e-12)


@pytest.mark.parametrize("name", one_fast("mlp_relu_digits", ["mlp_relu_digits", "cnn_digits", "batchnorm_digits"]))
def test_cross_entropy_gauss_newton_from_logit_gradients(name):
    """G = (1/n) sum_i J_i^T (diag p_i - p_i p_i^T) J_i with J_i (C, N) the logit gradients of example i."""
    c = case(name)
    J = logit_gradients(c.model, c.x, batch_size=32)
    with torch.no_grad():
        p = torch.softmax(c.model(c.x), dim=1)
    A = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("icn,icd,idm->nm", J, A, J) / len(c.x)
    assert torch.allclose(dense_gauss_newton(c.model, c.loss_fn, c.x, c.y), G, atol=1e-10 * torch.linalg.matrix_norm(G))


@pytest.mark.parametrize("name", one_fast("mlp_tanh_sines"))  # N products per case: the 4 digits cases took 30% of the fast tier
def test_dense_matrix_from_blocked_products_equals_the_references(name):
    from lossgeom.engine.hessian import HessianOperator
    from lossgeom.engine.operator import dense_matrix

    c = case(name)
    for op, reference in ((GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, block=3),
                           dense_gauss_newton(c.model, c.loss_fn, c.x, c.y)),
                          (HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, block=4),
                           dense_hessian(c.model, c.loss_fn, c.x, c.y))):
        dense = dense_matrix(op)
        assert op.hvps == op.n_params  # one product per unit vector, in blocks
        assert torch.equal(dense, dense.T)  # symmetrized band by band
        scale = torch.linalg.matrix_norm(reference, ord=2)
        assert torch.allclose(dense, reference, atol=1e-10 * scale, rtol=0)
