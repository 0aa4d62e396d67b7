"""Paths between two solutions in weight space, and how well they connect (Garipov et al. 2018; Yang et al. 2021).

- The straight line theta(t) = (1 - t) w_1 + t w_2.
- The quadratic Bezier curve gamma(t) = (1 - t)^2 w_1 + 2 t (1 - t) b + t^2 w_2 with fixed endpoints and one bend b;
  :func:`train_bend` fits b by stochastic gradient descent on L(gamma(t)) with one t ~ U(0, 1) per minibatch, from
  the midpoint of the straight line (Garipov et al.). For L(w) = 1/2 ||w - c||^2 the optimum of E_t L(gamma(t)) is
  b* = (5/2) c - (3/4)(w_1 + w_2) (E[beta] = 1/3, E[beta^2] = 2/15, E[beta (1-t)^2] = E[beta t^2] = 1/10 for
  beta = 2t(1 - t)), the closed form the tests train against.
- The barrier of a path: the largest loss along it above the straight line between its endpoints' losses,
  max_t L(t) - ((1 - t) L(0) + t L(1)).
- Mode connectivity as Yang et al. define it, from training errors e_t at t in {0, 1/4, 1/2, 3/4, 1}: with
  u = argmax_t |e_t - (e_0 + e_1)/2| over the interior points (at either endpoint the distance is |e_0 - e_1|/2, and
  which endpoint won would set the sign), mc = (e_0 + e_1)/2 - e_u. Negative: a barrier (poorly connected); near 0:
  well connected; positive: the path beats its endpoints (they are under-trained).

Weights are flat vectors (float64 where the path is measured); ``loss_of`` maps a flat vector (and a batch) to a
scalar loss, e.g. from :func:`lossgeom.engine.hessian.flat_model`.

Example (the double well L(w) = (||w||^2 - 1)^2 between w_1 = (1, 0) and w_2 = (-1, 0): the line crosses w = 0)::

    >>> import torch
    >>> loss = lambda w: float((w.pow(2).sum() - 1) ** 2)
    >>> w1, w2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])
    >>> ts = torch.linspace(0, 1, 21)
    >>> round(barrier(ts, [loss(line(w1, w2, t)) for t in ts]), 6)
    1.0
    >>> mode_connectivity([0.0, 10.0, 40.0, 10.0, 2.0])
    -39.0
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..problems.models import keep_modes, trainable_parameters
from ..training.continuation import descend
from ..training.evaluation import evaluate

YANG_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # where Yang et al. evaluate the curve's training error


def line(w1: torch.Tensor, w2: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t) w_1 + t w_2."""
    return (1 - t) * w1 + t * w2


def bezier(w1: torch.Tensor, w2: torch.Tensor, bend: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """(1 - t)^2 w_1 + 2 t (1 - t) b + t^2 w_2: the quadratic Bezier curve through w_1 (t = 0) and w_2 (t = 1).

    Arguments as for :func:`line`: the endpoints, then the control point (the bend), then t."""
    return (1 - t) ** 2 * w1 + 2 * t * (1 - t) * bend + t**2 * w2


def barrier(ts: Sequence[float] | torch.Tensor, losses: Sequence[float]) -> float:
    """max_t L(t) - ((1 - t) L(0) + t L(1)) over the evaluated points (``ts`` from 0 to 1, in order)."""
    t = np.asarray(ts, dtype=float)
    values = np.asarray(losses, dtype=float)
    if t[0] != 0.0 or t[-1] != 1.0 or np.any(np.diff(t) <= 0):
        raise ValueError("a barrier needs the path's points in increasing order from t = 0 to t = 1")
    return float(np.max(values - ((1 - t) * values[0] + t * values[-1])))


TIE = 1e-9  # interior deviations within this fraction of the largest one are tied (rounding of reversed paths)


def mode_connectivity(errors: Sequence[float]) -> float:
    """mc = (e_0 + e_1)/2 - e_u, u the point whose error is farthest from the endpoints' mean (Yang et al. 2021);
    ``errors`` at t = 0, ..., 1 (Yang et al.: :data:`YANG_POINTS`, training error in %).

    Ties: when a bump and a dip are equally far from the mean (errors in % of a finite set are multiples of one
    example, so this happens), Yang et al.'s argmax is ambiguous, and taking the first point would flip mc's sign
    with the direction of the path. Here the tied point with the highest error counts: a barrier as tall as the
    dip is deep is still a barrier on the path (mc < 0, the conservative reading). mc then depends only on the
    set of errors, not on their order, so the path and its reverse agree.
    """
    e = np.asarray(errors, dtype=float)
    if len(e) < 3:
        raise ValueError(f"mode connectivity needs the endpoints and at least one interior point, got {len(e)} errors")
    mean = 0.5 * (e[0] + e[-1])
    interior = e[1:-1]  # an endpoint is |e_0 - e_1|/2 away, either sign: only interior points count
    deviation = np.abs(interior - mean)
    tied = interior[deviation >= deviation.max() * (1.0 - TIE)]
    return float(mean - tied.max())


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int | None):
    """lr x (1 + cos(pi k / steps)) / 2 at step k (constant when ``steps`` is None): the fits end at a point, not in
    the noise of a constant step."""
    if steps is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + np.cos(np.pi * min(k, steps) / steps)))


def train_bend(loss_of: Callable[[torch.Tensor, object], torch.Tensor], w1: torch.Tensor, w2: torch.Tensor,
               batches: Iterable[object], *, lr: float, momentum: float = 0.9, seed: int = 0,
               bend: torch.Tensor | None = None, steps: int | None = None) -> torch.Tensor:
    """Fit the Bezier curve's bend: for each batch, draw t ~ U(0, 1) (one generator seeded with ``seed``), take an SGD
    step on ``loss_of(gamma(t), batch)``; with ``steps`` (the number of batches) the step size decays to 0 on a cosine
    over them. Starts from ``bend`` or the straight line's midpoint; returns the bend."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = w1.detach(), w2.detach()
    b = (0.5 * (w1 + w2) if bend is None else bend).detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([b], lr=lr, momentum=momentum)
    schedule = cosine_schedule(optimizer, steps)
    for batch in batches:
        t = float(torch.rand((), generator=g, dtype=torch.float64))
        descend(optimizer, loss_of(bezier(w1, w2, b, t), batch), "the Bezier bend's fit", schedule.last_epoch + 1, lr)
        schedule.step()
    return b.detach()


def flat_loss(model: nn.Module, loss_fn: Callable) -> tuple[torch.Tensor, Callable[[torch.Tensor, Any], torch.Tensor]]:
    """(theta, loss_of): the model's trainable parameters as one flat vector (in :func:`trainable_parameters` order)
    and ``loss_of(w, (x, y))``, the loss on a batch at flat weights ``w`` (``functional_call``, differentiable in w).
    The model's mode applies: in training mode BatchNorm uses the batch's statistics, as when a path is trained."""
    named = trainable_parameters(model)
    shapes, sizes = [p.shape for _, p in named], [p.numel() for _, p in named]
    buffers = dict(model.named_buffers())

    def loss_of(w: torch.Tensor, batch: Any) -> torch.Tensor:
        x, y = batch
        params = {name: chunk.view(shape) for (name, _), chunk, shape in zip(named, torch.split(w, sizes), shapes)}
        return loss_fn(torch.func.functional_call(model, (params, buffers), (x,)), y)

    return torch.cat([p.detach().reshape(-1) for _, p in named]), loss_of


def recompute_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int) -> bool:
    """Set every BatchNorm layer's running statistics to those of the current weights on ``x``: reset, then one pass
    in training mode with a cumulative average over the batches (Garipov et al.: the statistics stored with the
    endpoints belong to the endpoints, not to the points between them). Returns whether the model has BatchNorm."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    with keep_modes(model), torch.no_grad():  # every submodule's own mode given back
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average: every batch counts the same
            model.train()
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size])
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
    return True


def evaluate_path(model: nn.Module, points: Sequence[torch.Tensor], splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                  task: str, batch_size: int = 4096, batchnorm_x: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """The metrics of every split (e.g. ``{"train": (x, y)}``) at each point of a path (flat weight vectors in the
    order of :func:`trainable_parameters`), on a copy of ``model``; with BatchNorm, its statistics recomputed on
    ``batchnorm_x`` (default: the first split's inputs) at every point. One dict per point: ``<split>_<metric>``."""
    probe = copy.deepcopy(model)
    params = [p for _, p in trainable_parameters(probe)]
    n = sum(p.numel() for p in params)
    out = []
    for point in points:
        if point.numel() != n:
            raise ValueError(f"a path point has {point.numel()} values; the model has {n} trainable parameters")
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(point.to(params[0]), params)
        recompute_batchnorm(probe, batchnorm_x if batchnorm_x is not None else next(iter(splits.values()))[0],
                            batch_size)
        row: dict[str, Any] = {}
        for name, (x, y) in splits.items():
            row.update({f"{name}_{k}": v for k, v in evaluate(probe, x, y, task, batch_size).items()})
        out.append(row)
    return out
