"""Directions (Gaussian, unit, filter-normalized) and principal curvatures against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.geometry.curvature import (
    finite_difference_hessian,
    graph_principal_curvatures,
    principal_curvatures,
    projected_hessian,
    quadratic_fit_hessian,
)
from lossgeom.geometry.directions import filter_normalize, orthogonalize, random_direction
from lossgeom.engine.operator import MatrixOperator
from lossgeom.problems.models import build_model


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return build_model({"name": "lenet", "channels": [4, 6], "kernel_size": 3, "hidden": [12]}, (1, 8, 8), 10)


def test_gaussian_and_unit_directions(cnn):
    n = sum(p.numel() for p in cnn.parameters())
    eta = random_direction(cnn, "gaussian", seed=1)
    assert eta.shape == (n,) and abs(float(eta.mean())) < 0.05 and abs(float(eta.std()) - 1) < 0.05
    assert torch.equal(eta, random_direction(cnn, "gaussian", seed=1))
    assert not torch.equal(eta, random_direction(cnn, "gaussian", seed=2))
    unit = random_direction(cnn, "unit", seed=1)
    assert float(unit.norm()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(unit, eta / eta.norm())


@pytest.mark.parametrize("biasbn", ["ignore", "include"])
def test_filter_normalization(cnn, biasbn):
    d = random_direction(cnn, "filter", seed=3, biasbn=biasbn)
    start = 0
    for _, p in cnn.named_parameters():
        block = d[start : start + p.numel()].view(p.shape)
        start += p.numel()
        if p.dim() <= 1:
            expected = torch.zeros_like(p) if biasbn == "ignore" else p.detach()
            torch.testing.assert_close(block, expected)
        else:
            filters, weights = block.reshape(p.shape[0], -1), p.detach().reshape(p.shape[0], -1)
            torch.testing.assert_close(filters.norm(dim=1), weights.norm(dim=1), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="biasbn 'all' is unknown"):
        filter_normalize(d, cnn, "all")


def test_orthogonalize_keeps_norm():
    g = torch.Generator().manual_seed(0)
    eta, delta = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    ortho = orthogonalize(delta, eta)
    assert abs(float(ortho @ eta)) < 1e-12 and float(ortho.norm()) == pytest.approx(float(delta.norm()))


def test_projected_hessian_and_principal_curvatures():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    H = A + A.T
    eta, delta = torch.randn(30, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    M = projected_hessian(MatrixOperator(H), eta, delta)
    expected = torch.stack([eta, delta]) @ H @ torch.stack([eta, delta]).T
    np.testing.assert_allclose(M, expected.numpy(), rtol=1e-12)
    kp, km = principal_curvatures(M)
    np.testing.assert_allclose([km, kp], np.linalg.eigvalsh(M), rtol=1e-12)


def quadratic_grid(M, g, c=0.3, n=11, h=0.05):
    a = b = h * (np.arange(n) - n // 2)
    A, B = np.meshgrid(a, b, indexing="ij")
    values = c + g[0] * A + g[1] * B + 0.5 * (M[0, 0] * A**2 + 2 * M[0, 1] * A * B + M[1, 1] * B**2)
    return values, a, b


def test_grid_estimates_are_exact_on_quadratics():
    M, g = np.array([[2.0, -0.7], [-0.7, -1.5]]), np.array([0.4, -0.2])
    values, a, b = quadratic_grid(M, g)
    np.testing.assert_allclose(finite_difference_hessian(values, a, b), M, atol=1e-9)
    fit, grad = quadratic_fit_hessian(values, a, b, radius=2)
    np.testing.assert_allclose(fit, M, atol=1e-8)
    np.testing.assert_allclose(grad, g, atol=1e-10)
    with pytest.raises(ValueError, match="must contain 0"):
        finite_difference_hessian(values, a + 0.02, b)  # no grid point at a = 0


def test_graph_curvature_closed_forms():
    M = np.array([[3.0, 1.0], [1.0, -2.0]])
    np.testing.assert_allclose(graph_principal_curvatures(M, [0.0, 0.0]), principal_curvatures(M), rtol=1e-12)
    # cylinder-like graph z = k a^2 / 2 at a0: the curve's curvature k / (1 + (k a0)^2)^(3/2), and 0
    k, a0 = 2.0, 0.3
    kp, km = graph_principal_curvatures(np.array([[k, 0.0], [0.0, 0.0]]), [k * a0, 0.0])
    assert kp == pytest.approx(k / (1 + (k * a0) ** 2) ** 1.5, rel=1e-12) and km == pytest.approx(0.0, abs=1e-14)
