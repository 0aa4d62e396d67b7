"""The hessian step end to end on a tiny trained model, including one end of the spectrum only."""

from __future__ import annotations

import json

from lossgeom.stages.hessian import HessianSettings, run as run_hessian, table as hessian_table
from lossgeom.stages.train import TrainPaths, run as train_run


def test_one_end_only(tmp_path):
    spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 3, "n_train": 60, "n_test": 30},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2, "device": "cpu"}}
    out = TrainPaths.in_directory(tmp_path / "run")
    train_run("tiny", spec, out, progress=False)
    settings = HessianSettings(k_top=0, k_bottom=1, hutchinson_samples=4, slq_probes=2, slq_steps=5, device="cpu")
    summary = run_hessian(out.model, settings, tmp_path / "hessian", log=lambda *_: None)
    assert summary["eigen"]["top"]["values"] == [] and len(summary["eigen"]["bottom"]["values"]) == 1
    table = hessian_table([tmp_path / "hessian" / "summary.json"])
    assert table["lambda_max"].isna().all() and table["lambda_min"].notna().all()
    assert json.loads((tmp_path / "hessian" / "summary.json").read_text())["n_parameters"] == summary["n_parameters"]
