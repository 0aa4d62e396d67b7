"""Snakemake itself killed mid-run: the README's recovery (unlock once, rerun) finishes the job, resuming training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import yaml

from tests.conftest import REPO, TINY, run_snakemake
from tests.unit.training.test_resume import finished_epochs

EPOCHS = 300


def test_killed_snakemake_unlock_and_rerun_resumes_training(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["experiments"] = {"digits_mlp": {**config["experiments"]["digits_mlp"]}}
    config["experiments"]["digits_mlp"]["train"] = {"epochs": EPOCHS, "batch_size": 256}
    config["sweeps"] = {}
    configfile = tmp_path / "long.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    work, target = tmp_path / "work", "results/digits_mlp/model.pt"
    args = ["--cores", "1", "--configfile", str(configfile), "-d", str(work), target]

    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        checkpoint = work / "results/digits_mlp/checkpoint/last.pt"
        deadline = time.monotonic() + 300
        while finished_epochs(checkpoint) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its job, as a lost terminal would
        proc.wait()
    killed_at = finished_epochs(checkpoint)
    assert 3 <= killed_at < EPOCHS, (tmp_path / "first.log").read_text()[-2000:]

    locked = run_snakemake(*args)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    assert run_snakemake("--unlock", *args).returncode == 0
    rerun = run_snakemake(*args)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    log = (work / "logs/train/digits_mlp.log").read_text()
    assert "resuming after epoch " in log, log[-2000:]
    assert finished_epochs(checkpoint) == EPOCHS and (work / target).exists()
