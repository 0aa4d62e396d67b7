"""The workflow's plan, without Snakemake: runs, conditions, declared checks, job shapes, and one error per bad config
that names the config file (the same errors `lossgeom check-config` gives)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from lossgeom.cli import main
from lossgeom.errors import ConfigError
from lossgeom.io.sweeps import condition_label, conditions
from lossgeom.planning import make_plan
from lossgeom.planning.figures import figure_inputs
from lossgeom.planning.plan import deal
from lossgeom.settings import HessianSettings, LocalSettings
from tests.conftest import REPO

MIXTURE = {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 100, "n_test": 50}


def sizes(n: int = 1000, steps: int = 100):
    """Model facts without torch: every model has ``n`` parameters and trains ``steps`` steps."""
    return {"parameters": lambda spec: n, "training_steps": lambda spec: steps}


def config_with(**sweeps) -> dict:
    base = {"dataset": MIXTURE, "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 2, "batch_size": 50}}
    return {"experiments": {"blobs": copy.deepcopy(base)},
            "sweeps": {name: {"base": "blobs", **sweep} for name, sweep in sweeps.items()}}


def plan_error(config, **facts) -> str:
    with pytest.raises(ConfigError) as info:
        make_plan(config, sources=["my.yaml"], **(facts or sizes()))
    message = str(info.value)
    assert "\n" not in message and message.startswith("invalid configuration (my.yaml): "), message
    return message


@pytest.mark.parametrize("path", ["config.yaml", "configs/tiny.yaml", "configs/paper.yaml", "configs/companions.yaml",
                                  "configs/taxonomy.yaml", "configs/phases.yaml"])
def test_every_shipped_config_plans(path):
    plan = make_plan(yaml.safe_load((REPO / path).read_text()), sources=[path], **sizes(n=100_000, steps=10**9))
    config = yaml.safe_load((REPO / path).read_text())
    assert plan.experiments == sorted(config["experiments"])
    for name, sweep in config.get("sweeps", {}).items():
        assert plan.sweeps[name].checks == tuple(sweep.get("checks", ()))
        grid = sweep["grid"]
        expected_runs = 1
        for values in grid.values():
            expected_runs *= len(values)
        assert len(plan.sweeps[name].runs) == expected_runs


def test_runs_batches_and_what_each_run_writes():
    config = config_with(width={"grid": {"model.hidden": [[4], [8]], "train.seed": [0, 1, 2]}, "batch": 4,
                                "hessian": {"k_top": 5}, "local": True, "snapshots": [0, 2]})
    plan = make_plan(config, sources=["my.yaml"], **sizes())
    sweep = plan.sweeps["width"]
    assert list(sweep.runs) == ["hidden=4_seed=0", "hidden=4_seed=1", "hidden=4_seed=2",
                                "hidden=8_seed=0", "hidden=8_seed=1", "hidden=8_seed=2"]
    assert sweep.batches == [list(sweep.runs)[:4], list(sweep.runs)[4:]]
    assert sweep.runs["hidden=8_seed=2"]["model"]["hidden"] == [8] and sweep.runs["hidden=8_seed=2"]["train"]["seed"] == 2
    assert sweep.runs["hidden=8_seed=2"]["train"]["snapshots"] == [0, 2]
    # the sweep's mapping over the config's hessian block (library defaults for the rest)
    assert sweep.hessian == HessianSettings.from_mapping({"device": "auto", "k_top": 5})
    assert json.loads(sweep.settings_json["hessian"]) == {"device": "auto", "k_top": 5}
    assert sweep.local == LocalSettings.from_mapping({"device": "auto"})
    # with snapshots and Hessians, a run's measurements are its trajectory (one job per run)
    assert plan.run_files("width", "hidden=4_seed=0") == [
        "results/sweeps/width/hidden=4_seed=0/model.pt", "results/sweeps/width/hidden=4_seed=0/metrics.csv",
        "results/sweeps/width/hidden=4_seed=0/train.json", "results/sweeps/width/hidden=4_seed=0/snapshots",
        "results/sweeps/width/hidden=4_seed=0/trajectory/points.json"]
    assert plan.run_measurements("width") == plan.each_run("width", "trajectory/points.json")


def test_a_run_without_snapshots_writes_its_hessian_and_local_geometry():
    config = config_with(width={"grid": {"model.hidden": [[4]], "train.seed": [0]}, "hessian": True, "local": True})
    plan = make_plan(config, sources=["my.yaml"], **sizes())
    files = plan.run_files("width", "hidden=4_seed=0")
    assert [f.split("hidden=4_seed=0/")[1] for f in files] == [
        "model.pt", "metrics.csv", "train.json", "hessian/summary.json", "hessian/eigenvectors.pt",
        "hessian/trace_samples.csv", "hessian/density.csv", "hessian/slq_nodes.csv", "local.json"]


def test_conditions_group_the_seeds_of_each_grid_point_as_the_connectivity_stage_labels_them():
    grid = {"a": {"train.batch_size": 32, "model.hidden": [2], "train.seed": 0},
            "b": {"train.batch_size": 32, "model.hidden": [2], "train.seed": 1},
            "c": {"train.batch_size": 64, "model.hidden": [2], "train.seed": 0},
            "d": {"train.batch_size": 64, "model.hidden": [2], "train.seed": 1},
            "e": {"train.batch_size": 16, "model.hidden": [2], "train.seed": 0}}
    assert conditions(grid) == {"batch_size=32, hidden=[2]": ["a", "b"], "batch_size=64, hidden=[2]": ["c", "d"],
                                "batch_size=16, hidden=[2]": ["e"]}
    assert condition_label({"train.seed": 3}) == "all runs"
    assert deal(list(conditions(grid).values()), 2) == [["a", "b", "e"], ["c", "d"]]
    assert deal(list(conditions(grid).values()), 10) == [["a", "b"], ["c", "d"], ["e"]]  # never an empty part


def test_connectivity_parts_deal_whole_conditions():
    config = config_with(pairs={"grid": {"train.batch_size": [25, 50, 100], "train.seed": [0, 1]},
                                "connectivity": {"parts": 2, "continuation": False, "simplices": False},
                                "checks": ["connectivity"]})
    plan = make_plan(config, sources=["my.yaml"], **sizes())
    parts = plan.sweeps["pairs"].connectivity_parts
    assert parts == [["batch_size=25_seed=0", "batch_size=25_seed=1", "batch_size=100_seed=0", "batch_size=100_seed=1"],
                     ["batch_size=50_seed=0", "batch_size=50_seed=1"]]
    assert plan.split_connectivity == ["pairs"]
    runs = plan.connectivity_runs("pairs", 1)
    assert runs == {"batch_size=50_seed=0": {"model": "results/sweeps/pairs/batch_size=50_seed=0/model.pt",
                                             "grid": {"train.batch_size": 50, "train.seed": 0}},
                    "batch_size=50_seed=1": {"model": "results/sweeps/pairs/batch_size=50_seed=1/model.pt",
                                             "grid": {"train.batch_size": 50, "train.seed": 1}}}


def test_declared_checks_decide_rows_and_figures():
    config = config_with(
        early={"grid": {"model.init_scale": [0.3, 3.0], "train.seed": [0]}, "hessian": True, "local": True,
               "snapshots": [0, 2, 4], "checks": ["local", "saddle"]},
        measured={"grid": {"model.init_scale": [0.3, 3.0], "train.seed": [0]}, "hessian": True, "local": True,
                  "snapshots": [0, 2, 4]},  # measured, not judged: no rows, no figure
        lr={"grid": {"train.lr": [0.01, 0.1], "train.seed": [0]}, "hessian": True, "checks": ["trends"]},
        l2={"grid": {"train.weight_decay": [0.0, 0.1], "train.seed": [0]}, "hessian": True, "checks": ["trends"]})
    plan = make_plan(config, sources=["my.yaml"], **sizes())
    assert plan.with_check("local") == ["early"] and plan.with_check("saddle") == ["early"]
    assert plan.with_check("trends") == ["lr", "l2"]
    assert plan.check_tables()[-3:] == ["results/checks/local_early.csv", "results/checks/saddle_early.csv",
                                        "results/checks/trends.csv"]
    assert plan.check_table("local", "early") == "results/sweeps/early/trajectory.csv"
    with pytest.raises(ConfigError, match="does not declare the table check 'spectra'"):
        plan.check_table("spectra", "early")
    figures = figure_inputs(plan)
    assert figures["F9"] == (["results/sweeps/early/trajectory.csv"], ["early"], "sweeps")
    assert figures["F14"][1] == ["lr", "l2"] and "F10" not in figures and "F15" not in figures


@pytest.mark.parametrize("sweep, message", [
    ({"grid": {"model.hidden": [[4], [8]], "train.seed": [0]}, "hessian": True, "checks": ["spectra"]},
     "sweeps.s.checks: spectra: compares the runs' spectra: needs the local geometry"),
    ({"grid": {"model.hidden": [[4], [8]], "train.seed": [0]}, "hessian": True, "local": True, "snapshots": [0],
      "checks": ["local"]}, "sweeps.s.checks: local: follows the local geometry along training: give the sweep two"),
    ({"grid": {"model.init_scale": [1.0, 2.0], "train.seed": [0]}, "hessian": True, "local": True,
      "snapshots": [0, 4], "checks": ["saddle"]}, "give the sweep three snapshots at least"),
    ({"grid": {"model.init_scale": [1.0, 2.0]}, "checks": ["goldilocks"]}, "its grid needs train.subspace_dim"),
    ({"grid": {"train.lr": [0.1, 0.2], "model.hidden": [[4], [8]]}, "hessian": True, "checks": ["trends"]},
     "must vary exactly one of train.lr, model.hidden, train.weight_decay"),
    ({"grid": {"train.seed": [0, 1]}, "checks": ["connectivity"]}, "needs the connectivity stage"),
    ({"grid": {"model.hidden": [[4], [8]], "train.batch_size": [25, 50], "train.seed": [0, 1]}, "hessian": True,
      "checks": ["taxonomy"]}, "the phase diagram needs connectivity"),
    ({"grid": {"model.hidden": [[4], [8]], "train.batch_size": [25], "train.seed": [0, 1]}, "hessian": True,
      "connectivity": True, "checks": ["taxonomy"]}, "give train.batch_size two values at least"),
])
def test_a_check_the_sweep_cannot_feed_stops_the_plan(sweep, message):
    assert message in plan_error(config_with(s=sweep))


def test_trends_need_two_sweeps():
    config = config_with(lr={"grid": {"train.lr": [0.01, 0.1]}, "hessian": True, "checks": ["trends"]})
    assert "declare it on two sweeps at least" in plan_error(config)


# The fault probe's configs that check-config called valid while the workflow refused them (issue 26).
BAD_SWEEPS = [
    ({"grid": {"model.hiddn": [[4], [8]]}}, "unknown key(s) 'hiddn'"),
    ({"grid": {"train.lr": ["fast"]}}, "train.lr: 'fast' is a str, expected number"),
    ({"grid": {"train.subspace_dim": [5000]}}, "train.subspace_dim 5000 exceeds the model's 1000 parameters"),
    ({"grid": {"dataset.label_noise": [1.5]}}, "dataset.label_noise: 1.5 is out of range"),
    ({"grid": {"dataset.train_fraction": [0]}}, "dataset.train_fraction: 0 is out of range"),
    ({"grid": {"train.seed": [0]}, "connectivity": True}, "its grid needs train.seed with two values at least"),
    ({"grid": {"train.seed": [0]}, "snapshots": [0, 500]}, "sweeps.s.snapshots: [500] lie beyond the last step"),
    ({"grid": {"train.seed": [0]}, "local": True}, "sweeps.s.local needs sweeps.s.hessian"),
    ({"grid": {"train.seed": [0, 1]}, "connectivity": {"path_points": 6}},
     "sweeps.s.connectivity (over the connectivity block): connectivity.path_points"),
]


@pytest.mark.parametrize("sweep, message", BAD_SWEEPS)
def test_a_bad_sweep_stops_the_plan_naming_the_file_and_key(sweep, message):
    assert message in plan_error(config_with(s=sweep))


def test_a_sweep_without_base_is_refused():
    config = config_with(s={"grid": {"train.seed": [0]}})
    del config["sweeps"]["s"]["base"]
    assert "sweeps.s: 'base' is a required property" in plan_error(config)


@pytest.mark.parametrize("sweep, message", BAD_SWEEPS[:2] + BAD_SWEEPS[3:6])
def test_check_config_refuses_what_the_workflow_refuses(sweep, message, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config_with(s=sweep)))
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and f"invalid configuration ({path})" in error, error


def test_snapshots_are_placed_with_the_real_training_length():
    """The training steps come from the data (100 examples / batch 50 x 2 epochs = 4 steps), not a guess."""
    config = config_with(s={"grid": {"train.seed": [0]}, "snapshots": [0, 4]})
    assert make_plan(config, sources=["my.yaml"]).sweeps["s"].snapshots == [0, 4]
    config["sweeps"]["s"]["snapshots"] = [0, 5]
    assert "[5] lie beyond the last step of training of run seed=0 (4 = epochs x" in plan_error(
        config, parameters=lambda spec: 1000, training_steps=None)


def test_resources_follow_devices_and_dense_matrices():
    config = config_with(s={"grid": {"model.hidden": [[4], [64]], "train.seed": [0]}, "hessian": {"device": "cuda"},
                            "local": {"exact_max_parameters": 50_000}, "batch": 2})
    n_of = {4: 100, 64: 20_000}
    plan = make_plan(config, sources=["my.yaml"], parameters=lambda spec: n_of[spec["model"]["hidden"][0]],
                     training_steps=lambda spec: 10)
    assert plan.sweep_gpus("s", ["hessian"]) == 1 and plan.sweep_gpus("s", ["local"]) == 0
    assert plan.batch_gpus("s", 0) == 1
    # 4 N^2 doubles for the dense H and G of the N = 20,000 run, on top of 4 GB
    assert plan.measure_mem_mb("s", ["hidden=4_seed=0"]) == 8000
    assert plan.measure_mem_mb("s", ["hidden=64_seed=0"]) == 4000 + 4 * 8 * 20_000**2 // 10**6
    assert plan.batch_runtime("s", 0) == 2 * 30
    config["sweeps"]["s"]["runtime"] = {"train": 7}
    plan = make_plan(config, sources=["my.yaml"], parameters=lambda spec: 10, training_steps=lambda spec: 10)
    assert plan.batch_runtime("s", 0) == 2 * (7 + 120)
    config["gpus"] = 2
    assert make_plan(config, sources=["my.yaml"], **sizes()).sweep_gpus("s", ["local"]) == 2


def test_planning_does_not_import_torch_where_no_sweep_needs_a_model_built():
    code = ("import sys, yaml; from lossgeom.planning import make_plan; "
            "make_plan(yaml.safe_load(open('configs/paper.yaml')), ['configs/paper.yaml']); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_an_old_taxonomy_key_says_what_replaces_it():
    config = config_with(p={"grid": {"train.seed": [0, 1]}, "taxonomy": True})
    assert "sweeps.p.taxonomy: a sweep's checks are now one list; write checks: [taxonomy]" in plan_error(config)


def test_a_connectivity_stage_nothing_reads_stops_the_plan():
    config = config_with(pairs={"grid": {"train.seed": [0, 1]}, "connectivity": True})
    assert "sweeps.pairs.connectivity: nothing would read its paths and simplices: declare" in plan_error(config)
    config["sweeps"]["pairs"]["checks"] = ["connectivity"]
    assert make_plan(config, sources=["my.yaml"], **sizes()).with_check("connectivity") == ["pairs"]


def test_a_phase_diagram_keeps_its_per_cell_connectivity_rows_out_of_the_summary():
    config = config_with(p={"grid": {"model.hidden": [[4], [8]], "train.batch_size": [25, 50], "train.seed": [0, 1]},
                            "hessian": True, "connectivity": True, "checks": ["taxonomy", "connectivity"]})
    assert "sweeps.p.checks: connectivity: a phase diagram's per-cell connectivity rows stay out" in plan_error(config)


def test_each_table_check_reads_its_table():
    config = config_with(
        clusters={"grid": {"dataset.clusters": [2, 3], "train.seed": [0]}, "hessian": True, "local": True,
                  "checks": ["spectra"]},
        zone={"grid": {"model.init_scale": [1.0, 3.0], "train.subspace_dim": [4]}, "checks": ["goldilocks"]})
    plan = make_plan(config, sources=["my.yaml"], **sizes())
    assert plan.check_table("spectra", "clusters") == "results/sweeps/clusters/runs.csv"
    assert plan.check_table("goldilocks", "zone") == "results/sweeps/zone/runs.csv"
    with pytest.raises(ConfigError, match="does not declare the table check 'saddle'"):
        plan.check_table("saddle", "zone")


def test_the_schema_lists_exactly_the_planned_checks():
    from lossgeom.io.configcheck import load_schema
    from lossgeom.planning import SWEEP_CHECKS

    schema = load_schema(REPO / "workflow/schemas/config.schema.yaml")
    sweep = schema["properties"]["sweeps"]["additionalProperties"]["properties"]
    assert sweep["checks"]["items"]["enum"] == list(SWEEP_CHECKS)


@pytest.mark.parametrize("override, message", [
    ({"saddle": {"points": 50}}, "saddle.points"),  # the schema says odd only in words; the dataclass checks it
    ({"experiments": {"blobs": {"train": {"epochs": 0}}}}, "experiments.blobs.train.epochs: 0 is out of range"),
])
def test_every_settings_block_is_checked_when_planning(override, message):
    config = config_with()
    for key, value in override.items():
        if key == "experiments":
            config["experiments"]["blobs"]["train"].update(value["blobs"]["train"])
        else:
            config[key] = value
    assert message in plan_error(config)


def test_check_config_refuses_a_check_the_sweep_cannot_feed(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config_with(s={"grid": {"train.seed": [0]}, "local": True})))
    assert main(["check-config", str(path)]) == 2
    assert "sweeps.s.local needs sweeps.s.hessian" in capsys.readouterr().err
