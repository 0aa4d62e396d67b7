"""Linear CKA against its definition (HSIC with a centring matrix), its invariances, and its non-invariances."""

from __future__ import annotations

import pytest
import torch

from lossgeom.geometry.similarity import linear_cka, mean_pairwise_cka


def _hsic_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    n = len(X)
    H = torch.eye(n, dtype=torch.float64) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T
    hsic = lambda A, B: torch.trace(A @ H @ B @ H)  # noqa: E731
    return float(hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L)))


def _random(n, p, seed):
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_equals_the_hsic_definition():
    X, Y = _random(40, 5, 0), _random(40, 3, 1)
    Y = Y + 0.5 * X[:, :3]
    assert linear_cka(X, Y) == pytest.approx(_hsic_cka(X, Y), rel=1e-12)


def test_invariances_and_what_it_is_not_invariant_to():
    X = _random(60, 4, 2)
    Q = torch.linalg.qr(_random(4, 4, 3))[0]
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, 3.0 * X @ Q + 7.0) == pytest.approx(1.0, abs=1e-12)  # rotation, isotropic scale, shift
    assert linear_cka(X, X @ torch.diag(torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=torch.float64))) < 0.9
    assert linear_cka(X, _random(60, 4, 4)) == pytest.approx(linear_cka(_random(60, 4, 4), X), rel=1e-12)


def test_independent_outputs_are_dissimilar_and_pairs_are_averaged():
    X, Y, Z = _random(4000, 3, 5), _random(4000, 3, 6), _random(4000, 3, 7)
    assert linear_cka(X, Y) < 0.01  # E ~ pq / n for independent columns
    assert mean_pairwise_cka([X, Y, Z]) == pytest.approx((linear_cka(X, Y) + linear_cka(X, Z) + linear_cka(Y, Z)) / 3)
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(X, Y[:10])
