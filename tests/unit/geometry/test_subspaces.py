"""Random subspaces, the restricted Hessian and the gradient overlap against dense float64 computations."""

from __future__ import annotations

import math

import pytest
import torch

from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.operator import MatrixOperator
from lossgeom.geometry.subspaces import gradient_overlap, random_subspace, restricted_hessian, trace_over_frobenius
from tests.unit.curvature_cases import case, one_fast


def test_random_subspace_has_unit_rows_and_is_seeded():
    B = random_subspace(500, 7, seed=3)
    assert B.shape == (7, 500)  # a set of vectors is rows (k, N), as Lanczos' eigenvectors
    assert torch.allclose(torch.linalg.vector_norm(B, dim=1), torch.ones(7, dtype=torch.float64))
    assert torch.equal(B, random_subspace(500, 7, seed=3)) and not torch.equal(B, random_subspace(500, 7, seed=4))
    # the numbers of the former columns P (N, d), drawn the same way: only the orientation moved
    g = torch.Generator().manual_seed(3)
    P = torch.randn(500, 7, generator=g, dtype=torch.float64)
    assert torch.equal(B, (P / torch.linalg.vector_norm(P, dim=0, keepdim=True)).T)
    with pytest.raises(ValueError, match="1..500"):
        random_subspace(500, 501, seed=0)
    with pytest.raises(ValueError, match="1..500"):
        random_subspace(500, 0, seed=0)


@pytest.mark.parametrize("name", one_fast("mlp_tanh_digits", ["mlp_tanh_digits", "cnn_digits"]))
def test_restricted_hessian_equals_the_dense_projection(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse", block=4)
    B = random_subspace(op.n_params, 6, seed=0)
    Hd = restricted_hessian(op, B)
    assert op.hvps == 6
    assert torch.allclose(Hd, B @ c.H @ B.T, atol=1e-10 * torch.linalg.matrix_norm(c.H, ord=2))


def test_trace_over_frobenius_bounds_and_closed_forms():
    d = 5
    assert trace_over_frobenius(3.0 * torch.eye(d, dtype=torch.float64)) == pytest.approx(math.sqrt(d))
    assert trace_over_frobenius(torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))) == 0.0
    assert math.isnan(trace_over_frobenius(torch.zeros(2, 2, dtype=torch.float64)))
    for seed in range(20):
        a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert abs(trace_over_frobenius(a + a.T)) <= math.sqrt(d) + 1e-12


def test_gradient_overlap_of_eigenspaces():
    c = case("mlp_tanh_digits")
    V = c.eigenvectors.T.flip(0)  # rows, largest eigenvalue first
    g = torch.randn(len(V), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert gradient_overlap(g, V) == pytest.approx(1.0)  # the whole basis
    assert gradient_overlap(V[2] + 0.0 * g, V[:3]) == pytest.approx(1.0)
    assert gradient_overlap(V[5], V[:3]) == pytest.approx(0.0, abs=1e-20)
    # a random direction has k/N of its squared norm in any k-dimensional subspace, on average
    k, n = 10, len(V)
    draws = torch.randn(400, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shares = torch.tensor([gradient_overlap(d, V[:k]) for d in draws])
    assert abs(float(shares.mean()) - k / n) < 4 * float(shares.std()) / 20


def test_restricted_hessian_of_a_dense_matrix():
    A = torch.diag(torch.tensor([4.0, 1.0, -2.0, 0.5], dtype=torch.float64))
    B = random_subspace(4, 2, seed=1)
    assert torch.allclose(restricted_hessian(MatrixOperator(A), B), B @ A @ B.T, atol=1e-14)


def test_restricted_hessian_on_rows_is_bitwise_the_former_column_form():
    A = torch.randn(300, 300, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    A = A + A.T
    B = random_subspace(300, 7, seed=1)
    P = B.T.contiguous()  # the former orientation, (N, d)
    HP = torch.stack([A @ p for p in P.T]).T
    former = P.T @ HP
    assert torch.equal(restricted_hessian(MatrixOperator(A), B), (former + former.T) / 2)
