"""The empirical Fisher F = (1/n) sum_i g_i g_i^T of a model's mean loss, as a matrix-free operator beside H and G.

With the mean loss L = (1/n) sum_i ell_i over n examples and g_i = grad ell_i the per-example gradients, the
empirical Fisher is the uncentred second moment of the g_i. It is positive semi-definite, needs no second
derivative, and is what optimizers such as Adam and K-FAC's "empirical" variant approximate; it is not the Fisher
information (the expectation under the model's own predictive distribution, which for cross-entropy is the
Gauss-Newton matrix G, :class:`~lossgeom.engine.gauss_newton.GaussNewtonOperator`), and at a minimum where the
residuals are small it can differ from both H and G by far (Kunstner et al. 2019).

A product costs one forward-mode pass and one reverse pass per batch, never the per-example gradients themselves:
with the vector of per-example losses l(theta) of a batch, u = J_l v = (g_i . v)_i comes from one jvp and
sum_i g_i u_i = J_l^T u from one vjp, so F_b v = (1 / n_b) J_l^T (J_l v); the full-data F v = sum_b (n_b / n) F_b v
as for H. The per-example loss is ``loss_fn`` on a batch of that one example, so ``loss_fn`` must average over its
batch (``reduction="mean"``, the default of torch's losses and of :func:`lossgeom.problems.losses.loss_function`).

Example (least squares on a linear model: g_i = 2 (x_i . w - y_i) x_i)::

    >>> import torch
    >>> from lossgeom.problems.losses import mean_squared_error
    >>> X = torch.randn(40, 3, dtype=torch.float64); y = torch.randn(40, 1, dtype=torch.float64)
    >>> model = torch.nn.Linear(3, 1, bias=False).double()
    >>> F = EmpiricalFisherOperator(model, mean_squared_error, X, y, batch_size=16)
    >>> g = 2 * (X @ model.weight.detach().T - y) * X  # per-example gradients, rows
    >>> v = torch.randn(3, dtype=torch.float64)
    >>> torch.allclose(F @ v, g.T @ (g @ v) / 40)
    True
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.func import jvp, vjp, vmap

from .model_operator import ModelOperator


class EmpiricalFisherOperator(ModelOperator):
    """F v = (1/n) sum_i g_i (g_i . v) over all examples and batches, counting its products in ``hvps``.

    Takes the data, ``mode``, ``block`` and ``params`` (the block of some parameters) as
    :class:`~lossgeom.engine.hessian.HessianOperator` does and shares its base
    :class:`~lossgeom.engine.model_operator.ModelOperator` (``matvec``, ``matmat``, ``op @ v``, ``to_scipy()``,
    ``loss()``, ``gradient()``), so every routine that takes a Hessian (``extreme_eigenpairs``,
    ``hutchinson_trace``, ``slq_density``) takes it too. ``loss_fn`` must average over its batch.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 data: torch.Tensor | Iterable, y: torch.Tensor | None = None, *, batch_size: int | None = None,
                 dtype: torch.dtype | None = None, block: int = 1, mode: str = "eval",
                 params: str | Iterable[str] | None = None) -> None:
        super().__init__(model, loss_fn, data, y, batch_size=batch_size, dtype=dtype, block=block, mode=mode,
                         reduction="mean", params=params)

    def _example_losses(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ell_i for each example of the batch: ``loss_fn`` on a batch of that example alone."""
        outputs = self._outputs(params, x)
        return vmap(lambda o, t: self.loss_fn(o.unsqueeze(0), t.unsqueeze(0)))(outputs, y)

    def _tangent_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """F_b v = (1 / n_b) J_l^T (J_l v) for one batch, J_l the Jacobian of the per-example losses."""
        def losses(params):
            return self._example_losses(params, x, y)

        _, directional = jvp(losses, (self.params,), (v,))  # g_i . v for every example
        _, pullback = vjp(losses, self.params)
        return pullback(directional / len(x))[0]


def dense_empirical_fisher(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor,
                           dtype=torch.float64) -> torch.Tensor:
    """F = (1/n) sum_i g_i g_i^T as a dense (N, N) matrix from explicit per-example gradients (autograd, one example
    at a time): a reference for tests on small models, sharing no code path with :class:`EmpiricalFisherOperator`."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(x)):
        xi = x[i : i + 1].to(dtype) if x.is_floating_point() else x[i : i + 1]
        yi = y[i : i + 1].to(dtype) if y.is_floating_point() else y[i : i + 1]
        grads = torch.autograd.grad(loss_fn(model(xi), yi), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).to(dtype))
    g = torch.stack(rows)
    return g.T @ g / len(x)
