"""Per-example logit gradients and how they cluster (Fort & Ganguli 2019).

For a classifier with logits z_c(x; theta), c = 1..C, the logit gradient of example i and logit c is the flat vector
g_{i,c} = d z_c(x_i) / d theta in R^N. The Gauss-Newton matrix of the cross-entropy is a weighted sum of their outer
products, G = (1/n) sum_i sum_{c,c'} g_{i,c} [diag(p_i) - p_i p_i^T]_{c,c'} g_{i,c'}^T, so when the g_{i,c} cluster by
logit c (C tight clusters) G, and with it H near a minimum, has about C outlying eigenvalues: Fort & Ganguli's model
of the C outliers. :func:`logit_gradients` computes every g_{i,c} at once with ``torch.func`` (``vmap`` over examples of
``jacrev`` of one example's logits); :func:`cosine_statistics` sorts the pairs of distinct examples i != j into

- same logit, same class:       c = c' and y_i = y_j,
- same logit, different class:  c = c' and y_i != y_j,
- different logits:             c != c',

and averages the cosine similarity cos(g_{i,c}, g_{j,c'}) within each group. Clustering by logit shows as the first
two means well above the third.

Example (a linear model z = W x: g_{i,c} is x_i placed in row c of W, so different logits are orthogonal)::

    >>> import torch
    >>> model = torch.nn.Linear(4, 3, bias=False).double()
    >>> x = torch.randn(6, 4, dtype=torch.float64); y = torch.tensor([0, 0, 1, 1, 2, 2])
    >>> grads = logit_gradients(model, x)
    >>> grads.shape, cosine_statistics(grads, y)["different_logits"]["mean"]
    (torch.Size([6, 3, 12]), 0.0)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ..problems.models import trainable_parameters
from .model_operator import model_mode

GROUPS = ("same_logit_same_class", "same_logit_different_class", "different_logits")


def logit_gradients(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(n, C, N): the gradient of each logit of each example with respect to the flat trainable parameters
    (``model.named_parameters()`` order), in the model's dtype and on its device; eval mode (the model's own mode is
    restored afterwards)."""
    named = trainable_parameters(model)
    params = {n: p.detach() for n, p in named}
    buffers = dict(model.named_buffers())
    device, dtype = named[0][1].device, named[0][1].dtype

    def logits_of_one(p, example):
        return functional_call(model, (p, buffers), (example.unsqueeze(0),)).squeeze(0)

    per_example = vmap(jacrev(logits_of_one), in_dims=(None, 0))
    rows = []
    with model_mode(model, "eval"):
        for start in range(0, len(x), batch_size):
            jac = per_example(params, x[start : start + batch_size].to(device, dtype))  # {name: (b, C, *shape)}
            rows.append(torch.cat([jac[n].flatten(start_dim=2) for n, _ in named], dim=2))
    return torch.cat(rows)


def cosine_statistics(grads: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and count of cos(g_{i,c}, g_{j,c'}) over the pairs i != j of each group
    (:data:`GROUPS`), from ``grads`` (n, C, N) and the examples' class ``labels`` (n,)."""
    n, classes, _ = grads.shape
    unit = torch.nn.functional.normalize(grads.reshape(n * classes, -1).to(torch.float64), dim=1)
    cos = (unit @ unit.T).reshape(n, classes, n, classes)
    example = torch.arange(n)
    logit = torch.arange(classes)
    labels = labels.cpu()
    distinct = (example[:, None] != example[None, :])[:, None, :, None]
    same_logit = (logit[:, None] == logit[None, :])[None, :, None, :]
    same_class = (labels[:, None] == labels[None, :])[:, None, :, None]
    masks = {
        "same_logit_same_class": distinct & same_logit & same_class,
        "same_logit_different_class": distinct & same_logit & ~same_class,
        "different_logits": distinct & ~same_logit,
    }
    out = {}
    for group, mask in masks.items():
        values = cos.cpu()[mask.expand(n, classes, n, classes)]
        out[group] = {"mean": float(values.mean()) if len(values) else float("nan"),
                      "std": float(values.std()) if len(values) > 1 else float("nan"), "pairs": int(len(values))}
    return out
