"""Which files each figure's notebook reads and what it shows: {figure: (input files, shown names, parameter)}.

A figure shows experiments (F4-F8) or the sweeps that declare its check (F9-F15); a figure with nothing to show is
left out of the plan. The notebook gets what it shows as a papermill parameter (``experiments`` or ``sweeps``).
"""

from __future__ import annotations

import json
from typing import Any

from .plan import Plan


def _each(pattern: str, names: list[str]) -> list[str]:
    return [pattern.format(name=name) for name in names]


def figure_inputs(plan: Plan) -> dict[str, tuple[list[str], list[str] | None, str]]:
    """{figure: (its input files, the experiments or sweeps it shows or None, the notebook parameter naming them)}."""
    every, classifiers, regressors = plan.experiments, plan.classifiers, plan.regressors
    local, goldilocks, spectra = plan.with_check("local"), plan.with_check("goldilocks"), plan.with_check("spectra")
    saddle, pairs, trends = plan.with_check("saddle"), plan.with_check("connectivity"), plan.with_check("trends")
    taxonomy = plan.with_check("taxonomy")
    figures: dict[str, tuple[list[str], list[str] | None, str]] = {
        "F1": (["results/synthetic/landscapes.npz"], None, "experiments"),
        "F2": (["results/checks/synthetic_samples.npz"], None, "experiments"),
        "F3": (["results/synthetic/saddle_probability.csv", "results/checks/synthetic.csv"], None, "experiments"),
        "F4": (_each("results/{name}/checks/trace_vs_samples.csv", every), every, "experiments"),
        "F5": (_each("results/{name}/surfaces/surfaces.npz", classifiers)
               + _each("results/{name}/hessian/summary.json", classifiers), classifiers, "experiments"),
        "F6": (_each("results/{name}/surfaces/surfaces.npz", regressors)
               + _each("results/{name}/hessian/summary.json", regressors), regressors, "experiments"),
        "F7": (_each("results/{name}/hessian/density.csv", every)
               + _each("results/{name}/hessian/summary.json", every), every, "experiments"),
        "F8": (_each("results/{name}/checks/bias_vs_step.csv", every)
               + _each("results/{name}/hessian/summary.json", every), every, "experiments"),
        "F9": (_each("results/sweeps/{name}/trajectory.csv", local), local, "sweeps"),
        "F10": (_each("results/sweeps/{name}/runs.csv", goldilocks), goldilocks, "sweeps"),
        "F11": (_each("results/sweeps/{name}/runs.csv", spectra), spectra, "sweeps"),
        "F12": (_each("results/sweeps/{name}/saddle/saddle.json", saddle)
                + _each("results/checks/saddle_{name}.csv", saddle), saddle, "sweeps"),
        "F13": ([f"results/sweeps/{name}/connectivity/{file}" for name in pairs
                 for file in ("summary.json", "paths.csv", "simplex_slice.npz")], pairs, "sweeps"),
        "F14": ([f"results/sweeps/{name}/{file}" for name in trends
                 for file in ("runs.csv",) + (("trajectory.csv",) if plan.sweeps[name].snapshots else ())],
                trends, "sweeps"),
        "F15": (_each("results/sweeps/{name}/taxonomy/cells.csv", taxonomy)
                + _each("results/checks/taxonomy_{name}.csv", taxonomy), taxonomy, "sweeps"),
    }
    return {name: spec for name, spec in figures.items() if spec[1] is None or spec[1]}


def notebook_parameters(figure: str, shown: list[str] | None, key: str = "experiments") -> str:
    """Papermill parameters (JSON): where the results are, what to show under ``key``, where the figure goes.

    >>> json.loads(notebook_parameters("F9", ["early"], "sweeps"))["sweeps"]
    ['early']
    """
    parameters: dict[str, Any] = {"results": "results", "output_pdf": f"results/figures/{figure}.pdf",
                                  "output_png": f"results/figures/{figure}.png"}
    if shown is not None:
        parameters[key] = shown
    return json.dumps(parameters)


def report_files(plan: Plan) -> list[str]:
    """The files the HTML report (``snakemake --report``) shows: every figure's PNG and Table 1's pages."""
    return [f"results/figures/{name}.png" for name in figure_inputs(plan)] + [
        "results/figures/T1.html", "results/figures/T1_checks.html"]
