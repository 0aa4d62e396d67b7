# Shared setup: validate the config before any job runs, and helpers the rule files use.
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # lossgeom.io.configcheck and .sweeps need only jsonschema and yaml
from lossgeom.io.configcheck import experiment_task, load_schema, validate_config, validate_experiment  # noqa: E402
from lossgeom.io.sweeps import (  # noqa: E402
    expand_sweep, grid_values, has_hessian, has_local, has_stage, hessian_overrides, local_overrides, run_batches,
    snapshot_steps, stage_overrides,
)
from lossgeom.errors import ConfigError  # noqa: E402

SCHEMA = load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
CONFIG_SOURCES = [str(f) for f in workflow.configfiles] or ["config.yaml"]


def expand_sweeps():
    """{sweep: {run id: experiment spec}}; every generated run is checked like an experiment."""
    specs = {name: expand_sweep(name, sweep, config["experiments"]) for name, sweep in config["sweeps"].items()}
    for name, runs in specs.items():
        for run_id, spec in runs.items():
            validate_experiment(spec, SCHEMA, where=f"sweeps.{name} run {run_id}", sources=CONFIG_SOURCES)
            if has_local(config["sweeps"][name]) and experiment_task(spec) != "classification":
                raise ConfigError(f"sweeps.{name}.local: the local geometry needs classifiers (C logits); run {run_id} "
                                  f"is a {experiment_task(spec)} task. Set local: false for this sweep")
            if has_stage(config["sweeps"][name], "connectivity") and experiment_task(spec) != "classification":
                raise ConfigError(f"invalid configuration ({', '.join(CONFIG_SOURCES)}): sweeps.{name}.connectivity: mode connectivity and CKA compare classifiers (training "
                                  f"error, softmax outputs); run {run_id} is a {experiment_task(spec)} task. Set "
                                  "connectivity: false for this sweep")
            dim = spec.get("train", {}).get("subspace_dim", 0)
            if dim and dim > model_size(spec):  # builds the model (torch): only for subspace runs
                raise ConfigError(f"invalid configuration ({', '.join(CONFIG_SOURCES)}): sweeps.{name} run {run_id}: "
                                  f"train.subspace_dim {dim} exceeds the model's "
                                  f"{model_size(spec)} parameters; allowed: 1..{model_size(spec)}, or 0 to train them all")
    for name, sweep in config["sweeps"].items():
        if has_stage(sweep, "connectivity") and len(sweep["grid"].get("train.seed", [])) < 2:
            raise ConfigError(f"invalid configuration ({', '.join(CONFIG_SOURCES)}): sweeps.{name}.connectivity compares "
                              "independently trained solutions: its grid needs train.seed with two values at least "
                              "(three for the simplices), e.g. train.seed: [0, 1, 2]")
    return specs


def model_size(spec):
    """N of an experiment's model (torch imported on first use, the answer cached per dataset and model)."""
    key = json.dumps({k: spec.get(k) for k in ("dataset", "model")}, sort_keys=True)
    if key not in _MODEL_SIZES:
        from lossgeom.training.loop import model_size as count

        _MODEL_SIZES[key] = count(spec)
    return _MODEL_SIZES[key]


_MODEL_SIZES = {}


try:
    validate_config(config, SCHEMA, sources=CONFIG_SOURCES)
    SWEEP_SPECS = expand_sweeps()  # sweep -> {run id: spec}, run ids in grid order
except ConfigError as err:
    raise WorkflowError(str(err)) from None

EXPERIMENTS = sorted(config["experiments"])
SWEEPS = config["sweeps"]
SWEEP_GRIDS = {name: grid_values(sweep) for name, sweep in SWEEPS.items()}
SNAPSHOT_STEPS = {name: snapshot_steps(sweep) for name, sweep in SWEEPS.items() if snapshot_steps(sweep)}
HESSIAN_SWEEPS = [name for name, sweep in SWEEPS.items() if has_hessian(sweep)]
LOCAL_SWEEPS = [name for name in HESSIAN_SWEEPS if has_local(SWEEPS[name])]
# checked and plotted along training: two snapshots at least (a trajectory, not only the initialization)
LOCAL_TRAJECTORIES = [name for name in LOCAL_SWEEPS if len(SNAPSHOT_STEPS.get(name, [])) >= 2]
# sweeps of the data (Gaussian mixtures) or the width with local geometry: the bulk-and-outliers checks and figure
SPECTRA_SWEEPS = [name for name in LOCAL_SWEEPS
                  if {"dataset.clusters", "dataset.separation", "model.hidden"} & set(next(iter(SWEEP_GRIDS[name].values()), {}))]
# sweeps over the initialization scale and the subspace dimension: the Goldilocks checks and figure
GOLDILOCKS_SWEEPS = [name for name, grid in SWEEP_GRIDS.items()
                     if {"model.init_scale", "train.subspace_dim"} <= set(next(iter(grid.values()), {}))]
# sweeps whose runs are given to jobs n at a time (the sweep's `batch`): {sweep: [[run id, ...], ...]}
BATCHES = {name: run_batches(list(SWEEP_SPECS[name]), sweep["batch"]) for name, sweep in SWEEPS.items() if sweep["batch"] > 1}
# Every job can import the library (python -m lossgeom), in the uv environment and in the rules'
# conda environments alike, without installing the repository into them.
# (Snakemake formats the prefix like a shell command: doubled braces reach bash as single ones.)
LIBRARY_PATH = Path(workflow.basedir) / "src"
shell.prefix(f"set -euo pipefail; export PYTHONPATH={LIBRARY_PATH}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


def one_of(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(names) or "(?!)"


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    sweep=one_of(SWEEPS),
    run="[A-Za-z0-9_.=+-]+",


def block(*keys):
    """A block of the config by its keys, e.g. block("checks", "models")."""
    node = config
    for key in keys:
        node = node[key]
    return node


def block_json(*keys):
    """A config block as JSON for the CLI, as the user wrote it: the library's settings fill the defaults."""
    return json.dumps(block(*keys), sort_keys=True)


def with_device(*keys):
    """A torch stage's block as JSON for the CLI; the top-level device applies unless the block sets its own."""
    return json.dumps({"device": config["device"], **block(*keys)}, sort_keys=True)


def sweep_hessian_settings(wildcards):
    """A sweep's Hessian settings as JSON: the `hessian` block with the sweep's own `hessian` mapping over it."""
    overrides = hessian_overrides(SWEEPS[wildcards.sweep])
    return json.dumps({"device": config["device"], **block("hessian"), **overrides}, sort_keys=True)


def sweep_local_settings(wildcards):
    """A sweep's local-geometry settings as JSON: the `local` block with the sweep's own `local` mapping over it."""
    overrides = local_overrides(SWEEPS[wildcards.sweep])
    return json.dumps({"device": config["device"], **block("local"), **overrides}, sort_keys=True)


# sweeps with Hessians (and no local geometry: those are the bulk-and-outlier sweeps, on other data) over one of
# learning rate, width, L2 (and seeds): the trend rows across them (rule check_trends, F14; Fort & Jastrzebski)
TREND_KEYS = ("train.lr", "model.hidden", "train.weight_decay")
TREND_SWEEPS = [name for name in HESSIAN_SWEEPS if name not in LOCAL_SWEEPS
                and [k for k in SWEEPS[name]["grid"] if k != "train.seed" and len(SWEEPS[name]["grid"][k]) > 1]
                in [[key] for key in TREND_KEYS]]


SWEEP_RUNTIMES = {"train": 60, "hessian": 120, "connectivity": 60}  # minutes, unless a sweep's `runtime` says


def sweep_runtime(sweep, job):
    """A sweep job's cluster runtime (minutes): the sweep's `runtime` mapping (paper-scale sweeps on GPUs, e.g.
    configs/taxonomy.yaml), else the defaults above."""
    return int(SWEEPS[sweep].get("runtime", {}).get(job, SWEEP_RUNTIMES[job]))


def batch_runtime(sweep, runs):
    """A batch job of `runs` runs: runs x (train + hessian) of the sweep's `runtime` mapping (the defaults above
    for what it leaves out), or 30 minutes a run when the sweep has none (small runs, seconds each)."""
    if not SWEEPS[sweep].get("runtime"):
        return 30 * runs
    measure = sweep_runtime(sweep, "hessian") if sweep in HESSIAN_SWEEPS else 0
    return int(runs * (sweep_runtime(sweep, "train") + measure))


# sweeps whose seeds are connected by paths and simplices (rule check_connectivity, F13)
CONNECTIVITY_SWEEPS = [name for name, sweep in SWEEPS.items() if has_stage(sweep, "connectivity")]


def sweep_connectivity_settings(sweep):
    """A sweep's connectivity settings as JSON: the `connectivity` block with the sweep's own mapping over it."""
    return json.dumps({"device": config["device"], **block("connectivity"),
                       **stage_overrides(SWEEPS[sweep], "connectivity")}, sort_keys=True)


def check_connectivity_settings():
    """Each connectivity sweep's settings, checked when the workflow is planned (not in the job, after training)."""
    from lossgeom.stages.connectivity import ConnectivitySettings  # torch: only when a sweep asks for connectivity

    for name in CONNECTIVITY_SWEEPS:
        try:
            ConnectivitySettings.from_mapping(json.loads(sweep_connectivity_settings(name)))
        except ConfigError as err:
            raise WorkflowError(f"invalid configuration ({', '.join(CONFIG_SOURCES)}): sweeps.{name}.connectivity "
                                f"(over the connectivity block): {err}") from None


if CONNECTIVITY_SWEEPS:
    check_connectivity_settings()


def connectivity_parts(sweep):
    """The sweep's runs in the connectivity block's `parts` jobs: whole conditions (grid values but the seed) each,
    dealt round robin in the grid's order (one part: every run)."""
    wanted = json.loads(sweep_connectivity_settings(sweep)).get("parts", 1)
    conditions = {}
    for run_id, grid in SWEEP_GRIDS[sweep].items():
        conditions.setdefault(json.dumps({k: v for k, v in grid.items() if k != "train.seed"}), []).append(run_id)
    parts = [[] for _ in range(min(wanted, len(conditions)))]
    for index, run_ids in enumerate(conditions.values()):
        parts[index % len(parts)] += run_ids
    return parts


CONNECTIVITY_PARTS = {name: connectivity_parts(name) for name in CONNECTIVITY_SWEEPS}
SPLIT_CONNECTIVITY = [name for name, parts in CONNECTIVITY_PARTS.items() if len(parts) > 1]


# sweeps over width x batch size (or label noise) x seeds with Hessians and connectivity: Yang et al.'s phase diagram
# (rule check_taxonomy, F15); their per-cell connectivity rows stay in results/checks/connectivity_<sweep>.csv, out of
# the summary (dozens of cells, each with the pair rows of the connectivity sweep: the phase rows are the claims here)
TAXONOMY_SWEEPS = [name for name, sweep in SWEEPS.items() if sweep.get("taxonomy")]


def check_taxonomy_sweeps():
    """A taxonomy sweep needs Hessians, connectivity and a grid of width, one second axis and seeds (planned here, not
    found after training)."""
    from lossgeom.checks.taxonomy import taxonomy_axis

    for name in TAXONOMY_SWEEPS:
        where = f"invalid configuration ({', '.join(CONFIG_SOURCES)}): sweeps.{name}.taxonomy"
        missing = [key for key in ("hessian", "connectivity") if not has_stage(SWEEPS[name], key)]
        if missing:
            raise WorkflowError(f"{where}: the phase diagram needs {' and '.join(missing)} on this sweep (true, or a "
                                "mapping of settings): lambda_max and tr(H) per run, mc and CKA per cell")
        try:
            taxonomy_axis(list(SWEEPS[name]["grid"]))
        except ValueError as err:
            raise WorkflowError(f"{where}: {err}") from None
        short = [key for key, values in SWEEPS[name]["grid"].items() if len(values) < 2]
        if short:
            raise WorkflowError(f"{where}: the phase diagram compares cells across its grid: give {', '.join(short)} "
                                "two values at least (three seeds for a spread of mc)")
        if SNAPSHOT_STEPS.get(name):
            raise WorkflowError(f"{where}: remove this sweep's snapshots (the phase diagram reads each run's final model)")


if TAXONOMY_SWEEPS:
    check_taxonomy_sweeps()


def sweep_measure_gpus(sweep, stages=("hessian", "local")):
    """GPUs for a job that measures a sweep's runs in these stages: the sweep's Hessian or local-geometry device
    (the config block's, or the sweep's own override), whichever asks more."""
    settings = {"hessian": sweep_hessian_settings, "local": sweep_local_settings}
    devices = [json.loads(settings[stage](SimpleNamespace(sweep=sweep)))["device"] for stage in stages
               if stage == "hessian" or sweep in LOCAL_SWEEPS]
    return max((gpus(device) for device in devices), default=0)


def sweep_measure_mem_mb(sweep, run_ids):
    """Memory (MB) for a job that measures these runs of a sweep: 8 GB, more where the local geometry forms dense
    float64 H and G (N x N each; with H - G at most 3 N^2 doubles at once, 4 N^2 asked for: 6.5 GB at N = 14,218)."""
    mem_mb = 8000
    if sweep in LOCAL_SWEEPS:
        from lossgeom.stages.local_geometry import LocalSettings

        limit = LocalSettings.from_mapping(json.loads(sweep_local_settings(SimpleNamespace(sweep=sweep)))).exact_max_parameters
        for run_id in run_ids:
            n = model_size(SWEEP_SPECS[sweep][run_id])
            if n <= limit:
                mem_mb = max(mem_mb, 4000 + math.ceil(4 * 8 * n * n / 1e6))
    return mem_mb


# the early-training sweeps (local geometry along training) with Hessians at three snapshots at least (an early one
# between the ends) and the most negative eigenpair: the saddle in Hessian vs random directions early in training
# (rule check_saddle, F12); sweeps that follow only lambda_max and tr(H) along training (the hyperparameter sweeps)
# are not asked it
SADDLE_SWEEPS = [name for name in LOCAL_TRAJECTORIES if len(SNAPSHOT_STEPS.get(name, [])) >= 3
                 and json.loads(sweep_hessian_settings(SimpleNamespace(sweep=name))).get("k_bottom", 1) >= 1]


def device_of(block):
    """The device a config block (a stage's, or an experiment's train block) runs on: its own, else the top-level one."""
    return block.get("device", config["device"])


def gpus(device):
    """GPUs to ask a scheduler for, for a job on ``device`` (the config's `gpus` wins when set)."""
    if config["gpus"] is not None:
        return config["gpus"]
    return 1 if str(device).startswith("cuda") else 0


def stage_gpus(*keys):
    """GPUs for a stage whose config block (e.g. "hessian") may override the top-level device."""
    return gpus(device_of(block(*keys)))


def spec_gpus(spec):
    """GPUs for training an experiment spec (its train.device, else the top-level device)."""
    return gpus(device_of(spec.get("train", {})))


def training_gpus(wildcards):
    return spec_gpus(config["experiments"][wildcards.experiment])


def spec_json(spec):
    """An experiment spec as JSON for the CLI; the top-level device applies unless train.device is set."""
    spec = json.loads(json.dumps(spec))
    spec.setdefault("train", {}).setdefault("device", config["device"])
    return json.dumps(spec, sort_keys=True)


def experiment_spec(name):
    return spec_json(config["experiments"][name])


def sweep_run_spec(sweep, run):
    return spec_json(SWEEP_SPECS[sweep][run])


def sweep_outputs(sweep, name):
    """One file per run of a sweep, e.g. sweep_outputs("width", "train.json")."""
    return [f"results/sweeps/{sweep}/{run_id}/{name}" for run_id in SWEEP_SPECS[sweep]]


def run_outputs(sweep, run_id):
    """Every file a run of a sweep writes: training (and its snapshots) and, with Hessians, its trajectory manifest or
    its own Hessian and local geometry (what a batch job declares for each of its runs)."""
    folder = f"results/sweeps/{sweep}/{run_id}"
    files = [f"{folder}/model.pt", f"{folder}/metrics.csv", f"{folder}/train.json"]
    if sweep in SNAPSHOT_STEPS:
        files.append(directory(f"{folder}/snapshots"))
    if sweep in HESSIAN_SWEEPS and sweep in SNAPSHOT_STEPS:
        files.append(f"{folder}/trajectory/points.json")
    elif sweep in HESSIAN_SWEEPS:
        files += [f"{folder}/hessian/{name}" for name in
                  ("summary.json", "eigenvectors.pt", "trace_samples.csv", "density.csv", "slq_nodes.csv")]
        if sweep in LOCAL_SWEEPS:
            files.append(f"{folder}/local.json")
    return files


def sweep_run_measurements(wildcards):
    """What a sweep's table reads beyond training: each run's Hessian and local geometry, or, for a sweep with
    snapshots, each run's trajectory manifest (its final model is a point of the trajectory)."""
    sweep = wildcards.sweep
    if sweep not in HESSIAN_SWEEPS:
        return []
    if sweep in SNAPSHOT_STEPS:
        return sweep_outputs(sweep, "trajectory/points.json")
    return sweep_outputs(sweep, "hessian/summary.json") + (sweep_outputs(sweep, "local.json") if sweep in LOCAL_SWEEPS else [])



# On-disk datasets (MNIST, CIFAR-10) with `download: true` are fetched once, by rule download_data, before any job
# that reads them: {key: dataset block}, the key naming the dataset and its folder (results/data/<key>.json).
def download_key(dataset):
    root = re.sub(r"[^A-Za-z0-9]+", "_", str(dataset.get("root", "data"))).strip("_") or "root"
    return f"{dataset['name']}.{root}"


def _downloads():
    specs = list(config["experiments"].values()) + [spec for runs in SWEEP_SPECS.values() for spec in runs.values()]
    found = {}
    for spec in specs:
        if spec["dataset"].get("download"):
            dataset = {k: spec["dataset"][k] for k in ("name", "root") if k in spec["dataset"]}
            key = download_key(dataset)
            if found.setdefault(key, dataset).get("root", "data") != dataset.get("root", "data"):
                raise WorkflowError(f"dataset roots {found[key].get('root', 'data')!r} and {dataset.get('root', 'data')!r} "
                                    f"of {dataset['name']} would share the download record results/data/{key}.json; "
                                    "rename one of the folders")
    return found


DOWNLOADS = _downloads()


def data_input(spec):
    """{"data": the download record} for an experiment spec whose dataset downloads, else nothing. ancient: a newer
    record (a repeated download) does not make every job that reads the data run again."""
    if not spec["dataset"].get("download"):
        return {}
    return {"data": ancient(f"results/data/{download_key(spec['dataset'])}.json")}


def experiment_data_input(wildcards):
    return data_input(config["experiments"][wildcards.experiment])


# Cluster runtimes from measured costs (the `runtimes` block): with `estimate: true`, rule job_costs times each
# experiment's passes on the device first, and its torch jobs' `runtime` resource (minutes) is read from
# results/<experiment>/job_costs.json when they become ready (Snakemake re-evaluates a resource whose input
# file did not exist yet). Without it, or for generated runs, a rule's runtime is its fallback. The costs are an
# ancient input: remeasuring them (e.g. after raising `safety`) changes runtimes, not results, so it reruns no job
# that is complete; turning `estimate` on or off changes the rules' inputs, which Snakemake reruns.
ESTIMATE_RUNTIMES = bool(config["runtimes"].get("estimate", False))  # default: RuntimeSettings.estimate


def job_costs_input(wildcards):
    return {"costs": ancient(f"results/{wildcards.experiment}/job_costs.json")} if ESTIMATE_RUNTIMES else {}


def runtime_of(job, fallback):
    """The `runtime` resource of `job`'s rule: its estimate when the rule has the costs as input, else `fallback`."""

    def runtime(wildcards, input):
        if not ESTIMATE_RUNTIMES or "costs" not in input.keys():
            return fallback
        try:
            return json.loads(Path(input.costs).read_text())["jobs"][job]["runtime_min"]
        except (KeyError, json.JSONDecodeError) as err:
            raise WorkflowError(f"{input.costs}: no runtime for {job} ({err!r}); delete the file so that rule "
                                "job_costs measures again") from None

    return runtime


# Critical path first: among the jobs ready to run, Snakemake starts those of higher priority. Each model's chain
# is train -> hessian -> check_model (its longest job) and surfaces -> check_curvature; the later a stage sits on
# that chain, the lower its priority, so every chain gets going before short independent jobs (figures, 0) fill
# the cores. check_synthetic is long and independent: it runs beside the chains, not after them.
PRIORITY = {"train": 5, "hessian": 4, "check_model": 3, "surfaces": 2, "check_curvature": 1, "check_synthetic": 1}

# Figures (workflow/rules/figures.smk): which experiments each shows, and the notebooks' parameters.
CLASSIFIERS = [e for e in EXPERIMENTS if experiment_task(config["experiments"][e]) == "classification"]
REGRESSORS = [e for e in EXPERIMENTS if experiment_task(config["experiments"][e]) == "regression"]


# With the workflow, not the working directory (-d); named relative to the working directory, so that a copied
# or moved project (the usual run from its root) sees the same input paths and reruns nothing.
NOTEBOOKS = Path(os.path.relpath(Path(workflow.basedir) / "notebooks"))


def per_experiment(pattern, experiments):
    return expand(pattern, experiment=experiments)


def notebook_parameters(figure, shown, key="experiments"):
    """Papermill parameters (as YAML/JSON): where the results are, what to show (the experiments, or under another
    ``key`` e.g. the sweeps), where the figure goes."""
    parameters = {"results": "results", "output_pdf": f"results/figures/{figure}.pdf",
                  "output_png": f"results/figures/{figure}.png"}
    if shown is not None:
        parameters[key] = shown
    return json.dumps(parameters)
