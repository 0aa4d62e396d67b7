"""Low-loss simplices between several solutions (Fort & Jastrzebski 2019; Benton et al. 2021).

k independently trained solutions w_1 .. w_k are the fixed vertices; m trainable connector points c_1 .. c_m join
them into a simplicial complex, a list of faces, each the convex hull of some vertices and connectors (the default
:func:`pair_faces`: the triangle (w_i, w_j, c) for every pair i < j and one connector c). A point drawn uniformly in a
face is sum_a lambda_a p_a with lambda ~ Dirichlet(1, ..., 1) over its corners p_a. :func:`train_connectors` fits the
connectors by SGD on the loss at such points (one face and one point per batch); :func:`simplex_loss` reports the
mean and the largest loss over points drawn the same way.

For L(w) = 1/2 ||w - c_0||^2 and the pair faces, the optimum of the expected loss is c* = 2 c_0 - mean_i w_i
(Dirichlet(1, 1, 1): E[lambda] = 1/3, E[lambda^2] = 1/6, E[lambda_a lambda_b] = 1/12); for :func:`star_faces` with
two connectors (triangles (w_i, c_1, c_2)) both connectors go to c* = (4/3) c_0 - (1/3) mean_i w_i (the stationarity
conditions E[lambda_1 (p - c_0)] = 0 give (1/12) mean w + (1/6) c_1 + (1/12) c_2 = (1/3) c_0 and its mirror, whose
unique solution is symmetric). The tests train against both closed forms.

Example (the triangle's centroid is the mean of its corners)::

    >>> import torch

    >>> corners = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    >>> point_in_face(corners, torch.full((3,), 1 / 3)).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..training.continuation import descend
from .paths import cosine_schedule

Face = tuple[int, ...]  # indices into vertices + connectors (vertices first)


def pair_faces(vertices: int, connector: int | None = None) -> list[Face]:
    """The triangles (w_i, w_j, c) for every pair of vertices and one connector (index ``vertices`` by default)."""
    c = vertices if connector is None else connector
    return [(i, j, c) for i, j in itertools.combinations(range(vertices), 2)]


def star_faces(vertices: int, connectors: int) -> list[Face]:
    """The simplices (w_i, c_1, ..., c_m), one per vertex, all sharing the connectors (Benton et al.'s mode-connecting
    complex): no face holds two solutions, so the straight segment between two of them, with its barrier, is not part
    of it; two solutions connect through the connectors' shared face."""
    return [(i, *range(vertices, vertices + connectors)) for i in range(vertices)]


def uniform_weights(corners: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """lambda ~ Dirichlet(1, ..., 1): a uniform point of the simplex with ``corners`` corners (normalized exponentials)."""
    e = -torch.log(torch.rand(corners, generator=generator, dtype=dtype).clamp_min(torch.finfo(dtype).tiny))
    return e / e.sum()


def point_in_face(corners: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_a lambda_a p_a for corners (n_corners, N) and weights (n_corners,)."""
    return weights.to(corners) @ corners


def _corners(points: Sequence[torch.Tensor], face: Face) -> torch.Tensor:
    return torch.stack([points[a] for a in face])


def log_volume(corners: torch.Tensor) -> torch.Tensor:
    """log of the (k-1)-volume of the simplex with corners (k, N), up to the constant -log((k-1)!):
    1/2 log det(E E^T) with E the edges from the first corner (differentiable; -inf for a flat simplex)."""
    edges = corners[1:] - corners[0]
    return 0.5 * torch.logdet(edges @ edges.T)


def train_connectors(loss_of: Callable[[torch.Tensor, object], torch.Tensor], vertices: Sequence[torch.Tensor],
                     connectors: Sequence[torch.Tensor], faces: Sequence[Face], batches: Iterable[object], *, lr: float,
                     momentum: float = 0.9, seed: int = 0, steps: int | None = None,
                     volume_weight: float = 0.0) -> list[torch.Tensor]:
    """Fit the connectors: per batch, a face drawn uniformly and a uniform point in it (one generator seeded with
    ``seed``), an SGD step on ``loss_of(point, batch) - volume_weight * log_volume(face)``; with ``steps`` (the number
    of batches) the step size decays to 0 on a cosine over them (a constant step leaves the connectors in SGD's noise,
    above the vertices' loss). The vertices stay fixed. Without the volume term nothing keeps connectors apart (on a
    quadratic they meet at one optimum), so the faces may flatten; Benton et al. reward volume the same way. Returns
    the connectors; a non-finite loss stops the fit with an error naming the step."""
    g = torch.Generator().manual_seed(seed)
    fixed = [v.detach() for v in vertices]
    trained = [c.detach().clone().requires_grad_(True) for c in connectors]
    optimizer = torch.optim.SGD(trained, lr=lr, momentum=momentum)
    schedule = cosine_schedule(optimizer, steps)
    for batch in batches:
        face = faces[int(torch.randint(len(faces), (), generator=g))]
        weights = uniform_weights(len(face), g)
        corners = _corners(fixed + trained, face)
        loss = loss_of(point_in_face(corners, weights), batch)
        if volume_weight:
            loss = loss - volume_weight * log_volume(corners)
        descend(optimizer, loss, "the connectors' fit", schedule.last_epoch + 1, lr)
        schedule.step()
    return [c.detach() for c in trained]


def simplex_loss(loss_of: Callable[[torch.Tensor], float], vertices: Sequence[torch.Tensor],
                 connectors: Sequence[torch.Tensor], faces: Sequence[Face], samples: int, seed: int = 0) -> dict[str, float]:
    """Mean and largest loss over ``samples`` points drawn uniformly (face, then point), and the vertices' mean loss."""
    g = torch.Generator().manual_seed(seed)
    points = [v.detach() for v in vertices] + [c.detach() for c in connectors]
    values = []
    for _ in range(samples):
        face = faces[int(torch.randint(len(faces), (), generator=g))]
        values.append(float(loss_of(point_in_face(_corners(points, face), uniform_weights(len(face), g)))))
    values = np.asarray(values)
    return {"mean": float(values.mean()), "max": float(values.max()),
            "standard_error": float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan"),
            "vertices_mean": float(np.mean([float(loss_of(v)) for v in points[: len(vertices)]]))}
