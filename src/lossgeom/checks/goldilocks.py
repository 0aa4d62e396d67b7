"""Checks of the Goldilocks zone and of training in random affine subspaces (Fort & Ganguli 2019; Fort & Scherlis
2019; Li et al. 2018), from a sweep's run table (``results/sweeps/<sweep>/runs.csv``) over the initialization scale
alpha (``model.init_scale``) and the subspace dimension d (``train.subspace_dim``), with seeds (``train.seed``).

Each run trained d coordinates c of theta = theta_0 + B^T c (B: d unit-norm rows) and recorded, at the start, the
ratio r = tr(H_d) / ||H_d||_F of the restricted Hessian H_d = B H B^T (in [-sqrt(d), sqrt(d)];
:mod:`lossgeom.training.subspace`).
Means are over seeds; margins are SIGMAS standard errors of the seeds' spread (unknown with one seed: unresolved).

- (e1) the ratio has an interior maximum in alpha, at every d: the largest seed-mean ratio over the interior scales
  minus the larger of the two end scales' exceeds 0.
- (e2) subspace training succeeds in the zone and fails outside it, at every d: the test accuracy at the scale of
  the largest mean ratio (the zone) minus the better of the two end scales' exceeds 0.
- (e3) accuracy rises with d: in the zone (the scale of the largest mean ratio at the largest d), the test accuracy
  at the largest d minus that at the smallest d exceeds 0; every d's mean is listed in ``detail``.

Example (two seeds; the ratio and the accuracy peak at alpha = 1)::

    >>> import pandas as pd
    >>> rows = [{"run": f"a{a}_d{d}_s{s}", "model.init_scale": a, "train.subspace_dim": d, "train.seed": s,
    ...          "subspace_ratio": {0.1: 1.0, 1: 3.0, 10: 1.2}[a] + 0.01 * s,
    ...          "test_accuracy": {0.1: 0.1, 1: 0.5, 10: 0.2}[a] * d / 8 + 0.01 * s}
    ...         for a in (0.1, 1, 10) for d in (4, 8) for s in (0, 1)]
    >>> [(r.check, r.verdict) for r in goldilocks_rows(pd.DataFrame(rows), "demo")][-3:]
    [('goldilocks_e1_ratio_peak', 'pass'), ('goldilocks_e2_zone_training', 'pass'), ('goldilocks_e3_dimension', 'pass')]
"""

from __future__ import annotations

import math

import pandas as pd

from .local import SCALE_KEY, SEED_KEY, per_seed, seed_mean
from .rows import SIGMAS, CheckRow

DIM_KEY = "train.subspace_dim"
NEEDED = ("run", SCALE_KEY, DIM_KEY, SEED_KEY, "subspace_ratio", "test_accuracy")


def _by_scale(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Seed mean and standard error of ``column`` per init scale, in scale order."""
    stats = {scale: seed_mean(group[column]) for scale, group in rows.groupby(SCALE_KEY)}
    return pd.DataFrame(stats, index=["mean", "se"]).T.sort_index()


def _difference(stats: pd.DataFrame, at, others) -> tuple[float, float, object]:
    """mean(at) - max over ``others`` of their means, its combined standard error, and the best other scale."""
    best = max(others, key=lambda s: stats.loc[s, "mean"])
    se = math.hypot(stats.loc[at, "se"], stats.loc[best, "se"])
    return float(stats.loc[at, "mean"] - stats.loc[best, "mean"]), se, best


def _listing(stats: pd.DataFrame, name: str) -> str:
    return f"{name} by alpha: " + ", ".join(f"{s:g}: {m:.3g}" for s, m in stats["mean"].items())


def goldilocks_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """Rows (e1), (e2) per subspace dimension and (e3) once, for one sweep's run table."""
    out = []
    table = table[table[DIM_KEY] > 0]  # d = 0 trains every parameter: no restricted Hessian, no subspace
    dims = sorted(table[DIM_KEY].unique())
    zones = {}
    for d in dims:
        rows = table[table[DIM_KEY] == d]
        ratio, accuracy = _by_scale(rows, "subspace_ratio"), _by_scale(rows, "test_accuracy")
        scales = list(ratio.index)
        ends, interior = [scales[0], scales[-1]], scales[1:-1]
        if not interior:
            continue  # two scales have no interior
        zone = max(interior, key=lambda s: ratio.loc[s, "mean"])
        zones[d] = zone
        case = f"{sweep}: d={d}"
        excess, se, end = _difference(ratio, zone, ends)
        out.append(CheckRow.exceeds(
            "goldilocks_e1_ratio_peak", case, "tr(H_d)/||H_d||_F at the start: largest interior alpha's mean minus the "
            "larger end's > 0 (an interior maximum)", 0.0, excess, SIGMAS * se,
            detail=f"largest interior at alpha={zone:g}, larger end alpha={end:g}; {_listing(ratio, 'ratio')} "
                   f"(bound sqrt(d) = {math.sqrt(d):.3g})"))
        excess, se, end = _difference(accuracy, zone, ends)
        out.append(CheckRow.exceeds(
            "goldilocks_e2_zone_training", case, f"test accuracy in the zone (alpha={zone:g}, largest ratio) minus the "
            "better end scale's > 0", 0.0, excess, SIGMAS * se,
            detail=f"better end alpha={end:g}; {_listing(accuracy, 'accuracy')}"))
    if len(zones) >= 2:
        zone = zones[dims[-1]]
        at_zone = table[table[SCALE_KEY] == zone]
        by_dim = {d: seed_mean(at_zone[at_zone[DIM_KEY] == d]["test_accuracy"]) for d in dims}
        (high, high_se), (low, low_se) = by_dim[dims[-1]], by_dim[dims[0]]
        largest = at_zone[at_zone[DIM_KEY] == dims[-1]]
        out.append(CheckRow.exceeds(
            "goldilocks_e3_dimension", f"{sweep}: alpha={zone:g}",
            f"test accuracy at d={dims[-1]} minus at d={dims[0]} in the zone > 0 (accuracy rises with d)", 0.0,
            high - low, SIGMAS * math.hypot(high_se, low_se),
            detail="accuracy by d: " + ", ".join(f"{d}: {m:.3g}" for d, (m, _) in by_dim.items())
                   + f"; d={dims[-1]} " + per_seed(largest["test_accuracy"], largest["run"])))
    return out
