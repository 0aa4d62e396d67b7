"""The ``check_model`` step: checks (b), (c) and the sign question on one trained model.

Writes the check rows (CSV), the trace-vs-samples table behind figure F4 (CSV: HVP-free and Hutchinson
running means with standard errors, and the exact trace for small models) and the sign-question record
(JSON). The math is in :mod:`lossgeom.checks.models`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..checks.models import model_checks
from ..device import DTYPES, deterministic_torch, pick_device
from ..io.atomic import write_csv, write_json
from ..io.partial import PartialFile
from ..io.provenance import input_record, provenance, require_same_input
from ..problems.data import Dataset
from ..settings import settings_help
from ..settings.checks import ModelCheckSettings
from ..training.checkpoints import load_model
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
    rows, trace_table, sign, bias = model_checks(model, x, y, dataset.task, hessian_summary, experiment, log=log,
                                                 resume=slot, **knobs)
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
