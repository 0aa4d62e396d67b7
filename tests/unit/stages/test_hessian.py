"""The hessian step end to end on a tiny trained model, including one end of the spectrum only."""

from __future__ import annotations

import json

import pytest

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


def test_examples_take_the_hessian_and_the_checks_on_one_seeded_subset(tmp_path):
    """hessian.examples: the eigenpairs are those of the loss on the subset (dense float64 reference), and the model
    checks, reading the hessian summary, take their products on the same subset (their exact trace matches)."""
    import torch

    from lossgeom.engine.hessian import dense_hessian
    from lossgeom.problems.data import example_subset
    from lossgeom.problems.losses import loss_function
    from lossgeom.stages import check_model, hessian, train

    spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 3, "n_train": 90, "n_test": 30},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2, "device": "cpu"}}
    trained = train.compute("sub", spec, train.TrainPaths.in_directory(tmp_path), progress=False)
    model, ds = trained.model.double(), trained.dataset
    settings = HessianSettings(k_top=1, k_bottom=1, tol=1e-10, examples=25, seed=3, hutchinson_samples=4, slq_probes=2,
                               slq_steps=5, dtype="float64", device="cpu")
    result = hessian.compute(model, ds, settings, log=lambda *_: None)
    xs, ys = example_subset(ds.x_train.double(), ds.y_train, 25, seed=3)
    H = dense_hessian(model, loss_function(ds.task), xs, ys)
    exact = torch.linalg.eigvalsh(H)
    assert result.summary["n_examples"] == 25
    assert result.summary["eigen"]["top"]["values"][0] == pytest.approx(float(exact[-1]), rel=1e-8)
    assert result.summary["eigen"]["bottom"]["values"][0] == pytest.approx(float(exact[0]), abs=1e-8 * float(exact[-1]))
    full = torch.linalg.eigvalsh(dense_hessian(model, loss_function(ds.task), ds.x_train.double(), ds.y_train))
    assert abs(float(full[-1]) - float(exact[-1])) > 1e-3 * float(exact[-1])  # the subset's Hessian is another one
    summary = json.loads(json.dumps(result.summary))
    checks = check_model.compute(model, ds, summary, check_model.ModelCheckSettings(
        projections=4, slices=4, hutchinson_samples=4, bias_slices=2, exact_max_parameters=1000, device="cpu"),
        "sub", log=lambda *_: None)
    exact_rows = checks.rows[checks.rows["quantity"].str.contains("vs exact tr")]
    assert len(exact_rows) == 2
    assert exact_rows["theory"].tolist() == pytest.approx([float(torch.trace(H))] * 2, rel=1e-9)


def test_auto_chooses_once_and_a_resumed_job_keeps_the_choice(tmp_path):
    """The product method auto picks is saved with the work in progress: a resumed job computes as it began, and the
    model checks compute as the hessian step recorded."""
    from lossgeom.io.partial import PartialFile
    from lossgeom.stages import hessian, train

    spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 3, "n_train": 60, "n_test": 30},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 2, "device": "cpu"}}
    trained = train.compute("auto", spec, train.TrainPaths.in_directory(tmp_path), progress=False)
    settings = HessianSettings(k_top=1, k_bottom=1, hutchinson_samples=4, slq_probes=2, slq_steps=5, device="cpu")
    fresh = PartialFile(tmp_path / "fresh.pt", "f", 0.0)
    summary = hessian.compute(trained.model, trained.dataset, settings, log=lambda *_: None, partial=fresh).summary
    assert summary["hvp_choice"]["timed"], "max_hvps alone plans enough products to time the candidates"
    assert fresh.states["products"] == {"method": summary["hvp_method"], "block": summary["hvp_block"], "compiled": 0,
                                        "vmap_blocks": int(summary["hvp_vmap_blocks"])}
    resumed = PartialFile(tmp_path / "resumed.pt", "r", 0.0)
    # what a killed run chose: double backward for one vector, blocks of 8 vmapped forward-over-reverse
    resumed.states["products"] = {"method": "double-backward", "block": 8, "compiled": 0, "vmap_blocks": 1}
    again = hessian.compute(trained.model, trained.dataset, settings, log=lambda *_: None, partial=resumed).summary
    assert (again["hvp_method"], again["hvp_block"], again["hvp_vmap_blocks"]) == ("double-backward", 8, True)
    assert again["eigen"]["top"]["values"] == pytest.approx(summary["eigen"]["top"]["values"], rel=1e-10)
