"""The Hessian of a model's mean loss over a whole dataset, as a matrix-free operator on flat vectors.

For a dataset split into batches B_1..B_m of sizes n_1..n_m (n = sum n_b) and a loss that is a mean over
examples, the full-batch loss is L = sum_b (n_b / n) L_b, so

    H v = sum_b (n_b / n) H_b v,

which is what :meth:`HessianOperator.matvec` computes, batch by batch, without ever forming H.
Parameters and vectors are flat: the order is that of ``model.named_parameters()`` (trainable only).

The model is put in eval mode (BatchNorm uses its running statistics, dropout is off), so H is the
Hessian of a fixed deterministic function. Products are forward-over-reverse (``torch.func.jvp`` of
``torch.func.grad``) by default; with ``method="auto"`` a model or loss whose operations lack forward-mode
derivatives (in torch 2.13 e.g. ``F.mse_loss`` and ``F.huber_loss``) falls back, at the first product, to
reverse-over-reverse (double backward); ``method`` then records which one ran. Parameters are used in place (no model copy per product); only when ``dtype``
differs from the model's are they cast, once, at construction.

Example (linear least squares, where H = 2 X^T X / n exactly)::

    >>> import torch
    >>> from lossgeom.problems.losses import mean_squared_error
    >>> X = torch.randn(50, 3, dtype=torch.float64); y = torch.randn(50, 1, dtype=torch.float64)
    >>> model = torch.nn.Linear(3, 1, bias=False).double()
    >>> op = HessianOperator(model, mean_squared_error, X, y, batch_size=16)
    >>> v = torch.randn(3, dtype=torch.float64)
    >>> torch.allclose(op.matvec(v), 2 * X.T @ X @ v / 50)
    True
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from ..problems.models import trainable_parameters

log = logging.getLogger(__name__)

METHODS = ("auto", "forward-over-reverse", "double-backward")


class HessianOperator:
    """H·v of the mean loss of ``model`` on (x, y), over all batches; counts its products in ``hvps``.

    A :class:`~lossgeom.engine.operator.LinearOperator`: ``matvec``, ``n_params``, ``device``, ``dtype``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        method: str = "auto",
        compile: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} is unknown; allowed values: {', '.join(METHODS)}")
        model.eval()
        named = trainable_parameters(model)
        if not named:
            raise ValueError("the model has no trainable parameters")
        self.model, self.loss_fn, self.method = model, loss_fn, method
        self.device = named[0][1].device
        self.dtype = dtype or named[0][1].dtype
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.n_params = sum(self.sizes)
        # detach() shares storage: no copy unless the dtype changes (then one cast, here, not per product)
        self.params = {n: p.detach().to(self.dtype) for n, p in named}
        self.buffers = {n: (b.to(self.dtype) if b.is_floating_point() else b) for n, b in model.named_buffers()}
        n = len(x)
        batch_size = batch_size or n
        self.batches = []
        for start in range(0, n, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            xb = xb.to(self.device, self.dtype if xb.is_floating_point() else None)
            yb = yb.to(self.device, self.dtype if yb.is_floating_point() else None)
            self.batches.append((xb, yb, len(xb) / n))
        self.hvps = 0
        self._batch_hvp = torch.compile(self._batch_hvp_impl) if compile else self._batch_hvp_impl

    # -- flat <-> per-parameter -----------------------------------------------------------------
    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector, one per parameter (no copy)."""
        return {n: c.view(s) for n, c, s in zip(self.names, torch.split(v, self.sizes), self.shapes)}

    def flatten(self, tensors) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def flat_parameters(self) -> torch.Tensor:
        return self.flatten(self.params.values())

    # -- loss, gradient, products ---------------------------------------------------------------
    def _batch_loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(functional_call(self.model, (params, self.buffers), (x,)), y)

    def _batch_hvp_impl(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        if self.method != "double-backward":
            _, hv = jvp(lambda p: grad(self._batch_loss)(p, x, y), (self.params,), (v,))
            return [hv[n] for n in self.names]
        leaves = {n: p.detach().requires_grad_(True) for n, p in self.params.items()}
        with torch.enable_grad():
            g = torch.autograd.grad(self._batch_loss(leaves, x, y), list(leaves.values()), create_graph=True)
            dot = sum((gi * v[n]).sum() for gi, n in zip(g, self.names))
            return list(torch.autograd.grad(dot, list(leaves.values())))

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for a flat vector ``v`` of length ``n_params`` (cast to the operator's device and dtype)."""
        v = v.to(self.device, self.dtype)
        parts = self.unflatten(v)
        out = torch.zeros_like(v)
        for xb, yb, weight in self.batches:
            out.add_(self.flatten(self._product(parts, xb, yb)), alpha=weight)
        self.hvps += 1
        return out

    def _product(self, parts, xb, yb):
        if self.method != "auto":
            return self._batch_hvp(parts, xb, yb)
        self.method = "forward-over-reverse"
        try:
            return self._batch_hvp(parts, xb, yb)
        except (RuntimeError, NotImplementedError) as err:
            log.warning("forward-over-reverse HVP failed (%s); using double backward", str(err).splitlines()[0])
            self.method = "double-backward"
            return self._batch_hvp(parts, xb, yb)

    __matmul__ = matvec

    def loss(self) -> float:
        """Mean loss over the whole dataset (eval mode)."""
        with torch.no_grad():
            return sum(w * self._batch_loss(self.params, xb, yb).item() for xb, yb, w in self.batches)

    def gradient(self) -> torch.Tensor:
        """Full-batch gradient as a flat vector."""
        out = torch.zeros(self.n_params, device=self.device, dtype=self.dtype)
        for xb, yb, weight in self.batches:
            g = grad(self._batch_loss)(self.params, xb, yb)
            out.add_(self.flatten(g[n] for n in self.names), alpha=weight)
        return out


def dense_hessian(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """Full-batch Hessian as a dense (N, N) matrix, by reverse-over-reverse autograd on all data at once.

    A reference for tests and benchmarks on small models (N up to a few thousand); it shares no code
    path with :class:`HessianOperator` beyond ``functional_call``.
    """
    model.eval()
    named = trainable_parameters(model)
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    buffers = {n: (b.to(dtype) if b.is_floating_point() else b) for n, b in model.named_buffers()}
    x = x.to(dtype) if x.is_floating_point() else x
    y = y.to(dtype) if y.is_floating_point() else y

    def loss_of_flat(theta: torch.Tensor) -> torch.Tensor:
        params = {n: c.view(s) for (n, _), c, s in zip(named, torch.split(theta, sizes), shapes)}
        return loss_fn(functional_call(model, (params, buffers), (x,)), y)

    theta = torch.cat([p.detach().reshape(-1) for _, p in named]).to(dtype)
    return torch.autograd.functional.hessian(loss_of_flat, theta)
