"""The Krylov-deflated trace (Lanczos basis + XTrace or Hutchinson on the rest) against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.engine.lanczos import MatrixOperator, extreme_eigenpairs
from lossgeom.engine.trace import hutchinson_trace, krylov_trace, rademacher, xtrace_rows


def rotated(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=g, dtype=torch.float64))
    return (Q * values) @ Q.T


def trained_like(n: int = 150, seed: int = 0) -> torch.Tensor:
    """Outliers at both ends over a bulk of both signs, like a trained network's Hessian."""
    g = torch.Generator().manual_seed(seed)
    values = torch.cat([torch.tensor([12.0, 7.0, 4.0, 2.0, -1.5], dtype=torch.float64),
                        0.3 * torch.randn(n - 5, generator=g, dtype=torch.float64)])
    return rotated(values, seed)


def test_basis_deflated_samples_are_the_probes_projected_off_the_basis():
    """deflate=(Q, T) of a Lanczos basis: each sample is (P z)^T H (P z) with P = I - Q^T Q (dense H), from the
    probes' own products, and explicit = tr(T) = tr(Q H Q^T)."""
    H = trained_like()
    eig = extreme_eigenpairs(MatrixOperator(H), k_top=3, k_bottom=1, tol=1e-10, seed=0, keep_basis=True)
    Q, T = eig.basis.Q, eig.basis.T
    torch.testing.assert_close(T, Q @ H @ Q.T, atol=1e-10, rtol=0)
    torch.testing.assert_close(eig.basis.W, Q @ H, atol=1e-10, rtol=0)
    op = MatrixOperator(H)
    est = hutchinson_trace(op, samples=30, seed=3, deflate=(Q, T))
    assert op.hvps == 30
    g = torch.Generator().manual_seed(3)
    P = torch.eye(len(H), dtype=H.dtype) - Q.T @ Q
    direct = [float((P @ z) @ H @ (P @ z)) for z in (rademacher(len(H), g, "cpu", H.dtype) for _ in range(30))]
    np.testing.assert_allclose(est.deflated.samples, direct, atol=1e-10)
    assert est.deflated.explicit == pytest.approx(float(torch.trace(Q @ H @ Q.T)), abs=1e-10)


def test_xtrace_matches_the_closed_form_on_its_own_probes():
    """Each leave-one-out estimate equals tr(U_i A U_i^T) + w_i^T (I - U_i^T U_i) A (I - U_i^T U_i) w_i with U_i an
    orthonormal basis of the other probes' products, computed densely."""
    H = trained_like(60)
    s = 6
    mean, estimates, used = xtrace_rows(MatrixOperator(H), s, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    Omega = torch.stack([rademacher(60, g, "cpu", H.dtype) for _ in range(s)])
    Y = Omega @ H
    for i in range(s):
        U, _ = torch.linalg.qr(torch.cat([Y[:i], Y[i + 1 :]]).T)
        P = torch.eye(60, dtype=H.dtype) - U @ U.T
        expected = float(torch.trace(U.T @ H @ U)) + float(Omega[i] @ P @ H @ P @ Omega[i])
        assert estimates[i] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert used == 2 * s and mean == pytest.approx(float(np.mean(estimates)))


@pytest.mark.parametrize("method", ["hutchinson", "xtrace"])
def test_unbiased_with_the_closed_form_variance(method):
    """Over 300 seeds the mean error is within 4 standard errors of 0 (unbiased). For Hutchinson on the rest, the
    mean squared error matches the closed form: given the basis Q, Var = 2 (||B||_F^2 - sum_i B_ii^2) / s for
    Rademacher probes, B = P H P, s = products - m."""
    H = trained_like()
    trace = float(torch.trace(H))
    errors, predicted = [], []
    for seed in range(300):
        t = krylov_trace(MatrixOperator(H), 40, seed=seed, method=method, lanczos_steps=8)
        assert t.hvps == 40 and t.lanczos_steps == 8
        errors.append(t.estimate - trace)
        if method == "hutchinson":
            g = torch.Generator().manual_seed(seed)  # the same start vector: the same basis
            z = rademacher(len(H), g, "cpu", H.dtype)
            K = [z / z.norm()]
            for _ in range(7):
                w = H @ K[-1]
                for q in K:
                    w = w - (w @ q) * q
                for q in K:
                    w = w - (w @ q) * q
                K.append(w / w.norm())
            Q = torch.stack(K)
            P = torch.eye(len(H), dtype=H.dtype) - Q.T @ Q
            B = P @ H @ P
            predicted.append(2 * (float((B**2).sum()) - float((B.diagonal() ** 2).sum())) / 32)
    errors = np.asarray(errors)
    assert abs(errors.mean()) <= 4 * errors.std(ddof=1) / np.sqrt(len(errors))
    if method == "hutchinson":
        assert np.mean(errors**2) == pytest.approx(np.mean(predicted), rel=0.25)
    plain = 2 * (float((H**2).sum()) - float((H.diagonal() ** 2).sum())) / 40  # Hutchinson's variance, same budget
    assert np.mean(errors**2) < plain / 5


def test_deflation_by_the_basis_is_exact_for_low_rank():
    values = torch.cat([torch.tensor([9.0, 4.0, -3.0, 1.0], dtype=torch.float64), torch.zeros(96, dtype=torch.float64)])
    H = rotated(values, 1)
    for method in ("hutchinson", "xtrace"):
        t = krylov_trace(MatrixOperator(H), 30, seed=0, method=method)
        assert t.estimate == pytest.approx(11.0, abs=1e-9)
        assert t.lanczos_steps == 5  # 4 nonzero eigenvalues and 0: the Krylov space is invariant after 5 steps


def test_bad_budgets():
    H = trained_like(20)
    with pytest.raises(ValueError, match="6 <= products <= N"):
        krylov_trace(MatrixOperator(H), 30)
    with pytest.raises(ValueError, match="lanczos_steps"):
        krylov_trace(MatrixOperator(H), 10, lanczos_steps=8)
