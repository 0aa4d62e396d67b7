"""The running trace estimates behind figure F4, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from lossgeom.checks.models import running_mean


def test_running_mean_and_standard_error():
    x = np.array([1.0, 3.0, 2.0, 6.0])
    table = running_mean(x)
    assert table["estimate"].tolist() == [1.0, 2.0, 2.0, 3.0]
    assert np.isnan(table["standard_error"][0])
    assert table["standard_error"].iloc[-1] == pytest.approx(x.std(ddof=1) / 2)
