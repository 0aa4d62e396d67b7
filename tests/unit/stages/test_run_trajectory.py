"""The run_trajectory step: every snapshot's Hessian and local geometry in one process, equal to the separate steps;
the final model shares the last snapshot's point only when their weights are equal; a rerun keeps current points."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lossgeom.errors import CheckpointError
from lossgeom.stages import hessian, local_geometry, run_trajectory, train
from lossgeom.training.checkpoints import load_model, save_model

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 60, "n_test": 30},
        "model": {"name": "mlp", "hidden": [5]}, "train": {"epochs": 2, "batch_size": 20, "device": "cpu",
                                                          "snapshots": [0, 2, 6]}}  # 6 = 2 epochs x 3 batches
HESSIAN = hessian.HessianSettings(k_top=7, k_bottom=1, tol=1e-10, hutchinson_samples=3, slq_probes=1, slq_steps=5,
                                  dtype="float64", device="cpu")
LOCAL = local_geometry.LocalSettings(ggn_probes=4, exact_max_parameters=100, logit_examples=10, device="cpu")
quiet = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trajectory")
    paths = train.TrainPaths.in_directory(folder / "run")
    train.run("trajectory", SPEC, paths, progress=False)
    return paths


def test_points_equal_the_separate_steps_and_the_final_model_is_the_last_snapshot(trained, tmp_path):
    manifest = run_trajectory.run(trained.snapshots, trained.model, HESSIAN, LOCAL, tmp_path / "trajectory", log=quiet)
    assert manifest["steps"] == [0, 2, 6] and manifest["final"] == "step=6"
    assert not (tmp_path / "trajectory" / "final").exists()
    assert run_trajectory.final_folder(tmp_path) == tmp_path / "trajectory" / "step=6"
    # the snapshot at step 2 through the two steps run separately gives the same numbers
    alone = hessian.run(trained.snapshots / "step=2.pt", HESSIAN, tmp_path / "alone", log=quiet)
    point = json.loads((tmp_path / "trajectory" / "step=2" / "hessian" / "summary.json").read_text())
    assert point["eigen"]["top"]["values"] == pytest.approx(alone["eigen"]["top"]["values"], rel=1e-12)
    local = json.loads((tmp_path / "trajectory" / "step=2" / "local.json").read_text())
    assert local["inputs"]["model"]["sha256"] == point["inputs"]["model"]["sha256"]
    assert local["top_eigenvalues"] == point["eigen"]["top"]["values"]
    assert local["gauss_newton_distance"]["exact"] >= 0


def test_a_final_model_that_differs_from_the_last_snapshot_gets_its_own_point(trained, tmp_path):
    model, _, stored = load_model(trained.model)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_model(tmp_path / "model.pt", model, stored["experiment"], stored["info"])
    manifest = run_trajectory.run(trained.snapshots, tmp_path / "model.pt", HESSIAN, None, tmp_path / "trajectory",
                                  log=quiet)
    assert manifest["final"] == "final"
    final = json.loads((tmp_path / "trajectory" / "final" / "hessian" / "summary.json").read_text())
    last = json.loads((tmp_path / "trajectory" / "step=6" / "hessian" / "summary.json").read_text())
    assert final["eigen"]["top"]["values"][0] != last["eigen"]["top"]["values"][0]
    assert not (tmp_path / "trajectory" / "step=6" / "local.json").exists()  # no local settings: Hessians only


def test_a_rerun_keeps_current_points_and_redoes_stale_ones(trained, tmp_path):
    out = tmp_path / "trajectory"
    run_trajectory.run(trained.snapshots, trained.model, HESSIAN, LOCAL, out, log=quiet)
    (out / run_trajectory.MANIFEST).unlink()  # as after a job killed before its manifest
    (out / "step=2" / "local.json").unlink()
    snapshots = tmp_path / "snapshots"  # step 6 now another model file: its old point is stale
    shutil.copytree(trained.snapshots, snapshots)
    model, _, stored = load_model(snapshots / "step=6.pt")
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)
    save_model(snapshots / "step=6.pt", model, stored["experiment"], stored["info"])
    manifest = run_trajectory.run(snapshots, None, HESSIAN, LOCAL, out, log=quiet)
    kept = {step: point["kept"] for step, point in manifest["points"].items()}
    assert kept == {"0": ["hessian", "local"], "2": ["hessian"], "6": []}
    assert manifest["final"] is None
    redone = json.loads((out / "step=6" / "hessian" / "summary.json").read_text())
    assert redone["inputs"]["model"]["sha256"] == run_trajectory.file_fingerprint(snapshots / "step=6.pt")
    # other settings make every point stale
    other = run_trajectory.run(snapshots, None, hessian.HessianSettings(**{**HESSIAN.__dict__, "k_top": 5}), None,
                               out, log=quiet)
    assert all(point["kept"] == [] for point in other["points"].values())
    # back to the local settings after the Hessians changed: local.json (same model, same local settings) is
    # stale too, since it was computed on the other Hessian's eigenvectors
    again = run_trajectory.run(snapshots, None, HESSIAN, LOCAL, out, log=quiet)
    assert all(point["kept"] == [] for point in again["points"].values())
    local = json.loads((out / "step=2" / "local.json").read_text())
    summary = json.loads((out / "step=2" / "hessian" / "summary.json").read_text())
    assert local["top_eigenvalues"] == summary["eigen"]["top"]["values"]


def test_no_snapshots_is_one_clear_error(tmp_path):
    (tmp_path / "snapshots").mkdir()
    with pytest.raises(CheckpointError, match="no snapshot files"):
        run_trajectory.run(tmp_path / "snapshots", None, HESSIAN, None, tmp_path / "out", log=quiet)


def test_a_batch_of_runs_writes_what_the_per_run_steps_write(tmp_path):
    from lossgeom.stages import sweep_batch

    plain = {"dataset": SPEC["dataset"], "model": SPEC["model"], "train": {"epochs": 1, "batch_size": 20,
                                                                           "device": "cpu"}}
    runs = {"with_snapshots": {"spec": SPEC, "out_dir": str(tmp_path / "a")},
            "plain": {"spec": plain, "out_dir": str(tmp_path / "b")}}
    assert sweep_batch.run(runs, HESSIAN, LOCAL, log=quiet) == ["with_snapshots", "plain"]
    manifest = json.loads((tmp_path / "a" / "trajectory" / run_trajectory.MANIFEST).read_text())
    assert manifest["steps"] == [0, 2, 6] and manifest["final"] == "step=6"
    assert (tmp_path / "b" / "hessian" / "summary.json").exists() and (tmp_path / "b" / "local.json").exists()
    # the same run trained alone: the same weights (training is deterministic)
    alone = train.TrainPaths.in_directory(tmp_path / "alone")
    train.run("plain", plain, alone, progress=False)
    ours, theirs = load_model(tmp_path / "b" / "model.pt")[0], load_model(alone.model)[0]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
    # training only
    assert sweep_batch.run({"c": {"spec": plain, "out_dir": str(tmp_path / "c")}}, log=quiet) == ["c"]
    assert (tmp_path / "c" / "train.json").exists() and not (tmp_path / "c" / "hessian").exists()
