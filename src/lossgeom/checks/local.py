"""Checks of the local Hessian phenomena along training (Sagun et al. 2017; Fort & Ganguli 2019), from a sweep's
trajectory table (``results/sweeps/<sweep>/trajectory.csv`` with the local-geometry columns).

The sweep's runs are grouped into conditions by their grid values other than the seed (``train.seed``); each row
states its claim, reports the mean over the condition's seeds (or the worst seed, where the claim is about every
seed) and lists the seeds' values in ``detail``. Margins are stated: SIGMAS standard errors where the measurement
is stochastic (Hutchinson-like probes, the spread over seeds), none where it is exact up to the eigensolver's
residual tolerance. C is the number of classes, N the number of parameters; "end" is the last snapshot.

- (a) outliers: at the end the largest ratio lambda_k / lambda_{k+1} over k <= 2C sits at k in {C-1, C} on every
  seed (theory C - 1/2 +- 1/2, measured: the seed farthest from it); at initialization no seed has a distinct gap
  there (measured: the number of seeds whose largest ratio sits at C-1 or C and exceeds the runner-up ratio by more
  than DISTINCT; theory 0). A ratio within DISTINCT of the next largest is not a gap: at a small initialization
  scale every ratio is 1.04-1.1 and the largest one falls anywhere.
- (b) H close to G at the end, not early: ||H - G||_F / ||H||_F at the end is below its value at the first
  snapshot after initialization (one-sided, margin SIGMAS combined standard errors of probes and seeds), and
  below GGN_CLOSE = 0.5 at the end (G carries more of H, in Frobenius norm, than the rest). The comparison is
  relative and its target is a threshold, not 0: with cross-entropy (these sweeps) G shrinks with the residuals as
  H - G does, so the ratio stays of order one at any loss (:mod:`lossgeom.engine.gauss_newton`); only for squared
  error would it go to 0 at a perfect fit. 0.5 is where G starts to carry the larger share, the weakest reading of
  Sagun et al.'s "H is G near a minimum" that a cross-entropy network can meet.
- (c) the gradient lies mostly in the top-C eigenspace during training: ||V_C^T g||^2 / ||g||^2 over the random
  baseline C/N, its median over the interior snapshots (after the initialization, before the end) of each run,
  exceeds 10 (measured: the smallest median over the seeds). The end is left out: trained to interpolation, the
  gradient is tiny and no longer points along the outliers (reported in ``detail``).
- (d) transient curvature: lambda_max's largest interior value over the larger of its two ends exceeds 1 for the
  smallest initialization scale of the sweep (``model.init_scale`` in the grid) and does not for the largest
  (mean over seeds; margin SIGMAS standard errors over seeds).
- (f) logit-gradient clustering at the end: the smaller of the two same-logit mean cosines (same class, different
  class) minus the different-logit mean cosine exceeds 0 (mean over seeds, margin SIGMAS standard errors over seeds).

Example (two seeds whose spectra put the gap at C - 1 = 2 at the end)::

    >>> import pandas as pd
    >>> t = pd.DataFrame({"run": ["s0", "s0", "s1", "s1"], "train.seed": [0, 0, 1, 1], "step": [0, 10, 0, 10],
    ...                   "classes": 3, "gap_k": [1, 2, 5, 2], "gap_ratio": 1.5, "gap_second_ratio": 1.1})
    >>> [(r.quantity[:20], r.verdict) for r in outlier_rows(t, "demo")]
    [('outlier gap k* at th', 'pass'), ('seeds with a distinc', 'pass')]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .rows import SIGMAS, CheckRow

SEED_KEY = "train.seed"
SCALE_KEY = "model.init_scale"
OVERLAP_FACTOR = 10.0  # "far above the random baseline": an order of magnitude
DISTINCT = 0.1  # a gap is distinct when its ratio exceeds the runner-up ratio by more than this fraction
GGN_CLOSE = 0.5  # ||H - G||_F / ||H||_F below this: G carries most of H


def grid_keys(table: pd.DataFrame) -> list[str]:
    """The sweep's grid key paths other than the seed (columns like ``model.init_scale``)."""
    return [c for c in table.columns if "." in c and c != SEED_KEY]


def conditions(table: pd.DataFrame):
    """(case label, rows of the condition) for each combination of the non-seed grid values, in table order."""
    keys = grid_keys(table)
    if not keys:
        yield "all runs", table
        return
    for values, rows in table.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        yield ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values)), rows


def seed_mean(values: pd.Series) -> tuple[float, float]:
    """Mean over seeds and its standard error (NaN with one seed: the spread is unknown)."""
    v = values.to_numpy(dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def per_seed(values: pd.Series, runs: pd.Series, digits: int = 3) -> str:
    return "per seed: " + ", ".join(f"{r}: {v:.{digits}g}" if isinstance(v, float) else f"{r}: {v}"
                                    for r, v in zip(runs, values))


def _ends(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first and the last snapshot of every run of a condition (one row per run each)."""
    ordered = rows.sort_values(["run", "step"])
    return ordered.groupby("run", sort=False).head(1), ordered.groupby("run", sort=False).tail(1)


def outlier_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """(a): the gap at k in {C-1, C} at the end on every seed, and not at initialization."""
    out = []
    for label, rows in conditions(table):
        first, last = _ends(rows)
        classes = int(last["classes"].iloc[0])
        target = classes - 0.5
        k_end = last["gap_k"].astype(float)
        worst = float(k_end.iloc[int(np.argmax(np.abs(k_end.to_numpy() - target)))])
        case = f"{sweep}: {label}"
        out.append(CheckRow.within("local_a_outliers", case, f"outlier gap k* at the end in {{C-1, C}} = {{{classes - 1}, "
                                   f"{classes}}} (worst seed)", target, worst, 0.5, per_seed(last["gap_k"], last["run"])))
        if int(first["step"].min()) == 0:
            at_init = first[first["step"] == 0]
            distinct = at_init["gap_k"].isin([classes - 1, classes]) & (
                at_init["gap_ratio"] > (1 + DISTINCT) * at_init["gap_second_ratio"])
            labels = [f"k*={k} ratio {r:.3g} (next {n:.3g})" for k, r, n in
                      zip(at_init["gap_k"], at_init["gap_ratio"], at_init["gap_second_ratio"])]
            out.append(CheckRow.within("local_a_outliers", case, f"seeds with a distinct gap (ratio > {1 + DISTINCT:g} x "
                                       "the next) at k* in {C-1, C} at initialization", 0.0, float(distinct.sum()), 0.0,
                                       per_seed(pd.Series(labels), at_init["run"])))
    return out


def gauss_newton_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """(b): ||H - G||_F / ||H||_F at the end below its value early in training, and below GGN_CLOSE."""
    out = []
    for label, rows in conditions(table):
        ordered = rows.sort_values(["run", "step"])
        early = ordered[ordered["step"] > 0].groupby("run", sort=False).head(1)
        _, last = _ends(rows)
        end_mean, end_seed_se = seed_mean(last["ggn_distance"])
        early_mean, early_seed_se = seed_mean(early["ggn_distance"])
        probe_se = lambda r: float(np.sqrt((r["ggn_distance_se"] ** 2).sum()) / len(r))  # noqa: E731
        end_se = math.hypot(probe_se(last), 0.0 if math.isnan(end_seed_se) else end_seed_se)
        early_se = math.hypot(probe_se(early), 0.0 if math.isnan(early_seed_se) else early_seed_se)
        case = f"{sweep}: {label}"
        steps = f"first step after 0: {int(early['step'].iloc[0])}, end: {int(last['step'].iloc[0])}"
        out.append(CheckRow.exceeds("local_b_gauss_newton", case, "||H - G||_F/||H||_F at the end < at the first "
                                    "snapshot after initialization (theory: that early value)", early_mean, end_mean,
                                    SIGMAS * math.hypot(end_se, early_se), above=False,
                                    detail=f"{steps}; end {per_seed(last['ggn_distance'], last['run'])}; early "
                                    f"{per_seed(early['ggn_distance'], early['run'])}"))
        out.append(CheckRow.exceeds("local_b_gauss_newton", case, f"||H - G||_F/||H||_F at the end < {GGN_CLOSE}",
                                    GGN_CLOSE, end_mean, SIGMAS * end_se, above=False,
                                    detail=f"{per_seed(last['ggn_distance'], last['run'])}; relative, against a threshold: "
                                    "with cross-entropy G shrinks with the residuals as H - G does, so the ratio does "
                                    "not go to 0 at a perfect fit"))
    return out


def overlap_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """(c): the gradient's share in the top-C eigenspace over its random baseline C/N, smallest after step 0."""
    out = []
    for label, rows in conditions(table):
        classes = int(rows["classes"].iloc[0])
        column, baseline = f"overlap_k{classes}", f"overlap_baseline_k{classes}"
        if column not in rows:
            continue  # the hessian step computed fewer than C eigenpairs
        ratio = rows.assign(ratio=rows[column] / rows[baseline]).sort_values(["run", "step"])
        last_step = ratio.groupby("run", sort=False)["step"].transform("max")
        interior = ratio[(ratio["step"] > 0) & (ratio["step"] < last_step)]
        if interior.empty:
            continue  # snapshots at the two ends only
        medians = interior.groupby("run", sort=False)["ratio"].median()
        at_end = ratio[ratio["step"] == last_step]
        out.append(CheckRow.exceeds(
            "local_c_gradient_overlap", f"{sweep}: {label}",
            f"||V_C^T g||^2/||g||^2 over its random baseline C/N, median over the interior snapshots, smallest over "
            f"seeds > {OVERLAP_FACTOR:g}", OVERLAP_FACTOR, float(medians.min()), 0.0,
            detail=f"{per_seed(medians, medians.index)}; baseline C/N {float(rows[baseline].iloc[0]):.2g}; at the end "
                   f"(not judged): {per_seed(at_end['ratio'], at_end['run'])}"))
    return out


def transient_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """(d): an interior peak of lambda_max above both ends from the smallest init scale, none from the largest."""
    if SCALE_KEY not in table or table[SCALE_KEY].nunique() < 2:
        return []
    out = []
    scales = sorted(table[SCALE_KEY].unique())
    for scale, above in ((scales[0], True), (scales[-1], False)):
        for label, rows in conditions(table[table[SCALE_KEY] == scale]):
            peaks = []
            for run, steps in rows.sort_values("step").groupby("run", sort=False):
                values = steps["lambda_max"].to_numpy(dtype=float)
                ends = max(values[0], values[-1])
                peaks.append(values[1:-1].max() / ends if len(values) > 2 else float("nan"))
            peaks = pd.Series(peaks)
            mean, se = seed_mean(peaks)
            runs = rows["run"].drop_duplicates()
            claim = "> 1 (an interior peak)" if above else "< 1 (no interior peak)"
            out.append(CheckRow.exceeds(
                "local_d_transient_curvature", f"{sweep}: {label} ({'smallest' if above else 'largest'} init scale)",
                f"largest interior lambda_max / max(lambda_max at the two ends) {claim}", 1.0, mean, SIGMAS * se,
                above=above, detail=per_seed(peaks, runs)))
    return out


def logit_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """(f): same-logit cosines above different-logit ones at the end."""
    out = []
    for label, rows in conditions(table):
        _, last = _ends(rows)
        if "cos_different_logits" not in last:
            continue
        same = np.minimum(last["cos_same_logit_same_class"], last["cos_same_logit_different_class"])
        contrast = same - last["cos_different_logits"]
        mean, se = seed_mean(contrast)
        out.append(CheckRow.exceeds(
            "local_f_logit_clustering", f"{sweep}: {label}",
            "min(same logit same class, same logit different class) - different logits, mean cosines at the end > 0",
            0.0, mean, SIGMAS * se, detail=f"{per_seed(contrast, last['run'])}; same logit same class "
            f"{last['cos_same_logit_same_class'].mean():.3f}, different class "
            f"{last['cos_same_logit_different_class'].mean():.3f}, different logits {last['cos_different_logits'].mean():.3f}"))
    return out


def local_rows(table: pd.DataFrame, sweep: str) -> list[CheckRow]:
    """Every row above for one sweep's trajectory table."""
    return (outlier_rows(table, sweep) + gauss_newton_rows(table, sweep) + overlap_rows(table, sweep)
            + transient_rows(table, sweep) + logit_rows(table, sweep))
