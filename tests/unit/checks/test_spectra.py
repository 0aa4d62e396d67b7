"""The bulk-and-outlier rows on run tables whose answer is known: each passes when its claim holds, fails when the
opposite holds, and runs without a dense spectrum (N above exact_max_parameters) are left out, not counted as NaN."""

from __future__ import annotations

import pandas as pd

from lossgeom.checks.spectra import spectra_rows


def _mixtures(outlier_change=2.0, bulk_change=1.1, gap_k=None):
    """k = 3 and 5 clusters at separations 0.25 and 0.5, two seeds; the outliers' mean and the bulk's median |lambda|
    scale by outlier_change and bulk_change from the smaller separation to the larger."""
    rows = []
    for clusters in (3, 5):
        for separation, factor in ((0.25, 1.0), (0.5, 1.0)):
            for seed in (0, 1):
                grow = separation == 0.5
                rows.append({"run": f"k{clusters}_s{separation}_{seed}", "dataset.clusters": clusters,
                             "dataset.separation": separation, "train.seed": seed, "classes": clusters,
                             "gap_k": clusters - 1 if gap_k is None else gap_k,
                             "outlier_mean": (outlier_change if grow else 1.0) * (1 + 0.01 * seed),
                             "bulk_abs_q50": (bulk_change if grow else 1.0) * 1e-3 * (1 + 0.01 * seed),
                             "bulk_abs_q90": 1e-2 * factor})
    return pd.DataFrame(rows)


def _verdicts(rows, check):
    return [r.verdict for r in rows if r.check == check]


def test_outliers_moving_more_than_the_bulk_pass_and_the_reverse_fails():
    rows = spectra_rows(_mixtures(), "demo")
    assert _verdicts(rows, "spectra_a_outlier_gap") == ["pass"] * 4
    assert _verdicts(rows, "spectra_a_data_moves_outliers") == ["pass", "pass"]
    reverse = spectra_rows(_mixtures(outlier_change=1.05, bulk_change=3.0), "demo")
    assert _verdicts(reverse, "spectra_a_data_moves_outliers") == ["FAIL", "FAIL"]


def test_a_gap_away_from_the_classes_fails():
    rows = spectra_rows(_mixtures(gap_k=1), "demo")
    assert _verdicts(rows, "spectra_a_outlier_gap") == ["FAIL"] * 4  # C - 1/2 +- 1/2 excludes 1 for C = 3 and 5


def test_runs_without_a_dense_spectrum_are_left_out():
    table = _mixtures()
    no_spectrum = table[table["dataset.clusters"] == 5].index
    table.loc[no_spectrum, ["outlier_mean", "bulk_abs_q50"]] = float("nan")
    rows = spectra_rows(table, "demo")
    moved = [r for r in rows if r.check == "spectra_a_data_moves_outliers"]
    assert [r.case for r in moved] == ["demo: clusters=3, separation 0.25 -> 0.5"] and moved[0].verdict == "pass"


def test_width_rows_compare_the_largest_and_smallest_model_with_a_spectrum():
    table = pd.DataFrame({"run": list("abcdef"), "model.hidden": ["[8]", "[8]", "[64]", "[64]", "[256]", "[256]"],
                          "train.seed": [0, 1] * 3, "n_parameters": [50, 50, 400, 400, 5000, 5000], "classes": 3,
                          "gap_k": 2, "near_zero_fraction": [0.3, 0.31, 0.1, 0.11, float("nan"), float("nan")]})
    width = [r for r in spectra_rows(table, "demo") if r.check == "spectra_a_width_bulk"]
    assert len(width) == 1 and width[0].verdict == "FAIL" and "N=400" in width[0].case  # [256] has no spectrum
