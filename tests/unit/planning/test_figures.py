"""Every file a figure's notebook reads is one its rule declares: the notebook gets its inputs by role as a papermill
parameter (``inputs``), the rule's input is the same paths, and no notebook builds a path from a results folder."""

from __future__ import annotations

import ast
import json
import re

import nbformat
import pytest
import yaml

from lossgeom.planning import make_plan
from lossgeom.planning.figures import figure_inputs, figure_roles, flatten, notebook_parameters, table_inputs
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONFIGS = ["config.yaml", "configs/tiny.yaml"]


def plan_of(path: str):
    return make_plan(yaml.safe_load((REPO / path).read_text()), sources=[path],
                     parameters=lambda spec: 1000, training_steps=lambda spec: 10**9)


def paths_in(value) -> list[str]:
    """Every string a JSON value holds (its leaves)."""
    if isinstance(value, str):
        return [value]
    values = value.values() if isinstance(value, dict) else value
    return [leaf for item in values for leaf in paths_in(item)]


def parameters_cell(path) -> nbformat.NotebookNode:
    (cell,) = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    return cell


@pytest.mark.parametrize("config", CONFIGS)
def test_every_path_a_notebook_is_given_is_an_input_of_its_rule(config):
    plan = plan_of(config)
    roles, inputs = figure_roles(plan), figure_inputs(plan)
    assert set(roles) == set(inputs)
    for figure, (mapping, shown, key) in roles.items():
        parameters = json.loads(notebook_parameters(figure, shown, key, mapping))  # as the rule passes them
        given = paths_in(parameters["inputs"])
        declared = inputs[figure][0]
        assert given and set(given) == set(declared), figure  # nothing read undeclared, nothing declared unread
        assert len(declared) == len(set(declared)), figure
        assert all(path.startswith("results/") and not path.startswith("results/figures/") for path in given), figure
        if shown is not None:
            assert parameters[key] == shown and list(parameters["inputs"]) == shown, figure  # one entry per name
    table = table_inputs(plan)
    assert list(table["experiments"]) == plan.experiments
    assert "results/checks/summary.csv" in flatten(table) and len(flatten(table)) == 4 + len(plan.experiments)


def test_the_spectra_figure_reads_each_runs_final_point_through_a_declared_file():
    """F11: a sweep with snapshots gives each run's trajectory manifest (written last, after every point), one
    without them each run's local.json; both are files that sweep's runs.csv reads too (Plan.run_measurements)."""
    config = yaml.safe_load((REPO / "configs/tiny.yaml").read_text())
    plan = plan_of("configs/tiny.yaml")
    (sweep,) = plan.with_check("spectra")
    measurements = figure_roles(plan)["F11"][0][sweep]["measurements"]
    assert list(measurements) == list(plan.sweeps[sweep].runs)
    assert all(path.endswith(f"{run}/trajectory/points.json") for run, path in measurements.items())
    assert set(measurements.values()) <= set(plan.run_measurements(sweep))
    del config["sweeps"][sweep]["snapshots"]
    config["sweeps"][sweep]["checks"] = ["spectra"]
    plan = make_plan(config, sources=["tiny"], parameters=lambda spec: 1000, training_steps=lambda spec: 10**9)
    measurements = figure_roles(plan)["F11"][0][sweep]["measurements"]
    assert all(path.endswith(f"{run}/local.json") for run, path in measurements.items())
    assert set(measurements.values()) <= set(plan.run_measurements(sweep))


def test_the_surface_figures_read_the_curvature_check_and_the_trend_figure_a_trajectory_only_where_there_is_one():
    roles = figure_roles(plan_of("configs/tiny.yaml"))
    assert roles["F5"][0]["digits_mlp"] == {"surfaces": "results/digits_mlp/surfaces/surfaces.npz",
                                            "hessian": "results/digits_mlp/hessian/summary.json",
                                            "curvature": "results/checks/curvature_digits_mlp.csv"}
    assert "grids" in roles["F12"][0]["blobs_width"]  # the saddle's grids, written by the same rule as its record
    assert all("trajectory" not in files for files in roles["F14"][0].values())  # the tiny trend sweeps: no snapshots


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_reads_no_path_built_from_a_results_folder(path):
    """Only the parameters cell may name results/ (its default output paths); every input comes from ``inputs``."""
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    for cell in code:
        if "parameters" in cell.metadata.get("tags", []):
            assert not re.search(r"^results\s*=", cell.source, re.M), f"{path.name}: a results folder parameter"
            continue
        assert not re.search(r"results\s*/|Path\(results|\bresults\b", cell.source), \
            f"{path.name}: a code cell builds a path from a results folder:\n{cell.source}"
    assert "inputs[" in "\n".join(cell.source for cell in code), path.name


@pytest.mark.parametrize("config", CONFIGS)
def test_a_notebook_declares_every_parameter_its_rule_passes(config):
    """papermill injects parameters a notebook does not define without a word: the names must match."""
    plan = plan_of(config)
    passed = {figure: set(json.loads(notebook_parameters(figure, shown, key, mapping)))
              for figure, (mapping, shown, key) in figure_roles(plan).items()}
    passed["T1"] = set(json.loads(notebook_parameters("T1", plan.experiments, "experiments", table_inputs(plan),
                                                      output_csv="c", output_html="h", output_checks_html="k")))
    for figure, names in passed.items():
        cell = parameters_cell(REPO / "notebooks" / f"{figure}.ipynb")
        defined = {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                   for target in node.targets}
        assert defined == names, figure
        assert ast.literal_eval(cell.source.split("inputs = ", 1)[1].split("#")[0].strip()) == {}, figure
