"""The ``check_model`` step: checks (b), (c) and the sign question on one trained model.

Writes the check rows (CSV), the trace-vs-samples table behind figure F4 (CSV: HVP-free and Hutchinson
running means with standard errors, and the exact trace for small models) and the sign-question record
(JSON). :func:`measure` takes the measurements (Hessian-vector products, loss values along slices); the rows
that judge them, and the math, are in :mod:`lossgeom.checks.models`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from ..checks.models import ModelMeasurements, model_rows
from ..device import DTYPES, deterministic_torch, pick_device
from ..engine.hessian import HessianOperator
from ..engine.resume import ResumeSlot, restore_samples, save_samples
from ..engine.trace import exact_trace, hutchinson_trace
from ..geometry.curvature import random_projections
from ..geometry.parameters import ParameterShifter
from ..geometry.second_differences import STEPS, bias_versus_step, slice_curvature
from ..io.atomic import write_csv, write_json
from ..io.partial import PartialFile
from ..io.provenance import input_record, provenance, require_same_input
from ..problems.data import Dataset
from ..problems.losses import loss_function
from ..progress import Progress
from ..settings import settings_help
from ..settings.checks import ModelCheckSettings
from ..training.checkpoints import load_model
from ..training.evaluation import evaluate
from .hessian import loss_examples

# The HVP-free trace's step, chosen from the measured error of second differences against eta^T H eta
# (results/<experiment>/checks/bias_vs_step.csv, figure F8). float64: on ReLU networks the error from kinks
# grows as r shrinks from 1e-1 to 1e-4 (digits_mlp: 0.55, 1.2, 3.8, 3.5 x tr(H)), then vanishes once the step
# is below the distance to the nearest kink on most slices (1e-5: 70% of slices within 1% of tr(H); 1e-6: all,
# mean error 2e-4 tr(H)); on the smooth tanh network it is 3e-7 tr(H) at 1e-6, where rounding begins.
# float32: rounding explodes below r = 1e-4; 1e-3 is the best step of a smooth network (3e-5 tr(H)), and no
# float32 step serves a ReLU network.
DEFAULT_STEPS = {"float64": 1e-6, "float32": 1e-3}


@dataclasses.dataclass
class ModelCheckResult:
    rows: pd.DataFrame
    trace_table: pd.DataFrame
    sign: dict[str, Any]
    bias_table: pd.DataFrame  # second differences vs eta^T H eta per slice, step and precision


def _gaussian(n: int, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(n, generator=g, dtype=torch.float64).to(like.device, like.dtype)


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, *, projections: int, slices: int,
            hutchinson_samples: int, relative_step: float, bias_slices: int, exact_max_parameters: int, batch_size: int,
            seed: int, slices_dtype: torch.dtype | None = None, prior_trace_samples: np.ndarray | None = None,
            hvp_method: str = "auto", hvp_block: int | None = None, hvp_vmap_blocks: bool | None = None,
            log: Callable[[str], None] = print,
            resume: Callable[[str], ResumeSlot | None] = lambda key: None) -> ModelMeasurements:
    """The measurements behind checks (b), (c) and the sign question (:mod:`lossgeom.checks.models` judges them).

    ``model`` and the data (x, y) are already on the device and in the precision to check in. One generator
    seeded with ``seed`` draws, in this order, the projections' directions, the Hutchinson probes and the slices'
    directions. ``prior_trace_samples``: the Hutchinson samples the hessian step took on the same loss in the same
    precision; they are the first probes here, and only the rest are drawn. ``hvp_method``, ``hvp_block``,
    ``hvp_vmap_blocks``: how products are computed (the stage passes what the hessian step's ``auto`` chose and
    recorded, so that one model is timed once and both steps compute products the same way). The slices are taken
    in ``slices_dtype`` (second differences lose ~eps L / h^2 to rounding: float64 lets the step go below the kinks
    of a ReLU network).
    ``resume(key)`` gives each loop a place to save its work in progress (with the generator's state), so that a
    killed run continues where it was.
    """
    planned = 2 * projections + hutchinson_samples + bias_slices
    op = HessianOperator(model, loss_function(task), x, y, batch_size=batch_size, method=hvp_method, block=hvp_block,
                         vmap_blocks=hvp_vmap_blocks, expected_products=planned)
    n = op.n_params
    g = torch.Generator().manual_seed(seed)

    M = random_projections(op, projections, generator=g, resume=resume("projections"))  # two products each
    diag = np.concatenate([M[:, 0], M[:, 2]])
    log(f"(b) {projections} projections: mean eta^T H eta = {diag.mean():.6g} +- {diag.std(ddof=1) / np.sqrt(len(diag)):.2g}")
    trace = hutchinson_trace(op, hutchinson_samples, generator=g, resume=resume("hutchinson"), prior=prior_trace_samples)
    log(f"Hutchinson, {len(trace.samples)} probes ({len(trace.samples) - trace.hvps} from the hessian step): "
        f"tr(H) = {trace.estimate:.6g} +- {trace.standard_error:.2g}")
    exact = None
    if n <= exact_max_parameters:
        exact = exact_trace(op)
        log(f"exact tr(H) = {exact:.6g} (N products)")

    # loss values along random 1D slices, in their own precision
    slices_dtype = slices_dtype or op.dtype
    sliced = model if slices_dtype == op.dtype else copy.deepcopy(model).to(slices_dtype)
    xs = x.to(slices_dtype)
    ys = y.to(slices_dtype) if task == "regression" else y
    shifter = ParameterShifter(sliced, torch.zeros(n, device=op.device, dtype=slices_dtype))
    theta_norm = float(shifter.theta.norm())

    def loss_at() -> float:
        return evaluate(sliced, xs, ys, task, batch_size)["loss"]

    centre = loss_at()
    curvatures = np.empty(slices)
    slot = resume("slices")
    start = restore_samples(slot, "curvatures", curvatures, g)
    progress = Progress("hvp-free slices", slices, "slices")
    for k in range(start, slices):
        eta = _gaussian(n, g, shifter.theta)
        h = relative_step * theta_norm / float(eta.norm())
        curvatures[k] = slice_curvature(shifter, loss_at, eta, h, centre)
        (progress.finish if k == slices - 1 else progress.update)(k + 1, mean=lambda k=k: f"{curvatures[: k + 1].mean():.6g}")
        save_samples(slot, "curvatures", curvatures[: k + 1], g, final=k == slices - 1)
    log(f"(c) {slices} slices: HVP-free tr(H) = {curvatures.mean():.6g} +- {curvatures.std(ddof=1) / np.sqrt(slices):.2g}")
    # the error of the second differences against eta^T H eta, over a grid of steps in both precisions
    steps = sorted(set(STEPS) | {relative_step}, reverse=True)
    bias = bias_versus_step(model, x, y, task, slices=bias_slices, seed=seed + 1, batch_size=batch_size, steps=steps,
                            method=op.method)
    return ModelMeasurements(
        n_parameters=n, projections=M, trace_samples=trace.samples, trace_estimate=trace.estimate,
        trace_standard_error=trace.standard_error, exact_trace=exact, slice_curvatures=curvatures,
        relative_step=relative_step, slices_dtype={torch.float32: "float32", torch.float64: "float64"}[slices_dtype],
        bias=bias, hvp_choice=getattr(op, "choice", None))


def compute(model, dataset: Dataset, hessian_summary: Mapping[str, Any], settings: ModelCheckSettings,
            experiment: str, log=print, partial: PartialFile | None = None,
            hessian_trace_samples: np.ndarray | None = None) -> ModelCheckResult:
    """The checks on ``model`` (moved to the configured dtype here) over the examples the hessian step used (its
    recorded split and ``examples`` subset); with ``partial``,
    the loops save their work in progress there and continue from it. ``hessian_trace_samples`` (the hessian
    step's z^T H z) are reused as the first Hutchinson probes when that step's products were in this dtype."""
    dtype = DTYPES[settings.dtype]
    model = copy.deepcopy(model).to(dtype)  # the caller's model stays as it is
    device = next(model.parameters()).device
    recorded = hessian_summary.get("settings", {})  # the same examples as the hessian step: one loss function
    x, y = loss_examples(dataset, recorded.get("split", "train"), recorded.get("examples", 0), recorded.get("seed", 0))
    x = x.to(device, dtype)
    y = y.to(device, dtype) if dataset.task == "regression" else y.to(device)
    skip = ("dtype", "slices_dtype", "device", "save_every_s")
    knobs = {k: v for k, v in dataclasses.asdict(settings).items() if k not in skip}
    slices_dtype = settings.slices_dtype or settings.dtype
    knobs["relative_step"] = settings.relative_step or DEFAULT_STEPS[slices_dtype]
    knobs["slices_dtype"] = DTYPES[slices_dtype]
    slot = partial.slot if partial is not None else (lambda key: None)
    same_products = hessian_summary.get("dtype") == settings.dtype  # and the same examples, read above
    knobs["prior_trace_samples"] = hessian_trace_samples if same_products else None
    # products computed the way the hessian step's auto chose for this model (timed there once)
    knobs["hvp_method"] = hessian_summary.get("hvp_method", "auto")
    knobs["hvp_block"] = hessian_summary.get("hvp_block")
    knobs["hvp_vmap_blocks"] = hessian_summary.get("hvp_vmap_blocks")  # None in a summary written before 2026-12-07
    measured = measure(model, x, y, dataset.task, log=log, resume=slot, **knobs)
    rows, trace_table, sign = model_rows(measured, hessian_summary, experiment, seed=settings.seed)
    bias = measured.bias
    sign.update({"settings": dataclasses.asdict(settings), "provenance": provenance(seed=settings.seed)})
    bias.insert(0, "experiment", experiment)
    return ModelCheckResult(rows, trace_table, sign, bias)


def write(result: ModelCheckResult, rows_path, trace_path, sign_path, bias_path) -> None:
    write_csv(result.trace_table, trace_path)
    write_csv(result.bias_table, bias_path)
    write_json(result.sign, sign_path)
    write_csv(result.rows, rows_path)  # last: the rows are what the workflow waits for


def run(model_path, hessian_summary_path, settings: ModelCheckSettings, experiment: str, rows_path, trace_path,
        sign_path, bias_path=None, log=print) -> ModelCheckResult:
    """Load, check, write; ``bias_path`` (the finite-difference error table) defaults to bias_vs_step.csv
    beside ``trace_path``."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    bias_path = Path(trace_path).with_name("bias_vs_step.csv") if bias_path is None else bias_path
    model, dataset, _ = load_model(model_path, pick_device(settings.device))
    hessian_summary = json.loads(Path(hessian_summary_path).read_text())
    require_same_input(hessian_summary.get("inputs"), "model", model_path, hessian_summary_path)
    inputs = input_record(model=model_path, hessian=hessian_summary_path)
    partial = PartialFile.for_job(Path(rows_path).with_suffix(".partial.pt"), inputs, settings)
    samples_file = Path(hessian_summary_path).with_name("trace_samples.csv")  # written by the same hessian job
    prior = pd.read_csv(samples_file)["zHz"].to_numpy() if samples_file.exists() else None
    result = compute(model, dataset, hessian_summary, settings, experiment, log=log, partial=partial,
                     hessian_trace_samples=prior)
    result.sign["inputs"] = inputs
    write(result, rows_path, trace_path, sign_path, bias_path)
    partial.remove()
    return result


def add_commands(steps) -> None:
    """CLI: ``lossgeom check-model``."""
    command = steps.add_parser("check-model", help="checks (b), (c) and the sign question for a trained model",
                              **settings_help(ModelCheckSettings, "checks.models"))
    command.add_argument("--name", required=True)
    command.add_argument("--model", required=True, type=Path)
    command.add_argument("--hessian", required=True, type=Path, help="hessian/summary.json of the model")
    command.add_argument("--settings", default="{}", help="the checks.models config block as JSON")
    command.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    command.add_argument("--trace-out", required=True, type=Path, help="CSV of trace estimates vs samples S")
    command.add_argument("--sign-out", required=True, type=Path, help="JSON answering the sign question")
    command.add_argument("--bias-out", type=Path, help="CSV of second differences vs eta^T H eta per step and dtype "
                                                     "(default: bias_vs_step.csv beside --trace-out)")
    command.set_defaults(func=lambda args: run(args.model, args.hessian,
                                               ModelCheckSettings.from_mapping(json.loads(args.settings)),
                                               args.name, args.out, args.trace_out, args.sign_out, args.bias_out,
                                               log=logging.getLogger(__name__).info))
