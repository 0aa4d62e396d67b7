"""The stochastic relative Frobenius distance against exact values: dense matrices and a network's H and G."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.engine.frobenius import rademacher_probes, relative_distance
from lossgeom.engine.gauss_newton import GaussNewtonOperator, dense_gauss_newton
from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.operator import MatrixOperator
from tests.unit.curvature_cases import case


def _symmetric(n, seed):
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (a + a.T) / 2


def test_squared_norms_are_unbiased():
    """E||M z||^2 = ||M||_F^2: the mean over many probes is within 4 standard errors of the exact value."""
    M = _symmetric(12, 0)
    z = rademacher_probes(4000, 12, seed=3)
    squares = ((z @ M) ** 2).sum(dim=1).numpy()
    se = squares.std(ddof=1) / np.sqrt(len(squares))
    assert abs(squares.mean() - float(torch.linalg.matrix_norm(M)) ** 2) < 4 * se


@pytest.mark.parametrize("seed", range(5))
def test_estimate_agrees_with_the_exact_ratio_within_its_standard_error(seed):
    A = _symmetric(30, seed)
    B = A + 0.3 * _symmetric(30, seed + 100)
    exact = float(torch.linalg.matrix_norm(A - B) / torch.linalg.matrix_norm(A))
    est = relative_distance(MatrixOperator(A), MatrixOperator(B), probes=40, seed=seed)
    assert 0 < est.standard_error < 0.5 * exact
    assert abs(est.estimate - exact) < 4 * est.standard_error


def test_identical_operators_are_at_distance_zero():
    A = _symmetric(8, 1)
    est = relative_distance(MatrixOperator(A), MatrixOperator(A.clone()), probes=5)
    assert est.estimate == 0.0 and est.standard_error == 0.0


def test_network_hessian_and_gauss_newton_distance():
    c = case("mlp_relu_digits")
    exact = float(torch.linalg.matrix_norm(c.H - dense_gauss_newton(c.model, c.loss_fn, c.x, c.y))
                  / torch.linalg.matrix_norm(c.H))
    H = HessianOperator(c.model, c.loss_fn, c.x, c.y, method="forward-over-reverse")
    G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y)
    est = relative_distance(H, G, probes=30, seed=0)
    assert abs(est.estimate - exact) < 4 * est.standard_error
    assert H.hvps == 30 and G.hvps == 30


def test_bad_arguments_are_refused():
    A = MatrixOperator(torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="probes"):
        relative_distance(A, A, probes=1)
    with pytest.raises(ValueError, match="different spaces"):
        relative_distance(A, MatrixOperator(torch.eye(4, dtype=torch.float64)))
