"""Principal curvatures of the computed loss surfaces: from the grid vs exact, at and away from the trained point.

For each direction pair of the surfaces step, on its narrowest 2D train-loss grid L(a, b) (spacing h, the
trained point at its centre), the three ways of :mod:`lossgeom.geometry.curvature` are compared (the exact side is
measured by :func:`lossgeom.stages.check_curvature.measure`; this module only judges the numbers):

  exact   M = [[eta^T H eta, eta^T H delta], [., delta^T H delta]] from two Hessian-vector products and the
          projected gradient g = (grad L . eta, grad L . delta), both in float64, for the same eta, delta;
  grid    M_fd from central differences at spacing h, and (M_fit, g_fit) from a least-squares quadratic
          fit on the 3 x 3 points around the point;
  graph   the principal curvatures of the graph z = L(a, b) (shape operator, :func:`graph_principal_curvatures`),
          from (M_fit, g_fit) vs from the exact (M, g).

What is compared with what: the loss is one function, :func:`lossgeom.problems.losses.loss_function` (the grid's
values are its batch sums over the training split, via :func:`lossgeom.training.evaluation.evaluate`; the exact side
differentiates it). So the check does not compare two definitions of the loss with each other: the reference is
independent of the grid in how it is obtained, derivatives by automatic differentiation in float64 at the point
itself, against differences of forward values stored in the grid's dtype at spacing h (the loss definition itself is
checked against the textbook formulas in tests/unit/problems/test_losses.py).

At the trained point: kappa+- of M_fd and of the graph vs exact, and whether the grid shows a saddle when M
does. Halfway from the centre to the corner, where the gradient does not vanish and the graph's curvatures
differ from eig(M): the graph's kappa+- from the grid vs exact (M and g recomputed there).
Each comparison is a check row. The tolerance is deterministic, stated here and not tuned: the grid
estimate's truncation error is estimated by computing it again at spacing 2h (every other grid point),
|kappa(h) - kappa(2h)| (three times the leading O(h^2) error of kappa(h) for a smooth loss), plus the
rounding error of second differences of loss values stored in the grid's dtype, 6 eps |L| / h^2
(the Frobenius norm of the worst-case rounding of the four entries of M). A loss that is not smooth at the
scale h, such as a ReLU network's (kinks), can make both estimates agree and still differ from the exact
value: such a check fails and shows its numbers.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ..geometry.grid_curvature import graph_principal_curvatures, grid_centre, grid_estimates, off_centre, principal_curvatures
from .rows import CheckRow, rows_to_frame

CHECK = "surface_curvature"


def curvature_rows(case: str, values: np.ndarray, a: np.ndarray, b: np.ndarray, at: tuple[int, int],
                   M: np.ndarray, g: np.ndarray, eps: float, kinds=("kappa_fd", "kappa_graph")) -> list[CheckRow]:
    """Rows comparing the grid's curvatures at ``at`` with the exact projected Hessian ``M`` and gradient ``g`` there."""
    fine, coarse = grid_estimates(values, a, b, at, 1), grid_estimates(values, a, b, at, 2)
    h = fine["h"]
    rounding = 6.0 * eps * abs(float(values[at])) / h**2
    exact = {"kappa_fd": principal_curvatures(M), "kappa_graph": graph_principal_curvatures(M, g)}
    what = {"kappa_fd": "of the grid (central differences) vs exact (HVPs)",
            "kappa_graph": "of the graph surface (shape operator, quadratic fit) vs exact (gradient, HVPs)"}
    where = f"at (a, b) = ({a[at[0]]:.4g}, {b[at[1]]:.4g})"
    rows = []
    for key in kinds:
        for k, sign in enumerate(("+", "-")):
            truncation = abs(fine[key][k] - coarse[key][k])
            detail = (f"{where}, h = {h:.4g}; at 2h: {coarse[key][k]:.6g}; tolerance = |kappa(h) - kappa(2h)| "
                      f"{truncation:.3g} + rounding {rounding:.3g}")
            if key == "kappa_graph":
                detail += f"; eig(M) {exact['kappa_fd'][k]:.6g}, |g| = {float(np.linalg.norm(g)):.3g}"
            rows.append(CheckRow.within(CHECK, case, f"kappa{sign} {what[key]}", exact[key][k], fine[key][k],
                                        truncation + rounding, detail))
    return rows


def saddle_rows(case: str, values: np.ndarray, a: np.ndarray, b: np.ndarray, M: np.ndarray) -> list[CheckRow]:
    """Does the grid show a saddle at the trained point exactly when M says so? At its own spacing h (what its
    picture shows) and after Richardson extrapolation, (4 kappa(h) - kappa(2h)) / 3, which removes the O(h^2)
    error of a smooth loss and so tells a grid too coarse for the curvature from a loss that is not smooth."""
    centre = grid_centre(a, b)
    fine, coarse = grid_estimates(values, a, b, centre, 1), grid_estimates(values, a, b, centre, 2)
    exact = principal_curvatures(M)
    extrapolated = tuple((4 * f - c) / 3 for f, c in zip(fine["kappa_fd"], coarse["kappa_fd"]))
    predicted = exact[0] * exact[1] < 0
    rows = []
    for how, (kp, km) in ((f"at its spacing h = {fine['h']:.3g}", fine["kappa_fd"]), ("Richardson-extrapolated", extrapolated)):
        shows = kp * km < 0
        rows.append(CheckRow.within(CHECK, case, f"grid ({how}) shows a saddle (kappa+ kappa- < 0) as the exact curvatures say",
                                    float(predicted), float(shows), 0.0,
                                    f"exact kappa+- {exact[0]:.4g}, {exact[1]:.4g}; grid {kp:.4g}, {km:.4g}"))
    return rows


def surface_curvature_rows(experiment: str, n_parameters: int, grids: Mapping[str, np.ndarray], r: float, eps: float,
                           exact: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> pd.DataFrame:
    """Rows for every direction pair of a model's surfaces, on the 2D train-loss grid of range ``r``.

    ``grids`` holds the surfaces step's arrays (``<pair>_r<r>_2d_{a,b,train_loss}``); ``exact[pair]`` the exact
    (M, g) measured at the grid's centre (``"centre"``) and at :func:`off_centre` (``"away"``), as
    :func:`lossgeom.stages.check_curvature.measure` takes them; ``eps`` is the machine epsilon of the grids' dtype
    (their rounding error).
    """
    rows: list[CheckRow] = []
    for pair, at in exact.items():
        name = f"{pair}_r{r:g}_2d"
        values, a, b = grids[f"{name}_train_loss"], grids[f"{name}_a"], grids[f"{name}_b"]
        case = f"{experiment} (N={n_parameters}) {pair} r={r:g}"
        M, g = at["centre"]
        rows += curvature_rows(case, values, a, b, grid_centre(a, b), M, g, eps)
        rows += saddle_rows(case, values, a, b, M)
        rows += curvature_rows(case, values, a, b, off_centre(a, b), *at["away"], eps, kinds=("kappa_graph",))
    return rows_to_frame(rows)
