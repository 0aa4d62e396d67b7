"""The outlier gap and the bulk's share on spectra whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from lossgeom.engine.outliers import near_zero_fraction, outlier_gap


@pytest.mark.parametrize("outliers", [1, 4, 9])
def test_gap_sits_after_the_outliers(outliers):
    rng = np.random.default_rng(outliers)
    bulk = rng.uniform(0.01, 0.2, size=40)
    spikes = np.linspace(5.0, 2.0, outliers)
    found = outlier_gap(rng.permutation(np.concatenate([spikes, bulk])), k_max=20)
    assert found["k"] == outliers
    assert found["ratio"] == pytest.approx(spikes[-1] / bulk.max())
    assert found["second_ratio"] < found["ratio"]


def test_gap_skips_non_positive_neighbours_and_needs_enough_values():
    assert outlier_gap([3.0, 1.0, -1.0, -2.0], k_max=3)["k"] == 1
    assert outlier_gap([-1.0, -2.0, -3.0], k_max=2)["k"] is None
    with pytest.raises(ValueError, match="top 6"):
        outlier_gap([3.0, 2.0, 1.0], k_max=5)


def test_near_zero_fraction():
    assert near_zero_fraction([10.0, 5.0, 0.001, -0.005, 0.0]) == pytest.approx(0.6)
