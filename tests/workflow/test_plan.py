"""The workflow's plan: dry-runs of every shipped config, lint, and config errors before any job."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY, run_snakemake


def planned_jobs(stdout: str) -> dict[str, int]:
    """Job counts from Snakemake's 'Job stats' table."""
    table = stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/tiny.yaml", "configs/paper.yaml", "configs/companions.yaml"])
def test_dry_run_plans_one_training_job_per_experiment(configfile, dry_run):
    result = dry_run(REPO / configfile)
    assert result.returncode == 0, result.stderr
    experiments = yaml.safe_load((REPO / configfile).read_text())["experiments"]
    jobs = planned_jobs(result.stdout)
    assert jobs["train"] == len(experiments), "a --configfile replaces config.yaml, it is not merged into it"
    assert jobs["training_summary"] == 1
    assert jobs["hessian"] == len(experiments) and jobs["hessian_summary"] == 1
    assert jobs["check_synthetic"] == 1 and jobs["checks_table"] == 1
    assert jobs["check_model"] == len(experiments) and jobs["surfaces"] == len(experiments)
    assert jobs["check_curvature"] == len(experiments)
    for name in experiments:
        assert f"results/{name}/model.pt" in result.stdout


def test_default_config_is_used_without_configfile():
    result = run_snakemake("-n", "--forceall")  # plans every job whatever results/ already holds
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout)["train"] == len(yaml.safe_load((REPO / "config.yaml").read_text())["experiments"])


def test_a_configfile_replaces_config_yaml_from_the_repository_root(tmp_path):
    """Run where config.yaml lies (no -d): the given set alone is planned, not merged into the default one."""
    result = run_snakemake("-n", "--forceall", "--configfile", "configs/tiny.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result.stdout)["train"] == len(yaml.safe_load(TINY.read_text())["experiments"])
    empty = tmp_path / "empty.yaml"
    empty.write_text("experiments: {}\n")
    result = run_snakemake("-n", "--configfile", str(empty))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "experiments: {} and no sweeps: nothing to run" in output, output[-2000:]


def test_lint_is_clean():
    result = run_snakemake("--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Lints for" not in output, output
    assert "Congratulations, your workflow is in a good condition!" in output


@pytest.mark.parametrize(
    "override, message",
    [
        ({"devise": "cpu"}, "(top level): unknown key(s) 'devise'; allowed keys: checks, connectivity, device, experiments, "
                            "figures, gpus, hessian, local, runtimes, saddle, surfaces, sweeps, threads"),
        ({"threads": "two"}, "threads: 'two' is a str, expected integer"),
        ({"experiments": {"x": {"dataset": {"name": "digits"}, "model": {"name": "vgg"}}}},
         "experiments.x.model.name: 'vgg' is not allowed; allowed values: mlp, lenet, resnet, resnet18, densenet121"),
        ({"experiments": {"x": {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "train": {"lr": 0}}}},
         "experiments.x.train.lr: 0 is out of range; must be > 0"),
        ({"experiments": {"x": {"model": {"name": "mlp"}}}}, "experiments.x: 'dataset' is a required property"),
        ({"sweeps": {"c": {"base": "blobs_mlp", "grid": {"train.seed": [0]}, "connectivity": True}}},
         "sweeps.c.connectivity compares independently trained solutions: its grid needs train.seed with two values"),
        ({"sweeps": {"c": {"base": "blobs_mlp", "grid": {"train.seed": [0, 1]}, "connectivity": {"path_points": 10}}}},
         "sweeps.c.connectivity (over the connectivity block): "),
        ({"sweeps": {"c": {"base": "sines_mlp", "grid": {"train.seed": [0, 1]}, "connectivity": True}}},
         "sweeps.c.connectivity: mode connectivity and CKA compare classifiers"),
        ({"sweeps": {"p": {"base": "blobs_mlp", "grid": {"model.hidden": [[4]], "train.batch_size": [8],
                                                       "train.seed": [0, 1]}, "connectivity": True, "checks": ["taxonomy"]}}},
         "sweeps.p.checks: taxonomy: the phase diagram needs hessian on this sweep"),
        ({"sweeps": {"p": {"base": "blobs_mlp", "grid": {"model.hidden": [[4]], "train.lr": [0.1], "train.seed": [0, 1]},
                           "hessian": True, "connectivity": True, "checks": ["taxonomy"]}}},
         "sweeps.p.checks: taxonomy: a taxonomy sweep's grid is a width (model.hidden or model.width), one of train.batch_size"),
        ({"sweeps": {"p": {"base": "blobs_mlp", "grid": {"model.hidden": [[4]], "train.batch_size": [8, 16],
                                                       "train.seed": [0, 1, 2]},
                           "hessian": True, "connectivity": True, "checks": ["taxonomy"]}}},
         "sweeps.p.checks: taxonomy: the phase diagram compares cells across its grid: give model.hidden two values at least"),
        ({"sweeps": {"p": {"base": "blobs_mlp", "grid": {"train.batch_size": [8, 16], "train.seed": [0, 1]},
                           "connectivity": {"parts": 2}}}},
         "sweeps.p.connectivity (over the connectivity block): connectivity.parts: 2 is out of range; it must be 1 while "
         "continuation is on"),
    ],
)
def test_bad_config_stops_before_any_job(override, message, tmp_path):
    bad = tmp_path / "bad.yaml"
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    config.update(override)
    bad.write_text(yaml.safe_dump(config))
    result = run_snakemake("--cores", "1", "--configfile", str(bad), "-d", str(tmp_path / "work"))
    assert result.returncode != 0
    assert f"invalid configuration ({bad}): {message}" in result.stderr, result.stderr
    assert not (tmp_path / "work" / "results").exists(), "no job ran"


TINY_CLASSIFIERS = 3  # digits_mlp, mnist1d_cnn, blobs_mlp (sines_mlp is the regression)


@pytest.mark.parametrize(
    "target, expected",
    [
        # F5, F6: their tables are the curvature check's rows (check_curvature), not recomputed by the notebook
        ("results/figures/F5.pdf", {"train": TINY_CLASSIFIERS, "hessian": TINY_CLASSIFIERS, "surfaces": TINY_CLASSIFIERS,
                                    "check_curvature": TINY_CLASSIFIERS, "F5": 1}),
        ("F5", {"train": TINY_CLASSIFIERS, "hessian": TINY_CLASSIFIERS, "surfaces": TINY_CLASSIFIERS,
                "check_curvature": TINY_CLASSIFIERS, "F5": 1}),
        ("F6", {"train": 1, "hessian": 1, "surfaces": 1, "check_curvature": 1, "F6": 1}),
        ("F1", {"synthetic_landscapes": 1, "F1": 1}),
        ("results/figures/F3.png", {"saddle_probability": 1, "check_synthetic": 1, "F3": 1}),
        ("F7", {"train": 4, "hessian": 4, "F7": 1}),
        ("F8", {"train": 4, "hessian": 4, "check_model": 4, "F8": 1}),
    ],
)
def test_a_single_figure_plans_only_the_jobs_it_needs(target, expected, dry_run):
    result = dry_run(TINY, target)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout) == expected


def test_every_figure_is_in_the_default_target(dry_run):
    result = dry_run(TINY)
    jobs = planned_jobs(result.stdout)
    assert {f"F{i}" for i in range(1, 9)} | {"T1"} <= set(jobs)


def test_a_figure_without_models_to_show_is_left_out(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    del config["experiments"]["sines_mlp"]  # no function approximator: no F6
    changed = tmp_path / "no_regression.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(changed), "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert "F6" not in jobs and jobs["F5"] == 1


def field_of(stdout: str, rule: str, field: str) -> list[str]:
    """The ``field:`` line (e.g. resources, input) of every planned job of ``rule`` in a dry-run's output."""
    blocks = re.split(r"\n(?=\[.*\]\n(?:local)?rule )", stdout)
    return [m.group(1) for b in blocks if re.search(rf"rule {rule}:\n", b) for m in [re.search(rf"{field}: (.*)", b)] if m]


def resources_of(stdout: str, rule: str) -> list[str]:
    return field_of(stdout, rule, "resources")


@pytest.mark.parametrize("configfile, gpu", [("configs/paper.yaml", "gpu=1"), ("configs/tiny.yaml", "gpu=0")])
def test_torch_stages_ask_for_a_gpu_when_their_device_is_cuda(configfile, gpu, dry_run):
    result = dry_run(REPO / configfile)
    assert result.returncode == 0, result.stderr
    for rule in ("train", "hessian", "surfaces", "check_model", "check_curvature"):
        lines = resources_of(result.stdout, rule)
        assert lines and all(gpu in line.split(", ") for line in lines), (rule, lines)
    assert all("gpu" not in line for line in resources_of(result.stdout, "F1"))


def test_the_config_can_ask_for_gpus_for_device_auto(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["gpus"] = 1
    changed = tmp_path / "gpus.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(changed), "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert all("gpu=1" in line.split(", ") for line in resources_of(result.stdout, "hessian"))


def test_paper_scale_downloads_each_dataset_once_before_every_job_that_reads_it(dry_run):
    """configs/paper.yaml: MNIST and CIFAR-10 are downloaded by one job each, and every training job waits for
    its dataset's download and for its experiment's measured costs (its runtime is estimated from them)."""
    result = dry_run(REPO / "configs/paper.yaml")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    downloading = {name: spec["dataset"]["name"] for name, spec in config["experiments"].items()
                   if spec["dataset"].get("download")}
    jobs = planned_jobs(result.stdout)
    assert jobs["download_data"] == len(set(downloading.values())) == 2
    assert jobs["job_costs"] == len(config["experiments"])
    for line in field_of(result.stdout, "train", "input"):
        experiment = re.search(r"results/(\w+)/job_costs.json", line).group(1)
        data = re.findall(r"results/data/(\w+)\.\w+\.json", line)
        assert data == ([downloading[experiment]] if experiment in downloading else []), line
    for rule in ("train", "hessian", "surfaces", "check_model", "check_curvature"):
        assert all("runtime=<TBD>" in line.split(", ") for line in resources_of(result.stdout, rule)), rule


def test_without_estimates_runtimes_are_the_rules_fallbacks(dry_run):
    result = dry_run(TINY)
    assert "job_costs" not in planned_jobs(result.stdout)
    assert all("runtime=240" in line.split(", ") for line in resources_of(result.stdout, "hessian"))


def test_surface_parts_plan_part_jobs_and_a_light_merge(tmp_path, dry_run):
    """surfaces.parts = 3: three surface_part jobs per model, and the surfaces rule becomes their merge (no GPU)."""
    config = yaml.safe_load(Path(TINY).read_text())
    config["surfaces"]["parts"] = 3
    config["gpus"] = 1
    path = tmp_path / "parts.yaml"
    path.write_text(yaml.safe_dump(config))
    result = dry_run(path)
    jobs = planned_jobs(result.stdout)
    assert jobs["surface_part"] == 3 * len(config["experiments"]) and jobs["surfaces"] == len(config["experiments"])
    assert all("gpu=1" in line.split(", ") for line in resources_of(result.stdout, "surface_part"))
    assert not any("gpu=1" in line.split(", ") for line in resources_of(result.stdout, "surfaces"))


def test_the_default_config_plans_the_global_structure_stages(dry_run):
    """The `connectivity` sweep: its six runs trained in one batch job, then one check_connectivity job and F13; the
    trend sweeps' rows and F14."""
    result = dry_run(REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    # one check_connectivity job per connectivity sweep: connectivity, and the phase diagrams' phase_batch, phase_noise
    assert jobs["check_connectivity"] == 3 and jobs["F13"] == 1 and jobs["sweep_batch_connectivity_0"] == 1
    assert "results/checks/connectivity_connectivity.csv" in result.stdout
    (figure,) = field_of(result.stdout, "F13", "input")  # the seed-pair sweep only: the phase diagrams are F15's
    assert "sweeps/connectivity/connectivity/summary.json" in figure and "phase_" not in figure
    # the three trend sweeps (lr, width, L2) in two batch jobs each, then one row job across them and F14
    assert jobs["check_trends"] == 1 and jobs["F14"] == 1
    assert all(jobs[f"sweep_batch_{sweep}_{i}"] == 1 for sweep in ("lr", "width_curvature", "l2") for i in (0, 1))
    assert "check_saddle" not in [r for r in jobs if jobs[r] > 1]  # the trend sweeps are not asked the saddle check



def test_the_default_config_plans_the_phase_diagrams(dry_run):
    """phase_batch (5 widths x 5 batch sizes x 3 seeds) and phase_noise: runs in batch jobs of 15, one connectivity
    job each (no simplices, no continuation), a cell table with rows each and F15; the summary table takes their
    phase rows, not their per-cell connectivity rows."""
    result = dry_run(REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs["check_taxonomy"] == 2 and jobs["F15"] == 1 and jobs["check_connectivity"] == 3
    assert all(jobs[f"sweep_batch_phase_batch_{i}"] == 1 for i in range(5))
    (tables,) = field_of(result.stdout, "checks_table", "input")
    assert "results/checks/taxonomy_phase_batch.csv" in tables and "results/checks/taxonomy_phase_noise.csv" in tables
    assert "connectivity_phase_batch.csv" not in tables and "results/checks/connectivity_connectivity.csv" in tables


def test_the_companion_papers_config_plans_its_sweeps_on_gpus(dry_run):
    """configs/companions.yaml (paper scale): every run of every sweep its own GPU jobs, the checks of each kind, the
    figures; MNIST and CIFAR-10 downloaded once, before the jobs that read them (and not needed to plan)."""
    result = dry_run(REPO / "configs/companions.yaml")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((REPO / "configs/companions.yaml").read_text())
    runs = {name: math.prod(len(values) for values in sweep["grid"].values()) for name, sweep in config["sweeps"].items()}
    jobs = planned_jobs(result.stdout)
    with_snapshots = [name for name, sweep in config["sweeps"].items() if sweep.get("snapshots")]
    assert jobs["sweep_train_with_snapshots"] == jobs["sweep_run_trajectory"] == sum(runs[n] for n in with_snapshots)
    assert jobs["sweep_train"] == runs["goldilocks_mnist"] == 54
    assert {rule: jobs.get(rule) for rule in ("check_sweep", "check_saddle")} == {"check_sweep": 5, "check_saddle": 2}
    for kind, sweeps in (("local", ["early_training_mnist", "early_training_cifar"]), ("spectra", ["clusters", "width"]),
                         ("goldilocks", ["goldilocks_mnist"])):
        assert all(f"results/checks/{kind}_{sweep}.csv" in result.stdout for sweep in sweeps)
    assert jobs["download_data"] == 2
    for rule in ("sweep_run_trajectory", "check_saddle"):
        lines = resources_of(result.stdout, rule)
        assert lines and all("gpu=1" in line.split(", ") for line in lines), (rule, lines)
    # the widest mixture network (N = 14,218) forms dense float64 H and G: its job asks for 4 N^2 doubles and more
    asked = [int(part.removeprefix("mem_mb=")) for line in resources_of(result.stdout, "sweep_run_trajectory")
             for part in line.split(", ") if part.startswith("mem_mb=")]
    assert max(asked) >= 4 * 8 * 14218**2 / 1e6 and min(asked) == 8000, sorted(set(asked))


def test_the_taxonomy_config_plans_yang_et_al_s_grid_through_the_slurm_profile(tmp_path):
    """configs/taxonomy.yaml (ResNet-18 of 13 widths x 13 batch sizes x 5 seeds on CIFAR-10): every run's training and
    Hessian on a GPU with the sweep's runtimes, one submission per run (as its header says to submit it), the
    connectivity in 13 parts of whole cells and one merge, the phase diagram's table, rows and figure; CIFAR-10
    downloaded once, not needed to plan."""
    config = yaml.safe_load((REPO / "configs/taxonomy.yaml").read_text())
    sweep = config["sweeps"]["taxonomy_cifar10"]
    runs = math.prod(len(values) for values in sweep["grid"].values())
    result = run_snakemake("-n", "--profile", str(REPO / "profiles/slurm"), "--configfile",
                           str(REPO / "configs/taxonomy.yaml"), "--group-components", "sweeps=1", "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert runs == 845 and jobs["sweep_train"] == jobs["sweep_hessian"] == runs
    assert (result.stdout + result.stderr).count("Group job sweeps") == runs  # a run's train and hessian per submission
    assert jobs["connectivity_part"] == sweep["connectivity"]["parts"] == 13 and jobs["merge_connectivity"] == 1
    assert jobs["check_taxonomy"] == jobs["F15"] == jobs["download_data"] == 1
    # the jobs inside group jobs are indented: each rule line, then its own fields up to the next rule
    entries = re.findall(r"^\s*rule (\w+):\n(.*?)(?=^\s*\[|\Z)", result.stdout, re.M | re.S)
    fields = lambda rule, name: [re.search(rf"{name}: (.*)", body).group(1) for r, body in entries if r == rule]  # noqa: E731
    for rule, runtime in (("sweep_train", 180), ("sweep_hessian", 75), ("connectivity_part", 720)):
        lines = fields(rule, "resources")
        assert len(lines) == jobs[rule] and all({"gpu=1", f"runtime={runtime}"} <= set(line.split(", ")) for line in lines), (
            rule, lines[:2])
    # each part holds whole cells: 13 cells x 5 seeds = 65 models
    assert [len(models.split(", ")) for models in fields("connectivity_part", "input")] == [65] * 13


def test_a_config_of_sweeps_alone_plans_no_experiment_tables(tmp_path):
    """configs/phases.yaml has no experiments (experiments: {}): its sweeps, their checks and F15 run, and the
    experiment tables and Table 1, which need an experiment, are not planned (the summary of no training runs
    failed before)."""
    config = yaml.safe_load((REPO / "configs/phases.yaml").read_text())
    assert config["experiments"] == {}
    result = run_snakemake("-n", "--configfile", str(REPO / "configs/phases.yaml"), "-d", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert jobs["check_taxonomy"] == 2 and jobs["F15"] == 1 and jobs["checks_table"] == 1
    assert not {"train", "training_summary", "hessian_summary", "T1"} & set(jobs), jobs
    assert "train.target_loss" not in result.stderr and '"target_loss": 0.01' in result.stdout
