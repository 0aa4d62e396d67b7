"""Sweeps expand into exactly their grid's runs, with stable readable ids, and bad grids fail with one message."""

from __future__ import annotations

import pytest

from lossgeom.errors import ConfigError
from lossgeom.io.sweeps import expand_sweep, format_value, grid_values

BASE = {"dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden": [64, 64]}, "train": {"epochs": 3, "seed": 0}}


def test_runs_are_the_product_of_the_grid_in_order():
    grid = {"model.hidden": [[8], [16], [32]], "train.batch_size": [16, 64, 256], "train.seed": [0, 1]}
    runs = expand_sweep("s", {"base": "net", "grid": grid}, {"net": BASE})
    assert len(runs) == 3 * 3 * 2
    first, last = list(runs)[0], list(runs)[-1]
    assert first == "hidden=8_batch_size=16_seed=0" and last == "hidden=32_batch_size=256_seed=1"
    spec = runs["hidden=16_batch_size=64_seed=1"]
    assert spec["model"] == {"name": "mlp", "hidden": [16]} and spec["train"] == {"epochs": 3, "seed": 1, "batch_size": 64}
    assert BASE["model"]["hidden"] == [64, 64], "the base experiment is not modified"
    assert grid_values({"grid": grid})[first] == {"model.hidden": [8], "train.batch_size": 16, "train.seed": 0}


def test_ambiguous_key_names_use_their_whole_path():
    runs = expand_sweep("s", {"base": BASE, "grid": {"dataset.seed": [1], "train.seed": [2]}}, {})
    assert list(runs) == ["dataset-seed=1_train-seed=2"]
    assert runs["dataset-seed=1_train-seed=2"]["dataset"] == {"name": "digits", "seed": 1}


@pytest.mark.parametrize("value, text", [([16, 16], "16x16"), (0.05, "0.05"), (1e-3, "0.001"), (True, "True"),
                                         ("a b/c", "a-b-c")])
def test_values_become_file_name_safe_labels(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("sweep, message", [
    ({"base": "missing", "grid": {"train.seed": [0]}}, "sweeps.s.base: 'missing' is not an experiment; known: net"),
    ({"base": "net", "grid": {"optimizer.lr": [0.1]}}, "sweeps.s.grid: key 'optimizer.lr' must be a path like"),
    ({"base": "net", "grid": {"train.lr": []}}, "sweeps.s.grid.train.lr: needs a non-empty list of values"),
    ({"base": "net", "grid": {"train.lr": [0.1, 0.10000000001]}}, "two runs would both be called 'lr=0.1'"),
    ({"base": "net", "grid": {"train.snapshots": [[0], [5]]}}, "train.snapshots cannot vary between runs; set the sweep's"),
])
def test_bad_sweeps_get_one_clear_message(sweep, message):
    with pytest.raises(ConfigError) as info:
        expand_sweep("s", sweep, {"net": BASE})
    assert message in str(info.value)


def test_the_sweeps_snapshots_are_every_runs_and_replace_the_bases():
    base = {**BASE, "train": {**BASE["train"], "snapshots": [7]}}
    sweep = {"base": "net", "grid": {"train.seed": [0, 1]}, "snapshots": [10, 0, 3]}
    runs = expand_sweep("s", sweep, {"net": base})
    assert [spec["train"]["snapshots"] for spec in runs.values()] == [[0, 3, 10], [0, 3, 10]]
    without = expand_sweep("s", {"base": "net", "grid": {"train.seed": [0]}}, {"net": base})
    assert "snapshots" not in without["seed=0"]["train"], "a sweep without snapshots saves none"
    assert base["train"]["snapshots"] == [7], "the base experiment is not modified"
