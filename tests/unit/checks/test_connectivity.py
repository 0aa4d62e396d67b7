"""The connectivity rows on summaries whose answer is known: each claim passes where it holds, fails where the
opposite holds, and is unresolved where the measurement cannot decide (no barrier to remove, one seed pair)."""

from __future__ import annotations

from lossgeom.checks.connectivity import connectivity_rows


def _pair(line, curve, ends=(0.01, 0.01)):
    return {"start": "a", "end": "b", "line": {"loss_barrier": line, "mc": -10.0, "end_losses": list(ends)},
            "bezier": {"loss_barrier": curve, "mc": 0.0, "end_losses": list(ends)}}


def _summary(lines=(0.5, 0.55, 0.6), curves=(0.01, 0.02, 0.0), simplex_mean=0.015, continued=(0.0, 0.01)):
    pairs = [_pair(line, curve) for line, curve in zip(lines, curves)]
    return {"conditions": {"batch_size=32": {"runs": ["s0", "s1", "s2"], "pairs": pairs,
                                             "simplex": {"mean": simplex_mean, "max": 0.05, "standard_error": 0.001,
                                                         "vertices_mean": 0.01, "vertices": ["s0", "s1", "s2"],
                                                         "faces": [[0, 3, 4], [1, 3, 4], [2, 3, 4]]}}},
            "continued": [{"run": f"l{i}", "from_batch": 512, "to_batch": 32, "small_condition": "batch_size=32",
                           "loss_barrier": b, "distance": 5.0} for i, b in enumerate(continued)]}


def _verdicts(summary):
    return {r.check: r.verdict for r in connectivity_rows(summary, "demo")}


def test_every_claim_passes_where_it_holds():
    assert _verdicts(_summary()) == {"global_seeds_barrier": "pass", "global_bezier_removes_barrier": "pass",
                                     "global_simplex_low_loss": "pass", "global_large_small_batch_one_basin": "pass"}


def test_each_claim_fails_where_the_opposite_holds():
    verdicts = _verdicts(_summary(curves=(0.01, 0.3, 0.0), simplex_mean=0.05, continued=(0.0, 0.4)))
    assert verdicts["global_bezier_removes_barrier"] == "FAIL"  # one pair keeps half its barrier: the worst pair counts
    assert verdicts["global_simplex_low_loss"] == "FAIL"  # 5x the vertices' mean
    assert verdicts["global_large_small_batch_one_basin"] == "FAIL"  # a barrier 0.4 / 0.55 of the seeds'


def test_no_barrier_to_remove_and_a_single_pair_are_unresolved():
    flat = _verdicts(_summary(lines=(0.0001, 0.0002, 0.0001), curves=(0.0, 0.0, 0.0)))
    assert flat["global_bezier_removes_barrier"] == "unresolved"  # below 5% of the ends' loss: nothing to remove
    assert flat["global_seeds_barrier"] == "FAIL"  # and no barrier between the seeds either
    one = _summary(lines=(0.5,), curves=(0.0,))
    assert _verdicts(one)["global_seeds_barrier"] == "unresolved"  # one pair: the spread over pairs is unknown


def test_a_barrier_below_the_ends_loss_fails():
    """A barrier is >= 0 by construction; the claim is that it matters: above the ends' own loss (0.01 here)."""
    summary = _summary(lines=(0.001, 0.002, 0.0015))
    assert _verdicts(summary)["global_seeds_barrier"] == "FAIL"


def test_a_diverged_path_leaves_the_row_unresolved_not_passed():
    """A NaN barrier (a fit that diverged) hides the worst pair: the row cannot pass on the others."""
    summary = _summary(curves=(0.01, float("nan"), 0.0))
    assert _verdicts(summary)["global_bezier_removes_barrier"] == "unresolved"
    summary = _summary(continued=(0.0, float("nan")))
    assert _verdicts(summary)["global_large_small_batch_one_basin"] == "unresolved"


def test_one_large_to_small_row_per_small_batch_condition():
    summary = _summary()
    summary["conditions"]["batch_size=32, width=8"] = summary["conditions"]["batch_size=32"]
    summary["continued"].append({"run": "w8", "from_batch": 512, "to_batch": 32, "loss_barrier": 0.5,
                                 "small_condition": "batch_size=32, width=8", "distance": 5.0})
    rows = [r for r in connectivity_rows(summary, "demo") if r.check == "global_large_small_batch_one_basin"]
    assert [r.verdict for r in rows] == ["pass", "FAIL"] and "width=8" in rows[1].case
