"""Model files are byte-identical for identical weights and spec: a retried job rewrites the same file.

The Hessian stage's resume file (partial.pt) is keyed on the model file's SHA-256, so a model.pt rewritten with a
timestamp inside, or by a torch.save that names its zip folder after a random temporary file, voids it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import torch

from lossgeom.stages.train import TrainPaths
from lossgeom.stages.train import run as train_run
from lossgeom.training.checkpoints import load_model, save_model
from tests.unit.training.test_train import SPEC


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_retried_training_job_rewrites_the_same_model_file(tmp_path):
    out = TrainPaths.in_directory(tmp_path)
    train_run("blobs", SPEC, out, progress=False)
    first = sha256(out.model)
    created = json.loads(out.summary.read_text())["provenance"]["created_utc"]
    out.model.unlink()  # the batch job is retried: the finished checkpoint is reused, model.pt and train.json rewritten
    out.summary.unlink()
    time.sleep(1.1)
    train_run("blobs", SPEC, out, progress=False)
    assert sha256(out.model) == first
    rewritten = json.loads(out.summary.read_text())["provenance"]
    assert rewritten["created_utc"] != created, "the provenance (beside the model, in train.json) is current"
    _, _, stored = load_model(out.model)
    assert stored["info"] == {"experiment": "blobs", "spec_hash": json.loads(out.summary.read_text())["spec_hash"]}


SAVE = """
import sys, torch
from lossgeom.training.checkpoints import save_model
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
save_model(sys.argv[1], model, {"model": {"name": "mlp"}}, {"experiment": "x", "step": 3, "train_loss": 0.5,
           "train_wall_s": float(sys.argv[2]), "provenance": {"created_utc": sys.argv[2]}})
"""


def test_two_saves_of_the_same_state_in_different_processes_are_byte_identical(tmp_path):
    for name, stamp in (("a", "1.0"), ("b", "2.0")):
        subprocess.run([sys.executable, "-c", SAVE, str(tmp_path / name / "model.pt"), stamp], check=True)
    assert sha256(tmp_path / "a" / "model.pt") == sha256(tmp_path / "b" / "model.pt")
    torch.manual_seed(0)  # and in this process, under another file name
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    save_model(tmp_path / "other.pt", model, {"model": {"name": "mlp"}}, {"experiment": "x", "step": 3,
                                                                          "train_loss": 0.5})
    assert sha256(tmp_path / "other.pt") == sha256(tmp_path / "a" / "model.pt")
