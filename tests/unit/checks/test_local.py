"""The local-phenomena rows on trajectory tables whose answer is known: each claim passes when it holds, fails when
the opposite holds, and reports the seeds."""

from __future__ import annotations

import pandas as pd
import pytest

from lossgeom.checks.local import local_rows, outlier_rows, transient_rows
from lossgeom.stages.check_sweep import compute as check_sweep

STEPS = [0, 10, 100, 1000]


def _table(peak_small=3.0, gap_end=9, gap_init=3, ggn=(0.9, 0.6, 0.2, 0.01), overlap=0.5, same=0.7, different=0.0):
    rows = []
    for scale in (0.1, 10.0):
        for seed in (0, 1, 2):
            wobble = 1 + 0.01 * seed
            lam = [1.0, peak_small * wobble, 1.1, 1.2] if scale == 0.1 else [5.0, 4.0, 3.0, 2.0]
            for i, step in enumerate(STEPS):
                rows.append({"run": f"init_scale={scale:g}_seed={seed}", "model.init_scale": scale, "train.seed": seed,
                             "step": step, "classes": 10, "lambda_max": lam[i] * wobble,
                             "gap_k": gap_init if step == 0 else gap_end, "gap_ratio": 1.5, "gap_second_ratio": 1.2,
                             "ggn_distance": ggn[i] * wobble,
                             "ggn_distance_se": 0.01, "overlap_k10": overlap, "overlap_baseline_k10": 10 / 3000,
                             "cos_same_logit_same_class": same, "cos_same_logit_different_class": same - 0.1,
                             "cos_different_logits": different + 0.01 * seed})
    return pd.DataFrame(rows)


def _verdicts(rows, check):
    return [r.verdict for r in rows if r.check == check]


def test_every_claim_passes_on_a_table_where_it_holds():
    rows = local_rows(_table(), "demo")
    assert {r.verdict for r in rows} == {"pass"}, [(r.check, r.case, r.verdict) for r in rows if r.verdict != "pass"]
    assert {r.check for r in rows} == {"local_a_outliers", "local_b_gauss_newton", "local_c_gradient_overlap",
                                       "local_d_transient_curvature", "local_f_logit_clustering"}
    assert all("per seed" in r.detail for r in rows)


@pytest.mark.parametrize("change, check", [
    (dict(gap_end=4), "local_a_outliers"),
    (dict(gap_init=9), "local_a_outliers"),
    (dict(ggn=(0.9, 0.2, 0.6, 0.8)), "local_b_gauss_newton"),
    (dict(overlap=0.01), "local_c_gradient_overlap"),
    (dict(peak_small=0.5), "local_d_transient_curvature"),
    (dict(same=0.0, different=0.5), "local_f_logit_clustering"),
])
def test_each_claim_fails_when_its_opposite_holds(change, check):
    assert "FAIL" in _verdicts(local_rows(_table(**change), "demo"), check)


def test_a_gap_at_initialization_counts_only_when_distinct():
    table = _table(gap_init=9)
    table.loc[table["step"] == 0, "gap_second_ratio"] = 1.45  # 1.5 is within 10% of the next ratio: no distinct gap
    rows = [r for r in outlier_rows(table, "demo") if "initialization" in r.quantity]
    assert [r.verdict for r in rows] == ["pass", "pass"]
    table.loc[(table["step"] == 0) & (table["train.seed"] == 1), "gap_second_ratio"] = 1.2
    rows = [r for r in outlier_rows(table, "demo") if "initialization" in r.quantity]
    assert [r.measured for r in rows] == [1.0, 1.0] and {r.verdict for r in rows} == {"FAIL"}


def test_overlap_is_judged_during_training_not_at_the_end():
    table = _table()
    table.loc[table["step"] == 1000, "overlap_k10"] = 0.005  # at interpolation the gradient leaves the top space
    assert {r.verdict for r in local_rows(table, "demo") if r.check == "local_c_gradient_overlap"} == {"pass"}
    table.loc[table["step"] == 100, "overlap_k10"] = 0.005
    table.loc[table["step"] == 10, "overlap_k10"] = 0.005  # the median of the interior is now below 10 x baseline
    assert {r.verdict for r in local_rows(table, "demo") if r.check == "local_c_gradient_overlap"} == {"FAIL"}


def test_gap_at_c_also_passes_and_the_worst_seed_is_reported():
    table = _table(gap_end=10)
    rows = [r for r in outlier_rows(table, "demo") if "end" in r.quantity]
    assert [r.verdict for r in rows] == ["pass", "pass"] and rows[0].measured == 10
    table.loc[(table["train.seed"] == 2) & (table["step"] == 1000), "gap_k"] = 11
    assert [r for r in outlier_rows(table, "demo") if "end" in r.quantity][0].measured == 11


def test_transient_rows_need_two_scales_and_an_unknown_spread_is_unresolved():
    one_scale = _table()
    assert transient_rows(one_scale[one_scale["model.init_scale"] == 0.1], "demo") == []
    single_seed = _table()
    single_seed = single_seed[single_seed["train.seed"] == 0]
    assert {r.verdict for r in transient_rows(single_seed, "demo")} == {"unresolved"}


def test_a_table_without_local_columns_is_refused_with_the_fix():
    with pytest.raises(Exception, match="local: true"):
        check_sweep(_table().drop(columns=["gap_k"]), "demo")
