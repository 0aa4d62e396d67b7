"""Training confined to a random affine subspace (Li et al. 2018, "intrinsic dimension"; Fort & Ganguli 2019).

The network's N weights are theta = theta_0 + P c = theta_0 + sum_i c_i b_i: theta_0 the initialization, b_1..b_d
fixed Gaussian directions of unit norm, given as the rows of a (d, N) basis B = P^T (:func:`random_subspace`, also
exported by :mod:`lossgeom.geometry.subspaces`; a set of vectors is rows throughout the library) and c in R^d the
only trained coordinates, zero at the start. :class:`SubspaceModel` wraps a built model that way, so the ordinary
training loop (optimizer, checkpoints, resume) trains c; :meth:`SubspaceModel.materialize` gives back the plain model
at theta, which every later stage reads like any trained model.

Goldilocks (Fort & Scherlis 2019): the Hessian of the loss in the subspace coordinates at the start,

    H_d = d^2/dc^2 L(theta_0 + P c) |_{c=0} = P^T H(theta_0) P     (d x d, exact: the map c -> theta is affine),

has tr(H_d) / ||H_d||_F in [-sqrt(d), sqrt(d)]; it is large (near sqrt(d): curvature positive in most subspace
directions) in the zone of initialization scales where training in such subspaces succeeds.
:func:`start_curvature` computes it in float64 from the d x d Hessian of c, by forward-over-reverse.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, hessian

SUBSPACE_STREAM = 0x5B5  # keeps P's random stream apart from the initialization's and the data order's


def random_subspace(n_params: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """The basis B (d, n_params), one direction per row (the library's orientation for sets of vectors): Gaussian
    entries from a seeded CPU generator, each row rescaled to unit norm. The numbers are those of the columns of P =
    B^T drawn as an (n_params, d) matrix, so a seed gives the same subspace as before rows were the convention."""
    if not 1 <= d <= n_params:
        raise ValueError(f"subspace dimension d must be in 1..{n_params} (the number of parameters), got {d}")
    g = torch.Generator().manual_seed(seed)
    P = torch.randn(n_params, d, generator=g, dtype=torch.float64)
    return (P / torch.linalg.vector_norm(P, dim=0, keepdim=True)).T.contiguous().to(dtype)


def trace_over_frobenius(matrix: torch.Tensor) -> float:
    """tr(M) / ||M||_F, in [-sqrt(d), sqrt(d)] for a symmetric d x d matrix M (nan for M = 0)."""
    norm = float(torch.linalg.matrix_norm(matrix))
    return float(torch.trace(matrix)) / norm if norm > 0 else math.nan


def subspace_seed(seed: int) -> int:
    """The seed of P for a run seeded ``seed``: a stream of its own, so that P is not the initial weights' draw."""
    return int(np.random.SeedSequence([seed, SUBSPACE_STREAM]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SubspaceModel(nn.Module):
    """``base`` with weights theta_0 + P c; only c (``coordinates``, d values, zero at the start) is trainable.

    The base's own parameters hold theta_0 and are frozen (``requires_grad`` off); the subspace is a buffer, so
    checkpoints of this module restore the whole state. :attr:`basis` is it as rows (d, N), as everywhere in the
    library; the buffer ``projection`` stores P = B^T (N, d), the layout checkpoints were written with. Models with
    buffers that training updates (BatchNorm's running statistics) keep them in the base, as usual."""

    def __init__(self, base: nn.Module, dim: int, seed: int) -> None:
        super().__init__()
        self.base = base
        self.names = [name for name, _ in base.named_parameters()]
        params = [p for _, p in base.named_parameters()]
        self.shapes = [p.shape for p in params]
        n = sum(p.numel() for p in params)
        for p in params:
            p.requires_grad_(False)
        reference = params[0]
        # stored as P = B^T (N, d), contiguous: the layout of existing checkpoints, and theta_0 + P c bitwise as before
        self.register_buffer("projection", random_subspace(n, dim, seed).T.contiguous().to(reference.device,
                                                                                              reference.dtype))
        self.coordinates = nn.Parameter(torch.zeros(dim, device=reference.device, dtype=reference.dtype))

    @property
    def basis(self) -> torch.Tensor:
        """The subspace's directions as rows (d, N) (a view of the stored P = B^T)."""
        return self.projection.T

    @property
    def dim(self) -> int:
        return self.coordinates.numel()

    def weights(self, coordinates: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{name: tensor} of theta_0 + P c (``coordinates`` c, default the trained ones)."""
        c = self.coordinates if coordinates is None else coordinates
        shift = self.projection @ c
        out, start = {}, 0
        for name, shape, p in zip(self.names, self.shapes, self.base.parameters()):
            size = math.prod(shape)
            out[name] = p + shift[start : start + size].reshape(shape)
            start += size
        return out

    def forward(self, x: torch.Tensor, coordinates: torch.Tensor | None = None) -> torch.Tensor:
        return functional_call(self.base, self.weights(coordinates), (x,))

    def materialize(self) -> nn.Module:
        """A copy of the base model with its weights at theta = theta_0 + P c (trainable again, detached)."""
        model = copy.deepcopy(self.base)
        with torch.no_grad():
            for p, value in zip(model.parameters(), self.weights().values()):
                p.copy_(value)
        for p in model.parameters():
            p.requires_grad_(True)
        return model


def deployable(model: nn.Module) -> nn.Module:
    """The plain model to save: a subspace model's materialized base, any other model itself."""
    return model.materialize() if isinstance(model, SubspaceModel) else model


def start_curvature(model: SubspaceModel, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> dict[str, Any]:
    """H_d at c = 0 (in float64, on all of ``x``), its trace, Frobenius norm, tr/||.||_F and extreme eigenvalues.
    Arguments in the order of the operators: (model, loss_fn, x, y).

    The mean loss's Hessian is the example-weighted mean of the batches' (``batch_size`` examples at a time: the d
    tangents of forward-over-reverse keep d copies of a batch's activations), taken in eval mode as the operators do
    (BatchNorm on its running statistics, no dropout), so that it does not depend on ``batch_size``."""
    double = copy.deepcopy(model).to(torch.float64).eval()  # a copy: the caller's model keeps its mode
    device = double.projection.device
    zero = torch.zeros(model.dim, dtype=torch.float64, device=device)
    Hd = torch.zeros(model.dim, model.dim, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device, torch.float64)
        yb = y[start : start + batch_size].to(device)
        yb = yb.to(torch.float64) if yb.is_floating_point() else yb
        Hd += hessian(lambda c: loss_fn(double(xb, c), yb))(zero).detach().cpu() * (len(xb) / len(x))
    Hd = (Hd + Hd.T) / 2
    eigenvalues = torch.linalg.eigvalsh(Hd)
    return {"dim": model.dim, "trace": float(torch.trace(Hd)), "frobenius": float(torch.linalg.matrix_norm(Hd)),
            "ratio": trace_over_frobenius(Hd), "ratio_bound": math.sqrt(model.dim),
            "lambda_max": float(eigenvalues[-1]), "lambda_min": float(eigenvalues[0])}
