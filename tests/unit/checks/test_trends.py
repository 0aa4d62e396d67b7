"""The trend rows on run tables whose answer is known: three trends one way pass, a decided trend the other way
fails, an undecided one (seeds' spread as large as the effect) is unresolved; width is ordered by N."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lossgeom.checks.trends import trend, trend_key, trend_rows
from lossgeom.stages.check_sweep import run_trends


def _table(key, values, slope, noise=0.0, sizes=None):
    rng = np.random.default_rng(0)
    rows = []
    for i, value in enumerate(values):
        for seed in (0, 1, 2):
            curvature = 10.0 + slope * i + noise * rng.standard_normal()
            rows.append({key: value, "train.seed": seed, "n_parameters": sizes[i] if sizes else 100,
                         "lambda_max": curvature, "trace_hutchinson": 5 * curvature})
    return pd.DataFrame(rows)


WIDTHS = ["[64]", "[8]", "[32]", "[16]"]  # listed out of order: the trend follows N, not the grid's order
SIZES = [6000, 700, 3000, 1500]


def test_trends_one_way_pass_and_width_follows_n():
    widths = _table("model.hidden", WIDTHS, 0.0, sizes=SIZES)
    widths["lambda_max"] = 20.0 - widths["n_parameters"] / 1000  # falls with N
    widths["trace_hutchinson"] = 5 * widths["lambda_max"]
    assert trend(widths, "lambda_max") == pytest.approx(-1.0)
    tables = {"lr": _table("train.lr", [0.01, 0.03, 0.1, 0.3], -1.0), "width": widths,
              "l2": _table("train.weight_decay", [0.0, 1e-4, 1e-3, 1e-2], -0.5)}
    rows = trend_rows(tables)
    assert [r.verdict for r in rows] == ["pass", "pass"] and rows[0].measured == pytest.approx(1.0)
    # the rows do not depend on the order the sweeps come in (a config written back by yaml sorts them)
    assert rows[0].case == "lambda_max: learning rate, width (N), L2"
    assert [r.__dict__ for r in trend_rows(dict(reversed(tables.items())))] == [r.__dict__ for r in rows]


def test_a_decided_trend_the_other_way_fails_and_an_undecided_one_is_unresolved():
    down = _table("train.lr", [0.01, 0.03, 0.1, 0.3], -1.0)
    assert [r.verdict for r in trend_rows({"lr": down, "l2": _table("train.weight_decay", [0, 1e-3, 1e-2, 0.1], 1.0)})] \
        == ["FAIL", "FAIL"]
    noisy = _table("train.weight_decay", [0, 1e-3, 1e-2, 0.1], 0.05, noise=3.0)  # spread >> effect
    verdicts = [r.verdict for r in trend_rows({"lr": down, "l2": noisy})]
    assert verdicts == ["unresolved", "unresolved"], [trend(noisy, "lambda_max")]


def test_one_trend_sweep_or_another_grid_gives_no_rows():
    lr = _table("train.lr", [0.01, 0.03, 0.1, 0.3], -1.0)
    assert trend_rows({"lr": lr}) == []
    two_keys = lr.assign(**{"model.init_scale": np.arange(len(lr))})
    assert trend_key(two_keys) is None and trend_rows({"lr": lr, "other": two_keys}) == []


def test_a_table_without_the_hessian_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "runs.csv"
    _table("train.lr", [0.01, 0.1], -1.0).drop(columns=["trace_hutchinson"]).to_csv(path, index=False)
    with pytest.raises(Exception, match="trace_hutchinson.*hessian: true"):
        run_trends({"lr": path, "l2": path}, tmp_path / "rows.csv")
