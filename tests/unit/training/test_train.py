"""Training: determinism, divergence guard, checkpoint errors, metrics against closed forms."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lossgeom.training.checkpoints import CHECKPOINT_FORMAT, load_file, load_model
from lossgeom.errors import CheckpointError, ConfigError, TrainingDiverged
from lossgeom.stages.train import TrainPaths, run as train_run
from lossgeom.training.evaluation import evaluate
from lossgeom.training.loop import epoch_permutation, resolve_experiment

SPEC = {
    "dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 96, "n_test": 48},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 3, "batch_size": 16, "device": "cpu"},
}


def weights(path):
    return load_file(path, "lossgeom-model-v1")["state_dict"]


def assert_bitwise_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_is_deterministic(tmp_path):
    a, b = TrainPaths.in_directory(tmp_path / "a"), TrainPaths.in_directory(tmp_path / "b")
    train_run("a", SPEC, a, progress=False)
    train_run("b", SPEC, b, progress=False)
    assert_bitwise_equal(weights(a.model), weights(b.model))
    drop = lambda df: df.drop(columns="elapsed_s")  # noqa: E731
    pd.testing.assert_frame_equal(drop(pd.read_csv(a.metrics)), drop(pd.read_csv(b.metrics)))
    other = TrainPaths.in_directory(tmp_path / "c")
    train_run("c", {**SPEC, "train": {**SPEC["train"], "seed": 1}}, other, progress=False)
    assert not torch.equal(weights(a.model)["1.weight"], weights(other.model)["1.weight"])


def test_outputs_and_provenance(tmp_path):
    out = TrainPaths.in_directory(tmp_path)
    summary = train_run("blobs", SPEC, out, progress=False)
    metrics = pd.read_csv(out.metrics)
    assert metrics["epoch"].tolist() == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"} <= set(metrics.columns)
    written = json.loads(out.summary.read_text())
    assert written["n_parameters"] == (4 + 1) * 8 + (8 + 1) * 3 == summary["n_parameters"]
    for key in ("torch", "python", "git_commit", "created_utc", "seed"):
        assert key in written["provenance"]
    assert written["spec"]["train"]["momentum"] == 0.9, "resolved defaults are recorded"
    model, dataset, stored = load_model(out.model)
    assert not model.training
    acc = evaluate(model, dataset.x_test, dataset.y_test, dataset.task, 7)["accuracy"]
    assert acc == pytest.approx(metrics["test_accuracy"].iloc[-1])


def test_finished_checkpoint_is_reused_not_retrained(tmp_path):
    out = TrainPaths.in_directory(tmp_path)
    train_run("x", SPEC, out, progress=False)
    before = weights(out.model)
    out.model.unlink()
    out.summary.unlink()
    train_run("x", SPEC, out, progress=False)
    assert_bitwise_equal(before, weights(out.model))


def test_checkpoint_of_another_spec_starts_afresh(tmp_path):
    out = TrainPaths.in_directory(tmp_path / "run")
    train_run("x", {**SPEC, "train": {**SPEC["train"], "lr": 0.2}}, out, progress=False)
    train_run("x", SPEC, out, progress=False)
    fresh = TrainPaths.in_directory(tmp_path / "fresh")
    train_run("x", SPEC, fresh, progress=False)
    assert_bitwise_equal(weights(out.model), weights(fresh.model))


def test_divergence_stops_with_a_clear_error_and_no_outputs(tmp_path):
    spec = {
        "dataset": {"name": "sines", "n_train": 64, "n_test": 16},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 5, "lr": 1.0e6, "batch_size": 16, "device": "cpu"},
    }
    out = TrainPaths.in_directory(tmp_path)
    with pytest.raises(TrainingDiverged, match=r"'boom': training loss became (nan|inf).*lower train.lr \(configured 1e\+06"):
        train_run("boom", spec, out, progress=False)
    assert not out.model.exists() and not out.summary.exists()
    assert not list(tmp_path.rglob("*.tmp")), "no half-written files"


def test_divergence_by_the_last_update_of_training_is_caught(tmp_path):
    """One batch per epoch: the only batch loss is computed before the update that blows the weights up."""
    spec = {**SPEC, "train": {"epochs": 1, "batch_size": 96, "lr": 1.0e6, "momentum": 0.0, "device": "cpu"}}
    out = TrainPaths.in_directory(tmp_path)
    with pytest.raises(TrainingDiverged, match=r"grew from .* at initialization to .* by the end of epoch 1 "
                                               r".*configured 1e\+06.*no epoch finished"):
        train_run("last", spec, out, progress=False)
    assert not out.model.exists() and not out.checkpoint.exists(), "a diverged state is never written"


def test_corrupt_checkpoint_names_the_file(tmp_path):
    out = TrainPaths.in_directory(tmp_path)
    out.checkpoint.parent.mkdir(parents=True)
    out.checkpoint.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=rf"{out.checkpoint}: cannot be read .*Delete it; the training job then "
                                              "starts afresh"):
        train_run("x", SPEC, out, progress=False)


def test_truncated_files_name_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LOSSGEOM_CONFIGFILES", raising=False)
    out = TrainPaths.in_directory(tmp_path)
    train_run("x", SPEC, out, progress=False)
    for path, fmt in ((out.checkpoint, CHECKPOINT_FORMAT), (out.model, "lossgeom-model-v1")):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=rf"{path}: cannot be read") as info:
            load_file(path, fmt)
        if path == out.model:  # a workflow output must be asked for by name, or Snakemake has "nothing to be done"
            # with the config the folder was built from: another config plans other models, or fails
            assert f"rebuild it with `snakemake {path} --cores all --configfile <the config file(s)" in str(info.value)
            monkeypatch.setenv("LOSSGEOM_CONFIGFILES", "configs/tiny.yaml")  # as the workflow's jobs have it
            with pytest.raises(CheckpointError) as info:
                load_file(path, fmt)
            assert f"rebuild it with `snakemake {path} --cores all --configfile configs/tiny.yaml`" in str(info.value)
    with pytest.raises(CheckpointError, match="file not found"):
        load_model(tmp_path / "missing.pt")


def test_wrong_file_kind_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"expected a lossgeom-model-v1 file, found None"):
        load_model(path)


def test_epoch_order_depends_on_seed_and_epoch_only():
    p = epoch_permutation(100, seed=5, epoch=3)
    assert sorted(p.tolist()) == list(range(100))
    assert torch.equal(p, epoch_permutation(100, seed=5, epoch=3))
    assert not torch.equal(p, epoch_permutation(100, seed=5, epoch=4))
    assert not torch.equal(p, epoch_permutation(100, seed=6, epoch=3))


def test_regression_metrics_closed_form():
    x = torch.linspace(-1, 1, 11).unsqueeze(1)
    y = 3 * x + 0.5 * x**2
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.bias.fill_(0.1)
    got = evaluate(model, x, y, "regression", batch_size=4)
    residual = (y - (3 * x + 0.1)).numpy()
    mse = float(np.mean(residual**2))
    r2 = 1 - np.sum(residual**2) / np.sum((y.numpy() - y.numpy().mean()) ** 2)
    assert got["mse"] == pytest.approx(mse, rel=1e-6) and got["r2"] == pytest.approx(r2, rel=1e-6)


def test_unknown_train_keys_and_values():
    with pytest.raises(ConfigError, match="train: unknown key\\(s\\) 'lrate'; allowed keys: epochs"):
        resolve_experiment({**SPEC, "train": {"lrate": 1}})
    with pytest.raises(ConfigError, match="train.optimizer 'lbfgs' is unknown; allowed values: sgd, adam, adamw"):
        resolve_experiment({**SPEC, "train": {"optimizer": "lbfgs"}})


def test_target_loss_stops_at_the_first_epoch_below_it_and_a_rerun_adds_none(tmp_path):
    """train.target_loss ends training after the first epoch whose train loss is at or below it (the epochs before
    stay above it); a finished run started again trains no further epoch; the full run's first epochs are the same."""
    long = {**SPEC, "train": {**SPEC["train"], "epochs": 30, "lr": 0.1}}
    full = TrainPaths.in_directory(tmp_path / "full")
    train_run("full", long, full, progress=False)
    losses = pd.read_csv(full.metrics)["train_loss"].to_numpy()
    target = float(np.sort(losses)[len(losses) // 2])  # a loss the run passes about half-way
    first = int(np.argmax(losses <= target)) + 1
    assert 1 < first < 30
    stopped = TrainPaths.in_directory(tmp_path / "stopped")
    spec = {**long, "train": {**long["train"], "target_loss": target}}
    train_run("stopped", spec, stopped, progress=False)
    metrics = pd.read_csv(stopped.metrics)
    assert metrics["epoch"].tolist() == list(range(1, first + 1))
    assert json.loads(stopped.summary.read_text())["epochs"] == first, "train.json (and runs.csv) say how many trained"
    np.testing.assert_array_equal(metrics["train_loss"].to_numpy(), losses[:first])  # cosine over 30 epochs in both
    before = weights(stopped.model)
    stopped.model.unlink()
    stopped.summary.unlink()
    train_run("stopped", spec, stopped, progress=False)
    assert pd.read_csv(stopped.metrics)["epoch"].tolist() == list(range(1, first + 1))
    assert_bitwise_equal(before, weights(stopped.model))


def test_target_loss_keeps_earlier_fingerprints_and_refuses_snapshots():
    """A train key added later (target_loss) leaves the fingerprint of a spec without it unchanged, so results trained
    before it are not retrained; set, it changes the fingerprint. With snapshots it is refused by name."""
    from lossgeom.training.loop import ADDED_AT_DEFAULT, spec_hash

    resolved = resolve_experiment(SPEC)
    assert resolved["train"]["target_loss"] == ADDED_AT_DEFAULT["target_loss"]
    before = dict(resolved, train={k: v for k, v in resolved["train"].items() if k != "target_loss"})
    assert spec_hash(resolved) == spec_hash(before)
    assert spec_hash(resolve_experiment({**SPEC, "train": {**SPEC["train"], "target_loss": 0.01}})) != spec_hash(resolved)
    with pytest.raises(ConfigError, match="train.target_loss"):
        resolve_experiment({**SPEC, "train": {"target_loss": 0.01, "snapshots": [0, 5]}})
    with pytest.raises(ConfigError, match="train.target_loss"):
        resolve_experiment({**SPEC, "train": {"target_loss": -1.0}})
