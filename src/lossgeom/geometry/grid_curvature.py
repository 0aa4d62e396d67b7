"""Curvatures of a 2D grid of loss values L(a, b), from the numbers alone (numpy; no torch).

The closed forms behind :mod:`lossgeom.geometry.curvature`, kept apart so that code which only judges stored
grids (the checks) runs without torch: the principal curvatures kappa+- of a 2x2 projected Hessian M, those of
the graph surface z = L(a, b) where the gradient does not vanish, and M estimated from a grid by central
differences or by a least-squares quadratic fit. Conventions are those of :mod:`lossgeom.geometry.curvature`.

Example (L = (3 a^2 - b^2) / 2 on a grid: a saddle with kappa+ = 3, kappa- = -1; central differences are exact
on quadratics)::

    >>> import numpy as np
    >>> axis = np.linspace(-1.0, 1.0, 5)
    >>> A, B = np.meshgrid(axis, axis, indexing="ij")
    >>> M = finite_difference_hessian(0.5 * (3 * A**2 - B**2), axis, axis)
    >>> [round(k, 12) for k in principal_curvatures(M)]
    [3.0, -1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np


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


def grid_estimates(values: np.ndarray, a: np.ndarray, b: np.ndarray, at: tuple[int, int], stride: int = 1) -> dict[str, Any]:
    """Curvatures of a grid at its point ``at`` (indices), from the points ``stride`` apart: M_fd, fit, kappas."""
    i, j = at
    rows, cols = slice(i % stride, None, stride), slice(j % stride, None, stride)
    sub, sa, sb = values[rows, cols], a[rows] - a[i], b[cols] - b[j]
    if not (stride <= i < len(a) - stride and stride <= j < len(b) - stride):
        raise ValueError(f"a grid of {values.shape} points has no neighbours {stride} steps around {at}")
    M_fd = finite_difference_hessian(sub, sa, sb)
    M_fit, g_fit = quadratic_fit_hessian(sub, sa, sb, radius=1)
    return {"h": float(sa[1] - sa[0]), "M_fd": M_fd, "kappa_fd": principal_curvatures(M_fd),
            "M_fit": M_fit, "g_fit": g_fit, "kappa_graph": graph_principal_curvatures(M_fit, g_fit)}


def off_centre(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The grid point halfway from the centre to the corner (where the gradient does not vanish)."""
    i, j = grid_centre(a, b)
    return i + max(1, (len(a) - 1 - i) // 2), j + max(1, (len(b) - 1 - j) // 2)
