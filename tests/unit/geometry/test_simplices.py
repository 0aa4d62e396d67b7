"""Low-loss simplices against closed forms: uniform points in a face, the connector that minimizes the expected loss
of a quadratic, and a connector that lowers the loss between three minima of a multi-well loss."""

from __future__ import annotations

import pytest
import torch

from lossgeom.geometry.simplices import (log_volume, pair_faces, simplex_loss, star_faces,
                                        train_connectors, uniform_weights)


def test_faces_and_uniform_points():
    assert pair_faces(3) == [(0, 1, 3), (0, 2, 3), (1, 2, 3)]
    g = torch.Generator().manual_seed(0)
    w = torch.stack([uniform_weights(3, g) for _ in range(40000)])
    assert torch.allclose(w.sum(1), torch.ones(len(w), dtype=torch.float64)) and (w >= 0).all()
    # Dirichlet(1, 1, 1): E[lambda] = 1/3, E[lambda^2] = 1/6, E[lambda_a lambda_b] = 1/12
    assert torch.allclose(w.mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01)
    assert float((w[:, 0] ** 2).mean()) == pytest.approx(1 / 6, abs=0.005)
    assert float((w[:, 0] * w[:, 1]).mean()) == pytest.approx(1 / 12, abs=0.003)


def test_the_trained_connector_of_a_quadratic_is_the_closed_form_optimum():
    c0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    vertices = [torch.tensor(v, dtype=torch.float64) for v in ([2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -3.0])]
    optimum = 2 * c0 - torch.stack(vertices).mean(0)
    loss_of = lambda w, batch=None: 0.5 * (w - c0).pow(2).sum()  # noqa: E731
    faces = pair_faces(3)
    (connector,) = train_connectors(loss_of, vertices, [torch.stack(vertices).mean(0)], faces, range(8000),
                                    lr=0.005, seed=1)
    assert torch.linalg.vector_norm(connector - optimum) < 0.05 * torch.linalg.vector_norm(optimum)
    trained = simplex_loss(loss_of, vertices, [connector], faces, 4000, seed=2)
    best = simplex_loss(loss_of, vertices, [optimum], faces, 4000, seed=2)  # the same points
    assert best["mean"] <= trained["mean"] <= best["mean"] * 1.01


def test_two_shared_connectors_of_a_quadratic_reach_the_closed_form_optimum():
    assert star_faces(3, 2) == [(0, 3, 4), (1, 3, 4), (2, 3, 4)]
    c0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    vertices = [torch.tensor(v, dtype=torch.float64) for v in ([2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -3.0])]
    optimum = 4 / 3 * c0 - torch.stack(vertices).mean(0) / 3
    loss_of = lambda w, batch=None: 0.5 * (w - c0).pow(2).sum()  # noqa: E731
    start = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]  # apart: not symmetric at start
    trained = train_connectors(loss_of, vertices, start, star_faces(3, 2), range(40000), lr=0.001, seed=4)
    for connector in trained:
        assert torch.linalg.vector_norm(connector - optimum) < 0.05 * torch.linalg.vector_norm(optimum)


def test_the_volume_term_keeps_the_connectors_apart():
    """log_volume of a right triangle with legs 3 in 3-D is log(2 x area) = log 9; with a volume reward the two
    connectors of the quadratic part (without it both go to the one optimum, as above)."""
    triangle = torch.tensor([[0.0, 0.0, 1.0], [3.0, 0.0, 1.0], [0.0, 3.0, 1.0]], dtype=torch.float64)
    assert float(log_volume(triangle)) == pytest.approx(float(torch.log(torch.tensor(9.0))))
    c0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    vertices = [torch.tensor(v, dtype=torch.float64) for v in ([2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -3.0])]
    loss_of = lambda w, batch=None: 0.5 * (w - c0).pow(2).sum()  # noqa: E731
    start = [torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)]
    apart = {}
    for weight in (0.0, 0.5):
        c1, c2 = train_connectors(loss_of, vertices, start, star_faces(3, 2), range(20000), lr=0.002, seed=4,
                                  volume_weight=weight)
        apart[weight] = float(torch.linalg.vector_norm(c1 - c2))
    assert apart[0.0] < 0.1 and apart[0.5] > 0.5, apart


def test_a_trained_connector_lowers_the_loss_between_three_minima():
    # three minima at angles 0, 120, 240 degrees on the unit circle; the triangle between them crosses w = 0
    angles = torch.tensor([0.0, 2.0944, 4.1888], dtype=torch.float64)
    vertices = [torch.stack([torch.cos(a), torch.sin(a), torch.zeros((), dtype=torch.float64)]) for a in angles]
    loss_of = lambda w, batch=None: (w.pow(2).sum() - 1) ** 2  # noqa: E731  minima: the unit sphere
    faces = pair_faces(3)
    start = torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64)  # off the plane (there the gradient has no z part)
    before = simplex_loss(loss_of, vertices, [start], faces, 2000, seed=0)
    (connector,) = train_connectors(loss_of, vertices, [start], faces, range(4000), lr=0.01, seed=0)
    after = simplex_loss(loss_of, vertices, [connector], faces, 2000, seed=0)
    assert after["vertices_mean"] == pytest.approx(0.0, abs=1e-6)
    # the mean halves; the largest loss does not fall: the faces' edges between vertices do not move (their
    # midpoints, at radius 1/2, cost (1/4 - 1)^2 = 0.5625 whatever the connector)
    assert after["mean"] < 0.5 * before["mean"]
    assert after["max"] > 0.5
