"""The job_costs step: the passes it plans bound what the stages do, and its estimates follow its measurements."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from lossgeom.errors import ConfigError
from lossgeom.stages import hessian, job_costs, surfaces, train

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 3, "n_train": 90, "n_test": 30},
        "model": {"name": "mlp", "hidden": [20]}, "train": {"epochs": 2, "batch_size": 16, "device": "cpu"}}
QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train.compute("costs", SPEC, train.TrainPaths.in_directory(tmp_path_factory.mktemp("costs")), progress=False)


def settings(**hessian_keys):
    blocks = {"hessian": {"k_top": 2, "k_bottom": 1, "tol": 1e-12, "max_hvps": 30, "hutchinson_samples": 5,
                          "slq_probes": 2, "slq_steps": 6, "device": "cpu", **hessian_keys},
              "surfaces": {"points": 9, "points_1d": 5, "ranges": [0.1], "tile_rows": 3, "device": "cpu"},
              "runtimes": {"estimate": True, "startup_min": 1.5, "safety": 3.0, "batches": 1, "repeats": 1}}
    return job_costs.StageSettings.from_mapping(SPEC, blocks)


def passes(work, job):
    return sum(n for _, n, _ in work[job])


def test_the_hessian_products_planned_bound_those_a_run_takes(trained):
    """tol 1e-12 cannot be met, so Lanczos spends its whole budget: the bound is reached, not just respected (less
    the SLQ probe the eigenpair run provides for free, which the plan does not count on)."""
    s = settings()
    result = hessian.compute(trained.model, trained.dataset, s.hessian, log=QUIET)
    planned = passes(job_costs.planned_work(s, result.summary["n_parameters"]), "hessian")
    assert not result.summary["eigen"]["converged"]
    free = s.hessian.slq_steps if result.summary["density"]["first_probe_from_eigenpair_run"] else 0  # SLQ's first probe
    assert result.summary["density"]["first_probe_from_eigenpair_run"]
    assert planned - 2 - free <= result.summary["hvps_this_run"] <= planned


def test_the_surface_points_planned_are_those_the_surfaces_step_evaluates(trained, tmp_path):
    s = settings()
    eig = hessian.compute(trained.model, trained.dataset, s.hessian, log=QUIET).eigen
    vectors = {"top_vectors": eig.top.vectors, "bottom_vectors": eig.bottom.vectors}
    _, meta = surfaces.compute(trained.model, trained.dataset, s.surfaces, vectors, tmp_path / "tiles", log=QUIET)
    evaluated = sum(t["points_evaluated"] for t in meta["timings"].values())
    work = job_costs.planned_work(s, 0)["surfaces"]
    assert sum(n for _, n, _ in work) == evaluated * len(s.surfaces.splits) and len(work) == len(s.surfaces.splits)


def test_a_pass_over_a_subset_is_its_batches_times_the_time_of_one(trained):
    p = job_costs.Pass("hvp", "train", "float64", batch_size=7, examples=40)
    measured = job_costs.measure_pass(trained.model, trained.dataset, p, batches=2, repeats=1)
    assert measured["examples_in_pass"] == 40 and measured["batches_timed"] == 2
    assert measured["batches_per_pass"] == math.ceil(40 / 7)
    assert measured["seconds_per_pass"] == pytest.approx(measured["seconds_per_batch"] * 6) and measured["seconds_per_batch"] > 0
    assert next(trained.model.parameters()).dtype == torch.float32  # the caller's model is not converted


def test_run_writes_a_runtime_for_every_job_from_its_measured_passes(tmp_path):
    s = settings(examples=50)
    record = job_costs.run("costs", SPEC, {"hessian": dataclasses.asdict(s.hessian), "surfaces": {"points": 9, "points_1d": 5},
                                           "runtimes": {"startup_min": 1.5, "safety": 3.0, "batches": 1, "repeats": 1}},
                           tmp_path / "job_costs.json", log=QUIET)
    assert json.loads((tmp_path / "job_costs.json").read_text())["jobs"].keys() == set(job_costs.JOBS)
    assert all(entry["runtime_min"] >= 2 for entry in record["jobs"].values())  # at least the startup, rounded up
    hvp = next(p for p in record["passes"] if p["kind"] == "hvp" and p["examples"] == 50)
    assert hvp["examples_in_pass"] == 50  # the hessian step's products are timed on its subset


def test_a_runtime_is_safety_times_the_planned_seconds_plus_startup_capped_at_max():
    """3 passes of 10 s and 2 of 60 s: 150 s; x 2 = 5 min, + 1 min startup = 6 min; capped at 4 when max_min is 4."""
    a, b = job_costs.Pass("hvp", "train", "float32", 8), job_costs.Pass("loss", "test", "float64", 8)
    work = {"hessian": [("products", 3, a), ("losses", 2, b)]}
    seconds = {a.key: 10.0, b.key: 60.0}
    entry = job_costs.estimate_jobs(work, seconds, job_costs.RuntimeSettings(safety=2.0, startup_min=1.0))["hessian"]
    assert entry["estimate_s"] == 150.0 and entry["runtime_min"] == 6
    capped = job_costs.estimate_jobs(work, seconds, job_costs.RuntimeSettings(safety=2.0, startup_min=1.0, max_min=4))["hessian"]
    assert capped["runtime_min"] == 4 and capped["wanted_min"] == 6


@pytest.mark.parametrize("key, value", [("safety", 0.5), ("batches", 0), ("startup_min", -1), ("max_min", 0)])
def test_bad_runtime_settings_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"runtimes.{key}"):
        job_costs.RuntimeSettings.from_mapping({key: value})
