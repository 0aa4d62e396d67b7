"""Checks of bulk and outliers across sweeps of data and width (Sagun et al. 2017; Fort & Ganguli 2019), from a
sweep's run table (``results/sweeps/<sweep>/runs.csv``: the final model of every run, with its local geometry and,
for models small enough, its whole Hessian spectrum; :mod:`lossgeom.stages.local_geometry`).

Conditions are the runs' grid values other than the seed (``train.seed``); C is the number of classes.

- (a) outliers follow the classes: in every condition the largest ratio lambda_k / lambda_{k+1} over k <= 2C sits at
  k in {C-1, C} on every seed (theory C - 1/2 +- 1/2, measured: the seed farthest from it). On Gaussian mixtures
  with k clusters (one class each) this is the claim that the gap tracks k - 1.
- (a) the data move the outliers, not the bulk: for each number of clusters, between the smallest and the largest
  separation (``dataset.separation``), the outliers' relative change |log(mean of the top C-1 eigenvalues at the
  largest / at the smallest)| exceeds the bulk's |log(median |lambda| of the rest, same ratio)| (paired by seed;
  margin SIGMAS standard errors of the seeds' spread).
- (a) width widens the bulk near zero: the share of eigenvalues with |lambda| < near_zero x max |lambda| is larger
  at the largest model (``model.hidden``; by N) than at the smallest (seed means; margin SIGMAS standard errors),
  while the outlier count stays C - 1 (the gap rows above, one per width).

Example (two seeds of two widths, the gap at C - 1 = 2 and more eigenvalues near zero at the larger width)::

    >>> import pandas as pd
    >>> t = pd.DataFrame({"run": ["a0", "a1", "b0", "b1"], "model.hidden": ["[8]", "[8]", "[64]", "[64]"],
    ...                   "train.seed": [0, 1, 0, 1], "n_parameters": [50, 50, 400, 400], "classes": 3,
    ...                   "gap_k": 2, "near_zero_fraction": [0.1, 0.12, 0.3, 0.33]})
    >>> [(r.check, r.verdict) for r in spectra_rows(t, "demo")]
    [('spectra_a_outlier_gap', 'pass'), ('spectra_a_outlier_gap', 'pass'), ('spectra_a_width_bulk', 'pass')]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .local import SEED_KEY, conditions, per_seed, seed_mean
from .rows import SIGMAS, CheckRow

CLUSTERS_KEY = "dataset.clusters"
SEPARATION_KEY = "dataset.separation"
WIDTH_KEY = "model.hidden"
NEEDED = ("run", "classes", "gap_k")


def gap_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """The outlier gap at k in {C-1, C} on every seed, per condition."""
    out = []
    for label, rows in conditions(table):
        classes = int(rows["classes"].iloc[0])
        target = classes - 0.5
        k = rows["gap_k"].astype(float).to_numpy()
        worst = float(k[int(np.argmax(np.abs(k - target)))])
        out.append(CheckRow.within("spectra_a_outlier_gap", f"{sweep}: {label}", f"outlier gap k* at the end in "
                                   f"{{C-1, C}} = {{{classes - 1}, {classes}}} (worst seed)", target, worst, 0.5,
                                   per_seed(rows["gap_k"], rows["run"])))
    return out


def data_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """Per number of clusters: the outliers' relative change with the separation exceeds the bulk's."""
    if SEPARATION_KEY not in table or table[SEPARATION_KEY].nunique() < 2 or "outlier_mean" not in table:
        return []
    out = []
    table = table.dropna(subset=["outlier_mean", "bulk_abs_q50"])  # runs above exact_max_parameters: no spectrum
    groups = table.groupby(CLUSTERS_KEY, sort=True) if CLUSTERS_KEY in table else [("all", table)]
    for clusters, rows in groups:
        low, high = rows[SEPARATION_KEY].min(), rows[SEPARATION_KEY].max()
        a = rows[rows[SEPARATION_KEY] == low].set_index(SEED_KEY)
        b = rows[rows[SEPARATION_KEY] == high].set_index(SEED_KEY)
        seeds = a.index.intersection(b.index)
        if seeds.empty:
            continue
        outliers = np.abs(np.log(b.loc[seeds, "outlier_mean"] / a.loc[seeds, "outlier_mean"]))
        bulk = np.abs(np.log(b.loc[seeds, "bulk_abs_q50"] / a.loc[seeds, "bulk_abs_q50"]))
        mean, se = seed_mean(outliers - bulk)
        out.append(CheckRow.exceeds(
            "spectra_a_data_moves_outliers", f"{sweep}: clusters={clusters}, separation {low:g} -> {high:g}",
            "|log change| of the outliers' mean (top C-1) minus that of the bulk's median |lambda| > 0", 0.0, mean,
            SIGMAS * se, detail=f"outliers {per_seed(outliers, seeds)}; bulk {per_seed(bulk, seeds)}; bulk 90% quantile "
                                f"{a['bulk_abs_q90'].mean():.3g} -> {b['bulk_abs_q90'].mean():.3g}"))
    return out


def width_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """The near-zero share at the largest model over that at the smallest (by N), when the sweep varies the width."""
    if WIDTH_KEY not in table or table[WIDTH_KEY].nunique() < 2 or "near_zero_fraction" not in table:
        return []
    table = table.dropna(subset=["near_zero_fraction"])  # runs above exact_max_parameters: no spectrum
    if table[WIDTH_KEY].nunique() < 2:
        return []
    sizes = table.groupby(WIDTH_KEY)["n_parameters"].first().sort_values()
    small = table[table[WIDTH_KEY] == sizes.index[0]]
    large = table[table[WIDTH_KEY] == sizes.index[-1]]
    (hi, hi_se), (lo, lo_se) = seed_mean(large["near_zero_fraction"]), seed_mean(small["near_zero_fraction"])
    by_width = table.groupby(WIDTH_KEY)["near_zero_fraction"].mean().reindex(sizes.index)
    return [CheckRow.exceeds(
        "spectra_a_width_bulk", f"{sweep}: hidden {sizes.index[0]} (N={sizes.iloc[0]}) -> {sizes.index[-1]} "
        f"(N={sizes.iloc[-1]})", "share of eigenvalues near zero at the largest width minus at the smallest > 0", 0.0,
        hi - lo, SIGMAS * math.hypot(hi_se, lo_se),
        detail="mean share near zero by width: " + ", ".join(f"{w} (N={sizes[w]}): {v:.3f}" for w, v in by_width.items()))]


def spectra_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """Every row above for one sweep's run table."""
    return gap_rows(table, sweep) + data_rows(table, sweep) + width_rows(table, sweep)
