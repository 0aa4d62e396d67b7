"""Checks of how independently trained solutions connect, from the connectivity step's summary
(:mod:`lossgeom.stages.connectivity`; Sagun et al. 2017, Garipov et al. 2018, Fort & Jastrzebski 2019).

Barriers are of the full training loss along a path, above the straight line between its ends' losses. Per condition
(the grid values other than the seed):

- independent seeds are separated by a barrier on the straight line: the line's barrier exceeds its ends' mean loss
  (the loss at least doubles on the way; a barrier is >= 0 by construction, so "> 0" could not fail): the mean over
  seed pairs of (barrier - ends' mean loss) > 0 beyond SIGMAS standard errors of the pairs' spread;
- a trained Bezier curve removes it: on every pair the curve's barrier is below REMOVED x the line's (decided only
  where the line has a barrier, i.e. more than BARRIER_FLOOR x the ends' mean loss);
- the simplicial complex joining three or more seeds through trained connectors is low-loss: its mean training loss over
  uniform points is at most SIMPLEX_FACTOR x the vertices' mean (Fort & Jastrzebski's criterion as the issue states
  it), beyond SIGMAS standard errors of the sampled mean.

Small vs large batch (Sagun et al.): on the straight line from each large-batch solution to small-batch training
continued from it, the barrier is below REMOVED x the mean line barrier between independent small-batch seeds (the
same comparison Sagun et al. draw: no barrier where independent solutions show one).

Example (three pairs with barriers 0.5 +- 0.02 on the line and none on the curve)::

    >>> pair = lambda line, curve: {"line": {"loss_barrier": line, "mc": -20.0, "end_losses": [0.1, 0.1]},
    ...                             "bezier": {"loss_barrier": curve, "mc": 0.0, "end_losses": [0.1, 0.1]}}
    >>> summary = {"conditions": {"all runs": {"pairs": [pair(0.5, 0.0), pair(0.48, 0.01), pair(0.52, 0.0)]}},
    ...            "continued": []}
    >>> [(r.check, r.verdict) for r in connectivity_rows(summary, "demo")]
    [('global_seeds_barrier', 'pass'), ('global_bezier_removes_barrier', 'pass')]
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .rows import SIGMAS, CheckRow

REMOVED = 0.2  # a barrier counts as removed when it is below this fraction of the one compared with
BARRIER_FLOOR = 0.05  # a line barrier below this fraction of its ends' mean loss is no barrier to remove
SIMPLEX_FACTOR = 2.0  # the simplex's mean loss is at most this many times its vertices' mean


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def _listing(pairs, kind: str) -> str:
    return ", ".join(f"{p.get('start', '?')}--{p.get('end', '?')}: {p[kind]['loss_barrier']:.3g} (mc {p[kind]['mc']:.3g})"
                     for p in pairs)


def seed_rows(condition: str, record: Mapping[str, Any], sweep: str) -> list[CheckRow]:
    pairs = record.get("pairs", [])
    if not pairs:
        return []
    case = f"{sweep}: {condition}"
    excess = [p["line"]["loss_barrier"] - float(np.mean(p["line"]["end_losses"])) for p in pairs]
    mean, se = _mean_se(excess)
    rows = [CheckRow.exceeds("global_seeds_barrier", case, "barrier of the training loss on the straight line between "
                             "independent seeds minus its ends' mean loss, mean over pairs > 0", 0.0, mean, SIGMAS * se,
                             detail=f"{len(pairs)} pairs, barrier (mc): {_listing(pairs, 'line')}; ends' mean loss "
                             + ", ".join(f"{float(np.mean(p['line']['end_losses'])):.3g}" for p in pairs))]
    ratios, decidable = [], True
    for p in pairs:
        ends = float(np.mean(p["line"]["end_losses"]))
        decidable &= p["line"]["loss_barrier"] > BARRIER_FLOOR * ends
        ratios.append(p["bezier"]["loss_barrier"] / p["line"]["loss_barrier"] if p["line"]["loss_barrier"] > 0
                      else float("nan"))  # no barrier: the ratio is undefined
    # np.max, not max: a NaN (a diverged path) makes the worst pair unknown, hence the row unresolved
    rows.append(CheckRow.exceeds(
        "global_bezier_removes_barrier", case, f"Bezier curve's barrier / the straight line's, worst pair < {REMOVED:g}",
        REMOVED, float(np.max(ratios)), 0.0, above=False, decidable=decidable,
        detail=("" if decidable else f"a line barrier below {BARRIER_FLOOR:g} x its ends' loss: nothing to remove; ")
        + f"curve: {_listing(pairs, 'bezier')}"))
    simplex = record.get("simplex")
    if simplex:
        ratio = simplex["mean"] / simplex["vertices_mean"]
        rows.append(CheckRow.exceeds(
            "global_simplex_low_loss", case, f"mean training loss on the simplex / its vertices' mean <= "
            f"{SIMPLEX_FACTOR:g}", SIMPLEX_FACTOR, ratio, SIGMAS * simplex["standard_error"] / simplex["vertices_mean"],
            above=False, detail=f"{len(simplex['vertices'])} vertices, {len(simplex['faces'])} simplices of "
            f"{len(simplex['faces'][0])} corners (connectors {simplex.get('connector_distance', float('nan')):.3g} apart, "
            f"seeds {simplex.get('seed_distance', float('nan')):.3g}); mean {simplex['mean']:.4g}, max "
            f"{simplex['max']:.4g}, vertices' mean "
            f"{simplex['vertices_mean']:.4g}"))
    return rows


def large_to_small_rows(summary: Mapping[str, Any], sweep: str) -> list[CheckRow]:
    """One row per small-batch condition the large-batch runs were continued into."""
    groups: dict[str, list] = {}
    for item in summary.get("continued", []):
        groups.setdefault(item["small_condition"], []).append(item)
    rows = []
    for small, continued in groups.items():
        reference = summary["conditions"].get(small, {}).get("pairs", [])
        seeds_barrier = float(np.mean([p["line"]["loss_barrier"] for p in reference])) if reference else float("nan")
        ends = float(np.mean([np.mean(p["line"]["end_losses"]) for p in reference])) if reference else float("nan")
        worst = float(np.max([c["loss_barrier"] for c in continued]))  # NaN stays NaN: unresolved
        listing = ", ".join(f"{c['run']}: {c['loss_barrier']:.3g} (distance {c['distance']:.3g})" for c in continued)
        decidable = math.isfinite(seeds_barrier) and seeds_barrier > BARRIER_FLOOR * ends
        rows.append(CheckRow.exceeds(
            "global_large_small_batch_one_basin", f"{sweep}: batch {continued[0]['from_batch']} -> "
            f"{continued[0]['to_batch']} continued ({small})", f"barrier on the line large-batch solution -> "
            f"small-batch training continued from it, worst run / independent small-batch seeds' mean line barrier < "
            f"{REMOVED:g}", REMOVED, worst / seeds_barrier if decidable else float("nan"), 0.0, above=False,
            decidable=decidable,
            detail=("" if decidable else "the small-batch seeds show no barrier to compare with; ")
            + f"seeds' mean line barrier {seeds_barrier:.3g} ({small}); {listing}"))
    return rows


def connectivity_rows(summary: Mapping[str, Any], sweep: str) -> list[CheckRow]:
    """Every row above for one sweep's connectivity summary."""
    rows = []
    for condition, record in summary["conditions"].items():
        rows += seed_rows(condition, record, sweep)
    return rows + large_to_small_rows(summary, sweep)
