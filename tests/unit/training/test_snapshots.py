"""Snapshots along training: the weights at chosen optimizer steps, exact, loadable, and kept across resumes."""

from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch

from lossgeom.errors import ConfigError
from lossgeom.problems.data import load_dataset
from lossgeom.problems.models import build_model
from lossgeom.stages.train import TrainPaths, run as train_run
from lossgeom.training.checkpoints import load_file, load_model

from tests.unit.training.test_train import assert_bitwise_equal, weights

N_TRAIN, BATCH = 96, 16  # 6 optimizer steps per epoch
SPEC = {
    "dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": N_TRAIN, "n_test": 48},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 3, "batch_size": BATCH, "schedule": "constant", "device": "cpu", "snapshots": [0, 3, 6, 18]},
}


def with_train(**changes):
    return {**SPEC, "train": {**SPEC["train"], **changes}}


def test_snapshots_are_the_weights_at_their_steps(tmp_path):
    out = TrainPaths.in_directory(tmp_path / "run")
    train_run("snap", SPEC, out, progress=False)
    # step 0 is the initialization: the model the seed builds before any update
    torch.manual_seed(0)
    data = load_dataset(SPEC["dataset"])
    init = build_model(SPEC["model"], data.input_shape, data.output_dim).state_dict()
    assert_bitwise_equal(weights(out.snapshots / "step=0.pt"), init)
    # step 6 closes epoch 1: the final weights of the same run trained for one epoch (constant lr)
    one_epoch = TrainPaths.in_directory(tmp_path / "one")
    train_run("one", with_train(epochs=1, snapshots=[]), one_epoch, progress=False)
    assert_bitwise_equal(weights(out.snapshots / "step=6.pt"), weights(one_epoch.model))
    # the last step is the trained model
    assert_bitwise_equal(weights(out.snapshots / "step=18.pt"), weights(out.model))
    # step 3 lies strictly between: neither the start nor the end of the first epoch
    mid = weights(out.snapshots / "step=3.pt")
    assert not torch.equal(mid["1.weight"], init["1.weight"])
    assert not torch.equal(mid["1.weight"], weights(one_epoch.model)["1.weight"])
    assert not (tmp_path / "one" / "snapshots").exists(), "no snapshots asked, no folder"


def test_the_snapshot_table_and_files_carry_step_epoch_and_metrics(tmp_path):
    out = TrainPaths.in_directory(tmp_path)
    train_run("snap", SPEC, out, progress=False)
    table = pd.read_csv(out.snapshots / "steps.csv")
    assert table["step"].tolist() == [0, 3, 6, 18]
    assert table["epoch"].tolist() == [0.0, 0.5, 1.0, 3.0]
    metrics = pd.read_csv(out.metrics)
    assert table["train_loss"].iloc[-1] == pytest.approx(metrics["train_loss"].iloc[-1])
    assert table["train_loss"].iloc[2] == pytest.approx(metrics["train_loss"].iloc[0])  # step 6 = end of epoch 1
    model, dataset, stored = load_model(out.snapshots / "step=3.pt")  # a snapshot is a model file
    assert stored["info"]["step"] == 3 and stored["experiment"]["train"]["snapshots"] == [0, 3, 6, 18]


def test_snapshots_do_not_change_the_training(tmp_path):
    plain, snap = TrainPaths.in_directory(tmp_path / "plain"), TrainPaths.in_directory(tmp_path / "snap")
    train_run("plain", with_train(snapshots=[]), plain, progress=False)
    train_run("snap", SPEC, snap, progress=False)
    assert_bitwise_equal(weights(plain.model), weights(snap.model))
    assert load_file(plain.model, "lossgeom-model-v1")["info"]["spec_hash"] == \
        load_file(snap.model, "lossgeom-model-v1")["info"]["spec_hash"], "snapshots do not change what is trained"


def test_a_resume_that_would_skip_missing_snapshots_starts_afresh(tmp_path, caplog):
    out = TrainPaths.in_directory(tmp_path)
    train_run("snap", SPEC, out, progress=False)
    reference = {step: weights(out.snapshots / f"step={step}.pt") for step in (0, 3, 6, 18)}
    (out.snapshots / "step=3.pt").unlink()  # e.g. Snakemake removed the folder of an interrupted job
    with caplog.at_level(logging.WARNING):
        train_run("snap", SPEC, out, progress=False)
    assert "snapshots at steps [3] are missing; starting training afresh" in caplog.text
    for step, expected in reference.items():
        assert_bitwise_equal(weights(out.snapshots / f"step={step}.pt"), expected)


def test_snapshots_beyond_the_end_of_training_are_refused_before_training(tmp_path):
    with pytest.raises(ConfigError, match=r"train.snapshots \[19, 40\] lie beyond the last step of training \(18 = "):
        train_run("snap", with_train(snapshots=[0, 19, 40]), TrainPaths.in_directory(tmp_path), progress=False)
    assert not (tmp_path / "snapshots").exists() and not (tmp_path / "checkpoint").exists()
