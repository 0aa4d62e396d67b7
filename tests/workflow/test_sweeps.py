"""Generated runs in the workflow: a sweep plans exactly its own jobs and leaves the paper's stages alone."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, TINY, run_snakemake
from tests.workflow.test_plan import planned_jobs

SWEEP_3x3x2 = {"base": "blobs_mlp",
               "grid": {"model.hidden": [[4], [8], [16]], "train.batch_size": [25, 50, 100], "train.seed": [0, 1]}}


def config_with(tmp_path, sweeps, name="sweeps.yaml"):
    config = yaml.safe_load(TINY.read_text())
    config["sweeps"] = sweeps
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("hessian", [False, True])
def test_a_3x3x2_sweep_plans_exactly_its_own_jobs(tmp_path, dry_run, hessian):
    paper = planned_jobs(dry_run(config_with(tmp_path, {}, "none.yaml")).stdout)
    result = dry_run(config_with(tmp_path, {"grid3x3x2": {**SWEEP_3x3x2, "hessian": hessian}}))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    own = {"sweep_train": 18, "sweep_table": 1} | ({"sweep_hessian": 18} if hessian else {})
    assert {rule: n for rule, n in jobs.items() if rule.startswith("sweep_")} == own
    assert {rule: n for rule, n in jobs.items() if not rule.startswith("sweep_") and rule != "total"} == paper
    assert "results/sweeps/grid3x3x2/hidden=16_batch_size=100_seed=1/model.pt" in result.stdout


def test_a_bad_generated_run_stops_before_any_job(tmp_path):
    bad = config_with(tmp_path, {"w": {"base": "blobs_mlp", "grid": {"model.hidden": [[4], ["wide"]]}}})
    result = run_snakemake("--cores", "1", "--configfile", str(bad), "-d", str(tmp_path / "work"))
    assert result.returncode != 0
    assert f"invalid configuration ({bad}): sweeps.w run hidden=wide: model.hidden.0: 'wide' is a str, expected integer" \
        in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "work" / "results").exists()


def test_the_tiny_sweep_is_tabulated_with_its_hessians(tiny_run):
    work, _ = tiny_run
    sweep = yaml.safe_load(TINY.read_text())["sweeps"]["blobs_width"]
    table = pd.read_csv(work / "results/sweeps/blobs_width/runs.csv")
    assert len(table) == len(sweep["grid"]["model.hidden"]) * len(sweep["grid"]["train.seed"])
    assert sorted(table["train.seed"].unique()) == sweep["grid"]["train.seed"]
    assert table["converged"].all() and (table["lambda_max"] > 0).all()
    widths = table.groupby("model.hidden")["n_parameters"].first()
    assert widths["[4]"] < widths["[8]"]  # the width really changed the model
    for run in table["run"]:
        assert (work / f"results/sweeps/blobs_width/{run}/hessian/summary.json").exists()
        assert (work / f"logs/sweeps/blobs_width/{run}/train.log").exists()


@pytest.mark.parametrize("seeds, group_jobs", [(2, 1), (3, 2)])  # 18 runs: one submission; 27 runs: two (20 + 7)
def test_the_slurm_profile_batches_a_sweeps_runs_into_group_jobs(tmp_path, seeds, group_jobs):
    sweep = {**SWEEP_3x3x2, "grid": {**SWEEP_3x3x2["grid"], "train.seed": list(range(seeds))}, "hessian": True}
    config = config_with(tmp_path, {"grid": sweep})
    result = run_snakemake("-n", "--profile", str(REPO / "workflow/profiles/slurm"), "--configfile", str(config),
                           "-d", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("Group job sweeps") == group_jobs
    jobs = planned_jobs(result.stdout)
    assert jobs["sweep_train"] == jobs["sweep_hessian"] == 9 * seeds  # every run's two jobs, inside those groups
