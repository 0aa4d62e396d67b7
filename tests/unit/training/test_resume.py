"""A training run killed with SIGKILL and started again ends bitwise identical to an uninterrupted run."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import torch

from lossgeom.training.checkpoints import CHECKPOINT_FORMAT, load_file
from lossgeom.errors import CheckpointError

from tests.conftest import REPO

EPOCHS = 12
SPEC = {
    "dataset": {"name": "mnist1d", "num_samples": 2000},
    "model": {"name": "lenet", "channels": [16, 16], "kernel_size": 5, "hidden": [32]},
    "train": {"epochs": EPOCHS, "batch_size": 32, "optimizer": "adam", "lr": 0.003, "device": "cpu"},
}


def start(out_dir, log):
    cmd = [sys.executable, "-m", "lossgeom", "--threads", "1", "train", "--name", "resume",
           "--spec", json.dumps(SPEC), "--out-dir", str(out_dir), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def finished_epochs(checkpoint) -> int:
    try:
        return load_file(checkpoint, CHECKPOINT_FORMAT)["epoch"]
    except CheckpointError:  # not written yet
        return 0


@pytest.mark.slow  # a killed subprocess and a resumed one: an integration test (tens of seconds), in the full tier
def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    with open(tmp_path / "reference.log", "w") as log:
        assert start(tmp_path / "reference", log).wait(timeout=600) == 0

    killed_dir = tmp_path / "killed"
    checkpoint = killed_dir / "checkpoint" / "last.pt"
    with open(tmp_path / "killed.log", "w") as log:
        proc = start(killed_dir, log)
        deadline = time.monotonic() + 300
        while finished_epochs(checkpoint) < 3:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = finished_epochs(checkpoint)
    assert 3 <= killed_at < EPOCHS, "killed mid-training"
    assert not (killed_dir / "model.pt").exists()

    with open(tmp_path / "resumed.log", "w") as log:
        assert start(killed_dir, log).wait(timeout=600) == 0
    assert f"resuming after epoch {killed_at} of {EPOCHS}" in (tmp_path / "resumed.log").read_text()

    reference = load_file(tmp_path / "reference" / "model.pt", "lossgeom-model-v1")["state_dict"]
    resumed = load_file(killed_dir / "model.pt", "lossgeom-model-v1")["state_dict"]
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key
    a = pd.read_csv(tmp_path / "reference" / "metrics.csv").drop(columns="elapsed_s")
    b = pd.read_csv(killed_dir / "metrics.csv").drop(columns="elapsed_s")
    pd.testing.assert_frame_equal(a, b)
