"""Which files each figure's notebook reads, by role, and what it shows.

Every figure (and Table 1) gets a mapping of its input files by role, e.g. for F5
``{experiment: {"surfaces": path, "hessian": path, "curvature": path}}``, for F11
``{sweep: {"runs": path, "measurements": {run: path}}}``: its rule's input is the flattened list of those paths
(:func:`flatten`), and the notebook gets the mapping as its ``inputs`` parameter and reads only paths from it, so
every file a notebook reads is one its rule declares (a stale or missing file is rebuilt first).

A figure shows experiments (F4-F8) or the sweeps that declare its check (F9-F15); a figure with nothing to show is
left out of the plan. The notebook gets what it shows as a papermill parameter (``experiments`` or ``sweeps``), which
gives the order.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from .plan import Plan

Inputs = dict[str, Any]  # role -> a path, a list of paths or a mapping of the same kind


def _each(names: list[str], **roles: str) -> Inputs:
    """{name: {role: pattern with the name filled in}} for each name, e.g. ``_each(["a"], runs="{name}.csv")``."""
    return {name: {role: pattern.format(name=name) for role, pattern in roles.items()} for name in names}


def flatten(inputs: Any) -> list[str]:
    """Every path a mapping of inputs names, in order (a rule's input list).

    >>> flatten({"a": {"runs": "a.csv", "measurements": {"r1": "r1.json"}}, "b": {"runs": "b.csv", "more": ["x"]}})
    ['a.csv', 'r1.json', 'b.csv', 'x']
    """
    if isinstance(inputs, str):
        return [inputs]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    return [path for value in values for path in flatten(value)]


def spectrum_sources(plan: Plan, sweep: str) -> dict[str, str]:
    """{run: the file F11 reads its final spectrum from}: the trajectory manifest (``trajectory/points.json``, written
    last; its final point's local.json, :func:`lossgeom.stages.run_trajectory.final_folder`) of a sweep with
    snapshots, else the run's own local.json (:meth:`Plan.run_measurements` declares the same files for runs.csv)."""
    name = "trajectory/points.json" if plan.sweeps[sweep].snapshots else "local.json"
    return dict(zip(plan.sweeps[sweep].runs, plan.each_run(sweep, name)))


def figure_roles(plan: Plan) -> dict[str, tuple[Inputs, list[str] | None, str]]:
    """{figure: (its inputs by role, the experiments or sweeps it shows or None, the notebook parameter naming them)}."""
    every, classifiers, regressors = plan.experiments, plan.classifiers, plan.regressors
    local, goldilocks, spectra = plan.with_check("local"), plan.with_check("goldilocks"), plan.with_check("spectra")
    saddle, pairs, trends = plan.with_check("saddle"), plan.with_check("connectivity"), plan.with_check("trends")
    taxonomy = plan.with_check("taxonomy")
    surfaces = {"surfaces": "results/{name}/surfaces/surfaces.npz", "hessian": "results/{name}/hessian/summary.json",
                "curvature": "results/checks/curvature_{name}.csv"}
    figures: dict[str, tuple[Inputs, list[str] | None, str]] = {
        "F1": ({"synthetic": {"landscapes": "results/synthetic/landscapes.npz"}}, None, "experiments"),
        "F2": ({"synthetic": {"samples": "results/checks/synthetic_samples.npz"}}, None, "experiments"),
        "F3": ({"synthetic": {"saddle_probability": "results/synthetic/saddle_probability.csv",
                              "checks": "results/checks/synthetic.csv"}}, None, "experiments"),
        "F4": (_each(every, trace="results/{name}/checks/trace_vs_samples.csv"), every, "experiments"),
        "F5": (_each(classifiers, **surfaces), classifiers, "experiments"),
        "F6": (_each(regressors, **surfaces), regressors, "experiments"),
        "F7": (_each(every, density="results/{name}/hessian/density.csv", hessian="results/{name}/hessian/summary.json"),
               every, "experiments"),
        "F8": (_each(every, bias="results/{name}/checks/bias_vs_step.csv", hessian="results/{name}/hessian/summary.json"),
               every, "experiments"),
        "F9": (_each(local, trajectory="results/sweeps/{name}/trajectory.csv"), local, "sweeps"),
        "F10": (_each(goldilocks, runs="results/sweeps/{name}/runs.csv"), goldilocks, "sweeps"),
        "F11": ({name: {"runs": f"results/sweeps/{name}/runs.csv", "measurements": spectrum_sources(plan, name)}
                 for name in spectra}, spectra, "sweeps"),
        "F12": (_each(saddle, saddle="results/sweeps/{name}/saddle/saddle.json",
                      grids="results/sweeps/{name}/saddle/grids.npz", checks="results/checks/saddle_{name}.csv"),
                saddle, "sweeps"),
        "F13": (_each(pairs, summary="results/sweeps/{name}/connectivity/summary.json",
                      paths="results/sweeps/{name}/connectivity/paths.csv",
                      simplex_slice="results/sweeps/{name}/connectivity/simplex_slice.npz"), pairs, "sweeps"),
        "F14": ({name: {"runs": f"results/sweeps/{name}/runs.csv"}
                 | ({"trajectory": f"results/sweeps/{name}/trajectory.csv"} if plan.sweeps[name].snapshots else {})
                 for name in trends}, trends, "sweeps"),
        "F15": (_each(taxonomy, cells="results/sweeps/{name}/taxonomy/cells.csv",
                      checks="results/checks/taxonomy_{name}.csv"), taxonomy, "sweeps"),
    }
    return {name: spec for name, spec in figures.items() if spec[1] is None or spec[1]}


def figure_inputs(plan: Plan) -> dict[str, tuple[list[str], list[str] | None, str]]:
    """{figure: (its input files, the experiments or sweeps it shows or None, the notebook parameter naming them)}."""
    return {name: (flatten(inputs), shown, key) for name, (inputs, shown, key) in figure_roles(plan).items()}


def table_inputs(plan: Plan) -> Inputs:
    """Table 1's inputs by role: the summary tables, and each experiment's trace estimates."""
    return {"tables": {"training": "results/training_summary.csv", "hessian": "results/hessian_summary.csv",
                       "checks": "results/checks/summary.csv", "signs": "results/checks/sign_question.csv"},
            "experiments": _each(plan.experiments, trace="results/{name}/checks/trace_vs_samples.csv")}


def notebook_parameters(figure: str, shown: list[str] | None, key: str = "experiments",
                        inputs: Inputs | None = None, **outputs: str) -> str:
    """Papermill parameters (JSON): the inputs by role, what to show under ``key``, where the figure goes (or
    ``outputs``: other parameter names and paths, e.g. Table 1's).

    >>> parameters = json.loads(notebook_parameters("F9", ["early"], "sweeps", {"early": {"trajectory": "t.csv"}}))
    >>> parameters["sweeps"], parameters["inputs"], parameters["output_pdf"]
    (['early'], {'early': {'trajectory': 't.csv'}}, 'results/figures/F9.pdf')
    """
    parameters: dict[str, Any] = {"inputs": inputs or {}}
    parameters.update(outputs or {"output_pdf": f"results/figures/{figure}.pdf",
                                  "output_png": f"results/figures/{figure}.png"})
    if shown is not None:
        parameters[key] = shown
    return json.dumps(parameters)


def report_files(plan: Plan) -> list[str]:
    """The files the HTML report (``snakemake --report``) shows: every figure's PNG and Table 1's pages."""
    tables = ["results/figures/T1.html", "results/figures/T1_checks.html"] if plan.experiments else []
    return [f"results/figures/{name}.png" for name in figure_inputs(plan)] + tables
