"""The workflow's plan: every decision the rules need, made once from a validated config, before any job runs.

:func:`make_plan` validates the config (schema: keys, types, ranges, defaults), expands each sweep into its runs
(:mod:`lossgeom.io.sweeps`) and checks every run like an experiment, resolves each sweep's stage settings (the
config's block with the sweep's own mapping over it, checked by the settings dataclasses, the one source of their
defaults), validates the checks each sweep declares (:mod:`lossgeom.planning.checks`), and works out the jobs' shapes:
batches, connectivity parts, downloads, what a run's jobs write. A problem raises one
:class:`~lossgeom.errors.ConfigError` that names the config file(s) and the key. The Snakefile calls it once; ``lossgeom
check-config`` calls it too, so both refuse the same configs.

Nothing here imports torch, but for two facts of a model that need it built: N where a sweep trains in a subspace or
forms dense matrices, and the number of optimizer steps where a sweep saves snapshots (see :mod:`.model_facts`).

Example::

    >>> config = {"experiments": {"tiny": {"dataset": {"name": "sines"}, "model": {"name": "mlp", "hidden": [8]},
    ...                                    "train": {"epochs": 1}}}}
    >>> plan = make_plan(config, sources=["my.yaml"])
    >>> plan.experiments, plan.regressors, list(plan.sweeps)
    (['tiny'], ['tiny'], [])
    >>> make_plan({"experiments": {}}, sources=["my.yaml"])
    Traceback (most recent call last):
    ...
    lossgeom.errors.ConfigError: invalid configuration (my.yaml): experiments: {} and no sweeps: nothing to run; add \
an experiment, or a sweep (a config of sweeps alone, like configs/phases.yaml, may leave experiments empty)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError
from ..io.configcheck import experiment_task, load_schema, validate_config, validate_experiment
from ..io.sweeps import (
    conditions, expand_sweep, grid_values, has_stage, run_batches, snapshot_steps, stage_overrides,
)
from ..settings import CONFIG_BLOCKS, ConnectivitySettings, HessianSettings, LocalSettings, RuntimeSettings, SurfaceSettings
from .checks import SUMMARY_ORDER, SWEEP_CHECKS, TABLE_CHECKS, check_problem
from .model_facts import ModelFacts

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
# The cluster runtimes (minutes) of a sweep's jobs, unless the sweep's `runtime` mapping sets them.
SWEEP_RUNTIMES = {"train": 60, "hessian": 120, "connectivity": 60}
BATCH_RUN_MINUTES = 30  # a run of a batch job of a sweep without `runtime` (small runs, seconds each)
HESSIAN_FILES = ("summary.json", "eigenvectors.pt", "trace_samples.csv", "density.csv", "slq_nodes.csv")
# Critical path first: among the jobs ready to run, Snakemake starts those of higher priority. Each model's chain is
# train -> hessian -> check_model (its longest job) and surfaces -> check_curvature; the later a stage sits on that
# chain, the lower its priority, so every chain gets going before short independent jobs (figures, 0) fill the cores.
# check_synthetic is long and independent: it runs beside the chains, not after them.
PRIORITY = {"train": 5, "hessian": 4, "check_model": 3, "surfaces": 2, "check_curvature": 1, "check_synthetic": 1}
STAGE_SETTINGS = {"hessian": HessianSettings, "local": LocalSettings, "connectivity": ConnectivitySettings}


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """One sweep, planned: its runs, stages with resolved settings (None: not asked for), checks and job shapes."""

    name: str
    block: Mapping[str, Any]  # the sweep as the config writes it (with the schema's defaults)
    runs: dict[str, dict[str, Any]]  # run id -> experiment spec, in grid order
    grid: dict[str, dict[str, Any]]  # run id -> {grid key: value}
    snapshots: list[int]
    hessian: HessianSettings | None
    local: LocalSettings | None
    connectivity: ConnectivitySettings | None
    settings_json: dict[str, str]  # stage -> the settings the stage's job is given (JSON), for hessian/local/connectivity
    checks: tuple[str, ...]
    batches: list[list[str]]  # runs per batch job ([] when every run has jobs of its own)
    connectivity_parts: list[list[str]]  # runs per connectivity job (whole conditions each; [] without connectivity)

    def folder(self, run_id: str) -> str:
        return f"results/sweeps/{self.name}/{run_id}"


def deal(groups: list[list[str]], parts: int) -> list[list[str]]:
    """Whole groups dealt round robin to ``min(parts, len(groups))`` parts, in order.

    >>> deal([["a1", "a2"], ["b1"], ["c1"]], 2)
    [['a1', 'a2', 'c1'], ['b1']]
    """
    dealt: list[list[str]] = [[] for _ in range(max(1, min(parts, len(groups))))]
    for index, group in enumerate(groups):
        dealt[index % len(dealt)] += group
    return dealt


class Plan:
    """What the workflow runs for a config. Build it with :func:`make_plan`."""

    def __init__(self, config: dict[str, Any], sources: list[str], schema: Mapping[str, Any], facts: ModelFacts):
        self.config = config
        self.sources = sources
        self.schema = schema
        self.facts = facts
        self.experiments = sorted(config["experiments"])
        if not self.experiments and not config["sweeps"]:
            raise self.error("experiments: {} and no sweeps: nothing to run; add an experiment, or a sweep (a config "
                             "of sweeps alone, like configs/phases.yaml, may leave experiments empty)")
        tasks = {name: experiment_task(config["experiments"][name]) for name in self.experiments}
        self.classifiers = [name for name in self.experiments if tasks[name] == "classification"]
        self.regressors = [name for name in self.experiments if tasks[name] == "regression"]
        self.sweeps = {name: self._plan_sweep(name, sweep) for name, sweep in config["sweeps"].items()}
        trends = self.with_check("trends")
        if len(trends) == 1:
            raise self.error(f"sweeps.{trends[0]}.checks: trends compares how learning rate, width and L2 move the "
                             "curvature: declare it on two sweeps at least (or remove it)")
        self.downloads = self._downloads()
        blocks = self._check_blocks()
        self.runtime_settings: RuntimeSettings = blocks["runtimes"]
        self.surface_settings: SurfaceSettings = blocks["surfaces"]

    # ---- errors and settings

    def error(self, message: str) -> ConfigError:
        """A ConfigError naming the config file(s), for a problem found while planning."""
        return ConfigError(f"invalid configuration ({', '.join(self.sources)}): {message}")

    def _block(self, cls: type, key: str, values: Mapping[str, Any] | None = None) -> Any:
        try:
            return cls.from_mapping(dict(self.config.get(key, {}) if values is None else values))
        except ConfigError as err:
            raise self.error(str(err)) from None

    def _check_blocks(self) -> dict[str, Any]:
        """Every settings block through its dataclass (ranges and relations the schema cannot state, e.g. an odd
        number of grid points), and the train block of every experiment and generated run: found now, not in a job
        after hours of training. Returns the resolved blocks by key path (the train blocks left out)."""
        resolved: dict[str, Any] = {}
        for path, cls in CONFIG_BLOCKS.items():
            if path == "experiments.*.train":
                specs = {f"experiments.{name}": spec for name, spec in self.config["experiments"].items()}
                specs.update({f"sweeps.{name} run {run_id}": spec for name, sweep in self.sweeps.items()
                              for run_id, spec in sweep.runs.items()})
                for where, spec in specs.items():
                    try:
                        cls.from_mapping(dict(spec.get("train", {})))
                    except ConfigError as err:
                        raise self.error(f"{where}: {err}") from None
                continue
            node: Any = self.config
            for key in path.split("."):
                node = node.get(key, {}) if isinstance(node, Mapping) else {}
            resolved[path] = self._block(cls, path, node)
        return resolved

    def block(self, *keys: str) -> Any:
        """A block of the config by its keys, e.g. ``block("checks", "models")``."""
        node: Any = self.config
        for key in keys:
            node = node[key]
        return node

    def block_json(self, *keys: str) -> str:
        """A config block as JSON for the CLI, as the user wrote it (the library's settings fill the defaults)."""
        return json.dumps(self.block(*keys), sort_keys=True)

    def with_device(self, *keys: str) -> str:
        """A torch stage's block as JSON; the top-level device applies unless the block sets its own."""
        return json.dumps({"device": self.config["device"], **self.block(*keys)}, sort_keys=True)

    @property
    def surface_parts(self) -> int:
        """Jobs the surface tiles of each model are dealt to (surfaces.parts; 1: one job computes them all)."""
        return int(self.surface_settings.parts)

    def job_costs_settings(self) -> str:
        """What rule job_costs times: the Hessian (on its device), surfaces and model checks, the runtime margins."""
        return json.dumps({"hessian": json.loads(self.with_device("hessian")), "surfaces": self.block("surfaces"),
                           "checks.models": self.block("checks", "models"), "runtimes": self.block("runtimes")},
                          sort_keys=True)

    # ---- sweeps

    def _plan_sweep(self, name: str, block: Mapping[str, Any]) -> SweepPlan:
        where = f"sweeps.{name}"
        try:
            runs = expand_sweep(name, block, self.config["experiments"])
        except ConfigError as err:
            raise self.error(str(err)) from None
        for run_id, spec in runs.items():
            validate_experiment(spec, self.schema, where=f"{where} run {run_id}", sources=self.sources)
        settings, resolved = {}, {}
        for stage, cls in STAGE_SETTINGS.items():
            if has_stage(block, stage):
                values = {"device": self.config["device"], **self.config[stage], **stage_overrides(block, stage)}
                settings[stage] = json.dumps(values, sort_keys=True)
                try:
                    resolved[stage] = cls.from_mapping(values)
                except ConfigError as err:
                    raise self.error(f"{where}.{stage} (over the {stage} block): {err}") from None
        sweep = SweepPlan(
            name=name, block=block, runs=runs, grid=grid_values(block), snapshots=snapshot_steps(block),
            hessian=resolved.get("hessian"), local=resolved.get("local"), connectivity=resolved.get("connectivity"),
            settings_json=settings, checks=tuple(block.get("checks", ())),
            batches=run_batches(list(runs), block["batch"]) if block["batch"] > 1 else [],
            connectivity_parts=[],
        )
        self._check_sweep(sweep)
        if sweep.connectivity is not None:
            groups = list(conditions(sweep.grid).values())
            sweep = dataclasses.replace(sweep, connectivity_parts=deal(groups, sweep.connectivity.parts))
        return sweep

    def _check_sweep(self, sweep: SweepPlan) -> None:
        where = f"sweeps.{sweep.name}"
        for run_id, spec in sweep.runs.items():
            task = experiment_task(spec)
            for stage, needs in (("local", "the local geometry needs classifiers (C logits)"),
                                 ("connectivity", "mode connectivity and CKA compare classifiers (training error, "
                                                  "softmax outputs)")):
                if getattr(sweep, stage) is not None and task != "classification":
                    raise self.error(f"{where}.{stage}: {needs}; run {run_id} is a {task} task. Set {stage}: false "
                                     "for this sweep")
            dim = spec.get("train", {}).get("subspace_dim", 0)
            if dim and dim > self.facts.parameters(spec):
                n = self.facts.parameters(spec)
                raise self.error(f"{where} run {run_id}: train.subspace_dim {dim} exceeds the model's {n} parameters; "
                                 f"allowed: 1..{n}, or 0 to train them all")
            if sweep.snapshots:
                total = self.facts.training_steps(spec)
                beyond = [step for step in sweep.snapshots if total is not None and step > total]
                if beyond:
                    raise self.error(f"{where}.snapshots: {beyond} lie beyond the last step of training of run {run_id} "
                                     f"({total} = epochs x ceil(training examples / batch_size)); drop them or train "
                                     "longer")
        if sweep.connectivity is not None and len(sweep.block["grid"].get("train.seed", [])) < 2:
            raise self.error(f"{where}.connectivity compares independently trained solutions: its grid needs "
                             "train.seed with two values at least (three for the simplices), e.g. train.seed: [0, 1, 2]")
        if sweep.connectivity is not None and not {"connectivity", "taxonomy"} & set(sweep.checks):
            raise self.error(f"{where}.connectivity: nothing would read its paths and simplices: declare "
                             f"{where}.checks: [connectivity] (rows in the summary, F13) or [taxonomy] (the phase diagram)")
        for kind in sweep.checks:
            if kind not in SWEEP_CHECKS:  # the schema lists them too; a library user may skip the schema
                raise self.error(f"{where}.checks: {kind!r} is not a check; allowed: {', '.join(SWEEP_CHECKS)}")
            problem = check_problem(kind, sweep)
            if problem:
                raise self.error(f"{where}.checks: {kind}: {problem}")

    def with_check(self, kind: str) -> list[str]:
        """The sweeps that declare the check ``kind``, in config order."""
        return [name for name, sweep in self.sweeps.items() if kind in sweep.checks]

    def with_stage(self, stage: str) -> list[str]:
        """The sweeps that run a stage (``hessian``, ``local``, ``connectivity``), in config order."""
        return [name for name, sweep in self.sweeps.items() if getattr(sweep, stage) is not None]

    @property
    def with_snapshots(self) -> list[str]:
        return [name for name, sweep in self.sweeps.items() if sweep.snapshots]

    @property
    def batched(self) -> list[str]:
        return [name for name, sweep in self.sweeps.items() if sweep.batches]

    @property
    def split_connectivity(self) -> list[str]:
        """Connectivity sweeps computed in several jobs (parts) and merged."""
        return [name for name, sweep in self.sweeps.items() if len(sweep.connectivity_parts) > 1]

    def check_table(self, kind: str, sweep: str) -> str:
        """The table a sweep's check reads: trajectory.csv for the local phenomena along training, else runs.csv."""
        if kind not in TABLE_CHECKS or kind not in self.sweeps[sweep].checks:
            raise self.error(f"sweeps.{sweep} does not declare the table check {kind!r} (its checks: "
                             f"{', '.join(self.sweeps[sweep].checks) or 'none'})")
        return f"results/sweeps/{sweep}/{TABLE_CHECKS[kind]}.csv"

    def check_tables(self) -> list[str]:
        """Every rows file the summary gathers: the paper's checks, then each sweep's declared checks."""
        tables = ["results/checks/synthetic.csv"]
        tables += [f"results/checks/model_{name}.csv" for name in self.experiments]
        tables += [f"results/checks/curvature_{name}.csv" for name in self.experiments]
        for kind in SUMMARY_ORDER:
            tables += [f"results/checks/{kind}_{name}.csv" for name in self.with_check(kind)]
        if self.with_check("trends"):
            tables.append("results/checks/trends.csv")
        return tables

    # ---- what a sweep's jobs read and write

    def run_files(self, sweep: str, run_id: str) -> list[str]:
        """Every file a run writes in its training and measuring jobs (a batch job declares them for its runs); the
        snapshots folder is listed as a folder (wrap it in ``directory()`` in a rule)."""
        plan, folder = self.sweeps[sweep], f"results/sweeps/{sweep}/{run_id}"
        files = [f"{folder}/model.pt", f"{folder}/metrics.csv", f"{folder}/train.json"]
        if plan.snapshots:
            files.append(f"{folder}/snapshots")
        if plan.hessian is not None and plan.snapshots:
            files.append(f"{folder}/trajectory/points.json")
        elif plan.hessian is not None:
            files += [f"{folder}/hessian/{name}" for name in HESSIAN_FILES]
            if plan.local is not None:
                files.append(f"{folder}/local.json")
        return files

    def each_run(self, sweep: str, name: str) -> list[str]:
        """One file per run of a sweep, e.g. ``each_run("width", "train.json")``."""
        return [f"results/sweeps/{sweep}/{run_id}/{name}" for run_id in self.sweeps[sweep].runs]

    def run_measurements(self, sweep: str) -> list[str]:
        """What a sweep's table reads beyond training: each run's Hessian and local geometry, or with snapshots each
        run's trajectory manifest (the final model is a point of the trajectory)."""
        plan = self.sweeps[sweep]
        if plan.hessian is None:
            return []
        if plan.snapshots:
            return self.each_run(sweep, "trajectory/points.json")
        return self.each_run(sweep, "hessian/summary.json") + (self.each_run(sweep, "local.json")
                                                                if plan.local is not None else [])

    def run_folders(self, sweep: str, run_ids: Iterable[str] | None = None) -> dict[str, str]:
        ids = self.sweeps[sweep].runs if run_ids is None else run_ids
        return {run_id: f"results/sweeps/{sweep}/{run_id}" for run_id in ids}

    def connectivity_runs(self, sweep: str, part: int | None = None) -> dict[str, dict[str, Any]]:
        """{run id: {model, grid}} for the connectivity job of a sweep, or of one of its parts."""
        plan = self.sweeps[sweep]
        ids = list(plan.runs) if part is None else plan.connectivity_parts[part]
        return {run_id: {"model": f"results/sweeps/{sweep}/{run_id}/model.pt", "grid": plan.grid[run_id]}
                for run_id in ids}

    # ---- specs for the CLI

    def spec_json(self, spec: Mapping[str, Any]) -> str:
        """An experiment spec as JSON for the CLI; the top-level device applies unless train.device is set."""
        spec = copy.deepcopy(dict(spec))
        spec.setdefault("train", {}).setdefault("device", self.config["device"])
        return json.dumps(spec, sort_keys=True)

    def measure_options(self, sweep: str, stages: Iterable[str] = ("hessian", "local")) -> str:
        """The CLI options giving a sweep's Hessian and local-geometry settings to a job that measures its runs."""
        settings = self.sweeps[sweep].settings_json
        return " ".join(f"--{stage}-settings {shlex.quote(settings[stage])}" for stage in stages if stage in settings)

    def batch_runs_json(self, sweep: str, index: int) -> str:
        """{run id: {spec, out_dir}} of a batch job."""
        plan = self.sweeps[sweep]
        return json.dumps({run_id: {"spec": json.loads(self.spec_json(plan.runs[run_id])),
                                    "out_dir": plan.folder(run_id)} for run_id in plan.batches[index]})

    # ---- resources

    def gpus(self, device: str) -> int:
        """GPUs to ask a scheduler for, for a job on ``device`` (the config's `gpus` wins when set)."""
        if self.config["gpus"] is not None:
            return self.config["gpus"]
        return 1 if str(device).startswith("cuda") else 0

    def stage_gpus(self, *keys: str) -> int:
        """GPUs for a stage whose config block (e.g. "hessian") may override the top-level device."""
        return self.gpus(self.block(*keys).get("device", self.config["device"]))

    def spec_gpus(self, spec: Mapping[str, Any]) -> int:
        """GPUs for training an experiment spec (its train.device, else the top-level device)."""
        return self.gpus(spec.get("train", {}).get("device", self.config["device"]))

    def sweep_gpus(self, sweep: str, stages: Iterable[str] = ("hessian", "local")) -> int:
        """GPUs for a job of a sweep running these stages: whichever of their devices asks more."""
        plan = self.sweeps[sweep]
        devices = [json.loads(plan.settings_json[stage])["device"] for stage in stages if stage in plan.settings_json]
        return max((self.gpus(device) for device in devices), default=0)

    def batch_gpus(self, sweep: str, index: int) -> int:
        plan = self.sweeps[sweep]
        training = [self.spec_gpus(plan.runs[run_id]) for run_id in plan.batches[index]]
        return max(training + [self.sweep_gpus(sweep)])

    def sweep_runtime(self, sweep: str, job: str) -> int:
        """A sweep job's cluster runtime (minutes): the sweep's `runtime` mapping, else :data:`SWEEP_RUNTIMES`."""
        return int(self.sweeps[sweep].block.get("runtime", {}).get(job, SWEEP_RUNTIMES[job]))

    def batch_runtime(self, sweep: str, index: int) -> int:
        """A batch job of n runs: n x (train + hessian) of the sweep's `runtime` mapping, or
        :data:`BATCH_RUN_MINUTES` a run when the sweep has none."""
        plan, runs = self.sweeps[sweep], len(self.sweeps[sweep].batches[index])
        if not plan.block.get("runtime"):
            return BATCH_RUN_MINUTES * runs
        measure = self.sweep_runtime(sweep, "hessian") if plan.hessian is not None else 0
        return int(runs * (self.sweep_runtime(sweep, "train") + measure))

    def measure_mem_mb(self, sweep: str, run_ids: Iterable[str]) -> int:
        """Memory (MB) for a job measuring these runs: 8 GB, more where the local geometry forms dense float64 H and
        G (N x N each; with H - G at most 3 N^2 doubles at once, 4 N^2 asked for: 6.5 GB at N = 14,218)."""
        plan, mem_mb = self.sweeps[sweep], 8000
        if plan.local is not None:
            for run_id in run_ids:
                n = self.facts.parameters(plan.runs[run_id])
                if n <= plan.local.exact_max_parameters:
                    mem_mb = max(mem_mb, 4000 + -(-4 * 8 * n * n // 1_000_000))
        return mem_mb

    def batch_mem_mb(self, sweep: str, index: int) -> int:
        plan = self.sweeps[sweep]
        return self.measure_mem_mb(sweep, plan.batches[index]) if plan.hessian is not None else 8000

    # ---- data

    def _downloads(self) -> dict[str, dict[str, Any]]:
        specs = [self.config["experiments"][name] for name in self.experiments]
        specs += [spec for sweep in self.sweeps.values() for spec in sweep.runs.values()]
        found: dict[str, dict[str, Any]] = {}
        for spec in specs:
            if spec["dataset"].get("download"):
                dataset = {k: spec["dataset"][k] for k in ("name", "root") if k in spec["dataset"]}
                key = download_key(dataset)
                if found.setdefault(key, dataset).get("root", "data") != dataset.get("root", "data"):
                    raise self.error(f"dataset roots {found[key].get('root', 'data')!r} and "
                                     f"{dataset.get('root', 'data')!r} of {dataset['name']} would share the download "
                                     f"record results/data/{key}.json; rename one of the folders")
        return found

    def data_record(self, spec: Mapping[str, Any]) -> str | None:
        """The download record a spec's jobs wait for (its dataset downloads), else None."""
        return f"results/data/{download_key(spec['dataset'])}.json" if spec["dataset"].get("download") else None

    @property
    def estimate_runtimes(self) -> bool:
        return bool(self.runtime_settings.estimate)


def runtime_from_costs(path: str | Path, job: str) -> int:
    """A job's cluster runtime (minutes) from an experiment's measured costs (results/<experiment>/job_costs.json,
    written by the job_costs rule with `runtimes: {estimate: true}`)."""
    try:
        return json.loads(Path(path).read_text())["jobs"][job]["runtime_min"]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: no runtime for {job} ({err!r}); delete the file so that rule job_costs measures "
                          "again") from None


def download_key(dataset: Mapping[str, Any]) -> str:
    """The key of a dataset's download: its name and folder, e.g. ``cifar10.data``."""
    root = re.sub(r"[^A-Za-z0-9]+", "_", str(dataset.get("root", "data"))).strip("_") or "root"
    return f"{dataset['name']}.{root}"


def make_plan(config: Mapping[str, Any], sources: Iterable[str] = ("config.yaml",), schema: str | Path = SCHEMA,
              parameters: Callable[[Mapping[str, Any]], int] | None = None,
              training_steps: Callable[[Mapping[str, Any]], int | None] | None = None) -> Plan:
    """Validate ``config`` (a copy, defaults filled) and plan it. ``sources`` name the config files in errors;
    ``schema`` is the workflow's config schema; ``parameters`` and ``training_steps`` replace the model facts built
    with torch (tests, or a planner without torch)."""
    sources = [str(source) for source in sources] or ["config.yaml"]
    config = copy.deepcopy(dict(config))
    for name, sweep in (config.get("sweeps") or {}).items():
        if isinstance(sweep, Mapping) and "taxonomy" in sweep:
            raise ConfigError(f"invalid configuration ({', '.join(sources)}): sweeps.{name}.taxonomy: a sweep's checks are "
                              "now one list; write checks: [taxonomy] instead of taxonomy: true")
    schema = load_schema(schema)
    validate_config(config, schema, sources=sources)
    return Plan(config, sources, schema, ModelFacts(parameters, training_steps))
