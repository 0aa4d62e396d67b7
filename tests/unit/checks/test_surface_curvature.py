"""Curvatures of a surface grid vs exact ones: closed-form losses, a kinked loss, and a network's dense Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossgeom.geometry.curvature import exact_projection
from lossgeom.geometry.grid_curvature import graph_principal_curvatures, grid_estimates, off_centre, principal_curvatures
from lossgeom.engine.hessian import HessianOperator, dense_hessian
from lossgeom.problems.models import build_model
from lossgeom.checks.surface_curvature import curvature_rows, saddle_rows

G = np.array([0.3, -0.2])
M = np.array([[2.0, 0.4], [0.4, -0.5]])  # a saddle: eigenvalues of both signs
Q = 3.0  # quartic coefficient: L = c + g.x + x^T M x / 2 + Q (a^4 + b^4) / 4


def smooth_loss(A, B):
    return 1.0 + G[0] * A + G[1] * B + 0.5 * (M[0, 0] * A**2 + 2 * M[0, 1] * A * B + M[1, 1] * B**2) + Q * (A**4 + B**4) / 4


def exact_at(a, b):
    """Gradient and Hessian of ``smooth_loss`` at (a, b), in closed form."""
    x = np.array([a, b])
    return M + np.diag(3 * Q * x**2), G + M @ x + Q * x**3


def grid(points=21, r=0.1, loss=smooth_loss):
    axis = np.linspace(-r, r, points)
    A, B = np.meshgrid(axis, axis, indexing="ij")
    return loss(A, B), axis


def test_grid_estimates_converge_at_second_order():
    errors = []
    for r in (0.1, 0.05):
        values, axis = grid(r=r)
        centre = (10, 10)
        errors.append(np.abs(grid_estimates(values, axis, axis, centre)["M_fd"] - M).max())
        fit = grid_estimates(values, axis, axis, centre)
        np.testing.assert_allclose(fit["g_fit"], G, atol=1e-3)
    assert errors[1] == pytest.approx(errors[0] / 4, rel=0.05), "halving h quarters the O(h^2) error"


def test_smooth_loss_passes_at_and_away_from_the_centre():
    values, axis = grid()
    centre, away = (10, 10), off_centre(axis, axis)
    assert away == (15, 15) and axis[15] == pytest.approx(0.05)
    M0, g0 = exact_at(0.0, 0.0)
    rows = curvature_rows("smooth", values, axis, axis, centre, M0, g0, eps=np.finfo(float).eps)
    M1, g1 = exact_at(axis[15], axis[15])
    rows += curvature_rows("smooth", values, axis, axis, away, M1, g1, eps=np.finfo(float).eps, kinds=("kappa_graph",))
    assert len(rows) == 6 and all(row.passed for row in rows), [(r.quantity, r.theory, r.measured, r.tolerance) for r in rows]
    graph_away = graph_principal_curvatures(M1, g1)
    assert rows[4].theory == pytest.approx(graph_away[0]) and rows[4].theory < principal_curvatures(M1)[0] / 1.05, \
        "away from the centre the gradient flattens the graph's curvature below eig(M)"
    assert all(0 < row.tolerance < 0.2 for row in rows)


def test_saddle_is_shown_and_richardson_removes_the_quartic_error():
    values, axis = grid()
    rows = saddle_rows("smooth", values, axis, axis, exact_at(0.0, 0.0)[0])
    assert [row.passed for row in rows] == [True, True] and rows[0].theory == 1.0
    # a saddle too shallow for the grid: the quartic term's second difference, 2 q h^2 = 0.04, beats -0.01
    shallow = np.array([[2.0, 0.0], [0.0, -0.01]])
    values, axis = grid(loss=lambda A, B: 0.5 * (shallow[0, 0] * A**2 + shallow[1, 1] * B**2) + 200.0 * B**4)
    plotted, extrapolated = saddle_rows("shallow", values, axis, axis, shallow)
    assert not plotted.passed and extrapolated.passed


def test_a_kink_at_the_trained_point_fails_with_its_numbers():
    values, axis = grid(loss=lambda A, B: smooth_loss(A, B) + 0.05 * np.abs(A))
    rows = curvature_rows("kinked", values, axis, axis, (10, 10), *exact_at(0.0, 0.0), eps=np.finfo(float).eps)
    kappa_plus = rows[0]
    assert not kappa_plus.passed and kappa_plus.measured > kappa_plus.theory + kappa_plus.tolerance
    assert "at 2h" in kappa_plus.detail and "tolerance" in kappa_plus.detail


def test_rounding_enters_the_tolerance_for_float32_grids():
    values, axis = grid()
    M0, g0 = exact_at(0.0, 0.0)
    tol64 = curvature_rows("x", values, axis, axis, (10, 10), M0, g0, eps=np.finfo(np.float64).eps)[0].tolerance
    tol32 = curvature_rows("x", values, axis, axis, (10, 10), M0, g0, eps=np.finfo(np.float32).eps)[0].tolerance
    h = axis[1] - axis[0]
    assert tol32 - tol64 == pytest.approx(6 * (np.finfo(np.float32).eps - np.finfo(np.float64).eps) * values[10, 10] / h**2)


def test_grid_too_small_is_refused():
    values, axis = grid(points=5)
    with pytest.raises(ValueError, match="no neighbours 2 steps around"):
        grid_estimates(values, axis, axis, off_centre(axis, axis), 2)


def test_exact_projection_matches_the_dense_hessian_and_restores_the_model():
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [6], "activation": "tanh"}, (3,), 3).double()
    x, y = torch.randn(40, 3, dtype=torch.float64), torch.randint(0, 3, (40,))
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()
    g = torch.Generator().manual_seed(1)
    eta, delta = (torch.randn(len(theta), generator=g, dtype=torch.float64) for _ in range(2))
    M, grad = exact_projection(model, lambda: HessianOperator(model, F.cross_entropy, x, y), eta, delta, 0.3, -0.2)
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), theta), "restored bitwise"
    torch.nn.utils.vector_to_parameters(theta + 0.3 * eta - 0.2 * delta, model.parameters())
    H = dense_hessian(model, F.cross_entropy, x, y)
    basis = torch.stack([eta, delta], dim=1)
    np.testing.assert_allclose(M, (basis.T @ H @ basis).numpy(), rtol=1e-10, atol=1e-12)
    loss = F.cross_entropy(model(x), y)
    full = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, list(model.parameters()))])
    np.testing.assert_allclose(grad, [float(full @ eta), float(full @ delta)], rtol=1e-10, atol=1e-12)
