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
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # keep the grid order of the run ids
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


def test_data_quantity_quality_and_init_scale_are_grid_axes(tmp_path, dry_run):
    grid = {"dataset.train_fraction": [0.5, 1.0], "dataset.label_noise": [0.0, 0.2], "model.init_scale": [0.1, 1.0, 10.0]}
    result = dry_run(config_with(tmp_path, {"knobs": {"base": "blobs_mlp", "grid": grid}}))
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout)["sweep_train"] == 12
    assert "results/sweeps/knobs/train_fraction=0.5_label_noise=0.2_init_scale=10/model.pt" in result.stdout


def test_snapshots_plan_one_trajectory_job_per_run(tmp_path, dry_run):
    steps = [0, 2, 8]
    sweeps = {"plain": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1]}, "hessian": True},
              "early": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1, 2]}, "hessian": True, "snapshots": steps}}
    result = dry_run(config_with(tmp_path, sweeps))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert {rule: n for rule, n in jobs.items() if rule.startswith("sweep_")} == {
        "sweep_train": 2, "sweep_train_with_snapshots": 3, "sweep_hessian": 2, "sweep_run_trajectory": 3,
        "sweep_trajectory": 1, "sweep_table": 2}  # a trajectory's final point is the run's Hessian: no separate job
    assert "results/sweeps/early/seed=2/trajectory/points.json" in result.stdout
    assert "results/sweeps/early/seed=2/hessian/summary.json" not in result.stdout
    assert "results/sweeps/plain/seed=0/snapshots" not in result.stdout


@pytest.mark.parametrize("grid, message", [
    ({"model.hidden": [[4], ["wide"]]}, "sweeps.w run hidden=wide: model.hidden.0: 'wide' is a str, expected integer"),
    ({"model.init_scale": [1.0, 0]}, "sweeps.w run init_scale=0: model.init_scale: 0 is out of range; must be > 0"),
    ({"dataset.label_noise": [1.0]}, "sweeps.w run label_noise=1: dataset.label_noise: 1.0 is out of range; must be < 1"),
    ({"model.init_scale": [1.0, 101]}, "sweeps.w run init_scale=101: model.init_scale: 101 is out of range; must be <= 100"),
    ({"train.subspace_dim": [4, 500]}, "sweeps.w run subspace_dim=500: train.subspace_dim 500 exceeds the model's "
                                       "42 parameters; allowed: 1..42, or 0 to train them all"),
    ({"train.subspace_dim": [-2]}, "sweeps.w run subspace_dim=-2: train.subspace_dim: -2 is out of range; must be >= 0"),
])
def test_a_bad_generated_run_stops_before_any_job(tmp_path, grid, message):
    bad = config_with(tmp_path, {"w": {"base": "blobs_mlp", "grid": grid}})
    result = run_snakemake("--cores", "1", "--configfile", str(bad), "-d", str(tmp_path / "work"))
    assert result.returncode != 0
    assert f"invalid configuration ({bad}): {message}" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "work" / "results").exists()


def test_local_geometry_plans_with_the_sweeps_own_settings(tmp_path, dry_run):
    sweeps = {"early": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1]}, "hessian": {"k_top": 5},
                        "local": {"logit_examples": 17}, "snapshots": [0, 2, 8], "checks": ["local"]},
              "end": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1, 2]}, "hessian": True, "local": True}}
    result = dry_run(config_with(tmp_path, sweeps), "results/checks/summary.csv", "F9", "results/sweeps/end/runs.csv")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert {rule: jobs.get(rule) for rule in ("sweep_hessian", "sweep_local", "sweep_run_trajectory", "check_sweep",
                                              "F9")} == {
        "sweep_hessian": 3, "sweep_local": 3, "sweep_run_trajectory": 2, "check_sweep": 1, "F9": 1}
    assert "results/checks/local_early.csv" in result.stdout
    assert "results/sweeps/early/seed=1/trajectory/points.json" in result.stdout
    assert "results/sweeps/end/seed=2/local.json" in result.stdout
    # the sweep's own settings, in the trajectory jobs' shell commands
    assert '"k_top": 5' in result.stdout and '"logit_examples": 17' in result.stdout


def test_a_batched_sweep_plans_one_job_per_batch_with_every_runs_files(tmp_path, dry_run):
    sweeps = {"early": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1, 2]}, "hessian": {"k_top": 5}, "local": True,
                        "snapshots": [0, 2], "batch": 2},
              "end": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1, 2, 3, 4]}, "hessian": True, "batch": 3},
              "plain": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1]}, "batch": 5}}
    result = dry_run(config_with(tmp_path, sweeps))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert {rule: n for rule, n in jobs.items() if rule.startswith("sweep_")} == {
        "sweep_batch_early_0": 1, "sweep_batch_early_1": 1, "sweep_batch_end_0": 1, "sweep_batch_end_1": 1,
        "sweep_batch_plain_0": 1, "sweep_trajectory": 1, "sweep_table": 3}
    assert "results/sweeps/early/seed=2/trajectory/points.json" in result.stdout
    assert "results/sweeps/end/seed=4/hessian/eigenvectors.pt" in result.stdout
    assert '"k_top": 5' in result.stdout and "--local-settings" in result.stdout


@pytest.mark.parametrize("sweep, message", [
    ({"base": "blobs_mlp", "grid": {"train.seed": [0]}, "local": True},
     "sweeps.w.local needs sweeps.w.hessian (true, or a mapping of hessian settings)"),
    ({"base": "sines_mlp", "grid": {"train.seed": [0]}, "hessian": True, "local": True},
     "sweeps.w.local: the local geometry needs classifiers (C logits); run seed=0 is a regression task"),
    ({"base": "blobs_mlp", "grid": {"train.seed": [0]}, "hessian": {"k_top": 0}},
     "k_top: 0 is out of range"),
    ({"base": "blobs_mlp", "grid": {"train.seed": []}},  # a sweep that would generate no runs
     "sweeps.w.grid.train.seed: [] should be non-empty"),
])
def test_a_bad_local_sweep_stops_before_any_job(tmp_path, sweep, message):
    bad = config_with(tmp_path, {"w": sweep})
    result = run_snakemake("--cores", "1", "--configfile", str(bad), "-d", str(tmp_path / "work"))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "work" / "results").exists()


def test_the_tiny_sweeps_local_checks_and_figure(tiny_run):
    """Every snapshot's local geometry is in the trajectory table, its rows in the summary, F9 drawn."""
    work, _ = tiny_run
    trajectory = pd.read_csv(work / "results/sweeps/blobs_width/trajectory.csv")
    assert trajectory[["gradient_norm", "overlap_k1", "overlap_k2", "gap_k", "ggn_distance"]].notna().all().all()
    assert ((trajectory["ggn_distance"] >= 0) & (trajectory["overlap_k2"] <= 1 + 1e-9)).all()
    assert (trajectory["overlap_baseline_k2"] == 2 / trajectory["n_parameters"]).all()
    runs = pd.read_csv(work / "results/sweeps/blobs_width/runs.csv")
    assert runs["ggn_distance"].notna().all()
    summary = pd.read_csv(work / "results/checks/summary.csv")
    local = summary[summary["check"].str.startswith("local_")]
    assert set(local["check"]) >= {"local_a_outliers", "local_b_gauss_newton", "local_c_gradient_overlap",
                                   "local_f_logit_clustering"}
    assert local["case"].str.startswith("blobs_width: ").all() and local["detail"].str.contains("per seed").all()
    assert (work / "results/figures/F9.png").exists() and (work / "results/figures/F9.ipynb").exists()


def test_the_tiny_sweep_is_tabulated_with_its_hessians(tiny_run):
    work, _ = tiny_run
    sweep = yaml.safe_load(TINY.read_text())["sweeps"]["blobs_width"]
    table = pd.read_csv(work / "results/sweeps/blobs_width/runs.csv")
    assert len(table) == len(sweep["grid"]["model.hidden"]) * len(sweep["grid"]["train.seed"])
    assert sorted(table["train.seed"].unique()) == sweep["grid"]["train.seed"]
    assert table["converged"].all() and (table["lambda_max"] > 0).all()
    widths = table.groupby("model.hidden")["n_parameters"].first()
    assert widths["[4]"] < widths["[8]"]  # the width really changed the model
    for run in table["run"]:  # the final model's point is the last snapshot's (same weights)
        manifest = yaml.safe_load((work / f"results/sweeps/blobs_width/{run}/trajectory/points.json").read_text())
        assert manifest["final"] == f"step={max(sweep['snapshots'])}"
        assert not (work / f"results/sweeps/blobs_width/{run}/hessian").exists()
        assert (work / f"logs/sweeps/blobs_width/{run}/train.log").exists()


def test_the_tiny_sweeps_trajectory_has_every_snapshot_and_its_hessian(tiny_run):
    work, _ = tiny_run
    sweep = yaml.safe_load(TINY.read_text())["sweeps"]["blobs_width"]
    trajectory = pd.read_csv(work / "results/sweeps/blobs_width/trajectory.csv")
    runs = pd.read_csv(work / "results/sweeps/blobs_width/runs.csv")
    assert len(trajectory) == len(runs) * len(sweep["snapshots"])
    assert trajectory.groupby("run")["step"].apply(list).map(lambda s: s == sweep["snapshots"]).all()
    assert trajectory["converged"].all()
    # the last snapshot is the trained model: its metrics (from the snapshot file) equal the training summary's
    last = trajectory[trajectory["step"] == max(sweep["snapshots"])].set_index("run")
    final = runs.set_index("run")
    assert last["train_loss"].to_dict() == pytest.approx(final["train_loss"].to_dict(), rel=1e-6)
    assert last["lambda_max"].to_dict() == final["lambda_max"].to_dict()  # runs.csv reads the final point
    # at initialization the loss is higher than after training, in every run
    first = trajectory[trajectory["step"] == 0].set_index("run")
    assert (first["train_loss"] > last["train_loss"]).all()


@pytest.mark.parametrize("seeds, group_jobs", [(2, 1), (3, 2)])  # 18 runs: one submission; 27 runs: two (20 + 7)
def test_the_slurm_profile_batches_a_sweeps_runs_into_group_jobs(tmp_path, seeds, group_jobs):
    sweep = {**SWEEP_3x3x2, "grid": {**SWEEP_3x3x2["grid"], "train.seed": list(range(seeds))}, "hessian": True}
    config = config_with(tmp_path, {"grid": sweep})
    result = run_snakemake("-n", "--profile", str(REPO / "profiles/slurm"), "--configfile", str(config),
                           "-d", str(tmp_path / "work"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count("Group job sweeps") == group_jobs
    jobs = planned_jobs(result.stdout)
    assert jobs["sweep_train"] == jobs["sweep_hessian"] == 9 * seeds  # every run's two jobs, inside those groups
