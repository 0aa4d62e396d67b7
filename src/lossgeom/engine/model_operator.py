"""What the curvature operators of a model share: the data, flat vectors, the model's mode, ``@`` and SciPy.

:class:`ModelOperator` is the base of :class:`~lossgeom.engine.hessian.HessianOperator` (H) and
:class:`~lossgeom.engine.gauss_newton.GaussNewtonOperator` (G): both are a sum over batches of a per-batch
product, differing only in that product. The base holds the batches and their weights, converts between flat
vectors and per-parameter tensors, runs a product in the requested train/eval mode, and offers ``matvec``,
``matmat``, ``op @ v``, ``loss``, ``gradient`` and :meth:`ModelOperator.to_scipy`.

Data. Either two tensors ``(x, y)`` (split into batches of ``batch_size``) or any iterable of ``(x, y)`` batches
(a ``torch.utils.data.DataLoader``, a list of pairs). The batches are read once, at construction, and kept on the
operator's device: every product sees the same data in the same batches (Lanczos needs a fixed operator, even when
the loader shuffles). With batches B_1..B_m of n_1..n_m examples (the first dimension of x), n = sum n_b, the
operator is that of the mean loss over all n examples, L = (1/n) sum_i ell_i:

- ``reduction="mean"`` (``loss_fn`` returns the mean over its batch, L_b = (1/n_b) sum_{i in b} ell_i, the
  default of torch's losses): L = sum_b (n_b / n) L_b, so a smaller last batch weighs less;
- ``reduction="sum"`` (``loss_fn`` returns the sum over its batch): L = sum_b (1 / n) L_b.

Either way H v = sum_b w_b H_b v with those weights w_b, the same operator as on the concatenated data (to
rounding), however the data are batched. (A loss that averages over more than the first dimension, e.g. tokens,
is weighted by examples: exact when every example has equally many terms.)

Mode. Products, ``loss`` and ``gradient`` run with the model in eval mode by default (``mode="eval"``): BatchNorm
then uses its running statistics and dropout is off, so the loss is one fixed, deterministic function of the
parameters and H its Hessian (in train mode BatchNorm normalizes with each batch's statistics, so H depends on how
the data are batched, and dropout would draw new masks at every product). ``mode="train"`` gives the training-mode
function of models without dropout (refused with dropout: no fixed operator); BatchNorm's running statistics are not
updated by the products. The model's
own mode is set only for the duration of each call and restored, module by module, when the call returns:
constructing or using an operator never changes ``model.training``.

Parameters. By default the operator acts on every trainable parameter (``model.named_parameters()`` order). With
``params`` (a name or a list of names) it acts on those only: the diagonal block of H (or G) for a layer or any set
of layers, with N their size, for per-layer spectra. A name selects the parameter of that name, or every parameter
under a module of that name (``"0"`` selects ``"0.weight"`` and ``"0.bias"`` of a ``Sequential``); the other
parameters stay fixed at their values. ``names`` lists the parameters the operator acts on.

Sets of vectors are rows: ``matmat`` and ``op @ V`` take V of shape (k, N) and return the rows H v_i, (k, N), the
orientation of the whole library (Lanczos eigenvectors, subspace bases).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..problems.models import keep_modes, trainable_parameters
from .operator import matmul, to_scipy

MODES = ("eval", "train")
REDUCTIONS = ("mean", "sum")


@contextlib.contextmanager
def model_mode(model: nn.Module, mode: str = "eval") -> Iterator[None]:
    """Run the body with ``model`` in ``mode`` ("eval" or "train"), then give every module its own mode back. In
    "train" mode, BatchNorm layers normalize with the batch's statistics without updating their running ones."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; allowed values: {', '.join(MODES)}")
    modules = list(model.modules())
    if mode == "eval" and not any(m.training for m in modules):
        yield  # already so: nothing to set or restore
        return
    norms = [m for m in modules if isinstance(m, nn.modules.batchnorm._NormBase)] if mode == "train" else []
    tracking = [m.track_running_stats for m in norms]
    with keep_modes(model):  # every module's own train/eval flag given back
        try:
            model.train(mode == "train")
            for m in norms:
                m.track_running_stats = False  # batch statistics, no update of the running ones
            yield
        finally:
            for m, track in zip(norms, tracking):
                m.track_running_stats = track


def select_parameters(model: nn.Module, params: str | Iterable[str] | None) -> tuple[list, list]:
    """(selected, fixed): the trainable (name, parameter) pairs that ``params`` names (all when None) and the rest,
    both in ``model.named_parameters()`` order. A name selects that parameter or every parameter under that module."""
    named = trainable_parameters(model)
    if params is None:
        return named, []
    wanted = [params] if isinstance(params, str) else list(params)
    if not wanted:
        raise ValueError("params is empty: name at least one parameter or module (None: all parameters)")
    names = [n for n, _ in named]
    chosen = set()
    for w in wanted:
        hits = [n for n in names if n == w or n.startswith(w + ".")]
        if not hits:
            raise ValueError(f"params: {w!r} names no trainable parameter of the model; its names: {', '.join(names)}")
        chosen.update(hits)
    return [(n, p) for n, p in named if n in chosen], [(n, p) for n, p in named if n not in chosen]


def _batches(data, y, batch_size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (x, y) batches of a tensor pair (split by ``batch_size``) or of an iterable of batches."""
    if y is None and isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(t, torch.Tensor) for t in data):
        data, y = data  # one (x, y) pair of tensors
    if y is not None:
        if not isinstance(data, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("give the data as two tensors x, y or as one iterable of (x, y) batches")
        if len(data) != len(y):
            raise ValueError(f"x has {len(data)} examples and y {len(y)}")
        size = batch_size or len(data)
        return [(data[start : start + size], y[start : start + size]) for start in range(0, len(data), size)]
    if batch_size is not None:
        raise ValueError("batch_size splits tensors x, y; an iterable of batches (a DataLoader) brings its own")
    if isinstance(data, torch.Tensor):
        raise TypeError("a tensor x needs its targets y: HessianOperator(model, loss_fn, x, y)")
    out = []
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(f"each batch must be a pair (x, y), got {type(batch).__name__}"
                            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
        out.append((batch[0], batch[1]))
    return out


class ModelOperator:
    """A symmetric operator of the mean loss of ``model`` on the data, summed over batches (see the module's text);
    subclasses define the per-batch product :meth:`_tangent_product`. Counts its products in ``hvps``."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: torch.Tensor | Iterable,
        y: torch.Tensor | None = None,
        *,
        batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        block: int | None = 1,
        mode: str = "eval",
        reduction: str = "mean",
        params: str | Iterable[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is unknown; allowed values: {', '.join(MODES)}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction {reduction!r} is unknown; allowed values: {', '.join(REDUCTIONS)}")
        if block is not None and block < 1:
            raise ValueError(f"block must be >= 1 (vectors per batched product), got {block}")
        if not trainable_parameters(model):
            raise ValueError("the model has no trainable parameters")
        dropout = [n for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        if mode == "train" and dropout:
            raise ValueError(f"mode='train' with dropout ({', '.join(n or 'the model' for n in dropout)}) draws new masks at "
                             "every product, so the products are not one symmetric operator; use mode='eval' (dropout "
                             "off, the default) or a model without dropout")
        named, fixed = select_parameters(model, params)
        self.model, self.loss_fn, self.mode, self.reduction = model, loss_fn, mode, reduction
        self.device = named[0][1].device
        self.dtype = dtype or named[0][1].dtype
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.n_params = sum(self.sizes)
        # detach() shares storage: no copy unless the dtype changes (then one cast, here, not per product)
        self.params = {n: p.detach().to(self.dtype) for n, p in named}
        self.buffers = {n: (b.to(self.dtype) if b.is_floating_point() else b) for n, b in model.named_buffers()}
        # parameters left out by ``params``: constants of the products, in the operator's dtype
        self.buffers.update({n: p.detach().to(self.dtype) for n, p in fixed})
        pairs = _batches(data, y, batch_size)
        n = sum(len(xb) for xb, _ in pairs)
        if n == 0:
            raise ValueError("the data hold no examples")
        self.n_examples = n
        self.batches = []
        for xb, yb in pairs:
            xb = xb.to(self.device, self.dtype if xb.is_floating_point() else None)
            yb = yb.to(self.device, self.dtype if yb.is_floating_point() else None)
            self.batches.append((xb, yb, (len(xb) if reduction == "mean" else 1) / n))
        self.hvps = 0
        self._block = block

    # -- flat <-> per-parameter -----------------------------------------------------------------
    def unflatten(self, v: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of a flat vector, one per parameter (no copy)."""
        return {n: c.view(s) for n, c, s in zip(self.names, torch.split(v, self.sizes), self.shapes)}

    def flatten(self, tensors) -> torch.Tensor:
        return torch.cat([t.reshape(-1) for t in tensors])

    def flat_parameters(self) -> torch.Tensor:
        return self.flatten(self.params.values())

    def in_mode(self) -> contextlib.AbstractContextManager:
        """The model in this operator's ``mode`` for the body, its own modes restored afterwards."""
        return model_mode(self.model, self.mode)

    # -- per batch --------------------------------------------------------------------------------
    def _outputs(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, (params, self.buffers), (x,))

    def _batch_loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self._outputs(params, x), y)

    def _tangent_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch's operator along one tangent ``v`` (per-parameter), vmap-able."""
        raise NotImplementedError

    def _batch_product(self, v: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        hv = self._tangent_product(v, x, y)
        return [hv[n] for n in self.names]

    def _block_product(self, vs: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Rows A_b v_i for a block of tangents (leading dimension k), by vmap over :meth:`_tangent_product`."""
        hv = vmap(lambda t: self._tangent_product(t, x, y))(vs)
        return torch.cat([hv[n].reshape(len(hv[n]), -1) for n in self.names], dim=1)

    def _prepare(self) -> None:
        """Called (in mode) before products: a subclass settles how it computes them."""

    def _batched(self) -> bool:
        """Whether :meth:`matmat` may use :meth:`_block_product`."""
        return True

    # -- products -----------------------------------------------------------------------------------
    @property
    def block(self) -> int:
        """How many vectors a caller should hand :meth:`matmat` at once."""
        return self._block

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """A v for a flat vector ``v`` of length ``n_params`` (cast to the operator's device and dtype)."""
        if v.shape != (self.n_params,):
            raise ValueError(f"matvec takes a flat vector of shape ({self.n_params},), got {tuple(v.shape)}")
        with self.in_mode():
            self._prepare()
            v = v.to(self.device, self.dtype)
            parts = self.unflatten(v)
            out = torch.zeros_like(v)
            for xb, yb, weight in self.batches:
                out.add_(self.flatten(self._batch_product(parts, xb, yb)), alpha=weight)
        self.hvps += 1
        return out

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Rows A v_i for the rows of ``vectors`` (k, N): blocks of :attr:`block` vectors per batched product
        (one product each when the block is 1). Counts k products."""
        if vectors.ndim != 2 or vectors.shape[1] != self.n_params:
            raise ValueError(f"matmat takes rows (k, {self.n_params}), got {tuple(vectors.shape)}")
        with self.in_mode():
            self._prepare()
            vectors = vectors.to(self.device, self.dtype)
            block = self.block
            if block == 1 or not self._batched() or len(vectors) == 1:
                return torch.stack([self.matvec(v) for v in vectors])
            out = torch.zeros_like(vectors)
            for start in range(0, len(vectors), block):
                chunk = vectors[start : start + block]
                parts = {n: c.view(len(chunk), *s)
                         for n, c, s in zip(self.names, torch.split(chunk, self.sizes, dim=1), self.shapes)}
                for xb, yb, weight in self.batches:
                    out[start : start + len(chunk)].add_(self._block_product(parts, xb, yb), alpha=weight)
        self.hvps += len(vectors)
        return out

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """``op @ v``: A v for v of shape (N,); the rows A v_i for a set of vectors V of shape (k, N)."""
        return matmul(self, v)

    def to_scipy(self):
        """This operator as a ``scipy.sparse.linalg.LinearOperator`` (float64 numpy in and out)."""
        return to_scipy(self)

    # -- the loss itself ----------------------------------------------------------------------------
    def loss(self) -> float:
        """Mean loss over the whole dataset (in the operator's mode)."""
        with torch.no_grad(), self.in_mode():
            return sum(w * self._batch_loss(self.params, xb, yb).item() for xb, yb, w in self.batches)

    def gradient(self) -> torch.Tensor:
        """Full-batch gradient of the mean loss as a flat vector (in the operator's mode)."""
        out = torch.zeros(self.n_params, device=self.device, dtype=self.dtype)
        with self.in_mode():
            for xb, yb, weight in self.batches:
                g = grad(self._batch_loss)(self.params, xb, yb)
                out.add_(self.flatten(g[n] for n in self.names), alpha=weight)
        return out
