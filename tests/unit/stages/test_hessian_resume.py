"""A Hessian job killed with SIGKILL and started again ends with results bitwise equal to an uninterrupted one."""

from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time

import torch

from lossgeom.stages.train import TrainPaths, run as train_run
from lossgeom.training.checkpoints import load_file

from tests.conftest import REPO

SPEC = {"dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 2, "batch_size": 64, "device": "cpu"}}
# a small basis forces thick restarts (where Lanczos saves), many Hutchinson probes keep the job busy long enough to
# kill it there; SLQ runs after the kill point, whole in both runs, so a few short probes suffice (30 x 40 took 18 s
# of a 33 s job, twice: in the reference and in the resumed run).
# The method is fixed: under auto the uninterrupted reference would time its own choice, which may differ from
# the killed run's (a resumed run keeps the killed run's choice: test_hessian.py checks that), and then the two
# would agree to rounding only.
SETTINGS = {"k_top": 8, "k_bottom": 3, "tol": 1e-9, "max_basis": 26, "max_hvps": 3000, "hutchinson_samples": 300,
            "slq_probes": 4, "slq_steps": 20, "dtype": "float64", "device": "cpu", "save_every_s": 0,
            "method": "forward-over-reverse"}


def start(model, out_dir, log):
    cmd = [sys.executable, "-m", "lossgeom", "--threads", "1", "hessian", "--model", str(model),
           "--settings", json.dumps(SETTINGS), "--out-dir", str(out_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def saved_loops(partial) -> set[str]:
    try:
        return set(torch.load(partial, weights_only=True)["states"])
    except Exception:  # not written yet
        return set()


@pytest.mark.slow  # a killed subprocess and a resumed one: an integration test (tens of seconds), in the full tier
def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    trained = TrainPaths.in_directory(tmp_path / "model")
    train_run("m", SPEC, trained, progress=False)
    with open(tmp_path / "reference.log", "w") as log:
        assert start(trained.model, tmp_path / "reference", log).wait(timeout=600) == 0
    assert not (tmp_path / "reference" / "partial.pt").exists(), "removed once the results are written"

    killed = tmp_path / "killed"
    partial = killed / "partial.pt"
    with open(tmp_path / "killed.log", "w") as log:
        proc = start(trained.model, killed, log)
        deadline = time.monotonic() + 300
        while not ({"hutchinson"} <= saved_loops(partial)):  # Lanczos done, Hutchinson under way
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (killed / "summary.json").exists()

    with open(tmp_path / "resumed.log", "w") as log:
        assert start(trained.model, killed, log).wait(timeout=600) == 0
    assert "resuming (products, lanczos, hutchinson saved)" in (tmp_path / "resumed.log").read_text()
    assert not partial.exists()

    a = json.loads((tmp_path / "reference" / "summary.json").read_text())
    b = json.loads((killed / "summary.json").read_text())
    for key in ("eigen", "trace", "density_moments", "hvps_total"):
        assert a[key] == b[key], key
    va = load_file(tmp_path / "reference" / "eigenvectors.pt", "lossgeom-eigenvectors-v1")
    vb = load_file(killed / "eigenvectors.pt", "lossgeom-eigenvectors-v1")
    assert torch.equal(va["top_vectors"], vb["top_vectors"]) and torch.equal(va["bottom_vectors"], vb["bottom_vectors"])
    assert (tmp_path / "reference" / "trace_samples.csv").read_text() == (killed / "trace_samples.csv").read_text()


def test_lanczos_resumed_from_a_thick_restart_ends_where_an_uninterrupted_run_ends():
    """In memory: stop Lanczos at its second saved restart, start again from that state, compare bitwise."""
    from lossgeom.engine.lanczos import extreme_eigenpairs
    from lossgeom.engine.operator import MatrixOperator

    g = torch.Generator().manual_seed(0)
    A = torch.randn(300, 300, generator=g, dtype=torch.float64)
    op = MatrixOperator((A + A.T) / 2)

    class Recorder:
        def __init__(self, stop_after=None, state=None):
            self.stop_after, self.state, self.saves = stop_after, state, 0

        def load(self):
            return self.state

        def save(self, state, *, final=False):
            self.saves += 1
            if self.stop_after is not None and self.saves == self.stop_after:
                self.state = state
                raise KeyboardInterrupt

    kwargs = dict(k_top=4, k_bottom=2, tol=1e-10, max_basis=20, max_hvps=5000)
    reference = extreme_eigenpairs(op, **kwargs)
    assert reference.restarts >= 3, "the test needs thick restarts"
    stopped = Recorder(stop_after=2)
    try:
        extreme_eigenpairs(op, resume=stopped, **kwargs)
    except KeyboardInterrupt:
        pass
    assert stopped.state is not None and "result" not in stopped.state
    resumed = extreme_eigenpairs(op, resume=Recorder(state=stopped.state), **kwargs)
    assert torch.equal(resumed.top.values, reference.top.values) and torch.equal(resumed.bottom.vectors, reference.bottom.vectors)
    assert (resumed.hvps, resumed.restarts) == (reference.hvps, reference.restarts)
