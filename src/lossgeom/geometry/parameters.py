"""Flat parameter vectors: moving a model to theta + a eta + b delta in place and back, bitwise.

Flat vectors follow ``model.named_parameters()`` order over the trainable parameters
(:func:`lossgeom.problems.models.trainable_parameters`), the order of Hessian products and eigenvectors.

Example (a move and the bitwise restore)::

    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> before = [p.clone() for p in model.parameters()]
    >>> shifter = ParameterShifter(model, eta=torch.ones(3))
    >>> with shifter.shifted():
    ...     shifter.move(0.5)
    ...     moved = model.bias.item() - before[1].item()
    >>> round(moved, 6), all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    (0.5, True)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..problems.models import trainable_parameters


class ParameterShifter:
    """Moves a model to theta + a eta + b delta in place; ``restore()`` puts theta back bitwise."""

    def __init__(self, model: nn.Module, eta: torch.Tensor, delta: torch.Tensor | None = None) -> None:
        self.params = [p for _, p in trainable_parameters(model)]
        self.theta = torch.cat([p.detach().reshape(-1) for p in self.params]).clone()
        self.eta = eta.to(self.theta)
        self.delta = None if delta is None else delta.to(self.theta)
        self._buffer = torch.empty_like(self.theta)
        # per-parameter views of theta and of the buffer, made once: a point costs one add and the copies
        self._theta_views, self._buffer_views = self._split(self.theta), self._split(self._buffer)

    def _split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [chunk.view_as(p) for chunk, p in zip(torch.split(flat, [p.numel() for p in self.params]), self.params)]

    @torch.no_grad()
    def _write(self, views: list[torch.Tensor]) -> None:
        for p, view in zip(self.params, views):
            p.copy_(view)

    def move(self, a: float, b: float = 0.0) -> None:
        flat = torch.add(self.theta, self.eta, alpha=a, out=self._buffer)  # no allocation per point
        if self.delta is not None and b != 0.0:
            flat.add_(self.delta, alpha=b)
        self._write(self._buffer_views)

    def restore(self) -> None:
        self._write(self._theta_views)

    @contextlib.contextmanager
    def shifted(self) -> Iterator["ParameterShifter"]:
        try:
            yield self
        finally:
            self.restore()
