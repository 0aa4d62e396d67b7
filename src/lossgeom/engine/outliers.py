"""Bulk and outliers of a Hessian spectrum (Sagun et al. 2017; Fort & Ganguli 2019).

The spectrum of a trained classifier's Hessian is a bulk of eigenvalues near zero plus a few large outliers, about
one per class less one (C - 1; softmax leaves one logit direction free). The edge of the outliers shows as the largest
ratio of consecutive top eigenvalues: with lambda_1 >= lambda_2 >= ... the gap index

    k* = argmax_{1 <= k <= k_max} lambda_k / lambda_{k+1}     (over positive lambda_{k+1})

is the number of outliers (k* = C - 1 expected, C reported beside it). The bulk's width is measured by the share
of eigenvalues with |lambda| < eps * lambda_1 (needs the whole spectrum, or its SLQ density).

Example::

    >>> outlier_gap([9.0, 8.0, 7.5, 1.0, 0.9, 0.8], k_max=4)
    {'k': 3, 'ratio': 7.5, 'second_k': 1, 'second_ratio': 1.125}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def outlier_gap(eigenvalues: Sequence[float], k_max: int) -> dict:
    """The largest ratio lambda_k / lambda_{k+1} for k = 1..k_max (1-based), and the runner-up (how clear the gap
    is). ``eigenvalues``: the top ones in any order; needs k_max + 1 of them and positive lambda_{k+1}."""
    values = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    if len(values) < k_max + 1:
        raise ValueError(f"the gap up to k = {k_max} needs the top {k_max + 1} eigenvalues, got {len(values)}")
    upper, lower = values[:k_max], values[1 : k_max + 1]
    ratios = np.where(lower > 0, upper / np.where(lower > 0, lower, 1.0), np.nan)
    if np.all(np.isnan(ratios)):
        return {"k": None, "ratio": float("nan"), "second_k": None, "second_ratio": float("nan")}
    order = np.argsort(-np.nan_to_num(ratios, nan=-np.inf))
    second = order[1] if len(order) > 1 and not np.isnan(ratios[order[1]]) else None
    return {"k": int(order[0] + 1), "ratio": float(ratios[order[0]]),
            "second_k": None if second is None else int(second + 1),
            "second_ratio": float("nan") if second is None else float(ratios[second])}


def near_zero_fraction(eigenvalues: Sequence[float], relative: float = 1e-3) -> float:
    """Share of eigenvalues with |lambda| < relative * max |lambda| (the bulk near zero)."""
    values = np.asarray(eigenvalues, dtype=float)
    return float(np.mean(np.abs(values) < relative * np.abs(values).max()))
