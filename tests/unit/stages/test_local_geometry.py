"""The local_geometry step on a small trained classifier, against dense float64 references: the gradient's share in
the top eigenspace, the outlier gap, ||H - G||_F / ||H||_F (exact and estimated) and the logit-gradient groups."""

from __future__ import annotations

import json

import pytest
import torch

from lossgeom.engine.gauss_newton import dense_gauss_newton
from lossgeom.engine.hessian import dense_hessian
from lossgeom.errors import ConfigError, InputMismatch
from lossgeom.problems.losses import loss_function
from lossgeom.stages import hessian, local_geometry, train
from lossgeom.training.checkpoints import load_model

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 90, "n_test": 30},
        "model": {"name": "mlp", "hidden": [6]}, "train": {"epochs": 3, "device": "cpu"}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    paths = train.TrainPaths.in_directory(folder / "run")
    train.run("local", SPEC, paths, progress=False)
    settings = hessian.HessianSettings(k_top=7, k_bottom=1, tol=1e-10, hutchinson_samples=4, slq_probes=1, slq_steps=5,
                                       dtype="float64", device="cpu")
    hessian.run(paths.model, settings, folder / "hessian", log=lambda *_: None)
    return folder, paths.model


def test_measures_equal_dense_references(trained, tmp_path):
    folder, model_path = trained
    settings = local_geometry.LocalSettings(ggn_probes=40, exact_max_parameters=1000, logit_examples=30, device="cpu")
    result = local_geometry.run(model_path, folder / "hessian" / "summary.json", folder / "hessian" / "eigenvectors.pt",
                                settings, tmp_path / "local.json", log=lambda *_: None)
    assert json.loads((tmp_path / "local.json").read_text())["gradient_norm"] == result["gradient_norm"]

    model, ds, _ = load_model(model_path)
    model = model.double()
    x, y = ds.x_train.double(), ds.y_train
    loss_fn = loss_function(ds.task)
    H = dense_hessian(model, loss_fn, x, y)
    G = dense_gauss_newton(model, loss_fn, x, y)
    values, vectors = torch.linalg.eigh((H + H.T) / 2)
    top = vectors[:, values.argsort(descending=True)].T
    g = torch.func.grad(lambda p: loss_fn(torch.func.functional_call(model, p, (x,)), y))(dict(model.named_parameters()))
    g = torch.cat([g[n].reshape(-1) for n, _ in model.named_parameters()]).detach()
    assert result["classes"] == 3 and result["n_parameters"] == len(g)
    assert result["gradient_norm"] == pytest.approx(float(g.norm()), rel=1e-9)
    for o in result["overlap"]:  # k = C - 1 = 2 and C = 3
        V = top[: o["k"]]
        assert o["overlap"] == pytest.approx(float((V @ g).pow(2).sum() / g.pow(2).sum()), rel=1e-6, abs=1e-12)
        assert o["random_baseline"] == o["k"] / len(g)
    exact_top = values.sort(descending=True).values[:7]
    ratios = exact_top[:6] / exact_top[1:7]
    assert result["outlier_gap"]["k_max"] == 6
    assert result["outlier_gap"]["k"] == int(ratios.argmax()) + 1
    distance = result["gauss_newton_distance"]
    exact = float(torch.linalg.matrix_norm(H - G) / torch.linalg.matrix_norm(H))
    assert distance["exact"] == pytest.approx(exact, rel=1e-9)
    assert abs(distance["estimate"] - exact) < 4 * distance["standard_error"]
    spectrum = result["spectrum"]  # the dense float64 spectrum, summarized (C - 1 = 2 outliers)
    assert spectrum["eigenvalues"] == pytest.approx(values.sort(descending=True).values.tolist(), rel=1e-9, abs=1e-12)
    magnitudes = values.abs()
    assert spectrum["near_zero_fraction"] == float((magnitudes < 1e-3 * magnitudes.max()).double().mean())
    assert spectrum["outlier_mean"] == pytest.approx(float(exact_top[:2].mean()), rel=1e-9)
    bulk = values.sort(descending=True).values[2:].abs()
    assert spectrum["bulk_abs_q50"] == pytest.approx(float(bulk.quantile(0.5)), rel=1e-9)
    assert spectrum["bulk_abs_q90"] == pytest.approx(float(bulk.quantile(0.9)), rel=1e-9)
    groups = result["logit_cosines"]
    assert groups["examples"] == 30
    assert groups["same_logit_same_class"]["pairs"] + groups["same_logit_different_class"]["pairs"] == 30 * 29 * 3


def test_refuses_regression_and_another_models_eigenvectors(trained, tmp_path):
    folder, model_path = trained
    other = train.TrainPaths.in_directory(tmp_path / "other")
    train.run("other", {**SPEC, "train": {"epochs": 1, "seed": 5, "device": "cpu"}}, other, progress=False)
    with pytest.raises(InputMismatch, match="rerun"):
        local_geometry.run(other.model, folder / "hessian" / "summary.json", folder / "hessian" / "eigenvectors.pt",
                           local_geometry.LocalSettings(device="cpu"), tmp_path / "x.json", log=lambda *_: None)
    assert not (tmp_path / "x.json").exists()
    sines = train.TrainPaths.in_directory(tmp_path / "sines")
    train.run("sines", {"dataset": {"name": "sines", "n_train": 32, "n_test": 8}, "model": {"name": "mlp", "hidden": [4]},
                        "train": {"epochs": 1, "device": "cpu"}}, sines, progress=False)
    with pytest.raises(ConfigError, match="classifier"):
        model, dataset, _ = load_model(sines.model)
        local_geometry.compute(model, dataset, {}, {"top_values": [], "top_vectors": torch.zeros(0, 1)},
                               local_geometry.LocalSettings())


def test_settings_name_the_bad_key():
    with pytest.raises(ConfigError, match="local.ggn_probes"):
        local_geometry.LocalSettings(ggn_probes=1)
    with pytest.raises(ConfigError, match="local.near_zero"):
        local_geometry.LocalSettings(near_zero=1.5)
    with pytest.raises(ConfigError, match="local: unknown key"):
        local_geometry.LocalSettings.from_mapping({"probes": 3})
