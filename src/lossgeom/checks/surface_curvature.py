"""Principal curvatures of the computed loss surfaces: from the grid vs exact, at and away from the trained point.

For each direction pair of the surfaces step, on its narrowest 2D train-loss grid L(a, b) (spacing h, the
trained point at its centre), the three ways of :mod:`lossgeom.geometry.curvature` are compared:

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

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from ..engine.hessian import HessianOperator
from ..geometry.curvature import (
    finite_difference_hessian,
    graph_principal_curvatures,
    grid_centre,
    principal_curvatures,
    projected_hessian,
    quadratic_fit_hessian,
)
from ..geometry.parameters import ParameterShifter
from ..problems.losses import loss_function
from ..problems.models import count_parameters
from .rows import CheckRow, rows_to_frame

CHECK = "surface_curvature"


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


def exact_projection(model: torch.nn.Module, make_operator: Callable[[], HessianOperator], eta: torch.Tensor,
                     delta: torch.Tensor, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """(M, g) of L(theta + a eta + b delta) in float64: two Hessian-vector products and one gradient."""
    with ParameterShifter(model, eta, delta).shifted() as shifter:
        shifter.move(a, b)
        op = make_operator()
        M = projected_hessian(op, eta, delta)
        gradient = op.gradient()
        return M, np.array([float(gradient @ eta), float(gradient @ delta)])


def surface_curvature_checks(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
                             directions: Mapping[str, tuple[torch.Tensor, torch.Tensor]], grids: Mapping[str, np.ndarray],
                             r: float, eps: float, batch_size: int, experiment: str,
                             log: Callable[[str], None] = print) -> pd.DataFrame:
    """Rows for every direction pair of a model's surfaces, on the 2D train-loss grid of range ``r``.

    ``model``, x and y are in float64 (the exact side); ``directions`` maps a pair name to the (eta, delta)
    the surfaces step used; ``grids`` holds the surfaces step's arrays (``<pair>_r<r>_2d_{a,b,train_loss}``);
    ``eps`` is the machine epsilon of the grids' dtype (their rounding error).
    """
    make_operator = lambda: HessianOperator(model, loss_function(task), x, y, batch_size=batch_size)  # noqa: E731
    n = count_parameters(model)
    rows: list[CheckRow] = []
    for pair, (eta, delta) in directions.items():
        name = f"{pair}_r{r:g}_2d"
        eta, delta = eta.to(torch.float64), delta.to(torch.float64)
        values, a, b = grids[f"{name}_train_loss"], grids[f"{name}_a"], grids[f"{name}_b"]
        case = f"{experiment} (N={n}) {pair} r={r:g}"
        centre, away = grid_centre(a, b), off_centre(a, b)
        M, g = exact_projection(model, make_operator, eta, delta, 0.0, 0.0)
        at_centre = curvature_rows(case, values, a, b, centre, M, g, eps)
        M_away, g_away = exact_projection(model, make_operator, eta, delta, float(a[away[0]]), float(b[away[1]]))
        rows += at_centre + saddle_rows(case, values, a, b, M)
        rows += curvature_rows(case, values, a, b, away, M_away, g_away, eps, kinds=("kappa_graph",))
        log(f"{name}: kappa+- exact {principal_curvatures(M)}, grid {at_centre[0].measured:.6g}, {at_centre[1].measured:.6g}")
    return rows_to_frame(rows)
