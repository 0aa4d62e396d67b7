"""Checks that learning rate, width and L2 regularization move the curvature of the solutions found alike (Fort &
Jastrzebski 2019), from the run tables of one sweep per hyperparameter (``results/sweeps/<sweep>/runs.csv``: each
run's final lambda_max and Hutchinson tr(H)).

A trend sweep varies exactly one of ``train.lr``, ``model.hidden`` (ordered by the model's N) and
``train.weight_decay``, with seeds. Its trend in a curvature measure is the Spearman rank correlation rho of the
hyperparameter with the measure over all its runs (seeds included: a trend the seeds' spread hides comes out small).
A trend is decided when |rho| >= RHO_DECIDED.

Row, per measure (lambda_max, tr(H)), when two hyperparameters or more are swept: the trends share one sign. Measured:
the weakest trend in the common direction, min_i s rho_i with s the sign of sum_i rho_i; pass when it is at least
RHO_DECIDED (every trend decided, all one way), FAIL when it is at most -RHO_DECIDED (a decided trend the other way),
unresolved in between (some trend undecided).

Example (all three flatten the solutions: rho -1, -0.8, -0.9)::

    >>> import pandas as pd
    >>> t = lambda key, values, lam: pd.DataFrame({key: values, "train.seed": 0, "n_parameters": 100,
    ...                                            "lambda_max": lam, "trace_hutchinson": lam})
    >>> tables = {"lr": t("train.lr", [0.01, 0.1, 1.0], [9.0, 5.0, 1.0]),
    ...           "l2": t("train.weight_decay", [0.0, 1e-3, 1e-2], [4.0, 3.0, 2.0])}
    >>> [(r.check, r.verdict) for r in trend_rows(tables)]
    [('trends_same_sign', 'pass'), ('trends_same_sign', 'pass')]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .rows import CheckRow

HYPERPARAMETERS = {"train.lr": "learning rate", "model.hidden": "width (N)", "train.weight_decay": "L2"}
MEASURES = {"lambda_max": "lambda_max", "trace_hutchinson": "tr(H)"}
RHO_DECIDED = 0.5  # |Spearman rho| from which a trend counts as decided (3 seeds x 4 values: 12 runs)


def trend_key(table: pd.DataFrame) -> str | None:
    """The hyperparameter a run table varies (one of :data:`HYPERPARAMETERS`, the seed aside), else None."""
    varied = [c for c in table.columns if "." in c and c != "train.seed" and table[c].nunique() > 1]
    return varied[0] if len(varied) == 1 and varied[0] in HYPERPARAMETERS else None


def trend(table: pd.DataFrame, measure: str) -> float:
    """Spearman rho of the sweep's hyperparameter (width: N) with ``measure`` over the runs with a finite value."""
    key = trend_key(table)
    x = table["n_parameters"] if key == "model.hidden" else table[key]
    rows = np.isfinite(table[measure].to_numpy(dtype=float))
    if rows.sum() < 3:
        return float("nan")
    return float(stats.spearmanr(x[rows].to_numpy(dtype=float), table[measure][rows].to_numpy(dtype=float))[0])


def trend_rows(tables: dict[str, pd.DataFrame]) -> list[CheckRow]:
    """The agreement rows for run tables {sweep: runs.csv} of trend sweeps (two at least; else no rows)."""
    # in a fixed order (learning rate, width, L2, then by name), whatever order the config lists the sweeps in
    order = list(HYPERPARAMETERS)
    tables = dict(sorted(((sweep, t) for sweep, t in tables.items() if trend_key(t) is not None),
                         key=lambda item: (order.index(trend_key(item[1])), item[0])))
    if len(tables) < 2:
        return []
    out = []
    for measure, label in MEASURES.items():
        rhos = {sweep: trend(t, measure) for sweep, t in tables.items()}
        finite = [r for r in rhos.values() if np.isfinite(r)]
        sign = np.sign(sum(finite)) or 1.0
        weakest = min(sign * r for r in finite) if len(finite) == len(rhos) else float("nan")
        listing = ", ".join(f"{HYPERPARAMETERS[trend_key(tables[s])]} ({s}): {r:+.2f}" for s, r in rhos.items())
        out.append(CheckRow.exceeds(
            "trends_same_sign", f"{label}: " + ", ".join(HYPERPARAMETERS[trend_key(t)] for t in tables.values()),
            f"weakest Spearman rho of {label} with the hyperparameter in the trends' common direction "
            f"(>= {RHO_DECIDED:g}: all decided and one way)", 0.0, weakest, RHO_DECIDED,
            detail=f"common direction: curvature {'rises' if sign > 0 else 'falls'} as the hyperparameter grows; "
                   f"rho per sweep: {listing}"))
    return out
