"""Verdicts mean something: a pass could have failed, and a measurement that cannot decide says so."""

from __future__ import annotations

import math

import pytest

from lossgeom.checks.rows import CheckRow, count_verdicts, rows_to_frame, verdict


@pytest.mark.parametrize("theory, measured, tolerance, expected", [
    (1.0, 1.05, 0.1, "pass"),
    (1.0, 1.5, 0.1, "FAIL"),
    (-0.33, 1.33, 5.1, "unresolved"),   # sines_mlp's kappa-: a tolerance this wide passes any sign
    (0.1, 0.3, 0.4, "unresolved"),      # would pass a measurement of 0
    (0.0, 0.02, 0.1, "pass"),           # a claim of zero is decided by the tolerance alone
    (4.5e-13, -0.12, 10.3, "pass"),     # zero up to rounding is a claim of zero
    (0.0, 0.5, 0.1, "FAIL"),
    (1.0, 1.0, math.nan, "unresolved"),  # an input's uncertainty unknown
    (math.nan, 1.0, 0.1, "unresolved"),
])
def test_verdicts(theory, measured, tolerance, expected):
    assert verdict(theory, measured, tolerance) == expected


@pytest.mark.parametrize("measured, tolerance, scale, expected", [
    (41.1, 44.2, 3.3, "unresolved"),  # a bias 'consistent with 0' only because the error bar is 13 x tr(H)
    (0.003, 0.006, 81.0, "pass"),
    (12.5, 2.9, 3.3, "FAIL"),
])
def test_a_claim_of_zero_is_judged_against_the_size_that_matters(measured, tolerance, scale, expected):
    assert verdict(0.0, measured, tolerance, scale=scale) == expected


def test_an_undecidable_input_makes_the_row_unresolved_whatever_the_numbers():
    row = CheckRow.within("c", "x", "q", 1.0, 1.0, 0.0, "the eigensolver did not converge", decidable=False)
    assert row.verdict == "unresolved" and not row.passed


def test_an_unknown_standard_error_is_unresolved():
    assert CheckRow.compare("c", "x", "q", 2.0, 2.0, None).verdict == "unresolved"


def test_the_table_counts_all_three_verdicts():
    rows = [CheckRow.compare("c", "x", "q", 1.0, 1.0, 0.01), CheckRow.compare("c", "x", "q", 1.0, 3.0, 0.01),
            CheckRow.compare("c", "x", "q", 1.0, 1.0, 1.0)]
    frame = rows_to_frame(rows)
    assert list(frame.columns)[-1] == "verdict"
    assert count_verdicts(frame) == {"pass": 1, "FAIL": 1, "unresolved": 1}


@pytest.mark.parametrize("above, measured, expected", [
    (True, 1.5, "pass"), (True, 1.05, "unresolved"), (True, 0.95, "unresolved"), (True, 0.5, "FAIL"),
    (False, 0.5, "pass"), (False, 0.95, "unresolved"), (False, 1.5, "FAIL"),
])
def test_one_sided_rows_decide_beyond_their_margin(above, measured, expected):
    row = CheckRow.exceeds("c", "case", "q", 1.0, measured, margin=0.1, above=above)
    assert row.verdict == expected
    assert (row.theory, row.tolerance) == (1.0, 0.1)


def test_one_sided_rows_without_a_margin_or_undecidable_are_unresolved():
    assert CheckRow.exceeds("c", "case", "q", 1.0, 5.0, margin=float("nan")).verdict == "unresolved"
    assert CheckRow.exceeds("c", "case", "q", 1.0, 5.0, margin=0.1, decidable=False).verdict == "unresolved"
