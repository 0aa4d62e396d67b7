"""The Hessian of a model's mean loss over a whole dataset, as a matrix-free operator on flat vectors.

For a dataset split into batches B_1..B_m of sizes n_1..n_m (n = sum n_b) and a loss that is a mean over
examples, the full-batch loss is L = sum_b (n_b / n) L_b, so

    H v = sum_b (n_b / n) H_b v,

which is what :meth:`HessianOperator.matvec` computes, batch by batch, without ever forming H.
Parameters and vectors are flat: the order is that of ``model.named_parameters()`` (trainable only).

The model is put in eval mode (BatchNorm uses its running statistics, dropout is off), so H is the
Hessian of a fixed deterministic function. Parameters are used in place (no model copy per product); only
when ``dtype`` differs from the model's are they cast, once, at construction.

How a product is computed (``method``):
- ``forward-over-reverse``: ``torch.func.jvp`` of ``torch.func.grad``, one vector at a time;
- ``double-backward``: reverse-over-reverse autograd (the gradient with a graph, then the gradient of g.v);
- several vectors at once (:meth:`HessianOperator.matmat`, ``block`` > 1): ``vmap`` over the tangents of
  forward-over-reverse. The forward and backward passes of the primal are not batched, so they are computed
  once per block and only the tangent passes grow with the block: on small fully connected networks a block of
  8 costs about half as much per vector (digits MLP, one CPU thread); on convolutional networks the batched
  convolutions are slower on a CPU than one at a time (measured: 0.6-0.9x), which is why the block is chosen,
  not fixed;
- ``auto``: for a caller that plans many products (``expected_products``), :func:`choose_product` times each
  candidate on the first batch at the first product and keeps the fastest that beats
  forward-over-reverse by a margin (a candidate that raises, e.g. forward mode on ``F.mse_loss`` in torch 2.13,
  is skipped); when the planned products are projected to take long enough, it also compiles the product with
  ``torch.compile`` and keeps it if the projected saving exceeds the compile time. For a few products: no
  timing, forward-over-reverse (double backward where forward mode raises). ``choice`` records what was timed
  and kept.
All methods compute the same H v; they differ only in rounding (relative ~1e-7 in float32, ~1e-15 in float64),
so with a timed ``auto`` a result is reproducible to rounding, and bitwise with a fixed ``method`` and ``block``.

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
import time
from typing import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from ..problems.models import trainable_parameters
from ..settings.hessian import METHODS
from ..timing import call_times

log = logging.getLogger(__name__)

# METHODS, the ways of a product, comes from lossgeom.settings.hessian: the config is checked against it without torch
BLOCK = 8  # vectors per batched product when ``auto`` finds blocks faster
# The candidates are timed on the whole first batch: on a subset of 256 examples a block of 8 on the digits CNN
# timed 1.8x faster per vector, and on its full batch of 1,438 it was 0.7x (the default run's model check took
# 23% more CPU with it), so the timing runs at the size the products run at.
MARGIN = 0.8  # another way replaces forward-over-reverse only when it costs at most this fraction per vector
TIMING_WORTH = 100  # auto times the candidates only for a caller that plans at least this many products
COMPILE_WORTH_S = 300.0  # torch.compile is tried only when the run's products are projected to take longer


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
        block: int | None = None,
        expected_products: int = 0,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} is unknown; allowed values: {', '.join(METHODS)}")
        if block is not None and block < 1:
            raise ValueError(f"block must be >= 1 (vectors per batched product), got {block}")
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
        # ``block`` None: chosen with the method under auto, else 1 (one vector per product)
        self._block = block if block is not None else (None if method == "auto" else 1)
        self.choice: dict | None = None  # what ``auto`` timed and kept
        self.compiled = compile
        self.expected_products = expected_products  # how many products the caller plans: can compiling repay?

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

    def _batch_hvp_impl(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, method: str | None = None):
        if (method or self.method) != "double-backward":
            hv = self._tangent_product(v, x, y)
            return [hv[n] for n in self.names]
        leaves = {n: p.detach().requires_grad_(True) for n, p in self.params.items()}
        with torch.enable_grad():
            g = torch.autograd.grad(self._batch_loss(leaves, x, y), list(leaves.values()), create_graph=True)
            dot = sum((gi * v[n]).sum() for gi, n in zip(g, self.names))
            return list(torch.autograd.grad(dot, list(leaves.values())))

    def _tangent_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's operator along one tangent, vmap-able: H_b v by forward-over-reverse here; a subclass with
        another operator of the same loss (:class:`~lossgeom.engine.gauss_newton.GaussNewtonOperator`) replaces it
        and keeps batching, blocks and counting."""
        return self._forward_over_reverse(v, x, y)

    def _forward_over_reverse(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """H_b v as the derivative of the batch gradient along v (``jvp`` of ``grad``)."""
        return jvp(lambda p: grad(self._batch_loss)(p, x, y), (self.params,), (v,))[1]

    def _block_hvp(self, vs: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Rows H_b v_i for a block of tangents (leading dimension k), by vmap over forward-over-reverse."""
        hv = vmap(lambda t: self._tangent_product(t, x, y))(vs)
        return torch.cat([hv[n].reshape(len(hv[n]), -1) for n in self.names], dim=1)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for a flat vector ``v`` of length ``n_params`` (cast to the operator's device and dtype)."""
        if self.method == "auto":
            choose_product(self)
        v = v.to(self.device, self.dtype)
        parts = self.unflatten(v)
        out = torch.zeros_like(v)
        for xb, yb, weight in self.batches:
            out.add_(self.flatten(self._batch_hvp(parts, xb, yb)), alpha=weight)
        self.hvps += 1
        return out

    __matmul__ = matvec

    @property
    def block(self) -> int:
        """How many vectors a caller should hand :meth:`matmat` at once (under ``auto``: chosen by timing)."""
        if self._block is None or self.method == "auto":
            choose_product(self)
        return self._block

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Rows H v_i for the rows of ``vectors`` (k, N): blocks of :attr:`block` vectors per batched product
        (one product each when the block is 1). Counts k products."""
        vectors = vectors.to(self.device, self.dtype)
        block = self.block
        if block == 1 or self.method == "double-backward" or len(vectors) == 1:
            return torch.stack([self.matvec(v) for v in vectors])
        out = torch.zeros_like(vectors)
        for start in range(0, len(vectors), block):
            chunk = vectors[start : start + block]
            parts = {n: c.view(len(chunk), *s) for n, c, s in zip(self.names, torch.split(chunk, self.sizes, dim=1), self.shapes)}
            for xb, yb, weight in self.batches:
                out[start : start + len(chunk)].add_(self._block_hvp(parts, xb, yb), alpha=weight)
        self.hvps += len(vectors)
        return out

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


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    """The fastest of two timed calls after one warm-up call (which pays one-time setup)."""
    return min(call_times(fn, device, repeats=2))


def choose_product(op: HessianOperator) -> dict:
    """Set ``op.method`` (and ``op.block``, when not fixed) for ``method="auto"``; returns and stores the record in
    ``op.choice``.

    Timed when the caller plans at least :data:`TIMING_WORTH` products (``expected_products``): the candidates
    run on the first batch with fixed random vectors, one warm-up and the best of two timed calls each:
    forward-over-reverse and double backward per vector, and a block of
    :data:`BLOCK` vectors by vmap, per vector. Forward-over-reverse one at a time is the reference; another
    candidate replaces it only when it costs at most :data:`MARGIN` of the reference per vector, so that near
    ties (where timing noise could flip the choice between runs) keep the reference. A candidate that raises is
    skipped. Costs a few single-batch products, not counted in ``op.hvps``.
    Not timed for fewer planned products (timing would cost more than it saves): forward-over-reverse, or double
    backward when forward mode raises on this model (e.g. ``F.mse_loss`` in torch 2.13), one vector at a time.
    """
    if op.method != "auto" and op._block is not None:
        return op.choice or {}
    xb, yb, _ = op.batches[0]
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(BLOCK, op.n_params, generator=g, dtype=torch.float64).to(op.device, op.dtype)
    single = op.unflatten(vectors[0])
    timed = op.expected_products >= TIMING_WORTH
    timings: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for method in METHODS[1:]:  # only auto gets here: a fixed method has its block (1) from the start
        try:
            if timed:
                timings[method] = _seconds(lambda: op._batch_hvp(single, xb, yb, method), op.device)
            else:
                op._batch_hvp(single, xb, yb, method)  # does it run at all?
                timings[method] = float("nan")
        except (RuntimeError, NotImplementedError) as err:
            timings[method], errors[method] = None, str(err).splitlines()[0]
        if not timed and timings[method] is not None:
            break  # the first that runs
    usable = {m: t for m, t in timings.items() if t is not None}
    if not usable:
        raise RuntimeError(f"no Hessian-vector product method works on this model: {errors}")
    reference = next(iter(usable))  # forward-over-reverse unless it failed
    best, best_block = reference, 1
    if timed:
        if op._block is None and reference == "forward-over-reverse":
            stacked = {n: c.view(BLOCK, *sh) for n, c, sh in zip(op.names, torch.split(vectors, op.sizes, dim=1), op.shapes)}
            try:
                timings[f"forward-over-reverse x{BLOCK}"] = _seconds(lambda: op._block_hvp(stacked, xb, yb), op.device) / BLOCK
            except (RuntimeError, NotImplementedError) as err:
                errors[f"forward-over-reverse x{BLOCK}"] = str(err).splitlines()[0]
        candidates = [(m, 1, t) for m, t in usable.items()]
        if f"forward-over-reverse x{BLOCK}" in timings:
            candidates.append(("forward-over-reverse", BLOCK, timings[f"forward-over-reverse x{BLOCK}"]))
        best_time = usable[reference]
        for method, block, seconds in candidates:
            if seconds <= MARGIN * usable[reference] and seconds < best_time:
                best, best_block, best_time = method, block, seconds
    op.method = best
    if op._block is None:  # else fixed by the caller
        op._block = best_block
    scale = sum(len(b[0]) for b in op.batches) / len(xb)  # full-data products cost ~ scale x the timed ones
    compile_record = _try_compile(op, single, xb, yb, timings, scale) if timed and not op.compiled else None
    op.choice = {"method": op.method, "block": op._block, "timed": timed,
                 "seconds_per_vector": {m: t for m, t in timings.items() if t is None or t == t},  # nan: not timed
                 "errors": errors, "timed_on_examples": len(xb), "compile": compile_record}
    for method, err in errors.items():
        log.info("HVP candidate %s skipped: %s", method, err)
    log.info("HVP method %s, block %d%s", op.method, op._block, (" (seconds per vector on %d examples: %s)" % (
        len(xb), ", ".join(f"{m} {t:.3g}" for m, t in timings.items() if t is not None))) if timed else "")
    return op.choice


def _try_compile(op: HessianOperator, single, xb, yb, timings: dict[str, float | None], scale: float) -> dict | None:
    """Compile the single product when the planned products would take over :data:`COMPILE_WORTH_S`; keep it
    (one vector per product) when its projected saving over the plan exceeds what compiling cost. None when
    not tried."""
    best = min(t for t in timings.values() if t is not None)  # the best uncompiled way, blocks included
    projected = op.expected_products * best * scale
    if projected <= COMPILE_WORTH_S:
        return None
    tick = time.perf_counter()
    try:
        compiled = torch.compile(op._batch_hvp_impl)
        compiled(single, xb, yb, op.method)  # compiling happens here
        compile_s = time.perf_counter() - tick
        seconds = _seconds(lambda: compiled(single, xb, yb, op.method), op.device)
    except Exception as err:  # a backend that cannot compile this model (no C++ compiler, an unsupported op)
        return {"projected_s": projected, "error": str(err).splitlines()[0] if str(err) else type(err).__name__}
    saving = op.expected_products * (best - seconds) * scale
    kept = saving > compile_s
    if kept:
        op._batch_hvp, op.compiled, op._block = compiled, True, 1
    return {"projected_s": projected, "compile_s": compile_s, "seconds_per_vector": seconds, "kept": kept}


def flat_model(model: nn.Module, x: torch.Tensor, dtype=torch.float64):
    """(theta, outputs_of_flat): the trainable parameters as one flat vector in ``dtype`` and the model's outputs on
    all of ``x`` as a function of such a vector (eval mode, buffers cast too), for dense references."""
    model.eval()
    named = trainable_parameters(model)
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    buffers = {n: (b.to(dtype) if b.is_floating_point() else b) for n, b in model.named_buffers()}
    x = x.to(dtype) if x.is_floating_point() else x

    def outputs_of_flat(theta: torch.Tensor) -> torch.Tensor:
        params = {n: c.view(s) for (n, _), c, s in zip(named, torch.split(theta, sizes), shapes)}
        return functional_call(model, (params, buffers), (x,))

    return torch.cat([p.detach().reshape(-1) for _, p in named]).to(dtype), outputs_of_flat


def dense_hessian(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """Full-batch Hessian as a dense (N, N) matrix, by reverse-over-reverse autograd on all data at once.

    A reference for tests and benchmarks on small models (N up to a few thousand); it shares no code
    path with :class:`HessianOperator` beyond ``functional_call``.
    """
    theta, outputs_of_flat = flat_model(model, x, dtype)
    y = y.to(dtype) if y.is_floating_point() else y
    return torch.autograd.functional.hessian(lambda t: loss_fn(outputs_of_flat(t), y), theta)
