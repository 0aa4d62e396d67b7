"""The tiny config through a REAL SLURM (munged, slurmctld, slurmd started by the test) with the slurm profile.

Checks that jobs went through sbatch, that GPU stages asked for a GPU (the node's fake gres), that a job
failing once is retried and succeeds, that every torch job's time limit is the runtime estimated from the
costs measured before it (``runtimes: {estimate: true}``), and that the results equal those of a local run:
there every model's surfaces are one job, here their tiles are spread over ``surfaces.parts`` jobs and merged,
and the grids are bitwise the same.
Runs wherever the SLURM packages are installed and we are root; .ci/run installs them and sets
LOSSGEOM_REQUIRE_SLURM=1, which turns a skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tests.cluster.slurm import LocalSlurm, missing_programs
from tests.conftest import REPO

REQUIRED = os.environ.get("LOSSGEOM_REQUIRE_SLURM") == "1"
FAIL_ONCE = ("hessian", "blobs_mlp")  # this job's first attempt fails
SURFACE_PARTS = 3  # each model's surface tiles dealt out to three jobs, merged by a fourth


def _unavailable() -> str | None:
    if missing_programs():
        return f"SLURM programs missing: {', '.join(missing_programs())} (apt-get install slurmctld slurmd slurm-client munge)"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    return None


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The tiny config, with every torch stage asking the scheduler for one GPU (they still run on the CPU) and
    for the runtime estimated from measured costs."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config["gpus"] = 1
    config["runtimes"] = {"estimate": True, "startup_min": 2, "batches": 1, "repeats": 1}
    config["surfaces"]["parts"] = SURFACE_PARTS  # the local run computes each model's surfaces in one job
    path = tmp_path_factory.mktemp("config") / "tiny_gpus.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = _unavailable()
    if reason:
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
        yield slurm
    finally:
        slurm.stop()


def failing_python(bin_dir, marker):
    """A `python` first on PATH that fails the first attempt of FAIL_ONCE's job and runs the real one otherwise."""
    bin_dir.mkdir()
    shim = bin_dir / "python"
    step, experiment = FAIL_ONCE
    shim.write_text(f"""#!/bin/bash
if [[ " $* " == *" {step} "* && " $* " == *"{experiment}"* && ! -e {marker} ]]; then
    touch {marker}
    echo "injected failure of the first attempt" >&2
    exit 3
fi
exec {sys.executable} "$@"
""")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)


@pytest.fixture(scope="module")
def slurm_run(cluster, config_file, tmp_path_factory):
    work = tmp_path_factory.mktemp("slurm_work")
    marker = work / "failed_once"
    failing_python(work / "bin", marker)
    env_path = f"{work / 'bin'}:{os.environ['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles/slurm"),
           "--configfile", str(config_file), "-d", str(work), "--slurm-init-seconds-before-status-checks", "2",
           "--seconds-between-status-checks", "2", "--jobs", "4",
           "--cores", str(cluster.cpus)]  # the profile's per-job CPU cap, lowered to this node's CPUs
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "PATH": env_path, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr[-6000:] + cluster.log("slurmctld")[-3000:]
    return work, result, marker


def scheduler_jobs() -> list[dict[str, str]]:
    """Every job slurmctld still knows (MinJobAge keeps finished ones), as key=value fields."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    return [dict(re.findall(r"(\w[\w/:]*)=(\S*)", line)) for line in out.splitlines() if line.strip()]


def test_every_job_went_through_sbatch(slurm_run, cluster):
    work, result, _ = slurm_run
    submitted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", cluster.log("slurmctld"))
    jobs = [j for j in scheduler_jobs() if j.get("Comment", "").startswith("rule_")]
    assert len(submitted) >= len(jobs) > 20
    rules = {j["Comment"].split("_wildcards")[0].removeprefix("rule_") for j in jobs}
    assert {"train", "hessian", "surface_part", "surfaces", "check_model", "check_curvature", "check_synthetic", "F5",
            "T1"} <= rules
    assert all(j["JobState"] == "COMPLETED" or j["JobState"] == "FAILED" for j in jobs)
    parts = [j["Comment"] for j in jobs if j["Comment"].startswith("rule_surface_part_wildcards_digits_mlp")]
    assert len(parts) == SURFACE_PARTS, parts  # one scheduler job per part


GPU_RULES = {"train", "hessian", "surface_part", "check_model", "check_curvature", "sweep_run_trajectory",
             "check_saddle", "job_costs", "check_connectivity", "connectivity_part"}
ESTIMATED = ("train", "hessian", "surface_part", "check_model", "check_curvature")  # rules whose runtime is estimated
GROUPS = {"sweeps"}  # group jobs: the sweeps' train and hessian jobs, torch stages too


def test_gpu_stages_asked_for_a_gpu(slurm_run):
    jobs = [j for j in scheduler_jobs() if j.get("Comment", "").startswith("rule_")]
    for job in jobs:
        rule = job["Comment"].split("_wildcards")[0].removeprefix("rule_")
        asked = "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", "")
        in_group = rule.startswith(tuple(f"{group}_" for group in GROUPS))  # e.g. sweeps_sweep_hessian_sweep_train
        batch = rule.startswith("sweep_batch_")  # generated per batch: a sweep's runs trained and measured
        assert asked == (rule in GPU_RULES or batch or in_group), (rule, job.get("TresPerJob"))


def _minutes(limit: str) -> int:
    """A SLURM TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    hours, minutes, seconds = (int(v) for v in clock.split(":"))
    return (int(days or 0) * 24 + hours) * 60 + minutes + (seconds > 0)


def test_time_limits_are_the_runtimes_estimated_from_measured_costs(slurm_run):
    work, _, _ = slurm_run
    checked = 0
    for job in scheduler_jobs():
        rule, _, experiment = job.get("Comment", "").removeprefix("rule_").partition("_wildcards_")
        if rule == "surface_part":
            experiment = experiment.rsplit("_", 1)[0]  # its wildcards are the experiment and the part number
        if rule in ESTIMATED:
            costs = json.loads((work / f"results/{experiment}/job_costs.json").read_text())
            assert _minutes(job["TimeLimit"]) == costs["jobs"][rule]["runtime_min"], (rule, experiment, job["TimeLimit"])
            checked += 1
    assert checked >= (4 + SURFACE_PARTS) * 4  # every estimated job of the four experiments (and the retried attempt)


def test_a_sweeps_runs_share_one_submission(slurm_run, config_file):
    """The tiny sweep's 2 x 2 training jobs go to SLURM as one group job, not 4 jobs (each run's trajectory job, with
    its Hessians, is submitted on its own: see sweeps.smk)."""
    work, _, _ = slurm_run
    sweep = yaml.safe_load(config_file.read_text())["sweeps"]["blobs_width"]
    runs = len(sweep["grid"]["model.hidden"]) * len(sweep["grid"]["train.seed"])
    comments = [j.get("Comment", "") for j in scheduler_jobs()]
    assert sum(c.startswith("rule_sweeps") for c in comments) == 1, comments
    assert not any(c.startswith(("rule_sweep_train", "rule_sweep_hessian")) for c in comments)
    table = pd.read_csv(work / "results/sweeps/blobs_width/runs.csv")
    assert len(table) == runs and table["converged"].all()


def test_a_job_that_fails_once_is_retried_and_succeeds(slurm_run):
    work, _, marker = slurm_run
    assert marker.exists(), "the injected failure did not happen"
    step, experiment = FAIL_ONCE
    attempts = [j for j in scheduler_jobs() if j.get("Comment", "").startswith(f"rule_{step}_wildcards_{experiment}")]
    assert sorted(j["JobState"] for j in attempts) == ["COMPLETED", "FAILED"]
    assert json.loads((work / f"results/{experiment}/hessian/summary.json").read_text())["eigen"]["converged"]


def test_results_equal_a_local_run(slurm_run, tiny_run, config_file):
    """The local run is the session's tiny run (the same config but `gpus`, which changes requests, not results)."""
    work, _, _ = slurm_run
    local_run, _ = tiny_run
    timing = re.compile(r"wall|_s$| s$|seconds|time", re.I)  # wall times differ
    for table in ("training_summary.csv", "hessian_summary.csv", "checks/summary.csv", "figures/T1.csv",
                  "sweeps/blobs_width/runs.csv"):
        a, b = pd.read_csv(work / "results" / table), pd.read_csv(local_run / "results" / table)
        keep = [c for c in a.columns if not timing.search(c)]
        pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True)
    for experiment in yaml.safe_load(config_file.read_text())["experiments"]:
        ours = torch.load(work / f"results/{experiment}/model.pt", weights_only=True)["state_dict"]
        theirs = torch.load(local_run / f"results/{experiment}/model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
        a = np.load(work / f"results/{experiment}/surfaces/surfaces.npz")
        b = np.load(local_run / f"results/{experiment}/surfaces/surfaces.npz")
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
