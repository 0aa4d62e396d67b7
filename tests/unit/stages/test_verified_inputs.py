"""Stages refuse inputs that do not belong together: eigenvectors, Hessian summaries and surfaces are checked
against the model file they claim (by SHA-256) and its parameter layout, with one error naming both files."""

from __future__ import annotations

import shutil

import pytest
import torch

from lossgeom.errors import InputMismatch
from lossgeom.stages import check_curvature, check_model, hessian, surfaces, train
from lossgeom.training.checkpoints import load_file

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 90, "n_test": 30},
        "model": {"name": "mlp", "hidden": [6]}, "train": {"epochs": 2, "batch_size": 30, "device": "cpu"}}
HESSIAN = hessian.HessianSettings(k_top=1, k_bottom=1, tol=1e-6, hutchinson_samples=4, slq_probes=2, slq_steps=6,
                                  device="cpu")
SURFACES = surfaces.SurfaceSettings(points=9, points_1d=5, ranges=(0.1,), tile_rows=9, splits=("train",), device="cpu")
quiet = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two experiments of the same architecture and size (seeds 0 and 1), each with its Hessian and surfaces."""
    root = tmp_path_factory.mktemp("pair")
    runs = {}
    for seed in (0, 1):
        d = root / f"seed{seed}"
        train.run(f"seed{seed}", {**SPEC, "train": {**SPEC["train"], "seed": seed}}, d, progress=False)
        hessian.run(d / "model.pt", HESSIAN, d / "hessian", log=quiet)
        surfaces.run(d / "model.pt", d / "hessian" / "eigenvectors.pt", SURFACES, d / "surfaces", log=quiet)
        runs[seed] = d
    return runs


def test_matching_files_pass_and_record_their_fingerprints(two_models, tmp_path):
    d = two_models[0]
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(d / "model.pt", moved)  # by content, not by name: a copied model still matches
    meta = surfaces.run(moved, d / "hessian" / "eigenvectors.pt", SURFACES, tmp_path / "s", log=quiet)
    assert set(meta["inputs"]) == {"model", "eigenvectors"} and len(meta["inputs"]["model"]["sha256"]) == 16


def test_eigenvectors_of_another_model_of_the_same_size_are_refused(two_models, tmp_path):
    a, b = two_models[0], two_models[1]
    with pytest.raises(InputMismatch) as info:
        surfaces.run(a / "model.pt", b / "hessian" / "eigenvectors.pt", SURFACES, tmp_path / "s", log=quiet)
    message = str(info.value)
    assert str(b / "hessian" / "eigenvectors.pt") in message and str(a / "model.pt") in message
    assert str(b / "model.pt") in message, "names the model the eigenvectors belong to"
    assert not (tmp_path / "s").exists(), "nothing written"


def test_a_hessian_summary_of_another_model_is_refused_by_the_model_checks(two_models, tmp_path):
    a, b = two_models[0], two_models[1]
    settings = check_model.ModelCheckSettings(projections=4, slices=4, hutchinson_samples=4, bias_slices=2, device="cpu")
    with pytest.raises(InputMismatch, match=str(b / "hessian" / "summary.json")):
        check_model.run(a / "model.pt", b / "hessian" / "summary.json", settings, "a", tmp_path / "rows.csv",
                        tmp_path / "trace.csv", tmp_path / "sign.json", log=quiet)
    assert not list(tmp_path.iterdir())


def test_surfaces_of_another_model_are_refused_by_the_curvature_check(two_models, tmp_path):
    a, b = two_models[0], two_models[1]
    with pytest.raises(InputMismatch, match=str(b / "surfaces" / "surfaces.json")):
        check_curvature.run(a / "model.pt", a / "hessian" / "eigenvectors.pt", b / "surfaces" / "surfaces.npz",
                            b / "surfaces" / "surfaces.json", "a", tmp_path / "rows.csv", tmp_path / "meta.json",
                            log=quiet)


def test_a_parameter_layout_that_differs_is_refused(two_models, tmp_path):
    d = two_models[0]
    vectors = load_file(d / "hessian" / "eigenvectors.pt", hessian.EIGENVECTORS_FORMAT)
    vectors["parameter_names"] = list(reversed(vectors["parameter_names"]))  # same file hash recorded, wrong order
    forged = tmp_path / "eigenvectors.pt"
    torch.save(vectors, forged)
    with pytest.raises(InputMismatch, match="parameter names and shapes differ"):
        surfaces.run(d / "model.pt", forged, SURFACES, tmp_path / "s", log=quiet)
