"""The generalized Gauss-Newton matrix G of a model's mean loss, as a matrix-free operator beside the Hessian.

Write the loss of a batch as L_b(theta) = ell(f(theta), y) with outputs f(theta) (logits or predictions of all
examples of the batch, stacked) and ell the mean loss as a function of those outputs. The chain rule splits the
Hessian in two:

    H_b = J^T H_ell J + sum_o (d ell / d f_o) * Hessian of f_o,      J = df/dtheta,  H_ell = d^2 ell / df^2.

The first term is the Gauss-Newton matrix G_b = J^T H_ell J: positive semi-definite whenever ell is convex in the
outputs (cross-entropy, squared error), and equal to H_b when the model is linear in theta (the second term
vanishes). At a perfect fit the residuals d ell / d f vanish, and with them H - G in absolute terms; relative to H
it depends on the loss. For squared error H_ell = 2 I / n does not change, G stays finite and
||H - G||_F / ||H||_F -> 0 with the residuals. For cross-entropy H_ell = diag(p) - p p^T shrinks with the residuals
p - y at the same rate, so G shrinks as H - G does and the ratio stays of order one however small the loss (a tanh
network at cross-entropy 6e-14: 0.07; tests/unit/engine/test_gauss_newton_at_a_fit.py). Sagun et al. 2017 and
Fort & Ganguli 2019 trace the Hessian's outliers to G (the covariance of the logit gradients); ||H - G||_F / ||H||_F
measures how far the second term matters (:func:`lossgeom.engine.frobenius.relative_distance`).

A product costs one forward-mode pass for u = J v, one product of the small output Hessian H_ell u and one reverse
pass J^T (H_ell u), per batch; the full-data G v = sum_b (n_b / n) G_b v exactly as for H.

Example (least squares on a linear model: G = H = 2 X^T X / n)::

    >>> import torch
    >>> from lossgeom.problems.losses import mean_squared_error
    >>> X = torch.randn(40, 3, dtype=torch.float64); y = torch.randn(40, 1, dtype=torch.float64)
    >>> model = torch.nn.Linear(3, 1, bias=False).double()
    >>> G = GaussNewtonOperator(model, mean_squared_error, X, y, batch_size=16)
    >>> v = torch.randn(3, dtype=torch.float64)
    >>> torch.allclose(G.matvec(v), 2 * X.T @ X @ v / 40)
    True
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.func import grad, hessian, jvp, vjp, vmap

from .hessian import flat_model
from .logit_gradients import logit_gradients
from .model_operator import ModelOperator, model_mode


class GaussNewtonOperator(ModelOperator):
    """G v of the mean loss of ``model`` on the data, over all batches, counting its products in ``hvps``.

    Takes the data as :class:`~lossgeom.engine.hessian.HessianOperator` does (tensors ``x, y`` or any iterable of
    (x, y) batches, ``reduction``, ``mode``, ``params`` for the block of some parameters) and shares its base
    :class:`~lossgeom.engine.model_operator.ModelOperator` (``matvec``, ``matmat`` on rows with ``block``, ``op @ v``,
    ``to_scipy()``, ``loss()``, ``gradient()``); it has none of the Hessian's ways of computing a product
    (``method``, timing, compiling): one way, below.

    The output Hessian's product H_ell u is forward-over-reverse; for a loss that forward-mode AD cannot
    differentiate twice (``F.mse_loss`` in torch 2.13: "ZeroTensors are immutable"), it is reverse-over-reverse
    instead, decided once on the first batch; ``output_method`` says which.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 data: torch.Tensor | Iterable, y: torch.Tensor | None = None, *, batch_size: int | None = None,
                 dtype: torch.dtype | None = None, block: int | None = 1, mode: str = "eval",
                 reduction: str = "mean", params: str | Iterable[str] | None = None) -> None:
        super().__init__(model, loss_fn, data, y, batch_size=batch_size, dtype=dtype, block=1 if block is None else block,
                         mode=mode, reduction=reduction, params=params)  # None: one vector per product (no timing here)
        self.output_method: str | None = None  # "forward-over-reverse" or "reverse-over-reverse", set at first use

    def _output_hessian_product(self, f: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """H_ell u, H_ell the Hessian of the batch loss in the outputs f."""
        loss_grad = grad(lambda out: self.loss_fn(out, y))
        if self.output_method == "reverse-over-reverse":
            return vjp(loss_grad, f)[1](u)[0]  # H_ell symmetric: u^T H_ell = (H_ell u)^T
        return jvp(loss_grad, (f,), (u,))[1]

    def _tangent_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """G_b v = J^T H_ell (J v) for one batch."""
        def outputs(params):
            return self._outputs(params, x)

        f, jv = jvp(outputs, (self.params,), (v,))
        h_jv = self._output_hessian_product(f, jv, y)
        _, pullback = vjp(outputs, self.params)
        return pullback(h_jv)[0]

    def _prepare(self) -> None:
        if self.output_method is not None:
            return
        xb, yb, _ = self.batches[0]
        probe = {n: torch.ones_like(p) for n, p in self.params.items()}
        errors = []
        for method in ("forward-over-reverse", "reverse-over-reverse"):
            self.output_method = method
            try:
                self._tangent_product(probe, xb, yb)
                return
            except (RuntimeError, NotImplementedError) as err:
                errors.append(f"{method}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
        self.output_method = None
        raise RuntimeError("the Gauss-Newton product fails on this loss (" + "; ".join(errors)
                           + "); HessianOperator(model, loss_fn, ...) computes the Hessian instead")


def _one_example_loss(loss_fn):
    """ell(f_i, y_i): ``loss_fn`` on a batch of one example."""
    return lambda output, target: loss_fn(output.unsqueeze(0), target.unsqueeze(0))


def gauss_newton_trace(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> float:
    """tr(G) exactly, from the per-example output Jacobians J_i (C x N) instead of N products:

        tr(G) = (1/n) sum_i tr(H_i J_i J_i^T),     H_i = d^2 ell(f_i, y_i) / d f_i^2   (C x C),

    for a loss that is the mean of per-example losses (``loss_fn`` on one example gives ell(f_i, y_i)). Costs n x C
    reverse passes (``vmap`` of ``jacrev`` in chunks of ``batch_size`` examples), whatever N is. In eval mode.

    It is also tr(H) exactly when every output is piecewise linear in each single parameter (ReLU, max-pooling,
    convolutions, linear layers, eval-mode BatchNorm: each weight enters a path once, so for a fixed activation
    pattern the output is linear in it): then the second term of H (module docstring) has a zero diagonal and
    diag(H) = diag(G). The exact trace of a ReLU network's Hessian at any size, where the sum of e_j^T H e_j needs N
    products; not for tanh, GELU or softmax attention (tests/unit/engine/test_gauss_newton_trace.py).

    Example (least squares on a linear model: tr(G) = tr(2 X^T X / n) = 2 ||X||_F^2 / n)::

        >>> import torch
        >>> from lossgeom.problems.losses import mean_squared_error
        >>> X = torch.randn(40, 3, dtype=torch.float64); y = torch.randn(40, 1, dtype=torch.float64)
        >>> model = torch.nn.Linear(3, 1, bias=False).double()
        >>> abs(gauss_newton_trace(model, mean_squared_error, X, y) - 2 * float((X**2).sum()) / 40) < 1e-12
        True
    """
    dtype = next(model.parameters()).dtype
    n, total = len(x), 0.0
    for start in range(0, n, batch_size):
        xb, yb = x[start: start + batch_size], y[start: start + batch_size]
        jac = logit_gradients(model, xb, batch_size=len(xb))  # (b, C, N), eval mode
        gram = jac @ jac.transpose(1, 2)  # J_i J_i^T, (b, C, C)
        del jac
        with torch.no_grad(), model_mode(model, "eval"):
            outputs = model(xb.to(dtype)).reshape(len(xb), -1)
        targets = yb.to(dtype) if yb.is_floating_point() else yb
        output_hessians = vmap(hessian(_one_example_loss(loss_fn)))(outputs, targets)  # (b, C, C)
        total += float((output_hessians * gram).sum())
    return total / n


def dense_gauss_newton(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor,
                       dtype=torch.float64) -> torch.Tensor:
    """G = J^T H_ell J as a dense (N, N) matrix from the full Jacobian of all outputs (all data at once).

    A reference for tests on small models: it forms J (outputs x N) and H_ell (outputs x outputs) with
    ``torch.autograd.functional`` and shares no code path with :class:`GaussNewtonOperator`.
    """
    theta, outputs_of_flat = flat_model(model, x, dtype)
    y = y.to(dtype) if y.is_floating_point() else y
    out = outputs_of_flat(theta).detach()
    jacobian = torch.autograd.functional.jacobian(outputs_of_flat, theta).reshape(out.numel(), -1)
    output_hessian = torch.autograd.functional.hessian(
        lambda flat: loss_fn(flat.view(out.shape), y), out.reshape(-1)).reshape(out.numel(), out.numel())
    return jacobian.T @ output_hessian @ jacobian
