"""Curvature along 1D slices from loss values alone (second differences), and how far it is from eta^T H eta as
a function of the step and the precision: the measurement behind the HVP-free trace and its step rule (check c).

For a random Gaussian direction eta and h = r ||theta|| / ||eta||, the central second difference
kappa(r) = [L(theta + h eta) - 2 L(theta) + L(theta - h eta)] / h^2 has two errors:

- truncation: (h^2 / 12) d^4L/dt^4 for a smooth loss, so it falls as r^2;
- on ReLU networks, kinks: if a pre-activation changes sign within h of theta, the second difference picks up
  the jump of the slope, ~|jump| / h, which the Hessian (ReLU'' = 0) does not contain. This grows as r
  shrinks, until h falls below the distance to the nearest kink along eta, after which it vanishes;
- rounding: the loss is summed in the working precision, with relative error ~eps, so kappa carries
  ~eps L / h^2, which explodes as r shrinks, far sooner in float32 (eps 1.2e-7) than in float64 (2.2e-16).

:func:`slice_curvature` is one second difference; :func:`bias_versus_step` measures the error of each slice
against the exact eta^T H eta (one Hessian-vector product in float64) over a grid of r and in each precision;
:func:`summarize` tabulates it.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from ..device import DTYPES
from ..engine.hessian import HessianOperator
from ..engine.operator import apply_rows
from ..problems.losses import loss_function
from ..progress import Progress
from ..training.evaluation import evaluate
from .parameters import ParameterShifter

STEPS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # the relative steps r measured


def slice_curvature(shifter: ParameterShifter, loss_at: Callable[[], float], eta: torch.Tensor, h: float,
                    centre: float) -> float:
    """kappa = [L(theta + h eta) - 2 L(theta) + L(theta - h eta)] / h^2 = eta^T H eta + O(h^2), from loss values.

    ``shifter`` holds the model at theta; ``loss_at()`` evaluates the loss of the model as it stands; ``centre`` is
    L(theta). The model's parameters are put back bitwise, and the shifter's own directions are left as they were.
    """
    own = shifter.eta
    shifter.eta = eta.to(shifter.theta)
    try:
        shifter.move(h)
        plus = loss_at()
        shifter.move(-h)
        minus = loss_at()
    finally:
        shifter.restore()
        shifter.eta = own
    return (plus - 2.0 * centre + minus) / h**2


def bias_versus_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, *, slices: int, seed: int,
                     batch_size: int, steps: Iterable[float] = STEPS,
                     dtypes: Iterable[str] = ("float64", "float32"), method: str = "auto") -> pd.DataFrame:
    """Rows (dtype, relative_step, slice, fd, exact, error): the second difference of ``slices`` random
    directions at every step and precision, against eta^T H eta computed exactly in float64.

    The directions are the same for every step and precision (drawn once, in float64, from ``seed``), so the
    curves differ only by the step and the arithmetic. ``model`` is not modified.
    """
    steps = tuple(steps)
    reference = copy.deepcopy(model).to(torch.float64)
    device = next(reference.parameters()).device
    x64 = x.to(device, torch.float64)
    y64 = y.to(device, torch.float64) if task == "regression" else y.to(device)
    op = HessianOperator(reference, loss_function(task), x64, y64, batch_size=batch_size, method=method)
    g = torch.Generator().manual_seed(seed)
    directions = [torch.randn(op.n_params, generator=g, dtype=torch.float64) for _ in range(slices)]
    stacked = torch.stack(directions).to(device)
    exact = (stacked * apply_rows(op, stacked)).sum(1).tolist() if slices else []
    rows = []
    for dtype_name in dtypes:
        dtype = DTYPES[dtype_name]
        working = copy.deepcopy(model).to(dtype)
        xs = x.to(device, dtype)
        ys = y.to(device, dtype) if task == "regression" else y.to(device)
        shifter = ParameterShifter(working, torch.zeros(op.n_params, dtype=dtype, device=device))
        theta_norm = float(shifter.theta.double().norm())

        def loss_at() -> float:
            return evaluate(working, xs, ys, task, batch_size)["loss"]

        centre = loss_at()
        progress = Progress(f"finite-difference bias ({dtype_name})", slices, "slices")
        for k, (eta, truth) in enumerate(zip(directions, exact)):
            along = eta.to(device, dtype)
            for r in steps:
                h = r * theta_norm / float(eta.norm())
                fd = slice_curvature(shifter, loss_at, along, h, centre)
                rows.append({"dtype": dtype_name, "relative_step": r, "slice": k, "fd": fd, "exact": truth,
                             "error": fd - truth})
            (progress.finish if k == slices - 1 else progress.update)(k + 1)
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame, trace: float) -> pd.DataFrame:
    """Per (dtype, r): mean error +- standard error, the median |error|, both relative to |tr(H)|, and the
    fraction of slices within 1% of |tr(H)| (a heavy tail of slices that cross a kink shows here)."""
    scale = max(abs(trace), 1e-300)

    def one(group: pd.DataFrame) -> pd.Series:
        err = group["error"].to_numpy()
        se = err.std(ddof=1) / np.sqrt(len(err)) if len(err) > 1 else np.nan
        return pd.Series({"bias": err.mean(), "bias_se": se, "bias_over_trace": err.mean() / scale,
                          "median_abs_error_over_trace": np.median(np.abs(err)) / scale,
                          "fraction_within_1pct": float(np.mean(np.abs(err) <= 0.01 * scale)), "slices": len(err)})

    return table.groupby(["dtype", "relative_step"]).apply(one, include_groups=False).reset_index()
