"""Hutchinson trace and stochastic Lanczos quadrature against exact traces, moments and Gauss exactness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.lanczos import MatrixOperator, extreme_eigenpairs, lanczos_tridiagonal
from lossgeom.engine.trace import hutchinson_trace, rademacher
from lossgeom.engine.density import slq_density

from tests.unit.curvature_cases import case, one_fast


@pytest.mark.parametrize("name", one_fast("mlp_tanh_sines"))
def test_deflated_samples_are_the_probes_projected_off_the_eigenvectors(name):
    """Each deflated sample equals (P z)^T H (P z) with the dense H (same probes, no further product), and the
    estimate sum(lambda) + mean lies within three of its standard errors of the exact trace."""
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y)
    eig = extreme_eigenpairs(op, k_top=3, k_bottom=1, tol=1e-12, seed=0)
    V = torch.cat([eig.top.vectors, eig.bottom.vectors])
    lam = torch.cat([eig.top.values, eig.bottom.values])
    before = op.hvps
    est = hutchinson_trace(op, samples=50, seed=3, deflate=(V, lam))
    assert op.hvps - before == 50  # the deflated estimate costs no product of its own
    g = torch.Generator().manual_seed(3)
    P = torch.eye(V.shape[1], dtype=V.dtype) - V.T @ V
    direct = []
    for _ in range(50):
        z = rademacher(V.shape[1], g, "cpu", V.dtype)
        direct.append(float((P @ z) @ c.H @ (P @ z)))
    scale = float(c.H.abs().max()) * V.shape[1]
    np.testing.assert_allclose(est.deflated.samples, direct, atol=1e-9 * scale)
    exact = float(torch.trace(c.H))
    assert est.deflated.explicit == pytest.approx(float(lam.sum()))
    assert abs(est.deflated.estimate - exact) <= 3 * est.deflated.standard_error


def test_deflation_removes_the_variance_of_outliers():
    """A spectrum of 4 outliers (100) over a bulk of 196 eigenvalues in [-1, 1], randomly rotated: the outliers
    carry most of ||H||_F^2, so deflating them cuts the probe variance by far more than 3x."""
    g = torch.Generator().manual_seed(0)
    n = 200
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.full((4,), 100.0, dtype=torch.float64),
                          torch.rand(n - 4, generator=g, dtype=torch.float64) * 2 - 1])
    H = Q @ torch.diag(spectrum) @ Q.T
    op = MatrixOperator(H)
    eig = extreme_eigenpairs(op, k_top=4, k_bottom=1, tol=1e-10, seed=0)
    V = torch.cat([eig.top.vectors, eig.bottom.vectors])
    lam = torch.cat([eig.top.values, eig.bottom.values])
    est = hutchinson_trace(op, samples=100, seed=1, deflate=(V, lam))
    exact = float(spectrum.sum())
    assert est.deflated.standard_error * 10 < est.standard_error
    assert abs(est.deflated.estimate - exact) <= 3 * est.deflated.standard_error
    assert abs(est.estimate - exact) <= 3 * est.standard_error


@pytest.mark.parametrize("name", one_fast("mlp_tanh_digits"))
def test_hutchinson_within_three_standard_errors(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y)
    est = hutchinson_trace(op, samples=200, seed=0)
    exact = float(torch.trace(c.H))
    assert abs(est.estimate - exact) <= 3 * est.standard_error
    # Rademacher probes: Var[z^T H z] = 2 (||H||_F^2 - sum_i H_ii^2)
    theory_se = math.sqrt(2 * float((c.H**2).sum() - (torch.diagonal(c.H) ** 2).sum()) / 200)
    assert est.standard_error == pytest.approx(theory_se, rel=0.3)
    assert est.hvps == op.hvps == 200


def test_gauss_quadrature_is_exact_for_low_degree_polynomials():
    """With m Lanczos steps from q, sum_i tau_i theta_i^k = q^T H^k q for k <= 2m - 1."""
    c = case("cnn_digits")
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y)
    q = torch.randn(op.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q /= q.norm()
    T, used = lanczos_tridiagonal(op, q, steps=4)
    theta, S = torch.linalg.eigh(T)
    tau = S[0] ** 2
    assert used == 4 and float(tau.sum()) == pytest.approx(1.0, abs=1e-13)
    Hk_q = q.clone()
    for k in range(1, 8):
        Hk_q = c.H @ Hk_q
        exact = float(q @ Hk_q)
        assert float((tau * theta**k).sum()) == pytest.approx(exact, rel=1e-8, abs=1e-12 * float(c.eigenvalues.abs().max()) ** k)


@pytest.mark.parametrize("name", one_fast("mlp_tanh_digits", ["mlp_tanh_digits", "batchnorm_digits"]))
def test_slq_density_integrates_to_one_and_matches_moments(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y)
    density = slq_density(op, probes=40, steps=30, seed=0)
    np.testing.assert_allclose(np.nansum(density.weights, axis=1), 1.0, atol=1e-12)
    grid, sigma = density.default_grid()
    assert np.trapezoid(density.smoothed(grid, sigma), grid) == pytest.approx(1.0, abs=1e-3)
    n = op.n_params
    for power, exact in ((1, float(torch.trace(c.H)) / n), (2, float((c.H**2).sum()) / n)):
        per_probe = density.moment(power)
        se = per_probe.std(ddof=1) / math.sqrt(len(per_probe))
        assert abs(per_probe.mean() - exact) <= 4 * se, (power, per_probe.mean(), exact, se)
    assert density.hvps == op.hvps


def test_slq_with_a_full_krylov_space_recovers_the_spectrum():
    values = torch.tensor([-3.0, -1.0, 0.5, 2.0, 7.0], dtype=torch.float64)
    density = slq_density(MatrixOperator(torch.diag(values)), probes=3, steps=10, seed=0)
    for row in density.nodes:
        np.testing.assert_allclose(np.sort(row[np.isfinite(row)]), values.numpy(), atol=1e-10)
    # each Rademacher probe sees every eigenvector of a diagonal matrix with weight 1/N
    np.testing.assert_allclose(density.weights[np.isfinite(density.weights)], 0.2, atol=1e-10)


def test_prior_samples_are_the_first_probes_and_only_the_rest_are_computed():
    A = torch.randn(20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    H = A + A.T  # off-diagonal entries: every probe gives a different z^T H z
    op = MatrixOperator(H)
    prior = np.array([7.0, 9.0, 11.0])
    est = hutchinson_trace(op, samples=10, seed=5, prior=prior)
    fresh = hutchinson_trace(MatrixOperator(H), samples=7, seed=5)
    assert est.hvps == 7 and list(est.samples[:3]) == [7.0, 9.0, 11.0]
    assert len(set(fresh.samples)) > 1
    np.testing.assert_array_equal(est.samples[3:], fresh.samples)  # the same stream, started after the prior
    assert est.estimate == pytest.approx(np.concatenate([prior, fresh.samples]).mean())


def test_the_eigenpair_runs_first_steps_are_a_free_slq_probe():
    """keep_tridiagonal = m keeps T of the eigenpair search's first m steps: the T a plain Lanczos run of m steps
    from the same random unit vector builds; as SLQ's first probe it costs no product, and the Gauss rule is
    exact for q^T H^k q, k <= 2m - 1, with q that start vector."""
    from lossgeom.engine.lanczos import _random_unit

    g = torch.Generator().manual_seed(2)
    n, m = 120, 12
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    H = Q @ torch.diag(torch.linspace(-1.0, 4.0, n, dtype=torch.float64)) @ Q.T
    eig = extreme_eigenpairs(MatrixOperator(H), k_top=2, k_bottom=1, tol=1e-10, seed=7, keep_tridiagonal=m)
    q = _random_unit(n, 7, "cpu", torch.float64)
    reference, _ = lanczos_tridiagonal(MatrixOperator(H), q, m)
    assert torch.allclose(eig.start_tridiagonal, reference, atol=1e-12)
    op = MatrixOperator(H)
    density = slq_density(op, probes=3, steps=m, seed=1, first=eig.start_tridiagonal)
    assert density.hvps == 2 * m and density.reused_first_probe
    for k in (1, 2, 5):
        assert density.moment(k)[0] == pytest.approx(float(q @ torch.linalg.matrix_power(H, k) @ q), rel=1e-9)
    fresh = slq_density(MatrixOperator(H), probes=2, steps=m, seed=1)
    np.testing.assert_array_equal(density.nodes[1:], fresh.nodes)  # the computed probes: the same stream as before


def test_samples_saved_in_another_layout_are_not_restored():
    """A partial file from a loop that kept one column per probe is not these two-column samples: start afresh."""
    from lossgeom.engine.resume import restore_samples

    class Saved:
        def load(self):
            return {"values": torch.arange(3.0, dtype=torch.float64), "generator": torch.Generator().get_state()}

    into = np.zeros((5, 2))
    assert restore_samples(Saved(), "values", into, torch.Generator()) == 0 and not into.any()
