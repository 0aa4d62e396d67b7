"""Principal curvatures of a 2D projection L(a, b) = L(theta + a eta + b delta) at the trained point.

Conventions. The projected Hessian is the 2x2 matrix of second derivatives of L(a, b) at (0, 0),

    M = [[eta^T H eta, eta^T H delta], [delta^T H eta, delta^T H delta]],

in the coordinates (a, b) themselves (the directions are NOT normalized here: with Gaussian eta, delta,
E[M] = tr(H) I_2; with unit ones, E[M] = tr(H)/N I_2). kappa_+ >= kappa_- are the eigenvalues of M: the
principal curvatures of the graph surface z = L(a, b) at a critical point, with (a, b) as Euclidean
coordinates. Where the gradient g = (L_a, L_b) does not vanish, the graph's principal curvatures are the
eigenvalues of the shape operator I^{-1} II, with first fundamental form I = 1 + g g^T and second
fundamental form II = M / sqrt(1 + |g|^2) (:func:`graph_principal_curvatures`). The projection looks like a
saddle when kappa_+ kappa_- < 0.

Three ways to get M: exactly from two Hessian-vector products (:func:`projected_hessian`; over many
random Gaussian pairs, :func:`random_projections`; away from the trained point, with the gradient,
:func:`exact_projection`), from a grid of loss values by central finite differences
(:func:`finite_difference_hessian`), or by a least-squares quadratic fit around the centre
(:func:`quadratic_fit_hessian`). The closed forms on numbers (kappa+-, the grid estimates) live in
:mod:`lossgeom.geometry.grid_curvature`, which needs no torch, and are importable from here too.

Example (H = diag(3, -1) seen along the coordinate axes: a saddle, kappa+ = 3, kappa- = -1)::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> op = MatrixOperator(torch.diag(torch.tensor([3.0, -1.0], dtype=torch.float64)))
    >>> M = projected_hessian(op, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    >>> principal_curvatures(M)
    (3.0, -1.0)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..engine.operator import apply_rows, block_size
from ..engine.resume import ResumeSlot, restore_samples, save_samples
from ..progress import Progress
from .grid_curvature import (  # noqa: F401  (closed forms on numbers; re-exported here, where they are documented)
    finite_difference_hessian,
    graph_principal_curvatures,
    grid_centre,
    principal_curvatures,
    quadratic_fit_hessian,
)
from .parameters import ParameterShifter


def projected_hessian(op, eta: torch.Tensor, delta: torch.Tensor) -> np.ndarray:
    """M from two products, H eta and H delta (symmetrized: the off-diagonal is the mean of both)."""
    eta, delta = eta.to(op.device, op.dtype), delta.to(op.device, op.dtype)  # no copy when they already match
    h_eta, h_delta = apply_rows(op, torch.stack([eta, delta]))
    off = 0.5 * (float(delta @ h_eta) + float(eta @ h_delta))
    return np.array([[float(eta @ h_eta), off], [off, float(delta @ h_delta)]])


def random_projections(op, count: int, seed: int = 0, *, generator: torch.Generator | None = None,
                       resume: ResumeSlot | None = None) -> np.ndarray:
    """M of ``count`` random pairs of Gaussian directions (i.i.d. N(0, 1) entries): array (count, 3) of M11, M12, M22.

    Each pair costs two products (computed for several pairs at once where the operator's ``block`` says that is
    faster). For Gaussian directions E[M11] = E[M22] = tr(H) and E[M12] = 0. The directions come from a
    generator seeded with ``seed``, or from ``generator`` (eta, then delta, per pair).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    out = np.empty((count, 3))
    start = restore_samples(resume, "M", out, g)  # the pairs a killed run finished
    progress = Progress("random projections", count, "pairs")
    pairs = max(block_size(op) // 2, 1)  # pairs whose products are computed together (where that is faster)
    for first in range(start, count, pairs):
        last = min(first + pairs, count)
        D = torch.stack([torch.randn(op.n_params, generator=g, dtype=torch.float64)  # eta, delta, eta, delta, ...
                         for _ in range(2 * (last - first))]).to(op.device, op.dtype)
        HD = apply_rows(op, D)
        eta, delta, h_eta, h_delta = D[0::2], D[1::2], HD[0::2], HD[1::2]
        out[first:last, 0] = (eta * h_eta).sum(1).double().cpu().numpy()
        out[first:last, 1] = (0.5 * ((delta * h_eta).sum(1) + (eta * h_delta).sum(1))).double().cpu().numpy()
        out[first:last, 2] = (delta * h_delta).sum(1).double().cpu().numpy()
        (progress.finish if last == count else progress.update)(last)
        save_samples(resume, "M", out[:last], g, final=last == count)
    return out


def exact_projection(model: torch.nn.Module, make_operator: Callable[[], Any], eta: torch.Tensor, delta: torch.Tensor,
                     a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, g) of L(theta + a eta + b delta) at the point (a, b): two Hessian-vector products and one gradient.

    ``make_operator()`` builds the Hessian operator of the model as it stands (called after the move, so that its
    products and gradient are taken at the moved point); g = (grad L . eta, grad L . delta). The model's
    parameters are put back bitwise afterwards.
    """
    with ParameterShifter(model, eta, delta).shifted() as shifter:
        shifter.move(a, b)
        op = make_operator()
        M = projected_hessian(op, eta, delta)
        gradient = op.gradient()
        eta, delta = eta.to(gradient), delta.to(gradient)  # the operator's device and dtype, as projected_hessian does
        return M, np.array([float(gradient @ eta), float(gradient @ delta)])
