"""Directions in parameter space for projecting the loss: random, normalized, filter-normalized, Hessian.

All directions are flat vectors in ``model.named_parameters()`` order (trainable parameters only), the
same order as :class:`lossgeom.engine.hessian.HessianOperator`. Random ones are drawn from a seeded generator,
so the same seed gives the same direction on every machine.

- ``gaussian``: i.i.d. N(0, 1) entries, so E[eta eta^T] = I and E[eta^T H eta] = tr(H).
- ``unit``: a Gaussian direction divided by its norm (uniform on the sphere): E[eta^T H eta] = tr(H)/N.
- ``filter``: Li et al. (2018): each filter of a Gaussian direction (one output channel of a convolution,
  one output row of a linear layer) is rescaled to the norm of the same filter of the trained weights.
  One-dimensional parameters (biases, BatchNorm) get a zero direction with ``biasbn="ignore"`` (Li et al.'s
  default) or the parameters' own values with ``biasbn="include"``.
- Hessian eigenvectors come from :func:`lossgeom.engine.lanczos.extreme_eigenpairs` (unit norm).

Example (each filter of a filter-normalized direction has the norm of the same filter of the weights)::

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> d = random_direction(model, "filter", seed=1)
    >>> torch.allclose(d[:12].view(4, 3).norm(dim=1), model[0].weight.detach().norm(dim=1)), d[12:16].abs().max().item()
    (True, 0.0)
"""

from __future__ import annotations

import torch
from torch import nn

from ..problems.models import trainable_parameters

KINDS = ("gaussian", "unit", "filter")


def random_direction(model: nn.Module, kind: str = "gaussian", seed: int = 0, biasbn: str = "ignore") -> torch.Tensor:
    """A seeded random direction of the given ``kind`` (see the module docstring), flat, on the model's device."""
    if kind not in KINDS:
        raise ValueError(f"direction kind {kind!r} is unknown; allowed values: {', '.join(KINDS)}")
    params = trainable_parameters(model)
    n = sum(p.numel() for _, p in params)
    g = torch.Generator().manual_seed(seed)
    eta = torch.randn(n, generator=g, dtype=torch.float64)
    if kind == "unit":
        eta /= eta.norm()
    elif kind == "filter":
        eta = filter_normalize(eta, model, biasbn)
    first = params[0][1]
    return eta.to(first.device, first.dtype)


def filter_normalize(direction: torch.Tensor, model: nn.Module, biasbn: str = "ignore") -> torch.Tensor:
    """Rescale each filter of ``direction`` to the norm of the matching filter of the model's weights."""
    if biasbn not in ("ignore", "include"):
        raise ValueError(f"biasbn {biasbn!r} is unknown; allowed values: ignore, include")
    out, start = [], 0
    for _, p in trainable_parameters(model):
        d = direction[start : start + p.numel()].view(p.shape).clone()
        w = p.detach().to(direction.device, direction.dtype)
        start += p.numel()
        if p.dim() <= 1:
            d = torch.zeros_like(d) if biasbn == "ignore" else w.clone()
        else:
            d_filters, w_filters = d.reshape(p.shape[0], -1), w.reshape(p.shape[0], -1)
            scale = w_filters.norm(dim=1) / (d_filters.norm(dim=1) + 1e-10)
            d = (d_filters * scale[:, None]).view(p.shape)
        out.append(d.reshape(-1))
    return torch.cat(out)


def orthogonalize(delta: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """``delta`` minus its component along ``eta``, rescaled to ``delta``'s original norm."""
    projected = delta - (delta @ eta) / (eta @ eta) * eta
    return projected * (delta.norm() / projected.norm())
