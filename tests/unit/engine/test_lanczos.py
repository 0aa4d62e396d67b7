"""Extreme eigenpairs against dense eigendecompositions: both ends, residuals, restarts, counts, seeds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.lanczos import MatrixOperator, extreme_eigenpairs
from lossgeom.theory.spectra import known_spectrum

from tests.unit.curvature_cases import case, one_fast

TOL = 1e-8  # residual tolerance relative to |lambda_max|; bounds the eigenvalue error by the same amount


def check_against_dense(res, values, vectors, H, k_top, k_bottom):
    scale = float(values.abs().max())
    exact_top, exact_bottom = values.flip(0)[:k_top], values[:k_bottom]
    assert (res.top.values - exact_top).abs().max() <= 1e-6 * scale
    assert (res.bottom.values - exact_bottom).abs().max() <= 1e-6 * scale
    for pairs, idx in ((res.top, range(len(values) - 1, len(values) - 1 - k_top, -1)), (res.bottom, range(k_bottom))):
        for i, j in enumerate(idx):
            y = pairs.vectors[i].double()
            recomputed = (H @ y - pairs.values[i] * y).norm()
            assert abs(float(recomputed) - float(pairs.residuals[i])) <= 1e-9 * scale, "reported residual is the true one"
            others = torch.cat([values[:j], values[j + 1 :]])
            gap = float((others - values[j]).abs().min())
            if gap >= 1e-4 * scale:  # the eigenvector is well determined
                assert abs(float(y @ vectors[:, j])) >= 0.9999
    assert res.converged and res.scale == pytest.approx(scale, rel=1e-8)


@pytest.mark.parametrize("name", one_fast("mlp_tanh_sines"))
def test_top10_and_bottom3_of_small_models(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64)
    res = extreme_eigenpairs(op, k_top=10, k_bottom=3, tol=TOL, max_basis=200, max_hvps=3000, seed=0)
    check_against_dense(res, c.eigenvalues, c.eigenvectors, c.H, 10, 3)
    assert res.hvps == op.hvps, "every product is counted"
    assert c.eigenvalues[0] < 0, "the trained models do have negative curvature"


class Quadratic(nn.Module):
    """L(theta) = theta^T A theta / 2 (the input is ignored): H = A exactly."""

    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.randn(A.shape[0], dtype=A.dtype))
        self.register_buffer("A", A)

    def forward(self, x):
        return 0.5 * self.theta @ self.A @ self.theta


def prescribed(n: int, seed: int = 0, bottom=(-20.0, -8.0, -6.0)):
    """Outliers at both ends of a bulk [-0.5, 5], rotated into a random basis."""
    g = torch.Generator().manual_seed(seed)
    top = torch.tensor([100.0, 80, 70, 65, 60, 50, 45, 40, 38, 36], dtype=torch.float64)
    bottom = torch.tensor(bottom, dtype=torch.float64)
    bulk = -0.5 + 5.5 * torch.rand(n - 13, generator=g, dtype=torch.float64)
    values = torch.cat([bottom, bulk, top])
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    order = torch.argsort(values)
    values, Q = values[order], Q[:, order]
    return (Q * values) @ Q.T, values, Q


def test_quadratic_with_prescribed_spectrum_through_the_hvp_path():
    A, values, vectors = prescribed(600)
    model = Quadratic(A)
    op = HessianOperator(model, lambda out, _: out, torch.zeros(4, 1), torch.zeros(4))
    res = extreme_eigenpairs(op, k_top=10, k_bottom=3, tol=TOL, seed=3)
    check_against_dense(res, values, vectors, A, 10, 3)


def test_thick_restarts_keep_accuracy_with_a_small_basis():
    # the negative end just below the bulk, as in trained networks: it needs far more than 40 vectors
    A, values, vectors = prescribed(1500, seed=1, bottom=(-1.0, -0.9, -0.8))
    res = extreme_eigenpairs(MatrixOperator(A), k_top=10, k_bottom=3, tol=TOL, max_basis=40, seed=0)
    assert res.restarts >= 3
    check_against_dense(res, values, vectors, A, 10, 3)


def test_unconverged_pairs_are_reported_as_such():
    A, values, _ = prescribed(800)
    res = extreme_eigenpairs(MatrixOperator(A), k_top=10, k_bottom=3, tol=1e-12, max_basis=30, max_hvps=25)
    assert not res.converged
    assert bool((res.top.residuals > 1e-12 * res.scale).any() or (res.bottom.residuals > 1e-12 * res.scale).any())
    assert res.hvps <= 25 + 13 + 1


def test_seeded():
    A, values, _ = prescribed(300)
    a = extreme_eigenpairs(MatrixOperator(A), k_top=3, k_bottom=2, tol=TOL, seed=7)
    b = extreme_eigenpairs(MatrixOperator(A), k_top=3, k_bottom=2, tol=TOL, seed=7)
    assert torch.equal(a.top.values, b.top.values) and a.hvps == b.hvps
    c = extreme_eigenpairs(MatrixOperator(A), k_top=3, k_bottom=2, tol=TOL, seed=8)
    torch.testing.assert_close(a.top.values, c.top.values, rtol=1e-8, atol=0)


def test_one_end_only_and_bad_requests():
    A, values, _ = prescribed(200)
    res = extreme_eigenpairs(MatrixOperator(A), k_top=0, k_bottom=2, tol=TOL)
    assert len(res.top.values) == 0
    torch.testing.assert_close(res.bottom.values, values[:2], rtol=1e-8, atol=0)
    with pytest.raises(ValueError, match="k_top \\+ k_bottom <= N"):
        extreme_eigenpairs(MatrixOperator(torch.eye(3, dtype=torch.float64)), k_top=3, k_bottom=1)


def test_free_residual_estimates_without_the_explicit_products():
    """explicit_residuals=False saves one product per pair and reports the Lanczos estimates beta_m |s_m|; the
    values and vectors are the Ritz pairs, and their true residuals (dense H) match the estimates."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(80, 80, generator=g, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([9.0, 7.0, 5.0, -4.0], dtype=torch.float64),
                          torch.linspace(-0.5, 0.5, 76, dtype=torch.float64)])
    H = Q @ torch.diag(spectrum) @ Q.T
    explicit = extreme_eigenpairs(MatrixOperator(H), k_top=3, k_bottom=1, tol=1e-6, seed=0)
    free = extreme_eigenpairs(MatrixOperator(H), k_top=3, k_bottom=1, tol=1e-6, seed=0, explicit_residuals=False)
    recomputed = extreme_eigenpairs(MatrixOperator(H), k_top=3, k_bottom=1, tol=1e-6, seed=0, residual_products=True)
    # the explicit certificates come from the products the run kept (no product of their own); one fresh product
    # per pair only with residual_products (the behaviour before the products were kept)
    assert free.hvps == explicit.hvps == recomputed.hvps - 4
    for other in (explicit, recomputed):
        torch.testing.assert_close(other.top.residuals, free.top.residuals, rtol=1e-3, atol=1e-12 * 9.0)
    assert free.top.values.tolist() == pytest.approx([9.0, 7.0, 5.0], abs=1e-5)
    assert free.bottom.values[0] == pytest.approx(-4.0, abs=1e-5)
    for pairs in (free.top, free.bottom):
        true = torch.stack([(H @ v - lam * v).norm() for lam, v in zip(pairs.values.tolist(), pairs.vectors)])
        assert torch.allclose(true, pairs.residuals, rtol=1e-3, atol=1e-12 * 9.0)
    assert torch.allclose(explicit.top.residual_estimates, free.top.residual_estimates)


def spectrum(kind: str, n: int = 1200, seed: int = 0):
    """Known spectra in a random basis (:func:`lossgeom.theory.spectra.known_spectrum`)."""
    return known_spectrum(kind, n, seed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_certificates_from_kept_products_are_the_true_residuals(dtype):
    """The residuals returned (formed from the run's kept products, across thick restarts) equal ||H y - value y||
    recomputed with the dense float64 H, and the values are the vectors' Rayleigh quotients."""
    A, values, _ = prescribed(900, seed=2, bottom=(-1.0, -0.9, -0.8))
    res = extreme_eigenpairs(MatrixOperator(A.to(dtype)), k_top=10, k_bottom=3, tol=1e-9 if dtype == torch.float64 else 1e-5,
                             max_basis=40, seed=0)
    assert res.restarts >= 1
    scale = float(values.abs().max())
    agree = 1e-12 if dtype == torch.float64 else 1e-5  # float32: the rounding of one product, relative to |lambda_max|
    for pairs in (res.top, res.bottom):
        for value, y, reported in zip(pairs.values.tolist(), pairs.vectors.double(), pairs.residuals.tolist()):
            y = y / y.norm()
            assert abs(float(y @ A @ y) - value) <= agree * scale
            assert abs(float((A @ y - value * y).norm()) - reported) <= agree * scale
    assert res.converged


def check_value_errors(res, values, H, value_tol, scale):
    """Every value lies within its reported bound of an eigenvalue (rigorous: Weyl, or Kato-Temple with the gap);
    for value_tol well below the bulk's width (<= 1e-6 here) the values are the k extreme ones, to value_tol.
    Residuals stay honest."""
    for pairs, exact in ((res.top, values.flip(0)[: len(res.top.values)]), (res.bottom, values[: len(res.bottom.values)])):
        nearest = (pairs.values[:, None] - values[None, :]).abs().min(dim=1).values
        assert (nearest <= pairs.error_bounds + 1e-13 * scale).all(), (nearest, pairs.error_bounds)
        assert (pairs.error_bounds <= value_tol * scale).all()
        if value_tol <= 1e-6:
            assert ((pairs.values - exact).abs() <= value_tol * scale + 1e-13 * scale).all()
        for value, y, reported in zip(pairs.values.tolist(), pairs.vectors, pairs.residuals.tolist()):
            assert abs(float((H @ y - value * y).norm()) - reported) <= 1e-12 * scale


@pytest.mark.parametrize("kind", ["outliers", "clustered", "negative_end"])
@pytest.mark.parametrize("value_tol", [1e-3, 1e-6, 1e-10])
def test_value_tol_bounds_the_eigenvalue_errors(kind, value_tol):
    """Stopping on the eigenvalue error bound min(r, r^2 / gap): checked against the dense eigh; never more
    products than the residual stop at the same tolerance."""
    A, values, _ = spectrum(kind)
    scale = float(values.abs().max())
    res = extreme_eigenpairs(MatrixOperator(A), k_top=10, k_bottom=3, tol=1e-14, value_tol=value_tol, seed=0,
                             max_basis=200, max_hvps=3000)
    strict = extreme_eigenpairs(MatrixOperator(A), k_top=10, k_bottom=3, tol=value_tol, seed=0, max_basis=200,
                                max_hvps=3000)
    assert res.converged and res.hvps <= strict.hvps
    check_value_errors(res, values, A, value_tol, scale)


@pytest.mark.parametrize("name", one_fast("mlp_tanh_sines"))
def test_value_tol_on_small_models(name):
    c = case(name)
    op = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64)
    scale = float(c.eigenvalues.abs().max())
    for value_tol in (1e-3, 1e-6, 1e-10):
        res = extreme_eigenpairs(op, k_top=10, k_bottom=3, tol=1e-14, value_tol=value_tol, max_basis=200, seed=0)
        assert res.converged
        check_value_errors(res, c.eigenvalues, c.H, value_tol, scale)
