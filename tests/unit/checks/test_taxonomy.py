"""Yang et al.'s taxonomy: cells from a run table and a connectivity summary, phases by the stated boundaries, and rows
that pass, fail or stay unresolved as the numbers say (each built from cells whose answer is known)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lossgeom.checks.rows import SIGMAS
from lossgeom.checks.taxonomy import (LOSS_FITTED, MC_CONNECTED, assign_phases, cell_table, rho_critical,
                                      rho_interval, spearman_null, spearman_verdict, taxonomy_axis,
                                      taxonomy_rows)
from lossgeom.checks.trends import RHO_DECIDED


def _cells(mc, axis_values=(16, 256), widths=((4,), (64,)), se=0.1, **columns):
    """A grid of cells: ``mc`` is {width index: [mc per axis value]}."""
    rows = []
    for w, width in enumerate(widths):
        for a, value in enumerate(axis_values):
            rows.append({"width": str(list(width)), "n_parameters": 100 * (w + 1), "axis": value,
                         "train_loss": 0.01, "test_accuracy": 0.5 + 0.1 * w - 0.01 * a, "test_accuracy_std": 0.01,
                         "lambda_max": 10.0 - w, "trace_hutchinson": 50.0 - w, "mc": mc[w][a], "mc_se": se,
                         "pairs": 3, "cka": 0.5 + 0.2 * w})
    cells = pd.DataFrame(rows)
    for key, values in columns.items():
        cells[key] = values
    return cells


def _row(rows, check):
    (row,) = [r for r in rows if r.check == check]
    return row


def test_the_axis_is_the_one_key_beside_width_and_seed():
    assert taxonomy_axis(["model.hidden", "train.batch_size", "train.seed"]) == "train.batch_size"
    assert taxonomy_axis(["dataset.label_noise", "model.hidden", "train.seed"]) == "dataset.label_noise"
    assert taxonomy_axis(["model.width", "train.batch_size", "train.seed"]) == "train.batch_size"  # ResNet-18's k
    for keys in (["model.hidden", "train.seed"], ["train.lr", "train.batch_size", "train.seed"],
                 ["model.hidden", "train.lr", "train.seed"], ["model.hidden", "train.batch_size", "train.lr"],
                 ["model.hidden", "model.width", "train.batch_size", "train.seed"], ["train.batch_size", "train.seed"]):
        with pytest.raises(ValueError, match="a taxonomy sweep's grid"):
            taxonomy_axis(keys)


def test_cells_average_seeds_and_pairs_and_come_in_order_of_size():
    runs = pd.DataFrame({"run": ["a0", "a1", "a2", "b0", "b1", "b2"], "n_parameters": [900] * 3 + [50] * 3,
                         "train_loss": [0.1, 0.2, 0.3, 1.0, 1.2, 1.4], "test_accuracy": [0.8, 0.7, 0.9, 0.4, 0.5, 0.3],
                         "lambda_max": [1.0, 2.0, 3.0, 5.0, 7.0, 9.0], "trace_hutchinson": [10.0, 20.0, 30.0, 1, 2, 3]})
    pair = lambda mc, line: {"bezier": {"mc": mc}, "line": {"mc": line}}  # noqa: E731
    summary = {"conditions": {
        "wide": {"runs": ["a0", "a1", "a2"], "grid": {"model.hidden": [30], "train.batch_size": 8},
                 "pairs": [pair(0.5, -10), pair(-0.5, -20), pair(1.5, -30)], "cka": 0.9},
        "narrow": {"runs": ["b0", "b1", "b2"], "grid": {"model.hidden": [2], "train.batch_size": 8},
                   "pairs": [pair(-6.0, -9), pair(-4.0, -9), pair(-8.0, -9)], "cka": 0.4}}}
    cells = cell_table(runs, summary)
    assert list(cells["cell"]) == ["narrow", "wide"]  # by N, not in the summary's order
    narrow = cells.iloc[0]
    assert narrow["mc"] == pytest.approx(-6.0) and narrow["mc_se"] == pytest.approx(2.0 / math.sqrt(3))
    assert narrow["train_loss"] == pytest.approx(1.2) and narrow["train_loss_std"] == pytest.approx(0.2)
    assert narrow["lambda_max"] == pytest.approx(7.0) and narrow["cka"] == 0.4 and narrow["line_mc"] == -9
    assert cells.iloc[1]["mc"] == pytest.approx(0.5) and cells.iloc[1]["width"] == "[30]"
    assert list(cells["axis_key"]) == ["train.batch_size"] * 2 and list(cells["axis"]) == [8, 8]


def test_missing_numbers_of_a_summary_are_nan_not_a_crash_and_give_no_phase():
    """A summary written to JSON stores NaN (a constant model's CKA, a diverged path's mc) as null."""
    runs = pd.DataFrame({"run": ["a", "b"], "n_parameters": [10, 10], "train_loss": [0.01, 0.01],
                         "test_accuracy": [0.5, 0.6], "lambda_max": [1.0, 1.0], "trace_hutchinson": [2.0, 2.0]})
    summary = {"conditions": {"c": {"runs": ["a", "b"], "grid": {"model.hidden": [4], "train.batch_size": 8},
                                    "pairs": [{"bezier": {"mc": None}, "line": {"mc": None}}], "cka": None}}}
    cells = assign_phases(cell_table(runs, summary), classes=10)
    assert math.isnan(cells["mc"].iloc[0]) and math.isnan(cells["cka"].iloc[0]) and cells["phase"].iloc[0] == "?"
    with pytest.raises(ValueError, match="runs b are not in the run table"):
        cell_table(runs.iloc[:1], summary)
    # phase IV without a CKA stays IV; the others split at their own median
    four = pd.DataFrame({"train_loss": [0.01] * 3, "mc": [0.0] * 3, "cka": [np.nan, 0.2, 0.9]})
    assert assign_phases(four, classes=10)["phase"].tolist() == ["IV", "IV-A", "IV-B"]


def test_phases_follow_loss_then_connectivity_then_cka():
    fitted, unfitted = 0.5 * LOSS_FITTED * math.log(10), 2.0 * LOSS_FITTED * math.log(10)
    cells = pd.DataFrame({"train_loss": [unfitted, unfitted, fitted, fitted, fitted, fitted, fitted],
                          "mc": [-10.0, 3.0, -10.0, 0.0, -MC_CONNECTED, 0.5, 1.0],
                          "cka": [0.9, 0.9, 0.9, 0.3, 0.6, 0.8, 0.95]})
    phases = assign_phases(cells, classes=10)["phase"].tolist()
    # mc = -MC_CONNECTED exactly is not poorly connected; phase IV splits at the median CKA of its cells (0.7)
    assert phases == ["I", "II", "III", "IV-A", "IV-A", "IV-B", "IV-B"]


def test_connectivity_rows_decide_on_the_pooled_mc_beyond_its_standard_error():
    clear = taxonomy_rows(_cells({0: [-10.0, -12.0], 1: [0.2, -0.3]}), "s", "train.batch_size")
    assert _row(clear, "taxonomy_small_width_poorly_connected").verdict == "pass"
    assert _row(clear, "taxonomy_large_width_well_connected").verdict == "pass"
    assert _row(clear, "taxonomy_best_cell_well_connected").verdict == "pass"  # the wide, small-batch cell: mc 0.2
    wrong = taxonomy_rows(_cells({0: [5.0, 6.0], 1: [-9.0, -8.0]}), "s", "train.batch_size")
    assert _row(wrong, "taxonomy_small_width_poorly_connected").verdict == "FAIL"
    assert _row(wrong, "taxonomy_large_width_well_connected").verdict == "FAIL"
    assert _row(wrong, "taxonomy_best_cell_well_connected").verdict == "FAIL"
    # a mean mc of -1 with cells' standard errors of 2: the pooled SE is 2 / sqrt(2), the margin 4 x that: undecided
    noisy = taxonomy_rows(_cells({0: [-1.0, -1.0], 1: [0.0, 0.0]}, se=2.0), "s", "train.batch_size")
    row = _row(noisy, "taxonomy_small_width_poorly_connected")
    assert row.verdict == "unresolved" and row.tolerance == pytest.approx(SIGMAS * 2.0 / math.sqrt(2))


def test_spearman_rows_carry_yang_et_al_s_signs():
    # nine cells: accuracy rises with width, CKA too, curvature falls (rho ~ 0.95, beyond 9 cells' critical 0.67)
    cells = _cells({0: [-10.0, -12.0, -11.0], 1: [-3.0, -4.0, -5.0], 2: [0.2, -0.3, 0.1]}, axis_values=(16, 64, 256),
                   widths=((4,), (16,), (64,)))
    rows = taxonomy_rows(cells, "s", "train.batch_size")
    for measure in ("cka", "lambda_max", "trace_hutchinson", "mc"):
        assert _row(rows, f"taxonomy_spearman_{measure}").verdict == "pass", measure
    reversed_cka = taxonomy_rows(cells.assign(cka=cells["cka"].to_numpy()[::-1]), "s", "train.batch_size")
    assert _row(reversed_cka, "taxonomy_spearman_cka").verdict == "FAIL"
    flat = taxonomy_rows(cells.assign(lambda_max=[1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 2.0, 2.0, 2.0]), "s", "train.batch_size")
    assert _row(flat, "taxonomy_spearman_lambda_max").verdict == "unresolved"  # rho 0
    missing = taxonomy_rows(cells.assign(cka=np.nan), "s", "train.batch_size")
    assert _row(missing, "taxonomy_spearman_cka").verdict == "unresolved"


def test_few_cells_decide_only_beyond_chance():
    """Four cells: a random order of four reaches rho = 0.8 one time in six and even a perfect order one time in
    twelve (two-sided), so no row passes on four cells; five cells pass on the perfect order only (1/60), not on one
    adjacent swap (rho = 0.9, which 10 of the 120 orders reach in either direction: 1/12)."""
    cells = _cells({0: [-10.0, -12.0], 1: [0.2, -0.3]})  # accuracy 0.5, 0.49, 0.6, 0.59
    near = taxonomy_rows(cells.assign(cka=[0.2, 0.3, 0.9, 0.8]), "s", "train.batch_size")  # one swap: rho 0.8
    row = _row(near, "taxonomy_spearman_cka")
    assert row.measured == pytest.approx(0.8) and row.verdict == "unresolved"
    assert row.tolerance == pytest.approx(rho_critical(4)) == 1.0
    perfect = taxonomy_rows(cells.assign(cka=[0.3, 0.2, 0.9, 0.8]), "s", "train.batch_size")
    assert _row(perfect, "taxonomy_spearman_cka").verdict == "unresolved"
    five = _cells({0: [-10.0] * 5}, axis_values=(16, 32, 64, 128, 256), widths=((4,),))  # accuracy falls with axis
    swap = taxonomy_rows(five.assign(cka=[5.0, 4.0, 2.0, 3.0, 1.0]), "s", "train.batch_size")
    assert _row(swap, "taxonomy_spearman_cka").measured == pytest.approx(0.9)
    assert _row(swap, "taxonomy_spearman_cka").verdict == "unresolved"
    order = taxonomy_rows(five.assign(cka=[5.0, 4.0, 3.0, 2.0, 1.0]), "s", "train.batch_size")
    assert _row(order, "taxonomy_spearman_cka").verdict == "pass"


@pytest.mark.parametrize("count,table", [(5, 1.000), (6, 0.886), (7, 0.786), (8, 0.738), (9, 0.700), (10, 0.648),
                                         (11, 0.618), (12, 0.587)])
def test_exact_rho_critical_is_the_attainable_value_below_the_published_table(count, table):
    """Published two-sided 5% critical values of Spearman's rho (Zar 1972: reject at rho >= the table value) are
    attainable values of rho; the value a row must exceed is the next attainable one below (steps of
    12 / (n (n^2 - 1)), since sum d^2 is even)."""
    assert rho_critical(count) == pytest.approx(table - 12 / (count * (count * count - 1)), abs=1e-3)


@pytest.mark.parametrize("count", [3, 4, 5, 6, 7])
def test_spearman_null_counts_every_order(count):
    """The dynamic programme's counts of S = sum d^2 equal those of listing all n! orders."""
    ranks = np.arange(count)
    listed = ((np.array(list(itertools.permutations(ranks))) - ranks) ** 2).sum(axis=1)
    null = spearman_null(count)
    assert null.sum() == math.factorial(count)
    assert np.array_equal(np.bincount(listed, minlength=len(null)), null)


@pytest.mark.parametrize("count", [4, 5, 6, 7])
def test_at_most_one_random_order_in_forty_passes_a_signed_claim(count):
    """Every order of the cells, with rho as scipy computes it (rounding included): at most 2.5% pass a claim of a
    positive correlation, and as many a negative one (the 5% two-sided level). At 6 and 7 cells the orders at the
    critical value itself (two-sided 5.8% and 6.6%) must not pass, although their rho comes out one rounding above
    it; from five cells on the perfect order passes."""
    accuracy = np.linspace(0.5, 0.7, count)
    rhos = [stats.spearmanr(accuracy, order)[0] for order in itertools.permutations(range(count))]
    for positive in (True, False):
        passed = sum(spearman_verdict(rho, count, positive) == "pass" for rho in rhos)
        assert passed / len(rhos) <= 0.025
        assert (passed > 0) == (count >= 5)


@pytest.mark.parametrize("count", [12, 30])
def test_rho_critical_is_the_two_sided_five_percent_point_of_random_orders(count):
    """Under independence (random permutations of the ranks) |rho| exceeds rho_critical(n) about 5% of the time
    (above EXACT_CELLS the t approximation; exact tables: 0.587 at 12, 0.362 at 30)."""
    rng = np.random.default_rng(0)
    ranks = np.arange(count)
    centred = ranks - ranks.mean()
    rhos = np.array([centred @ (rng.permutation(ranks) - ranks.mean()) for _ in range(40_000)]) / (centred @ centred)
    assert np.mean(np.abs(rhos) > rho_critical(count)) == pytest.approx(0.05, abs=0.015)


@pytest.mark.parametrize("count,correlation", [(12, 0.0), (24, 0.4), (46, 0.4), (46, 0.8)])
def test_rho_interval_covers_the_population_rho_95_percent_of_the_time(count, correlation):
    """Samples of a bivariate normal with Pearson correlation r, whose population Spearman rho is (6 / pi)
    arcsin(r / 2): the interval from each sample's rho holds it in about 95% of 4,000 samples (Pearson's narrower
    variance 1 / (n - 3) covers 93% at 46 cells and r = 0.8)."""
    rng = np.random.default_rng(1)
    cov = [[1.0, correlation], [correlation, 1.0]]
    samples = rng.multivariate_normal([0.0, 0.0], cov, size=(4_000, count))
    ranks = samples.argsort(axis=1).argsort(axis=1).astype(float)
    centred = ranks - ranks.mean(axis=1, keepdims=True)
    rhos = (centred[..., 0] * centred[..., 1]).sum(axis=1) / (centred[..., 0] ** 2).sum(axis=1)
    population = 6 / math.pi * math.asin(correlation / 2)
    covered = [low <= population <= high for low, high in (rho_interval(r, count) for r in rhos)]
    assert 0.935 <= np.mean(covered) <= 0.975  # ~4 binomial SD each way; a little conservative at 12 cells (0.963)


def test_a_weak_correlation_fails_once_enough_cells_exclude_a_clear_one():
    """rho ~ +0.2 where a clear positive correlation is claimed: over 12 cells the interval still reaches +0.5
    (unresolved); over 48 it stops short of it (FAIL); a clear rho passes, and the claim of a negative correlation
    judges the mirror image."""
    accuracy = np.linspace(0.5, 0.7, 48)
    cka = (5.0 * np.arange(48)) % 48  # the cells' order scrambled by a stride of 5: a weak trend is left
    rho = stats.spearmanr(accuracy, cka)[0]
    assert 0.1 < rho < 0.3
    assert rho_interval(rho, 48)[1] < RHO_DECIDED < rho_interval(rho, 12)[1]
    cells = pd.DataFrame({"width": "[64]", "n_parameters": 100, "axis": np.arange(48), "train_loss": 0.01,
                          "test_accuracy": accuracy, "test_accuracy_std": 0.01, "lambda_max": -cka,
                          "trace_hutchinson": -accuracy, "mc": 0.0, "mc_se": 0.1, "pairs": 3, "cka": cka})
    rows = taxonomy_rows(cells, "s", "train.batch_size")
    assert _row(rows, "taxonomy_spearman_cka").verdict == "FAIL"
    assert _row(rows, "taxonomy_spearman_lambda_max").verdict == "FAIL"  # claimed < 0, measured -rho
    assert _row(rows, "taxonomy_spearman_trace_hutchinson").verdict == "pass"
    assert "95% interval" in _row(rows, "taxonomy_spearman_cka").detail
    few = taxonomy_rows(cells.iloc[::4], "s", "train.batch_size")  # every fourth cell: 12
    few_rho = stats.spearmanr(accuracy[::4], cka[::4])[0]
    assert 0.1 < few_rho < RHO_DECIDED < rho_interval(few_rho, 12)[1]
    assert _row(few, "taxonomy_spearman_cka").verdict == "unresolved"
    assert spearman_verdict(0.6, 48, positive=True) == "pass" and spearman_verdict(-0.6, 48, positive=False) == "pass"
    assert spearman_verdict(0.4, 1000, positive=True) == "FAIL"  # measured precisely, and weaker than a clear trend
    assert spearman_verdict(math.nan, 48, positive=True) == "unresolved"


def test_the_detail_gives_rho_within_each_width():
    """Two widths of four cells: CKA and accuracy both higher at the larger width, but within each width CKA falls
    as accuracy rises. The pooled rho is positive; the detail shows -1 within each width."""
    cells = pd.DataFrame({"width": ["[4]"] * 4 + ["[64]"] * 4, "n_parameters": [100] * 4 + [200] * 4,
                          "axis": [16, 32, 64, 128] * 2, "train_loss": 0.01,
                          "test_accuracy": [0.50, 0.52, 0.54, 0.56, 0.60, 0.62, 0.64, 0.66], "test_accuracy_std": 0.01,
                          "lambda_max": 1.0, "trace_hutchinson": 1.0, "mc": 0.0, "mc_se": 0.1, "pairs": 3,
                          "cka": [0.34, 0.33, 0.32, 0.31, 0.84, 0.83, 0.82, 0.81]})
    row = _row(taxonomy_rows(cells, "s", "train.batch_size"), "taxonomy_spearman_cka")
    assert row.measured > 0
    assert "within a width (cells): [4] -1.00 (4), [64] -1.00 (4)" in row.detail
    three = taxonomy_rows(cells.drop(index=[0, 4]), "s", "train.batch_size")  # three cells per width: not shown
    assert "within a width" not in _row(three, "taxonomy_spearman_cka").detail


def test_spearman_rows_judge_the_fitted_cells_only():
    """Under-fitted cells (high CKA, low accuracy) reverse CKA's sign across the grid; over the fitted cells it has
    Yang et al.'s sign. With fewer than three fitted cells the rows stay unresolved, the all-cell rho in the detail."""
    unfitted = 2.0 * LOSS_FITTED * math.log(10)
    cells = pd.DataFrame({"width": ["[4]"] * 4 + ["[64]"] * 4, "n_parameters": [100] * 4 + [200] * 4,
                          "axis": [16, 32, 64, 256] * 2, "train_loss": [0.01, 0.01, 0.01, unfitted] * 2,
                          "test_accuracy": [0.6, 0.58, 0.55, 0.3, 0.7, 0.68, 0.65, 0.35], "test_accuracy_std": 0.01,
                          "lambda_max": [3.0, 3.5, 4.0, 9.0, 1.0, 1.5, 2.0, 8.0],
                          "trace_hutchinson": [30.0, 35, 40, 90, 10, 15, 20, 80],
                          "mc": [-1.0, -1.2, -1.5, 5.0, 0.5, 0.2, 0.0, 6.0], "mc_se": 0.1, "pairs": 3,
                          "cka": [0.5, 0.45, 0.4, 0.99, 0.8, 0.75, 0.7, 0.98]})
    rows = taxonomy_rows(cells, "s", "train.batch_size")
    cka = _row(rows, "taxonomy_spearman_cka")
    # fitted: accuracy 0.55 < 0.58 < 0.6 < 0.65 < 0.68 < 0.7 with CKA 0.4 < ... < 0.8, the same order
    assert cka.verdict == "pass" and cka.measured == pytest.approx(1.0) and "6 fitted cells of 8" in cka.case
    assert "over all 8 cells here, under-fitted ones included: -" in cka.detail  # the sign the whole grid shows
    assert _row(rows, "taxonomy_spearman_mc").verdict == "pass"  # the under-trained cells' mc > 0 left out
    few = taxonomy_rows(cells.assign(train_loss=[0.01, unfitted, unfitted, unfitted] * 2), "s", "train.batch_size")
    assert {_row(few, f"taxonomy_spearman_{m}").verdict for m in ("cka", "lambda_max", "trace_hutchinson", "mc")} == {
        "unresolved"}


def test_the_noise_row_only_with_label_noise_and_on_the_difference_of_the_ends():
    assert not [r for r in taxonomy_rows(_cells({0: [0, 0], 1: [0, 0]}), "s", "train.batch_size")
                if r.check == "taxonomy_noise_lowers_connectivity"]
    lower = _cells({0: [-1.0, -9.0], 1: [0.0, -6.0]}, axis_values=(0.0, 0.4))
    row = _row(taxonomy_rows(lower, "s", "dataset.label_noise"), "taxonomy_noise_lowers_connectivity")
    assert row.verdict == "pass" and row.measured == pytest.approx(7.0)
    higher = _cells({0: [-9.0, -1.0], 1: [-6.0, 0.0]}, axis_values=(0.0, 0.4))
    assert _row(taxonomy_rows(higher, "s", "dataset.label_noise"), "taxonomy_noise_lowers_connectivity").verdict == "FAIL"


def test_the_large_width_row_judges_the_fitted_cells_only():
    """An under-trained cell's mc is positive whatever the landscape; the wide cells that fitted decide the row, and
    with none fitted it is unresolved."""
    high = 2.0 * LOSS_FITTED * math.log(10)
    cells = _cells({0: [-10.0, -12.0], 1: [0.2, 15.0]}, train_loss=[1.5, 1.5, 0.01, high])
    row = _row(taxonomy_rows(cells, "s", "train.batch_size"), "taxonomy_large_width_well_connected")
    assert row.verdict == "pass" and row.measured == pytest.approx(0.2) and "1 of 2 cells fitted" in row.detail
    unfitted = cells.assign(train_loss=high)
    row = _row(taxonomy_rows(unfitted, "s", "train.batch_size"), "taxonomy_large_width_well_connected")
    assert row.verdict == "unresolved" and "no cell of this width fitted" in row.detail
