"""The Hessian of a model's mean loss over a whole dataset, as a matrix-free operator on flat vectors.

The data are two tensors x, y (cut into batches of ``batch_size``) or any iterable of (x, y) batches, e.g. a
``torch.utils.data.DataLoader``. For batches B_1..B_m of sizes n_1..n_m (n = sum n_b) and a loss that is a mean
over the examples of its batch, the full-batch loss is L = sum_b (n_b / n) L_b, so

    H v = sum_b (n_b / n) H_b v,

which is what :meth:`HessianOperator.matvec` computes, batch by batch, without ever forming H; an unequal last
batch weighs by its size, so a loader gives the operator of the concatenated data (for a loss that sums over its
batch, ``reduction="sum"``, the weights are 1 / n: still the mean loss). Parameters and vectors are flat: the order
is that of ``model.named_parameters()`` (trainable only); sets of vectors are rows (k, N).

Products run with the model in eval mode by default (``mode="eval"``: BatchNorm uses its running statistics,
dropout is off), so H is the Hessian of a fixed deterministic function; ``mode="train"`` is the other choice. The
model's own mode is set only during each call and restored afterwards (:mod:`lossgeom.engine.model_operator`).
``op @ v`` and ``op @ V`` apply the operator; :meth:`~lossgeom.engine.model_operator.ModelOperator.to_scipy`
gives a ``scipy.sparse.linalg.LinearOperator``. Parameters are used in place (no model copy per product); only
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
  candidate on the first batch at the first product and keeps, apart, the fastest way for one vector (Lanczos)
  and whether blocks pay (probes, projections), each only when it beats the simpler way by a margin (a
  candidate that raises, e.g. forward mode on ``F.mse_loss`` in torch 2.13, is skipped); when the planned
  products are projected to take long enough, it also compiles the product with ``torch.compile`` and keeps it
  if the projected saving exceeds the compile time. For a few products: no
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
    >>> torch.allclose(op @ v, 2 * X.T @ X @ v / 50)
    True

The same operator from a DataLoader (batches of 16, 16, 16 and 2, weighted by size)::

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(X, y), batch_size=16)
    >>> torch.allclose(HessianOperator(model, mean_squared_error, loader) @ v, op @ v)
    True
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from ..problems.models import trainable_parameters
from .model_operator import ModelOperator, model_mode
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


class HessianOperator(ModelOperator):
    """H·v of the mean loss of ``model`` on the data, over all batches; counts its products in ``hvps``.

    ``HessianOperator(model, loss_fn, x, y, batch_size=...)`` for tensors, or
    ``HessianOperator(model, loss_fn, loader)`` for any iterable of (x, y) batches (a ``DataLoader``): the same
    operator, of the mean loss over all examples (weights n_b / n per batch for a ``loss_fn`` that averages over its
    batch, ``reduction="mean"``; 1 / n for one that sums, ``reduction="sum"``). Products run with the model in
    ``mode`` ("eval" by default: BatchNorm's running statistics, no dropout, so H is the Hessian of one fixed
    function); the model's own train/eval mode is restored after every call. See
    :mod:`lossgeom.engine.model_operator` for the data, mode and orientation rules, shared with
    :class:`~lossgeom.engine.gauss_newton.GaussNewtonOperator`.

    ``params`` (names of parameters or modules) restricts H to their diagonal block: a layer's own Hessian, for
    per-layer spectra; the other parameters are held fixed (``names`` lists the ones it acts on).

    ``method`` and ``block`` fixed: one vector and blocks alike use that method, except that blocks of a fixed
    double backward go vmapped forward-over-reverse when ``vmap_blocks`` is true, which is how ``auto`` may choose
    (double backward for one vector, vmapped blocks): a job that rebuilds an operator from a recorded choice
    (``hvp_method``, ``hvp_block``, ``hvp_vmap_blocks`` in the hessian step's summary) computes as the choice did.

    A :class:`~lossgeom.engine.operator.LinearOperator`: ``matvec``, ``matmat`` (rows), ``op @ v``, ``to_scipy()``,
    ``n_params``, ``device``, ``dtype``; ``loss()`` and ``gradient()`` of the same mean loss.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: torch.Tensor | Iterable,
        y: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        method: str = "auto",
        compile: bool = False,
        block: int | None = None,
        expected_products: int = 0,
        mode: str = "eval",
        reduction: str = "mean",
        params: str | Iterable[str] | None = None,
        vmap_blocks: bool | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method {method!r} is unknown; allowed values: {', '.join(METHODS)}")
        # ``block`` None: chosen with the method under auto, else 1 (one vector per product)
        super().__init__(model, loss_fn, data, y, batch_size=batch_size, dtype=dtype,
                         block=block if block is not None else (None if method == "auto" else 1),
                         mode=mode, reduction=reduction, params=params)
        self.method = method
        self._batch_hvp = torch.compile(self._batch_hvp_impl) if compile else self._batch_hvp_impl
        self.choice: dict | None = None  # what ``auto`` timed and kept
        # whether sets of vectors go in vmapped forward-over-reverse blocks: with that as the fixed method, or under
        # auto wherever it runs (set by choose_product; one vector may then still use double backward)
        # (``vmap_blocks`` given: as recorded from an earlier auto choice, so a rebuilt operator computes the same way)
        self._vmap_blocks = method == "forward-over-reverse" if vmap_blocks is None else bool(vmap_blocks)
        self.compiled = compile
        self.expected_products = expected_products  # how many products the caller plans: can compiling repay?

    # -- products ---------------------------------------------------------------------------------
    def _batch_hvp_impl(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, method: str | None = None):
        if (method or self.method) != "double-backward":
            hv = self._tangent_product(v, x, y)
            return [hv[n] for n in self.names]
        leaves = {n: p.detach().requires_grad_(True) for n, p in self.params.items()}
        with torch.enable_grad():
            g = torch.autograd.grad(self._batch_loss(leaves, x, y), list(leaves.values()), create_graph=True)
            dot = sum((gi * v[n]).sum() for gi, n in zip(g, self.names))
            return list(torch.autograd.grad(dot, list(leaves.values())))

    def _batch_product(self, v, x, y):
        return self._batch_hvp(v, x, y)

    def _tangent_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """H_b v as the derivative of the batch gradient along v (``jvp`` of ``grad``): forward-over-reverse."""
        return jvp(lambda p: grad(self._batch_loss)(p, x, y), (self.params,), (v,))[1]

    def _prepare(self) -> None:
        if self.method == "auto":
            choose_product(self)

    def _batched(self) -> bool:
        return self._vmap_blocks

    @property
    def block(self) -> int:
        """How many vectors a caller should hand :meth:`matmat` at once (under ``auto``: chosen by timing)."""
        if self._block is None or self.method == "auto":
            with self.in_mode():
                choose_product(self)
        return self._block


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    """The fastest of two timed calls after one warm-up call (which pays one-time setup)."""
    return min(call_times(fn, device, repeats=2))


def pick_product(single: dict[str, float], block: float | None) -> tuple[str, int]:
    """The kept way from per-vector seconds: (the method for one vector at a time, the block for sets of vectors).

    ``single``: seconds per vector of each usable method, forward-over-reverse (the reference) first when it runs;
    ``block``: seconds per vector of a block of :data:`BLOCK` by vmapped forward-over-reverse (None: not timed).
    Another method replaces the reference only at <= :data:`MARGIN` of its time, and blocks are kept only at <=
    MARGIN of the kept single method's time: near ties keep the simpler way, so timing noise does not flip the
    choice between runs. The two are chosen apart because their callers differ: Lanczos multiplies one vector at a
    time (a block's saving never reaches it), Hutchinson probes and projections come in sets.

        >>> pick_product({"forward-over-reverse": 1.0, "double-backward": 0.5}, block=0.3)
        ('double-backward', 8)
        >>> pick_product({"forward-over-reverse": 1.0, "double-backward": 0.9}, block=0.85)
        ('forward-over-reverse', 1)
    """
    reference = next(iter(single))
    method = reference
    for candidate, seconds in single.items():
        if seconds <= MARGIN * single[reference] and seconds < single[method]:
            method = candidate
    return method, BLOCK if block is not None and block <= MARGIN * single[method] else 1


def choose_product(op: HessianOperator) -> dict:
    """Set ``op.method`` (and ``op.block``, when not fixed) for ``method="auto"``; returns and stores the record in
    ``op.choice``.

    Timed when the caller plans at least :data:`TIMING_WORTH` products (``expected_products``): the candidates
    run on the first batch with fixed random vectors, one warm-up and the best of two timed calls each:
    forward-over-reverse and double backward per vector, and a block of :data:`BLOCK` vectors by vmap, per vector;
    the method for one vector and the block are kept apart (:func:`pick_product`). A candidate that raises is
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
    best, best_block = next(iter(usable)), 1  # forward-over-reverse unless it failed; untimed: the first that runs
    if timed:
        if op._block is None and "forward-over-reverse" in usable:
            stacked = {n: c.view(BLOCK, *sh) for n, c, sh in zip(op.names, torch.split(vectors, op.sizes, dim=1), op.shapes)}
            try:
                timings[f"forward-over-reverse x{BLOCK}"] = (
                    _seconds(lambda: op._block_product(stacked, xb, yb), op.device) / BLOCK)
            except (RuntimeError, NotImplementedError) as err:
                errors[f"forward-over-reverse x{BLOCK}"] = str(err).splitlines()[0]
        best, best_block = pick_product(usable, timings.get(f"forward-over-reverse x{BLOCK}"))
    op.method = best
    if op._block is None:  # else fixed by the caller
        op._block = best_block
    op._vmap_blocks = "forward-over-reverse" in usable  # blocks are vmapped forward-over-reverse, whatever one vector uses
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
    all of ``x`` as a function of such a vector (eval mode, buffers cast too), for dense references. The model is
    in eval mode only while the function runs (its own mode is restored after each call)."""
    named = trainable_parameters(model)
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    buffers = {n: (b.to(dtype) if b.is_floating_point() else b) for n, b in model.named_buffers()}
    x = x.to(dtype) if x.is_floating_point() else x

    def outputs_of_flat(theta: torch.Tensor) -> torch.Tensor:
        params = {n: c.view(s) for (n, _), c, s in zip(named, torch.split(theta, sizes), shapes)}
        with model_mode(model, "eval"):
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
