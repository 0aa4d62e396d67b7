"""Yang et al. 2021's taxonomy of loss landscapes over a grid of width x a second axis (batch size, or label noise):
per cell, what training found (train loss, test accuracy), how sharp it is locally (lambda_max, tr(H) on the
Hessian stage's examples: the whole training set in the default config, 10,000 images in configs/taxonomy.yaml)
and how well its seeds connect globally (mode connectivity mc along trained Bezier curves, CKA of
their outputs); the cell's phase; and the check rows.

A cell is one condition of a sweep's connectivity step (:mod:`lossgeom.stages.connectivity`): the runs that share
every grid value but the seed. Its numbers are means over its seeds (lambda_max, tr(H), losses, accuracies; their
sample standard deviation beside), mc is the mean over its seed pairs (Yang et al.'s mc, from the training error in
percent at t = 0, 1/4, 1/2, 3/4, 1 of the trained curve: negative = a barrier), CKA the mean over its pairs.

Phases (Yang et al.'s table; they read the boundaries off heat maps and give no numbers, so these are stated here):
a cell is *fitted* when its train loss is below ``LOSS_FITTED`` x ln C (C classes: ln C is the loss of a uniform
guess), *poorly connected* when mc < -``MC_CONNECTED``. Not fitted: I (poorly connected) or II (not); fitted: III
(poorly connected) or IV, split by CKA at the median of the phase-IV cells into IV-A (below: dissimilar ensembles,
overfitted) and IV-B (at or above: Yang et al.'s generalizing phase). A cell whose train loss or mc is unknown (NaN:
a diverged path) gets ``?``; a phase-IV cell without a CKA stays ``IV``.

Rows, per sweep (mc in percentage points of training error; margins are ``SIGMAS`` standard errors over seed pairs,
which share seeds, so the spread is if anything understated):

- ``taxonomy_small_width_poorly_connected``: the mean mc over the cells of the smallest width < 0;
- ``taxonomy_large_width_well_connected``: |mean mc| over the fitted cells of the largest width < ``MC_CONNECTED``
  (unresolved when none is fitted): an under-trained cell's mc is positive whatever the landscape (its curve finds
  points better than its ends: Yang et al.'s phase II), so the claim is about the solutions training found;
- ``taxonomy_best_cell_well_connected``: in the cell of the highest mean test accuracy, |mc| < ``MC_CONNECTED``;
- ``taxonomy_spearman_<measure>``: Spearman's rho over the fitted cells of the mean test accuracy with CKA,
  lambda_max, tr(H) and mc has the sign Yang et al. found on CIFAR-10 (:data:`YANG_SPEARMAN`)
  (:func:`spearman_verdict`). It passes where |rho| exceeds both RHO_DECIDED (a clear trend, as the trend rows of
  :mod:`lossgeom.checks.trends`) and the 5% two-sided critical value of rho for that many cells
  (:func:`rho_critical`: what a random order of the cells exceeds at most one time in twenty; 1 for 4 cells, so
  that no row passes on four, 0.9 for 5, 0.64 for 10, below RHO_DECIDED from 16 on), because the number of fitted
  cells varies with the config where the trend rows always have 12 runs; it FAILs as far the other way, or where
  the 95% interval of rho (:func:`rho_interval`) stops short of RHO_DECIDED on the claimed side, so that enough
  cells decide a weak correlation against the claim of a clear one. Over the fitted cells, because
  Yang et al.'s claims are about networks trained to (near) zero loss: under-trained networks agree with each other
  (high CKA) and sit where the curvature is still high while they predict badly, which reverses the correlations
  across the whole grid (measured on ``configs/phases.yaml``: CKA's rho -0.47 over all 156 cells, +0.26 over the 83
  fitted); the all-cell rho and rho within each width of at least four fitted cells are in the detail;
- with label noise as the second axis, ``taxonomy_noise_lowers_connectivity``: the mean mc over widths at the
  largest noise is below that at the smallest (low-quality data: a poorly connected landscape).

Example (two widths x two batch sizes; the narrow cells have barriers, the wide ones do not)::

    >>> import pandas as pd
    >>> cells = pd.DataFrame({"width": ["[4]", "[4]", "[64]", "[64]"], "n_parameters": [214, 214, 3274, 3274],
    ...     "axis": [32, 256, 32, 256], "train_loss": [0.9, 1.2, 0.05, 0.1], "test_accuracy": [0.4, 0.35, 0.7, 0.65],
    ...     "lambda_max": [30.0, 40.0, 5.0, 8.0], "trace_hutchinson": [90.0, 99.0, 40.0, 50.0],
    ...     "mc": [-12.0, -15.0, 0.2, -0.4], "mc_se": [1.0, 1.0, 0.2, 0.2], "pairs": 3, "cka": [0.5, 0.6, 0.9, 0.8]})
    >>> assign_phases(cells, classes=10)["phase"].tolist()
    ['I', 'I', 'IV-B', 'IV-A']
    >>> [(r.check, r.verdict) for r in taxonomy_rows(cells, "demo", "train.batch_size")][:3]
    [('taxonomy_small_width_poorly_connected', 'pass'), ('taxonomy_large_width_well_connected', 'pass'), \
('taxonomy_best_cell_well_connected', 'pass')]
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .rows import SIGMAS, CheckRow
from .trends import RHO_DECIDED

WIDTH_KEYS = ("model.hidden", "model.width")  # an MLP's hidden widths; a ResNet-18's k
SEED_KEY = "train.seed"
NOISE_KEY = "dataset.label_noise"
AXES = ("train.batch_size", NOISE_KEY)  # the second axis of a taxonomy sweep
MC_CONNECTED = 2.0  # |mc| below this many percentage points of training error: well connected (Yang's mc: -30..+8)
LOSS_FITTED = 0.1  # a cell is fitted when its train loss is below this fraction of ln C (a uniform guess's loss)
# Yang et al.'s Spearman correlations of test accuracy over their 169 CIFAR-10 cells (ResNet18 width x batch size)
YANG_SPEARMAN = {"cka": 0.89, "lambda_max": -0.88, "trace_hutchinson": -0.87, "mc": 0.61}
MEASURES = ("train_loss", "test_accuracy", "lambda_max", "trace_hutchinson")
PHASES = ("I", "II", "III", "IV-A", "IV-B")


def width_key(grid_keys) -> str:
    """The grid key that sets the width (one of :data:`WIDTH_KEYS`)."""
    found = [k for k in grid_keys if k in WIDTH_KEYS]
    if len(found) != 1:
        raise ValueError(f"a taxonomy sweep's grid has one width key, one of {', '.join(WIDTH_KEYS)}; got "
                         f"{', '.join(grid_keys)}")
    return found[0]


def taxonomy_axis(grid_keys) -> str:
    """The sweep's second axis: the one grid key besides width and seed (one of :data:`AXES`)."""
    others = [k for k in grid_keys if k not in (*WIDTH_KEYS, SEED_KEY)]
    if len(others) != 1 or others[0] not in AXES or SEED_KEY not in grid_keys:
        raise ValueError(f"a taxonomy sweep's grid is a width ({' or '.join(WIDTH_KEYS)}), one of {', '.join(AXES)}, "
                         f"and {SEED_KEY}; got {', '.join(grid_keys)}")
    width_key(grid_keys)
    return others[0]


def _number(value) -> float:
    """A number of a JSON summary, NaN where it is missing (the summaries store NaN as null)."""
    return math.nan if value is None else float(value)


def cell_table(runs: pd.DataFrame, connectivity: Mapping[str, Any]) -> pd.DataFrame:
    """One row per cell: ``runs`` is the sweep's run table (runs.csv), ``connectivity`` its connectivity summary."""
    by_run = runs.set_index("run")
    rows = []
    for condition, record in connectivity["conditions"].items():
        axis = taxonomy_axis(list(record["grid"]) + [SEED_KEY])
        missing = [run for run in record["runs"] if run not in by_run.index]
        if missing:
            raise ValueError(f"condition {condition}: runs {', '.join(missing)} are not in the run table; the table and "
                             "the connectivity summary are of different sweeps or grids (rebuild both)")
        seeds = by_run.loc[record["runs"]]
        mcs = np.asarray([_number(p["bezier"]["mc"]) for p in record["pairs"]], dtype=float)
        row = {"cell": condition, "width": json.dumps(record["grid"][width_key(record["grid"])]),
               "n_parameters": int(seeds["n_parameters"].iloc[0]), "axis_key": axis, "axis": record["grid"][axis],
               "seeds": len(seeds), "pairs": len(mcs)}
        for measure in MEASURES:
            values = seeds[measure].to_numpy(dtype=float) if measure in seeds else np.full(len(seeds), np.nan)
            row[measure] = float(np.mean(values))
            row[f"{measure}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        row["mc"] = float(mcs.mean()) if len(mcs) else float("nan")
        row["mc_se"] = float(mcs.std(ddof=1) / math.sqrt(len(mcs))) if len(mcs) > 1 else float("nan")
        row["line_mc"] = float(np.mean([_number(p["line"]["mc"]) for p in record["pairs"]])) if len(mcs) else math.nan
        row["cka"] = _number(record.get("cka"))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["n_parameters", "axis"], kind="stable").reset_index(drop=True)


def fitted(cells: pd.DataFrame, classes: int) -> pd.Series:
    """Whether each cell's train loss is below ``LOSS_FITTED`` x ln C (the one definition the phases and rows share)."""
    return cells["train_loss"] < LOSS_FITTED * math.log(classes)


def assign_phases(cells: pd.DataFrame, classes: int) -> pd.DataFrame:
    """``cells`` with the columns ``fitted``, ``poorly_connected`` and ``phase`` (see the module docstring)."""
    out = cells.copy()
    out["fitted"] = fitted(out, classes)
    out["poorly_connected"] = out["mc"] < -MC_CONNECTED
    phase = np.where(out["fitted"], np.where(out["poorly_connected"], "III", "IV"),
                     np.where(out["poorly_connected"], "I", "II")).astype(object)
    phase[out[["train_loss", "mc"]].isna().any(axis=1).to_numpy()] = "?"  # NaN compares false: no phase to claim
    cka = out["cka"].to_numpy(dtype=float)
    four = (phase == "IV") & np.isfinite(cka)
    if four.any():
        split = float(np.median(cka[four]))
        phase[four] = np.where(cka[four] >= split, "IV-B", "IV-A")
    out["phase"] = phase
    return out


def _pooled(cells: pd.DataFrame) -> tuple[float, float]:
    """The mean mc over cells and its standard error from the cells' own (over pairs)."""
    return float(cells["mc"].mean()), float(np.sqrt((cells["mc_se"] ** 2).sum()) / len(cells))


def _listing(cells: pd.DataFrame) -> str:
    return ", ".join(f"{a}: {m:+.2f} +- {s:.2f}" for a, m, s in zip(cells["axis"], cells["mc"], cells["mc_se"]))


EXACT_CELLS = 12  # up to this many cells rho_critical uses rho's exact null distribution (:func:`spearman_null`)
RHO_ROUNDING = 1e-9  # rho is computed in floating point; a rho within this of a critical value has not exceeded it


def spearman_null(count: int) -> np.ndarray:
    """How many of the n! orders of ``count`` untied cells have each value of S = sum_i (i - pi(i))^2 (index S;
    Spearman's rho = 1 - 6 S / (n (n^2 - 1))), by dynamic programming over which ranks are taken: the cell at
    position i = popcount(taken) takes a free rank j, adding (i - j)^2 to S. 2^n x (S_max + 1) counts, exact in
    integers (12! < 2^63), milliseconds up to 12 cells where listing the orders would take minutes.

    Example (three cells: the identity S = 0, two swaps of neighbours S = 2, two rotations S = 6, the reversal 8)::

        >>> spearman_null(3).tolist()
        [1, 0, 2, 0, 0, 0, 2, 0, 1]
    """
    s_max = count * (count * count - 1) // 3
    counts = np.zeros((1 << count, s_max + 1), dtype=np.int64)
    counts[0, 0] = 1
    for taken in range(1 << count):
        row = counts[taken]
        if not row.any():
            continue
        position = bin(taken).count("1")
        for rank in range(count):
            if not taken >> rank & 1:
                step = (position - rank) ** 2
                counts[taken | 1 << rank, step:] += row[:s_max + 1 - step]
    return counts[-1]


def rho_critical(count: int, level: float = 0.05) -> float:
    """The |rho| a row's rho must exceed to be told from a random order of ``count`` cells at ``level`` (two-sided).

    Up to EXACT_CELLS cells exactly: rho takes the values 1 - 6 S / (n (n^2 - 1)), and this is the largest value of
    |rho| that random orders (all n! equally likely, :func:`spearman_null`) reach with probability above ``level``,
    so that exceeding it has probability at most ``level`` (four cells: even a perfect order has 1/12, so no row
    passes; five: only the perfect order, 1/60). Above, the t approximation under independence,
    t = rho sqrt((n - 2) / (1 - rho^2)) with n - 2 degrees of freedom: rho_c = t_c / sqrt(n - 2 + t_c^2), whose
    exceedance is about 5.2% at 13-14 cells and nearer 5% beyond. 1 (nothing can be decided) below four cells.
    Rows compare with a margin of RHO_ROUNDING, so that a rho computed one rounding above a critical value that
    random orders attain does not count as beyond it.

    Example (5 cells: rho must exceed 0.9, so only the perfect order decides; 30 cells: 0.36)::

        >>> round(rho_critical(5), 2), round(rho_critical(14), 2), round(rho_critical(30), 2)
        (0.9, 0.53, 0.36)
    """
    if count < 4:
        return 1.0
    if count <= EXACT_CELLS:
        return _exact_rho_critical(count, level)
    t = float(stats.t.ppf(1 - level / 2, count - 2))
    return t / math.sqrt(count - 2 + t * t)


@functools.lru_cache(maxsize=None)
def _exact_rho_critical(count: int, level: float) -> float:
    scale = count * (count * count - 1)
    null = spearman_null(count)
    magnitude = np.abs(scale - 6 * np.arange(len(null)))  # |rho| x scale, an integer for each S
    orders = np.bincount(magnitude, weights=null.astype(float), minlength=scale + 1)  # orders per |rho| x scale
    tails = np.cumsum(orders[::-1])[::-1] / null.sum()  # P(|rho| >= value / scale)
    attained = np.flatnonzero((orders > 0) & (tails > level))
    return float(attained.max()) / scale


def rho_interval(rho: float, count: int, level: float = 0.05) -> tuple[float, float]:
    """A two-sided ``1 - level`` confidence interval for a Spearman correlation measured as ``rho`` over ``count``
    cells: Fisher's z = artanh(rho) is near normal with standard error sqrt((1 + rho^2 / 2) / (n - 3)) (Bonett and
    Wright 2000's variance for Spearman's rho, wider than Pearson's 1 / sqrt(n - 3); its coverage is a little above
    95% for few cells and a weak correlation); the interval is tanh(z -+ z_c se). (-1, 1) (nothing excluded) below
    four cells, for an undefined rho, or at |rho| = 1, where z is infinite.

    Example (CKA's rho over the 24 fitted cells of configs/phases.yaml's octave grid: Yang et al.'s +0.89 is
    excluded, a correlation of +0.5 is not)::

        >>> [round(v, 2) for v in rho_interval(0.24, 24)]
        [-0.19, 0.59]
    """
    if count < 4 or not math.isfinite(rho) or abs(rho) >= 1 - RHO_ROUNDING:
        return -1.0, 1.0
    z = math.atanh(rho)
    half = float(stats.norm.ppf(1 - level / 2)) * math.sqrt((1 + rho * rho / 2) / (count - 3))
    return math.tanh(z - half), math.tanh(z + half)


def spearman_margin(count: int) -> float:
    """The |rho| a Spearman row over ``count`` cells must exceed to pass: a clear trend (RHO_DECIDED) beyond chance
    (:func:`rho_critical`); the row's tolerance."""
    return max(RHO_DECIDED, rho_critical(count))


def spearman_verdict(rho: float, count: int, positive: bool) -> str:
    """The verdict on "rho has the claimed sign, as a clear trend" over ``count`` cells: ``pass`` when rho is on the
    claimed side beyond both RHO_DECIDED and :func:`rho_critical` (a clear trend, and beyond what a random order of
    the cells reaches one time in twenty); ``FAIL`` when it is as far on the other side, or when its 95% interval
    (:func:`rho_interval`) stops short of RHO_DECIDED on the claimed side (the cells exclude a correlation as strong
    as a decided trend: a weak one is measured where a clear one is claimed); ``unresolved`` otherwise (too few
    cells to tell a weak correlation from a clear one, or rho undefined). Chance is judged by the test of
    independence (rho_critical), the strength by the interval, whose variance is that of a non-zero rho.

    Example (rho +0.24: unresolved over 24 cells, FAIL over 60, where the interval is -0.02..+0.47)::

        >>> spearman_verdict(0.24, 24, positive=True), spearman_verdict(0.24, 60, positive=True)
        ('unresolved', 'FAIL')
    """
    if not math.isfinite(rho):
        return "unresolved"
    signed = rho if positive else -rho
    decided = spearman_margin(count)
    high = rho_interval(signed, count)[1]
    if signed > decided + RHO_ROUNDING:
        return "pass"
    return "FAIL" if signed < -decided - RHO_ROUNDING or high < RHO_DECIDED else "unresolved"


def _spearman(cells: pd.DataFrame, measure: str) -> tuple[float, int]:
    """Spearman's rho of test accuracy with ``measure`` over the cells where both are finite, and how many; NaN where
    either side is constant or fewer than three cells remain (rho is undefined: unresolved)."""
    finite = np.isfinite(cells[measure].to_numpy(dtype=float)) & np.isfinite(cells["test_accuracy"].to_numpy(dtype=float))
    x, y = cells["test_accuracy"][finite], cells[measure][finite]
    count = int(finite.sum())
    return (float(stats.spearmanr(x, y)[0]) if count >= 3 and x.nunique() > 1 and y.nunique() > 1 else math.nan), count


def _within_widths(cells: pd.DataFrame, measure: str, least: int = 4) -> str:
    """rho within each width that has at least ``least`` of these cells, for the detail: a pooled rho mixes the
    trend across widths with the trend along the second axis, which may run the other way (CKA on
    configs/phases.yaml: rising across widths, falling within each)."""
    within = {width: _spearman(group, measure) for width, group in cells.groupby("width", sort=False)}
    shown = [f"{width} {rho:+.2f} ({count})" for width, (rho, count) in within.items()
             if count >= least and math.isfinite(rho)]
    return f"; within a width (cells): {', '.join(shown)}" if shown else ""


def taxonomy_rows(cells: pd.DataFrame, sweep: str, axis: str, classes: int = 10) -> list[CheckRow]:
    """The rows above for one sweep's cell table (``classes``: C, for which cells count as fitted)."""
    sizes = sorted(cells["n_parameters"].unique())
    smallest, widest = cells[cells["n_parameters"] == sizes[0]], cells[cells["n_parameters"] == sizes[-1]]
    largest = widest[fitted(widest, classes)]
    rows = []
    mean, se = _pooled(smallest)
    rows.append(CheckRow.exceeds(
        "taxonomy_small_width_poorly_connected", f"{sweep}: width {smallest['width'].iloc[0]} (N = {sizes[0]})",
        "mode connectivity mc (points of training error), mean over the smallest width's cells < 0", 0.0, mean,
        SIGMAS * se, above=False, detail=f"mc per {axis}: {_listing(smallest)}"))
    mean, se = _pooled(largest) if len(largest) else (math.nan, math.nan)
    rows.append(CheckRow.exceeds(
        "taxonomy_large_width_well_connected", f"{sweep}: width {widest['width'].iloc[0]} (N = {sizes[-1]})",
        f"|mc|, mean over the largest width's fitted cells (train loss < {LOSS_FITTED:g} ln C) < {MC_CONNECTED:g}",
        MC_CONNECTED, abs(mean), SIGMAS * se, above=False,
        detail=(f"{len(largest)} of {len(widest)} cells fitted, mean mc {mean:+.2f}; " if len(largest) else
                "no cell of this width fitted: nothing to judge; ") + f"every cell's mc per {axis}: {_listing(widest)}"))
    order = cells.sort_values("test_accuracy", ascending=False)
    best = order.iloc[0]
    runners = ", ".join(f"{r.width}/{r.axis}: {r.test_accuracy:.3f} (mc {r.mc:+.2f})" for r in order.iloc[1:4].itertuples())
    rows.append(CheckRow.exceeds(
        "taxonomy_best_cell_well_connected", f"{sweep}: best test accuracy, width {best['width']}, {axis} {best['axis']}",
        f"|mc| in the cell of the highest mean test accuracy < {MC_CONNECTED:g}", MC_CONNECTED, abs(best["mc"]),
        SIGMAS * best["mc_se"], above=False,
        detail=f"test accuracy {best['test_accuracy']:.3f} +- {best.get('test_accuracy_std', math.nan):.3f} (seeds), mc "
               f"{best['mc']:+.2f}, phase {best.get('phase', '?')}; next: {runners}"))
    trained = cells[fitted(cells, classes)]
    for measure, theirs in YANG_SPEARMAN.items():
        rho, count = _spearman(trained, measure)
        everywhere, total = _spearman(cells, measure)
        low, high = rho_interval(rho, count)
        interval = f"95% interval {low:+.2f} to {high:+.2f}; " if (low, high) != (-1.0, 1.0) else ""
        rows.append(CheckRow(
            f"taxonomy_spearman_{measure}", f"{sweep}: {count} fitted cells of {len(cells)}",
            f"Spearman rho of test accuracy with {measure} over the fitted cells (train loss < {LOSS_FITTED:g} ln C), "
            f"{'>' if theirs > 0 else '<'} 0 (pass beyond {RHO_DECIDED:g} and the 5% critical value for {count} "
            f"cells; FAIL as far the other way or where the 95% interval lies {'below +' if theirs > 0 else 'above -'}"
            f"{RHO_DECIDED:g})", 0.0, rho,
            spearman_margin(count), spearman_verdict(rho, count, positive=theirs > 0),
            detail=f"{interval}Yang et al. (CIFAR-10, 169 cells): {theirs:+.2f}; over all {total} cells here, "
                   f"under-fitted ones included: {everywhere:+.2f}{_within_widths(trained, measure)}"))
    if axis == NOISE_KEY:
        levels = sorted(cells["axis"].unique())
        clean, noisy = cells[cells["axis"] == levels[0]], cells[cells["axis"] == levels[-1]]
        (m_clean, se_clean), (m_noisy, se_noisy) = _pooled(clean), _pooled(noisy)
        rows.append(CheckRow.exceeds(
            "taxonomy_noise_lowers_connectivity", f"{sweep}: label noise {levels[0]:g} vs {levels[-1]:g}",
            "mean mc over widths, clean labels minus the noisiest > 0", 0.0, m_clean - m_noisy,
            SIGMAS * math.hypot(se_clean, se_noisy),
            detail=f"mc at noise {levels[0]:g}: {m_clean:+.2f} +- {se_clean:.2f}; at {levels[-1]:g}: "
                   f"{m_noisy:+.2f} +- {se_noisy:.2f}"))
    return rows
