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
random Gaussian pairs, :func:`random_projections`), from a grid of loss values by central finite
differences (:func:`finite_difference_hessian`), or by a least-squares quadratic fit around the centre
(:func:`quadratic_fit_hessian`).

Example (H = diag(3, -1) seen along the coordinate axes: a saddle, kappa+ = 3, kappa- = -1)::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> op = MatrixOperator(torch.diag(torch.tensor([3.0, -1.0], dtype=torch.float64)))
    >>> M = projected_hessian(op, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    >>> principal_curvatures(M)
    (3.0, -1.0)
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.operator import apply_rows, block_size
from ..engine.resume import ResumeSlot, restore_samples, save_samples
from ..progress import Progress


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


def principal_curvatures(M: np.ndarray) -> tuple[float, float]:
    """(kappa_+, kappa_-): the eigenvalues of a symmetric 2x2 matrix, larger first (closed form)."""
    mean = 0.5 * (M[0, 0] + M[1, 1])
    radius = float(np.hypot(0.5 * (M[0, 0] - M[1, 1]), 0.5 * (M[0, 1] + M[1, 0])))
    return float(mean + radius), float(mean - radius)


def finite_difference_hessian(values: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """M from a grid ``values[i, j] = L(a[i], b[j])`` with uniform spacing and (0, 0) at its centre.

    Central differences with the nearest neighbours (step h = grid spacing): error O(h^2) times the fourth
    derivatives of L(a, b).
    """
    i, j = grid_centre(a, b)
    ha, hb = a[i + 1] - a[i], b[j + 1] - b[j]
    L = values
    laa = (L[i + 1, j] - 2 * L[i, j] + L[i - 1, j]) / ha**2
    lbb = (L[i, j + 1] - 2 * L[i, j] + L[i, j - 1]) / hb**2
    lab = (L[i + 1, j + 1] - L[i + 1, j - 1] - L[i - 1, j + 1] + L[i - 1, j - 1]) / (4 * ha * hb)
    return np.array([[laa, lab], [lab, lbb]])


def quadratic_fit_hessian(values: np.ndarray, a: np.ndarray, b: np.ndarray, radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(M, gradient) from a least-squares fit of c + g.x + x^T M x / 2 to the (2r+1)^2 points around the centre."""
    i, j = grid_centre(a, b)
    A, B = np.meshgrid(a[i - radius : i + radius + 1], b[j - radius : j + radius + 1], indexing="ij")
    z = values[i - radius : i + radius + 1, j - radius : j + radius + 1]
    A, B, z = A.ravel(), B.ravel(), z.ravel()
    design = np.stack([np.ones_like(A), A, B, 0.5 * A**2, A * B, 0.5 * B**2], axis=1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    return np.array([[coef[3], coef[4]], [coef[4], coef[5]]]), coef[1:3]


def graph_principal_curvatures(M: np.ndarray, gradient) -> tuple[float, float]:
    """Principal curvatures of the graph z = L(a, b): eigenvalues of I^{-1} II (equal to eig(M) when g = 0)."""
    g = np.asarray(gradient, dtype=float)
    first = np.eye(2) + np.outer(g, g)
    second = M / np.sqrt(1.0 + g @ g)
    k = np.sort(np.linalg.eigvals(np.linalg.solve(first, second)).real)
    return float(k[1]), float(k[0])


def grid_centre(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices of (0, 0) in a grid's axes; each axis must hold 0 strictly inside."""
    return _centre(a), _centre(b)


def _centre(axis: np.ndarray) -> int:
    i = int(np.argmin(np.abs(axis)))
    if not (0 < i < len(axis) - 1) or abs(axis[i]) > 1e-12 * max(1.0, np.abs(axis).max()):
        raise ValueError("the grid must contain 0 strictly inside each axis")
    return i
