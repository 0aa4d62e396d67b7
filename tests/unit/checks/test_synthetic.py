"""Theory-vs-measurement checks on quadratic saddles: they pass where theory holds and fail where it does not."""

from __future__ import annotations

import numpy as np
import pytest

from lossgeom.checks.rows import CheckRow, rows_to_frame
from lossgeom.settings.checks import SyntheticCheckSettings
from lossgeom.stages import check_synthetic
from lossgeom.geometry.curvature import random_projections
from lossgeom.theory.projections import saddle_fraction_clt, saddle_fraction_eigenbasis, saddle_fraction_spiked
from lossgeom.theory.spectra import quadratic_operator, saddle_spectrum


@pytest.fixture(scope="module")
def small_run():
    settings = SyntheticCheckSettings(dimensions=(10, 300), mean_curvatures=(0.5, -0.5, 0.0), projections=300,
                                      prediction_samples=5000, seed=0)
    return check_synthetic.compute(settings)[0]


def test_every_quantity_checked_for_every_case(small_run):
    assert len(small_run) == 2 * 3 * 6
    assert set(small_run["verdict"]) == {"pass"}, small_run[small_run["verdict"] != "pass"].to_string()
    hessian_rows = small_run[small_run["check"] == "synthetic_hessian_projection"]
    assert (hessian_rows["measured"] == 1.0).all()


def test_random_projections_hide_saddles_with_nonzero_mean_curvature(small_run):
    fraction = small_run[small_run["quantity"] == "fraction of projections showing a saddle"].set_index("case")["measured"]
    assert fraction["N=300, tr(H)/N=+0.5"] == 0.0 and fraction["N=300, tr(H)/N=-0.5"] == 0.0
    assert fraction["N=300, tr(H)/N=+0"] > 0.5


def test_a_wrong_theory_fails():
    """The same measurement against the trace of another spectrum must show FAIL."""
    op = quadratic_operator(saddle_spectrum(200, 0.5))
    m11 = random_projections(op, 200, seed=0)[:, 0]
    wrong = saddle_spectrum(200, 0.3).sum()
    row = CheckRow.compare("x", "y", "mean", wrong, m11.mean(), np.sqrt(2 * (saddle_spectrum(200, 0.3) ** 2).sum() / 200))
    assert not row.passed
    assert rows_to_frame([row])["verdict"].item() == "FAIL"


def test_saddle_fraction_predictions_agree_for_large_n():
    lam = saddle_spectrum(3000, 0.02)
    exact = saddle_fraction_eigenbasis(lam, 4000, seed=1)
    clt = saddle_fraction_clt(lam.sum(), (lam**2).sum(), 200_000, seed=1)
    assert abs(exact - clt) <= 4 * np.sqrt(exact * (1 - exact) / 4000 + 1e-12)
    assert 0.05 < exact < 0.95


def test_two_dimensional_closed_form():
    """N = 2, lam = (1, -1): det M = -(eta1 delta2 - eta2 delta1)^2 <= 0 always, a saddle with probability 1."""
    assert saddle_fraction_eigenbasis(np.array([1.0, -1.0]), 2000, seed=0) == 1.0


def test_spiked_prediction_handles_outliers_where_the_plain_central_limit_fails():
    """A bulk near zero plus a few large outliers (like a trained network): the outliers dominate tr(H^2)."""
    bulk = 0.02 * np.linspace(-1.0, 1.0, 2000)
    outliers = np.array([30.0, 12.0, -0.5])
    lam = np.concatenate([bulk, outliers])
    exact = saddle_fraction_eigenbasis(lam, 20_000, seed=1)
    spiked = saddle_fraction_spiked(outliers, lam.sum(), (lam**2).sum(), 200_000, seed=2)
    plain = saddle_fraction_clt(lam.sum(), (lam**2).sum(), 200_000, seed=2)
    se = np.sqrt(exact * (1 - exact) / 20_000 + spiked * (1 - spiked) / 200_000)
    assert abs(spiked - exact) <= 4 * se, (spiked, exact)
    assert abs(plain - exact) > 10 * se, "the plain central limit is far off here, which is why outliers are kept"
    assert saddle_fraction_spiked([], lam.sum(), (lam**2).sum(), 100_000, seed=3) == pytest.approx(
        saddle_fraction_clt(lam.sum(), (lam**2).sum(), 100_000, seed=4), abs=0.01)
