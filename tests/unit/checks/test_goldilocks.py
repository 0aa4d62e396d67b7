"""The Goldilocks rows on run tables whose answer is known: each claim passes when it holds, fails when the opposite
holds, is unresolved within the seeds' spread, and names the zone it found."""

from __future__ import annotations

import pandas as pd
import pytest

from lossgeom.checks.goldilocks import goldilocks_rows
from lossgeom.stages.check_sweep import compute as check_sweep

SCALES = (0.1, 1.0, 3.0, 30.0)


def _table(ratio=(1.0, 2.0, 3.5, 1.2), accuracy=(0.1, 0.6, 0.9, 0.2), dims=(8, 64), spread=0.01, d_gain=0.2):
    rows = []
    for scale, r, acc in zip(SCALES, ratio, accuracy):
        for k, d in enumerate(dims):
            for seed in (0, 1, 2):
                rows.append({"run": f"a={scale:g}_d={d}_s={seed}", "model.init_scale": scale, "train.subspace_dim": d,
                             "train.seed": seed, "subspace_ratio": r + spread * seed,
                             "test_accuracy": max(0.0, acc - d_gain * (len(dims) - 1 - k)) + spread * seed})
    return pd.DataFrame(rows)


def _verdicts(rows, check):
    return [r.verdict for r in rows if r.check == check]


def test_every_claim_passes_where_it_holds_and_the_zone_is_named():
    rows = goldilocks_rows(_table(), "demo")
    assert {r.verdict for r in rows} == {"pass"}
    assert _verdicts(rows, "goldilocks_e1_ratio_peak") == ["pass", "pass"]  # one per d
    e3 = [r for r in rows if r.check == "goldilocks_e3_dimension"]
    assert len(e3) == 1 and e3[0].case == "demo: alpha=3" and e3[0].measured == pytest.approx(0.2)
    assert "larger end alpha=30" in rows[0].detail and "largest interior at alpha=3" in rows[0].detail


def test_a_ratio_largest_at_an_end_fails():
    rows = goldilocks_rows(_table(ratio=(4.0, 2.0, 3.0, 1.2)), "demo")
    assert _verdicts(rows, "goldilocks_e1_ratio_peak") == ["FAIL", "FAIL"]


def test_training_better_outside_the_zone_fails_and_accuracy_falling_with_d_fails():
    rows = goldilocks_rows(_table(accuracy=(0.1, 0.6, 0.5, 0.9), d_gain=-0.2), "demo")
    assert _verdicts(rows, "goldilocks_e2_zone_training") == ["FAIL", "FAIL"]
    assert _verdicts(rows, "goldilocks_e3_dimension") == ["FAIL"]


def test_differences_within_the_seeds_spread_are_unresolved():
    rows = goldilocks_rows(_table(ratio=(1.0, 2.0, 1.05, 1.04), spread=0.3), "demo")
    assert _verdicts(rows, "goldilocks_e1_ratio_peak") == ["unresolved", "unresolved"]


def test_a_table_without_the_subspace_columns_is_refused_with_the_fix():
    with pytest.raises(Exception, match="model.init_scale and train.subspace_dim"):
        check_sweep(_table().drop(columns=["subspace_ratio"]), "demo", "goldilocks")


def test_full_training_runs_in_the_grid_are_left_out():
    """d = 0 trains all parameters (no subspace, no restricted Hessian): not a dimension of the rows."""
    table = _table()
    full = _table(dims=(0,)).assign(subspace_ratio=float("nan"), test_accuracy=0.99)
    rows = goldilocks_rows(pd.concat([table, full]), "demo")
    assert [r.verdict for r in rows] == [r.verdict for r in goldilocks_rows(table, "demo")]
    assert not any("d=0" in r.case + r.detail for r in rows)
