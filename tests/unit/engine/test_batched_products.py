"""Batched Hessian-vector products (vmap over tangents) and the timed choice of ``method="auto"``: the same
H v as dense float64 Hessians, and the same samples in the loops that hand vectors over in blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.engine.trace import exact_trace
from lossgeom.engine.hessian import BLOCK, MARGIN, TIMING_WORTH, HessianOperator, choose_product
from lossgeom.engine.operator import MatrixOperator, apply_rows, block_size
from lossgeom.engine.trace import hutchinson_trace
from lossgeom.geometry.curvature import random_projections

from tests.unit.curvature_cases import case, one_fast


@pytest.mark.parametrize("name", one_fast("cnn_digits"))  # vmap over convolutions
def test_matmat_equals_dense_hessian(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=37, method="forward-over-reverse", block=3)
    V = torch.randn(7, op.n_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # blocks 3, 3, 1
    torch.testing.assert_close(op.matmat(V), V @ c.H, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    assert op.hvps == 7


def test_auto_times_the_candidates_and_records_its_choice():
    c = case("mlp_relu_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=TIMING_WORTH)
    assert op.method == "auto"
    v = torch.randn(op.n_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    choice = op.choice
    assert choice["timed"] and choice["method"] == op.method and choice["block"] == op.block
    timed = choice["seconds_per_vector"]
    assert set(timed) == {"forward-over-reverse", "double-backward", f"forward-over-reverse x{BLOCK}"}
    assert all(t > 0 for t in timed.values())
    single = timed[op.method]  # one vector at a time: the reference unless another beat it by the margin
    if op.method == "forward-over-reverse":
        assert timed["double-backward"] > MARGIN * single
    else:
        assert single <= MARGIN * timed["forward-over-reverse"]
    assert (timed[f"forward-over-reverse x{BLOCK}"] <= MARGIN * single) == (op.block == BLOCK)
    assert op.hvps == 1, "the timing products are not counted"


def test_one_vector_and_blocks_are_chosen_apart():
    """Lanczos multiplies one vector at a time: a block's saving must not decide its method. Fast blocks with a
    faster single double backward keep both; near ties keep the simpler way."""
    from lossgeom.engine.hessian import pick_product

    fast_double = {"forward-over-reverse": 1.0, "double-backward": 0.5}
    assert pick_product(fast_double, block=0.3) == ("double-backward", BLOCK)
    assert pick_product(fast_double, block=0.45) == ("double-backward", 1)  # blocks beat 0.5 by less than the margin
    assert pick_product({"forward-over-reverse": 1.0, "double-backward": 0.9}, block=0.3) == ("forward-over-reverse", BLOCK)
    assert pick_product({"double-backward": 1.0}, block=None) == ("double-backward", 1)  # forward mode failed


def test_auto_multiplies_one_vector_with_double_backward_and_blocks_by_vmap(monkeypatch):
    """When auto keeps double backward for one vector and blocks of 8, matvec runs double backward and matmat the
    vmapped blocks, each equal to the dense Hessian."""
    import lossgeom.engine.hessian as hessian

    c = case("mlp_relu_digits")
    monkeypatch.setattr(hessian, "pick_product", lambda single, block: ("double-backward", BLOCK))
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=TIMING_WORTH)
    calls = []
    block_product = op._block_product
    monkeypatch.setattr(op, "_block_product", lambda *a: calls.append(1) or block_product(*a))
    v = torch.randn(op.n_params, dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    assert (op.method, op.block) == ("double-backward", BLOCK)
    V = torch.randn(BLOCK, op.n_params, dtype=torch.float64)
    before = len(calls)
    torch.testing.assert_close(op.matmat(V), V @ c.H, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
    assert len(calls) > before, "the block went through the vmapped product"


def test_a_recorded_choice_rebuilds_the_same_products(monkeypatch):
    """An operator rebuilt from auto's record (double backward for one vector, vmapped blocks of 8: hvp_method,
    hvp_block, hvp_vmap_blocks) multiplies a block as auto did, bit for bit; without ``vmap_blocks`` a fixed double
    backward goes one vector at a time."""
    import lossgeom.engine.hessian as hessian

    c = case("mlp_relu_digits")
    monkeypatch.setattr(hessian, "pick_product", lambda single, block: ("double-backward", BLOCK))
    auto = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=TIMING_WORTH)
    V = torch.randn(BLOCK, auto.n_params, dtype=torch.float64)
    by_auto = auto.matmat(V)
    rebuilt = HessianOperator(c.model, c.loss_fn, c.x, c.y, method=auto.method, block=auto.block, vmap_blocks=True)
    assert torch.equal(rebuilt.matmat(V), by_auto) and torch.equal(rebuilt.matvec(V[0]), auto.matvec(V[0]))
    plain = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="double-backward", block=BLOCK)
    assert not plain._batched() and rebuilt._batched()


def test_auto_does_not_time_a_few_products():
    c = case("mlp_relu_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=TIMING_WORTH - 1)
    op.matvec(torch.randn(op.n_params, dtype=torch.float64))
    assert (op.method, op.block, op.choice["timed"]) == ("forward-over-reverse", 1, False)


def test_auto_skips_a_method_that_fails_and_a_fixed_block_is_kept():
    c = case("mlp_tanh_sines")
    op = HessianOperator(c.model, torch.nn.functional.mse_loss, c.x, c.y, block=4)  # no forward-mode AD in torch 2.13
    V = torch.randn(5, op.n_params, dtype=torch.float64)
    torch.testing.assert_close(op.matmat(V), V @ c.H, rtol=1e-9, atol=1e-12)
    assert op.method == "double-backward" and op.block == 4
    assert op.choice["seconds_per_vector"]["forward-over-reverse"] is None and not op.choice["timed"]
    assert "forward-over-reverse" in op.choice["errors"]


def test_a_fixed_method_is_not_timed():
    c = case("mlp_relu_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="double-backward")
    assert op.block == 1 and op.choice is None and choose_product(op) == {}


def test_operators_without_matmat_get_one_product_per_row():
    M = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    op = MatrixOperator(M)
    V = torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(apply_rows(op, V), M)
    assert op.hvps == 2 and block_size(op) == 1


@pytest.mark.parametrize("block", [1, 3, 8])
def test_blocks_give_the_same_hutchinson_samples_and_projections(block):
    """The probes and directions are drawn in the same order whatever the block: equal samples up to rounding."""
    c = case("mlp_tanh_digits")
    reference = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse", block=1)
    blocked = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse", block=block)
    V = torch.linalg.eigh(c.H)[1][:, -2:].T.contiguous()
    lam = torch.einsum("ij,jk,ik->i", V, c.H, V)
    plain = hutchinson_trace(reference, 11, seed=3, deflate=(V, lam))
    batched = hutchinson_trace(blocked, 11, seed=3, deflate=(V, lam))
    np.testing.assert_allclose(batched.samples, plain.samples, rtol=1e-10)
    np.testing.assert_allclose(batched.deflated.samples, plain.deflated.samples, rtol=1e-9, atol=1e-12 * abs(plain.estimate))
    np.testing.assert_allclose(random_projections(blocked, 5, seed=4), random_projections(reference, 5, seed=4),
                               rtol=1e-10, atol=1e-13)
    assert blocked.hvps == reference.hvps == 11 + 10


def test_exact_trace_in_blocks_equals_the_dense_trace():
    c = case("mlp_tanh_sines")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse", block=BLOCK)
    assert exact_trace(op) == pytest.approx(float(torch.trace(c.H)), rel=1e-10)
    assert op.hvps == op.n_params


def test_block_must_be_positive():
    c = case("mlp_relu_digits")
    with pytest.raises(ValueError, match="block must be >= 1"):
        HessianOperator(c.model, c.loss_fn, c.x, c.y, block=0)


def test_compiling_is_tried_only_when_the_planned_products_would_repay_it(monkeypatch):
    import lossgeom.engine.hessian as hessian

    c = case("mlp_relu_digits")
    few = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=10)
    few.block  # noqa: B018 (the property makes the choice)
    assert few.choice["compile"] is None and not few.compiled
    monkeypatch.setattr(hessian, "COMPILE_WORTH_S", 0.0)  # every plan is long enough: the compiled candidate is timed
    many = HessianOperator(c.model, c.loss_fn, c.x, c.y, expected_products=10**9)
    v = torch.randn(many.n_params, dtype=torch.float64)
    hv = many.matvec(v)
    record = many.choice["compile"]
    assert record is not None and record["projected_s"] > 0
    if "error" not in record:  # a machine without a working compiler backend records why instead
        assert record["compile_s"] > 0 and record["seconds_per_vector"] > 0
        assert many.compiled == record["kept"]
    torch.testing.assert_close(hv, c.H @ v, rtol=1e-9, atol=1e-11 * float(c.H.abs().max()))
