"""Training that continues from given weights, and the minibatch stream shared by every path- and simplex-fitting
loop (Sagun et al. 2017: a large-batch solution, then small-batch training continued from it).

:func:`minibatches` yields the batches of ``epochs`` passes over (x, y) in the order of
:func:`~lossgeom.training.loop.epoch_permutation`, so a fit's data order depends on its seed alone.
:func:`continue_training` is plain SGD (momentum, weight decay, constant step) from the model's current weights, in
place: the point is where small batches take a large-batch solution, not a tuned schedule.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn

from ..problems.models import keep_modes
from .loop import epoch_permutation


def minibatches(x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int, seed: int
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x_b, y_b) for every batch of ``epochs`` seeded passes over the data (the last batch of a pass may be short)."""
    if batch_size < 1 or epochs < 0:
        raise ValueError(f"minibatches need batch_size >= 1 and epochs >= 0, got {batch_size} and {epochs}")
    for epoch in range(epochs):
        order = epoch_permutation(len(x), seed, epoch).to(x.device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str, step: int, lr: float) -> None:
    """One optimizer step on ``loss``, refused when the loss is not finite (one error naming the fit and the step,
    instead of weights quietly turned to NaN)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{what} diverged at step {step} (loss {loss.item()}); lower its learning rate "
                                 f"({lr:g})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def continue_training(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                      batch_size: int, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, seed: int = 0
                      ) -> list[float]:
    """SGD on ``model`` (its weights in place, in train mode) from its current weights; returns the mean batch loss of
    every epoch. Arguments in the order of the operators: model, loss, data. ``seed`` orders the minibatches and seeds
    the random numbers of the model's own layers (dropout) on a forked generator; every submodule's train/eval mode is
    given back afterwards and no gradient is left on the parameters."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    steps_per_epoch = -(-len(x) // batch_size)
    losses, total = [], 0.0
    # every submodule's mode, the parameters' gradients and the global generator (dropout) as they were, also on error
    with keep_modes(model), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        try:
            for step, (xb, yb) in enumerate(minibatches(x, y, batch_size, epochs, seed), 1):
                loss = loss_fn(model(xb), yb)
                descend(optimizer, loss, "continued training", step, lr)
                total += loss.item()
                if step % steps_per_epoch == 0:
                    losses.append(total / steps_per_epoch)
                    total = 0.0
        finally:
            optimizer.zero_grad(set_to_none=True)
    return losses
