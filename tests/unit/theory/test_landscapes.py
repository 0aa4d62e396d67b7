"""Data of the synthetic-saddle figures against direct evaluation and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossgeom.theory.projections import clt_projections, eigenbasis_projections, shows_saddle
from lossgeom.geometry.curvature import finite_difference_hessian, principal_curvatures
from lossgeom.theory.spectra import saddle_spectrum
from lossgeom.theory.landscapes import confined_saddle_grid, saddle_probability_sweep, synthetic_landscapes


def direct_loss(lam, theta, quartic):
    return 0.5 * np.sum(lam * theta**2) + 0.25 * quartic * np.sum(theta**4)


def test_closed_form_grid_equals_the_loss_evaluated_point_by_point():
    rng = np.random.default_rng(1)
    lam = saddle_spectrum(37, 0.2)
    eta, delta = rng.standard_normal(37), rng.standard_normal(37)
    a, b = np.linspace(-1.3, 1.3, 5), np.linspace(-0.7, 0.9, 4)
    grid = confined_saddle_grid(lam, eta, delta, a, b, quartic=0.8)
    direct = np.array([[direct_loss(lam, x * eta + y * delta, 0.8) for y in b] for x in a])
    np.testing.assert_allclose(grid, direct, rtol=1e-12, atol=1e-12)


def test_zoomed_grid_curvatures_are_the_projected_hessians():
    """At the zoomed range the quartic term is negligible: finite differences give kappa+- of the stored M."""
    grids = synthetic_landscapes(dimension=200, mean_curvatures=(0.5, 0.0), quartic=1.0, ranges=(2.0, 0.01), points=11, seed=0)
    for index in range(2):
        for row, kind in enumerate(("random", "hessian")):
            axis, z = grids[f"m{index}_{kind}_r0.01_axis"], grids[f"m{index}_{kind}_r0.01"]
            kp, km = principal_curvatures(finite_difference_hessian(z, axis, axis))
            np.testing.assert_allclose([kp, km], grids[f"m{index}_kappa"][row], atol=1e-3)
    # Hessian directions are the extreme eigenvectors: kappa+- = lambda_max, lambda_min
    np.testing.assert_allclose(grids["m0_kappa"][1], [1.5, -0.5], atol=1e-12)


def test_random_unit_directions_see_the_mean_curvature():
    grids = synthetic_landscapes(dimension=20_000, mean_curvatures=(0.5,), quartic=1.0, ranges=(2.0, 0.2), points=3, seed=0)
    kp, km = grids["m0_kappa"][0]
    # u^T H u for a unit u has mean tr(H)/N and standard deviation ~ sqrt(2 * mean(lam^2) / N) = 0.008 here
    assert abs(kp - 0.5) < 0.05 and abs(km - 0.5) < 0.05


def test_eigenbasis_projections_have_the_theoretical_moments():
    lam = saddle_spectrum(50, 0.3)
    P = eigenbasis_projections(lam, 40_000, seed=0)
    trace, trace_sq = lam.sum(), (lam**2).sum()
    se = math.sqrt(2 * trace_sq / len(P))
    assert abs(P[:, 0].mean() - trace) < 4 * se and abs(P[:, 2].mean() - trace) < 4 * se
    assert abs(P[:, 1].mean()) < 4 * math.sqrt(trace_sq / len(P))
    assert P[:, 0].var() == pytest.approx(2 * trace_sq, rel=0.05)


def test_clt_projections_are_gaussian_with_the_stated_moments():
    P = clt_projections(trace=3.0, trace_sq=2.0, samples=200_000, seed=0)
    np.testing.assert_allclose(P.mean(axis=0), [3.0, 0.0, 3.0], atol=0.02)
    np.testing.assert_allclose(P.var(axis=0), [4.0, 2.0, 4.0], rtol=0.02)
    assert shows_saddle(np.array([[1.0, 0.0, -1.0], [1.0, 0.5, 1.0]])).tolist() == [True, False]


def test_saddle_probability_sweep_ends_and_large_n_limit():
    table = saddle_probability_sweep(dimensions=(10, 3000), steps=5, samples=4000, clt_samples=100_000, seed=0)
    assert len(table) == 10
    ends = table[table["mean_curvature"].abs() == 1.0]
    assert (ends["monte_carlo"] == 0).all()  # semi-definite spectra: no projection can show a saddle
    large = table[table["n"] == 3000]
    # at large N the central limit is accurate: within 4 standard errors of both estimates
    se = np.sqrt(large["monte_carlo_se"] ** 2 + large["clt"] * (1 - large["clt"]) / 100_000) + 1e-3
    assert ((large["monte_carlo"] - large["clt"]).abs() <= 4 * se).all()
    centre = table[(table["mean_curvature"] == 0.0)]
    assert (centre["monte_carlo"] > 0.5).all()  # zero mean curvature: most projections show the saddle
