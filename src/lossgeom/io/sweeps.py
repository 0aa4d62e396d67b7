"""Generated runs: a sweep in the config expands into one experiment spec per point of its grid.

A sweep names a base experiment (an entry of ``experiments`` or an inline ``{dataset, model, train}``)
and a grid of key paths into it, each with a list of values; its runs are the Cartesian product, in the
order the grid lists its keys. Each run gets a readable, stable id from its values, e.g.
``hidden=32_batch_size=64_seed=1``, and its own folder ``results/sweeps/<sweep>/<run id>/``. Only the
run's own stages (training; Hessian when the sweep asks for it) are generated, so a sweep of hundreds of
runs leaves the paper's per-model stages as they are. A sweep's ``snapshots`` (optimizer steps) make every
run save its weights along training (``train.snapshots``), each a point of the run's trajectory.
Like :mod:`lossgeom.io.configcheck` this module
needs neither torch nor the library's other dependencies (the Snakefile imports it).

Example::

    >>> sweep = {"base": {"dataset": {"name": "digits"}, "model": {"name": "mlp"}},
    ...          "grid": {"model.hidden": [[16], [32, 32]], "train.seed": [0, 1]}}
    >>> runs = expand_sweep("width", sweep, experiments={})
    >>> list(runs)
    ['hidden=16_seed=0', 'hidden=16_seed=1', 'hidden=32x32_seed=0', 'hidden=32x32_seed=1']
    >>> runs["hidden=32x32_seed=1"]["model"], runs["hidden=32x32_seed=1"]["train"]
    ({'name': 'mlp', 'hidden': [32, 32]}, {'seed': 1})
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any, Mapping

from ..errors import ConfigError

SECTIONS = ("dataset", "model", "train")  # where a grid key may point
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=+-]")


def format_value(value: Any) -> str:
    """A value as it appears in a run id: lists joined by 'x', floats in their shortest form."""
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return _UNSAFE.sub("-", str(value))


def _labels(paths: list[str]) -> dict[str, str]:
    """The last component of each key path, or the whole path (dots as '-') where the last is ambiguous."""
    last = [p.split(".")[-1] for p in paths]
    return {p: (name if last.count(name) == 1 else p.replace(".", "-")) for p, name in zip(paths, last)}


def grid_points(grid: Mapping[str, list], where: str) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {key path: value}, in product order."""
    if not grid:
        raise ConfigError(f"{where}.grid: needs at least one key path with a list of values")
    for path, values in grid.items():
        section = path.split(".")[0]
        if section not in SECTIONS or "." not in path:
            raise ConfigError(f"{where}.grid: key {path!r} must be a path like model.hidden or train.seed, "
                              f"starting with one of {', '.join(SECTIONS)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{path}: needs a non-empty list of values")
        if path == "train.snapshots":
            raise ConfigError(f"{where}.grid: train.snapshots cannot vary between runs; set the sweep's own "
                              "'snapshots' key (steps shared by all its runs)")
    paths = list(grid)
    return [dict(zip(paths, combo)) for combo in itertools.product(*(grid[p] for p in paths))]


def run_id(point: Mapping[str, Any]) -> str:
    labels = _labels(list(point))
    return "_".join(f"{labels[path]}={format_value(value)}" for path, value in point.items())


def apply(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with each key path of ``point`` set to its value."""
    spec = copy.deepcopy(dict(base))
    for path, value in point.items():
        node = spec
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"grid key {path!r}: {key!r} is not a block of the experiment")
        node[leaf] = copy.deepcopy(value)
    return spec


def has_stage(sweep: Mapping[str, Any], key: str) -> bool:
    """Whether a sweep asks for a stage (``hessian``, ``local``, ``connectivity``): ``<key>: true`` or a mapping of
    settings (even an empty one)."""
    return isinstance(sweep.get(key), Mapping) or bool(sweep.get(key))


def stage_overrides(sweep: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The settings a sweep's ``<key>`` mapping sets over the config's block of that name ({} for true/false)."""
    return dict(sweep[key]) if isinstance(sweep.get(key), Mapping) else {}


def expand_sweep(name: str, sweep: Mapping[str, Any], experiments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{run id: experiment spec} of one sweep; the base may name an entry of ``experiments``."""
    where = f"sweeps.{name}"
    if has_stage(sweep, "local") and not has_stage(sweep, "hessian"):
        raise ConfigError(f"{where}.local needs {where}.hessian (true, or a mapping of hessian settings): the "
                          "local geometry reads each Hessian's eigenpairs")
    base = sweep["base"]
    if isinstance(base, str):
        if base not in experiments:
            raise ConfigError(f"{where}.base: {base!r} is not an experiment; known: {', '.join(sorted(experiments))}")
        base = experiments[base]
    runs: dict[str, dict[str, Any]] = {}
    for point in grid_points(sweep["grid"], where):
        key = run_id(point)
        if key in runs:
            raise ConfigError(f"{where}.grid: two runs would both be called {key!r}; make the values distinct")
        spec = apply(base, point)
        spec.get("train", {}).pop("snapshots", None)  # the sweep, not its base, decides which steps are saved
        if snapshot_steps(sweep):
            spec.setdefault("train", {})["snapshots"] = snapshot_steps(sweep)
        runs[key] = spec
    return runs


def run_batches(run_ids: list[str], size: int) -> list[list[str]]:
    """The runs in consecutive groups of ``size`` (the last may be shorter), each the work of one batch job.

    >>> run_batches(["a", "b", "c", "d", "e"], 2)
    [['a', 'b'], ['c', 'd'], ['e']]
    """
    if size < 1:
        raise ConfigError(f"a sweep's batch must be >= 1 (runs per job), got {size}")
    return [run_ids[start : start + size] for start in range(0, len(run_ids), size)]


def snapshot_steps(sweep: Mapping[str, Any]) -> list[int]:
    """The optimizer steps at which the sweep's runs save their weights, in order (none: [])."""
    return sorted(set(sweep.get("snapshots") or []))


def grid_values(sweep: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{run id: {key path: value}}: the grid coordinates of every run (for the sweep's table)."""
    return {run_id(point): point for point in grid_points(sweep["grid"], "sweep")}


SEED_KEY = "train.seed"


def condition_label(point: Mapping[str, Any], skip: tuple[str, ...] = (SEED_KEY,)) -> str:
    """A run's condition: its grid values but the seed, as a label, e.g. ``batch_size=32, hidden=[2]``.

    >>> condition_label({"train.batch_size": 32, "model.hidden": [2], "train.seed": 1})
    'batch_size=32, hidden=[2]'
    >>> condition_label({"train.seed": 1})
    'all runs'
    """
    return ", ".join(f"{k.split('.')[-1]}={json.dumps(v)}" for k, v in point.items() if k not in skip) or "all runs"


def conditions(grid: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """The runs grouped by condition, in grid order: {condition label: run ids}. The connectivity stage compares the
    seeds of one condition; the workflow deals whole conditions to its jobs.

    >>> conditions({"b=32_s=0": {"train.batch_size": 32, "train.seed": 0},
    ...             "b=32_s=1": {"train.batch_size": 32, "train.seed": 1},
    ...             "b=64_s=0": {"train.batch_size": 64, "train.seed": 0}})
    {'batch_size=32': ['b=32_s=0', 'b=32_s=1'], 'batch_size=64': ['b=64_s=0']}
    """
    found: dict[str, list[str]] = {}
    for name, point in grid.items():
        found.setdefault(condition_label(point), []).append(name)
    return found
