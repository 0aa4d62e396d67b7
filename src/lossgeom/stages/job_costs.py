"""The ``job_costs`` step: one experiment's work measured on the device, and the runtime of each of its jobs.

A cluster's scheduler needs every job's runtime before the job starts. This step times, on the device the
jobs will use, each kind of pass the later jobs make over the data: a training epoch, a loss evaluation, a
Hessian-vector product, each in its stage's precision, batch size and examples. The model is built from the
experiment's spec (the cost of a pass does not depend on the weights), so the step can run before training.

Every full batch costs the same, so a pass over n examples costs ``ceil(n / batch_size)`` times the median
time of one batch, measured on ``batches`` full batches after a warm-up pass. A job's estimate is the sum
over its work of (passes it plans) x (seconds per pass); the passes are upper bounds read from its settings
(:func:`planned_work`: the Lanczos budget ``max_hvps``, not the products a converged run happens to need).
The runtime asked for is ``safety`` x the estimate + ``startup_min`` (imports, data, moving the model),
rounded up to whole minutes, and at most ``max_min`` (a partition's limit) when set.
A job killed at its limit resumes from its saved work on the next attempt
(training, hessian, check_model, surface tiles), so an underestimate costs a retry, not the work done.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..geometry.second_differences import STEPS
from ..device import DTYPES, deterministic_torch, pick_device
from ..engine.hessian import HessianOperator
from ..errors import ConfigError
from ..io.atomic import write_json
from ..io.provenance import provenance
from ..problems.data import Dataset, load_dataset
from ..problems.losses import loss_function
from ..problems.models import build_model
from ..settings import settings_help
from ..settings.runtimes import RuntimeSettings, StageSettings
from ..timing import call_times
from ..training.evaluation import evaluate
from .hessian import loss_examples
from .surfaces import part_points

JOBS = ("train", "hessian", "surfaces", "surface_part", "check_model", "check_curvature")


@dataclasses.dataclass(frozen=True)
class Pass:
    """One kind of pass over data: ``kind`` is epoch (forward and backward, train mode), loss (evaluation)
    or hvp (one Hessian-vector product); ``examples`` 0 means the whole split."""

    kind: str
    split: str
    dtype: str
    batch_size: int
    examples: int = 0
    batch_key: str = ""  # the config key that sets batch_size, for the message when a batch does not fit

    @property
    def key(self) -> str:
        subset = f", {self.examples} examples" if self.examples else ""
        return f"{self.kind} {self.split} {self.dtype} batch {self.batch_size}{subset}"


def planned_work(s: StageSettings, n_parameters: int) -> dict[str, list[tuple[str, int, Pass]]]:
    """{job: [(what, passes, pass)]}: upper bounds on the passes each job makes, from its settings.

    The counts follow the stages' code: Lanczos stops at ``max_hvps`` products and then recomputes one
    residual per returned pair; SLQ takes ``slq_probes`` x ``slq_steps`` (its first probe is free when the
    eigenpair run provides it, which the bound does not count on); the checks take two products per random
    projection, one per Hutchinson
    probe, N for the exact trace of a small model, two loss values per slice plus the centre, and per bias
    slice one float64 product and two loss values per step and precision; a surface evaluates every grid
    point and both 1D slices on each split (a surface part job, its share of the tiles); the curvature check
    takes an exact projected Hessian (two
    products and a gradient) at two points per direction pair, in float64 on the whole training split.
    """
    t, h, sf, c = s.train, s.hessian, s.surfaces, s.checks
    products = Pass("hvp", h.split, h.dtype, h.batch_size, h.examples, "hessian.batch_size")  # the hessian step's loss
    checked = Pass("hvp", h.split, c.dtype, c.batch_size, h.examples, "checks.models.batch_size")  # on the same examples
    sliced = Pass("loss", h.split, c.slices_dtype or c.dtype, c.batch_size, h.examples, "checks.models.batch_size")
    exact = n_parameters if n_parameters <= c.exact_max_parameters else 0
    bias_steps = len(set(STEPS) | {c.relative_step or 0.0})
    points = len(sf.pairs) * len(sf.ranges) * (sf.points**2 + 2 * sf.points_1d)
    return {
        "train": [("epochs", t.epochs, Pass("epoch", "train", "float32", t.batch_size, 0, "train.batch_size")),
                  ("train metrics per epoch", t.epochs + 1,
                   Pass("loss", "train", "float32", t.eval_batch_size, 0, "train.eval_batch_size")),
                  ("test metrics per epoch", t.epochs + 1,
                   Pass("loss", "test", "float32", t.eval_batch_size, 0, "train.eval_batch_size"))],
        # the returned pairs' residual certificates come from the products Lanczos kept: no product of their own
        "hessian": [("Lanczos budget", h.max_hvps, products),
                    ("Hutchinson probes", h.hutchinson_samples, products),
                    ("SLQ", h.slq_probes * h.slq_steps, products),
                    ("gradient", 1, products)],
        "check_model": [("projections, Hutchinson, exact trace", 2 * c.projections + c.hutchinson_samples + exact, checked),
                        ("HVP-free slices", 2 * c.slices + 1, sliced),
                        ("bias slices: exact products", c.bias_slices, dataclasses.replace(checked, dtype="float64")),
                        ("bias slices: loss values", c.bias_slices * bias_steps * 2 * 2,
                         dataclasses.replace(sliced, dtype="float64"))],
        "surfaces": [(f"grid points on {split}", points, Pass("loss", split, sf.dtype, sf.batch_size, 0, "surfaces.batch_size"))
                     for split in sf.splits],
        # with surfaces.parts > 1: the most loaded part job (the merge computes nothing)
        "surface_part": [(f"grid points on {split} (the largest of {sf.parts} parts)", max(part_points(sf)),
                          Pass("loss", split, sf.dtype, sf.batch_size, 0, "surfaces.batch_size")) for split in sf.splits],
        "check_curvature": [("exact projected Hessians", 6 * len(sf.pairs),
                             Pass("hvp", "train", "float64", sf.curvature_batch_size or sf.batch_size, 0,
                                  "surfaces.curvature_batch_size"))],
    }


def _seconds(run: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time of ``run`` over ``repeats`` calls after one warm-up call (CUDA synchronized)."""
    return statistics.median(call_times(run, device, repeats))


def measure_pass(model: torch.nn.Module, dataset: Dataset, p: Pass, batches: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Seconds per batch of ``p`` on ``batches`` full batches (fewer if the data has fewer), and per whole pass.

    An epoch pass trains ``model`` in place with a zero learning rate: the weights stay, but BatchNorm running
    statistics move, so pass a model built for the measurement (as :func:`compute` does)."""
    device = next(model.parameters()).device
    dtype = DTYPES[p.dtype]
    x, y = loss_examples(dataset, p.split, p.examples, seed)
    n = len(y)
    timed = min(n, batches * p.batch_size)
    xb = x[:timed].to(device, dtype)
    yb = (y[:timed].to(device, dtype) if dataset.task == "regression" else y[:timed].to(device))
    work = model if next(model.parameters()).dtype == dtype else copy.deepcopy(model).to(dtype)
    loss = loss_function(dataset.task)
    if p.kind == "hvp":
        op = HessianOperator(work, loss, xb, yb, batch_size=p.batch_size, dtype=dtype)
        v = torch.randn(op.n_params, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
        run = lambda: op.matvec(v)  # noqa: E731
    elif p.kind == "loss":
        run = lambda: evaluate(work, xb, yb, dataset.task, p.batch_size)  # noqa: E731
    elif p.kind == "epoch":
        optimizer = torch.optim.SGD(work.parameters(), lr=0.0, momentum=0.9)  # lr 0: the update's cost, no change

        def run() -> None:
            work.train()
            for start in range(0, timed, p.batch_size):
                optimizer.zero_grad(set_to_none=True)
                loss(work(xb[start : start + p.batch_size]), yb[start : start + p.batch_size]).backward()
                optimizer.step()
            work.eval()
    else:
        raise ValueError(f"unknown kind of pass {p.kind!r}")
    batches_timed = math.ceil(timed / p.batch_size)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        per_batch = _seconds(run, device, repeats) / batches_timed
    except torch.OutOfMemoryError:
        raise ConfigError(f"{p.key}: a batch of {p.batch_size} does not fit in the memory of {device}; "
                          f"lower {p.batch_key or 'its batch size'}") from None
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    batches_per_pass = math.ceil(n / p.batch_size)
    return {"pass": p.key, **dataclasses.asdict(p), "examples_in_pass": n, "batches_timed": batches_timed,
            "seconds_per_batch": per_batch, "batches_per_pass": batches_per_pass,
            "seconds_per_pass": per_batch * batches_per_pass,
            "peak_gpu_memory_mib": peak}


def estimate_jobs(work: Mapping[str, list[tuple[str, int, Pass]]], seconds: Mapping[str, float],
                  runtimes: RuntimeSettings) -> dict[str, dict[str, Any]]:
    """{job: {work, estimate_s, runtime_min}} from the planned passes and the measured seconds per pass."""
    jobs = {}
    for job, items in work.items():
        rows = [{"what": what, "passes": passes, "pass": p.key, "seconds": passes * seconds[p.key]} for what, passes, p in items]
        estimate = sum(r["seconds"] for r in rows)
        wanted = math.ceil(runtimes.safety * estimate / 60 + runtimes.startup_min)
        jobs[job] = {"work": rows, "estimate_s": estimate, "wanted_min": wanted,
                     "runtime_min": min(wanted, runtimes.max_min) if runtimes.max_min else wanted}
    return jobs


def compute(spec: Mapping[str, Any], settings: StageSettings, device: torch.device, log=print) -> dict[str, Any]:
    """Measure every pass the jobs of experiment ``spec`` plan, on ``device``; estimate each job's runtime."""
    dataset = load_dataset(spec["dataset"])
    torch.manual_seed(settings.train.seed)
    model = build_model(spec["model"], dataset.input_shape, dataset.output_dim).to(device).eval()
    n = sum(p.numel() for p in model.parameters())
    work = planned_work(settings, n)
    passes = {p.key: p for items in work.values() for _, _, p in items}
    measured = {}
    for key, p in passes.items():
        measured[key] = measure_pass(model, dataset, p, settings.runtimes.batches, settings.runtimes.repeats,
                                     settings.hessian.seed)
        log(f"{key}: {measured[key]['seconds_per_batch']:.3g} s per batch, {measured[key]['seconds_per_pass']:.3g} s per pass")
    jobs = estimate_jobs(work, {k: m["seconds_per_pass"] for k, m in measured.items()}, settings.runtimes)
    for job, record in jobs.items():
        log(f"{job}: estimated {record['estimate_s']:.0f} s, runtime {record['runtime_min']} min")
    return {"n_parameters": n, "device": str(device), "passes": list(measured.values()), "jobs": jobs,
            "settings": {f.name: dataclasses.asdict(getattr(settings, f.name)) for f in dataclasses.fields(settings)},
            "provenance": provenance(seed=settings.train.seed)}


def run(name: str, spec: Mapping[str, Any], blocks: Mapping[str, Any], out: str | Path, log=print) -> dict[str, Any]:
    deterministic_torch()  # before any torch work: see lossgeom.device
    settings = StageSettings.from_mapping(spec, blocks)
    device = pick_device(blocks.get("hessian", {}).get("device", "auto"))
    record = {"experiment": name, **compute(spec, settings, device, log=log)}
    write_json(record, out)
    return record


def add_commands(steps) -> None:
    """CLI: ``lossgeom job-costs``."""
    command = steps.add_parser("job-costs", help="time an experiment's passes on this device; estimate its jobs' runtimes",
                               **settings_help(RuntimeSettings, "runtimes"))
    command.add_argument("--name", required=True)
    command.add_argument("--spec", required=True, help="the experiment spec as JSON")
    command.add_argument("--settings", default="{}",
                         help="JSON {hessian, surfaces, checks.models, runtimes}: the config blocks the jobs use")
    command.add_argument("--out", required=True, type=Path, help="job_costs.json to write")
    command.set_defaults(func=lambda args: run(args.name, json.loads(args.spec), json.loads(args.settings), args.out,
                                               log=logging.getLogger(__name__).info))
