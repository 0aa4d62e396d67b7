"""The operators' API as a user meets it: data from a DataLoader, the model's train/eval mode left as it was,
``op @ v`` / ``op @ V`` on rows, SciPy's LinearOperator, and the Gauss-Newton operator with any loss the Hessian
takes. Float64 small models against dense references."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import eigsh
from torch.utils.data import DataLoader, TensorDataset

from lossgeom.engine.gauss_newton import GaussNewtonOperator, dense_gauss_newton
from lossgeom.engine.hessian import HessianOperator, dense_hessian
from lossgeom.engine.model_operator import ModelOperator
from lossgeom.engine.operator import MatrixOperator
from lossgeom.theory.spectra import quadratic_operator

from tests.unit.curvature_cases import case


def _vectors(n: int, k: int | None = None, seed: int = 0) -> torch.Tensor:
    shape = (n,) if k is None else (k, n)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- 1. data: tensors or any iterable of (x, y) batches ------------------------------------------------------
def test_a_dataloader_with_an_uneven_last_batch_gives_the_operator_of_the_concatenated_data():
    c = case("mlp_tanh_digits")  # 200 examples: batches of 37 x 5 and 15
    loader = DataLoader(TensorDataset(c.x, c.y), batch_size=37)
    op = HessianOperator(c.model, c.loss_fn, loader, method="forward-over-reverse")
    assert [len(b[0]) for b in op.batches][-1] == 200 - 5 * 37
    v = _vectors(op.n_params)
    scale = float(c.H.abs().max())
    torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-11 * scale)
    full = HessianOperator(c.model, c.loss_fn, c.x, c.y)
    assert op.loss() == pytest.approx(full.loss(), rel=1e-12)
    torch.testing.assert_close(op.gradient(), full.gradient(), rtol=1e-10, atol=1e-14)
    shuffled = DataLoader(TensorDataset(c.x, c.y), batch_size=37, shuffle=True,
                          generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(HessianOperator(c.model, c.loss_fn, shuffled) @ v, c.H @ v, rtol=1e-9,
                               atol=1e-11 * scale)


def test_a_summed_loss_over_a_list_of_batches_is_the_same_mean_loss():
    c = case("mlp_relu_digits")
    batches = [(c.x[i : i + 64], c.y[i : i + 64]) for i in range(0, len(c.x), 64)]  # 64, 64, 64, 8
    summed = lambda out, y: F.cross_entropy(out, y, reduction="sum")  # noqa: E731
    op = HessianOperator(c.model, summed, batches, reduction="sum", method="forward-over-reverse")
    v = _vectors(op.n_params)
    torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    assert op.loss() == pytest.approx(float(c.loss_fn(c.model(c.x), c.y).detach()), rel=1e-12)
    pair = HessianOperator(c.model, c.loss_fn, (c.x, c.y), method="forward-over-reverse")  # one tensor pair
    torch.testing.assert_close(pair @ v, c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))


def test_wrong_data_forms_fail_with_a_message():
    c = case("mlp_relu_digits")
    with pytest.raises(ValueError, match="brings its own"):
        HessianOperator(c.model, c.loss_fn, DataLoader(TensorDataset(c.x, c.y), batch_size=10), batch_size=5)
    with pytest.raises(TypeError, match="pair"):
        HessianOperator(c.model, c.loss_fn, [c.x])
    with pytest.raises(ValueError, match="reduction"):
        HessianOperator(c.model, c.loss_fn, c.x, c.y, reduction="none")


def test_the_gauss_newton_operator_takes_a_dataloader():
    c = case("mlp_relu_digits")
    G = dense_gauss_newton(c.model, c.loss_fn, c.x, c.y)
    op = GaussNewtonOperator(c.model, c.loss_fn, DataLoader(TensorDataset(c.x, c.y), batch_size=48))
    v = _vectors(op.n_params)
    torch.testing.assert_close(op @ v, G @ v, rtol=1e-9, atol=1e-11 * float(G.abs().max()))


# -- 2. train/eval mode: explicit, the model's own mode untouched ----------------------------------------------
def test_train_mode_products_use_batch_statistics_and_leave_the_eval_model_alone():
    c = case("batchnorm_digits")
    assert not c.model.training
    running = c.model[2].running_mean.clone()
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, mode="train", method="forward-over-reverse")
    v = _vectors(op.n_params)
    hv = op.matvec(v)
    G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, mode="train")
    G.matvec(v)
    assert not any(m.training for m in c.model.modules()) and c.model[2].track_running_stats
    assert torch.equal(c.model[2].running_mean, running)
    # reference: the model without running statistics, whose BatchNorm always normalizes with the batch's
    reference = copy.deepcopy(c.model)
    reference[2].running_mean = reference[2].running_var = None
    H_train = dense_hessian(reference, c.loss_fn, c.x, c.y)
    assert not torch.allclose(H_train, c.H, atol=1e-3 * float(c.H.abs().max()))  # the two modes differ here
    torch.testing.assert_close(hv, H_train @ v, rtol=1e-9, atol=1e-11 * float(H_train.abs().max()))
    with pytest.raises(ValueError, match="mode"):
        HessianOperator(c.model, c.loss_fn, c.x, c.y, mode="training")


def test_dense_references_and_every_call_restore_the_models_mode():
    c = case("mlp_tanh_digits")
    c.model.train()
    try:
        dense_hessian(c.model, c.loss_fn, c.x[:20], c.y[:20])
        op = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=10)
        op.matmat(_vectors(op.n_params, 3))
        op.loss(), op.gradient(), op.block
        G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, block=2)
        G.matmat(_vectors(op.n_params, 3))
        assert c.model.training
    finally:
        c.model.eval()


# -- 3. op @ v, op @ V (rows), SciPy ----------------------------------------------------------------------------
def _operators():
    c = case("mlp_tanh_digits")
    A = c.H
    return c, [
        ("hessian", HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, method="forward-over-reverse",
                                    block=2), A),
        ("gauss-newton", GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, block=2),
         dense_gauss_newton(c.model, c.loss_fn, c.x, c.y)),
        ("matrix", MatrixOperator(A), A),
    ]


def test_matmul_on_a_vector_and_on_rows_for_every_operator():
    c, operators = _operators()
    for name, op, A in operators:
        v, V = _vectors(op.n_params), _vectors(op.n_params, 5, seed=1)
        scale = float(A.abs().max())
        assert (op @ v).shape == (op.n_params,), name
        torch.testing.assert_close(op @ v, A @ v, rtol=1e-9, atol=1e-11 * scale, msg=name)
        rows = op @ V
        assert rows.shape == (5, op.n_params), name
        torch.testing.assert_close(rows, V @ A, rtol=1e-9, atol=1e-11 * scale * 10, msg=name)  # rows A v_i
        with pytest.raises(ValueError):
            op @ torch.zeros(2, 2, 2, dtype=torch.float64)
    q = quadratic_operator([-1.0, 2.0, 3.0])
    assert (q @ torch.ones(3, dtype=torch.float64)).tolist() == [-1.0, 2.0, 3.0]


def test_to_scipy_gives_a_float64_linear_operator_whose_eigsh_matches_dense_eigh():
    c, operators = _operators()
    for name, op, A in operators:
        linear = op.to_scipy()
        assert linear.shape == (op.n_params, op.n_params) and linear.dtype == np.float64
        x = np.random.default_rng(0).standard_normal(op.n_params)
        out = linear.matvec(x)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (op.n_params,)
        X = np.random.default_rng(1).standard_normal((op.n_params, 3))  # SciPy's columns
        np.testing.assert_allclose(linear.matmat(X), A.numpy() @ X, rtol=1e-9, atol=1e-11 * float(A.abs().max()))
        values = eigsh(linear, k=3, which="LA", tol=1e-10, return_eigenvectors=False)
        reference = torch.linalg.eigvalsh((A + A.T) / 2).numpy()[-3:]
        np.testing.assert_allclose(np.sort(values), reference, rtol=1e-8, atol=1e-10 * abs(reference).max(),
                                   err_msg=name)


# -- 4. the Gauss-Newton operator with any loss the Hessian takes, and honest inheritance -----------------------
def test_gauss_newton_with_torch_mse_loss_equals_the_dense_reference():
    c = case("mlp_tanh_sines")  # F.mse_loss: no second-order forward mode in torch 2.13 ("ZeroTensors are immutable")
    G = dense_gauss_newton(c.model, F.mse_loss, c.x, c.y)
    op = GaussNewtonOperator(c.model, F.mse_loss, c.x, c.y, batch_size=50, block=3)
    v, V = _vectors(op.n_params), _vectors(op.n_params, 4, seed=1)
    scale = float(G.abs().max())
    torch.testing.assert_close(op.matvec(v), G @ v, rtol=1e-9, atol=1e-11 * scale)
    torch.testing.assert_close(op.matmat(V), V @ G, rtol=1e-9, atol=1e-10 * scale)
    assert op.output_method == "reverse-over-reverse"
    assert GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y).matvec(v).shape == v.shape


def test_gauss_newton_shares_a_base_with_the_hessian_not_its_product_methods():
    c = case("mlp_relu_digits")
    G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y)
    assert isinstance(G, ModelOperator) and not isinstance(G, HessianOperator)
    assert not hasattr(G, "method") and not hasattr(G, "expected_products")
    assert issubclass(HessianOperator, ModelOperator)


@pytest.mark.parametrize("operator", [HessianOperator, GaussNewtonOperator])
def test_train_mode_with_dropout_is_refused_with_the_way_out(operator):
    """Dropout in train mode draws new masks at every product (measured: u.Gv = -0.69, v.Gu = -2.59 on a small
    MLP): no symmetric operator for Lanczos. Eval mode, the default, is the way out."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    with pytest.raises(ValueError, match=r"mode='train' with dropout \(1\).*use mode='eval'"):
        operator(model, F.cross_entropy, x, y, mode="train")
    op = operator(model.double(), F.cross_entropy, x.double(), y)  # eval mode: one fixed operator
    u, v = torch.randn(op.n_params, dtype=torch.float64), torch.randn(op.n_params, dtype=torch.float64)
    assert float(u @ (op @ v)) == pytest.approx(float(v @ (op @ u)), rel=1e-10)


def test_gauss_newton_takes_block_none_as_one_vector_per_product():
    c = case("mlp_tanh_sines")
    G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, block=None)
    V = torch.randn(3, G.n_params, dtype=torch.float64)
    torch.testing.assert_close(G @ V, torch.stack([G @ v for v in V]), rtol=1e-12, atol=1e-12)


def test_to_scipy_of_a_float32_operator_is_float32_and_takes_any_real_input():
    A = torch.diag(torch.arange(1.0, 6.0))  # float32
    linear = MatrixOperator(A).to_scipy()
    assert linear.dtype == np.float32
    for x in (np.ones(5, dtype=np.float32), np.ones(5, dtype=np.int64), np.ones(5)):
        np.testing.assert_allclose(linear @ x, np.arange(1.0, 6.0))
    top = eigsh(linear, k=1, which="LA", return_eigenvectors=False)
    assert top[0] == pytest.approx(5.0, rel=1e-6)
    assert MatrixOperator(A.double()).to_scipy().dtype == np.float64
