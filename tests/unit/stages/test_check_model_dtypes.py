"""Check (c) in its own precision: float32 products with float64 slices, and the measured default step."""

from __future__ import annotations

import json

import pytest

from lossgeom.errors import ConfigError
from lossgeom.stages import check_model, hessian, train

SPEC = {"dataset": {"name": "sines", "n_train": 64, "n_test": 16},
        "model": {"name": "mlp", "hidden": [6], "activation": "tanh"},
        "train": {"epochs": 3, "batch_size": 16, "optimizer": "adam", "lr": 0.01, "device": "cpu"}}
quiet = lambda *_: None  # noqa: E731


def test_float32_products_with_float64_slices_use_the_float64_step(tmp_path):
    trained = train.compute("t", SPEC, train.TrainPaths.in_directory(tmp_path), progress=False)
    summary = json.loads(json.dumps(hessian.compute(trained.model, trained.dataset, hessian.HessianSettings(
        k_top=2, k_bottom=1, hutchinson_samples=4, slq_probes=2, slq_steps=6, device="cpu"), log=quiet).summary))
    settings = check_model.ModelCheckSettings.from_mapping(
        {"projections": 6, "slices": 40, "hutchinson_samples": 6, "bias_slices": 3, "dtype": "float32",
         "slices_dtype": "float64", "device": "cpu"})
    result = check_model.compute(trained.model, trained.dataset, summary, settings, "t", log=quiet)
    rows = result.rows.set_index("quantity")
    assert "finite-difference bias per slice at r = 1e-06 vs 0" in rows.index  # DEFAULT_STEPS["float64"]
    exact = rows.loc["HVP-free trace vs exact tr(H)"]
    assert exact["verdict"] == "pass", exact.to_dict()
    assert set(result.bias_table["dtype"]) == {"float32", "float64"}


def test_an_unknown_slices_dtype_is_named():
    with pytest.raises(ConfigError, match="checks.models.slices_dtype 'float16' is unknown"):
        check_model.ModelCheckSettings.from_mapping({"slices_dtype": "float16"})
