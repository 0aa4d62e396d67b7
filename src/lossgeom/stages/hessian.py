"""The ``hessian`` step: every Hessian quantity of one trained model, written with provenance.

Writes, into one directory:
  summary.json       eigenvalues of both ends with residuals and convergence, products, Hutchinson trace
                     +- standard error, SLQ settings, wall time per part, device, dtype, provenance
  eigenvectors.pt    the eigenvectors (rows, flat in ``model.named_parameters()`` order), weights_only
  trace_samples.csv  z^T H z of every Hutchinson probe (for trace-vs-samples plots)
  density.csv        SLQ density on a grid; slq_nodes.csv the Gauss nodes and weights per probe
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..device import DTYPES, deterministic_torch, pick_device
from ..engine.density import SpectralDensity, slq_density
from ..engine.hessian import HessianOperator
from ..engine.lanczos import LanczosResult, extreme_eigenpairs
from ..engine.trace import TraceEstimate, hutchinson_trace
from ..io.atomic import save_torch, write_csv, write_json
from ..io.partial import PartialFile
from ..io.provenance import input_record, provenance
from ..problems.data import Dataset, example_subset
from ..problems.losses import loss_function
from ..settings import settings_help
from ..settings.hessian import HessianSettings
from ..training.checkpoints import load_model

EIGENVECTORS_FORMAT = "lossgeom-eigenvectors-v1"


def loss_examples(dataset: Dataset, split: str, examples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples whose mean loss the Hessian is taken of: ``split``, or a seeded subset of ``examples`` of it.

    The checks of the same model call this with the hessian step's recorded settings, so that both describe
    one loss function."""
    x, y = (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    return example_subset(x, y, examples, seed)


def deflation(eig: LanczosResult) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(vectors, values) of both ends for the deflated trace, or None when the two ends share a vector (a model
    with fewer parameters than pairs asked for), which would break orthonormality."""
    vectors = torch.cat([eig.top.vectors, eig.bottom.vectors])
    if len(vectors) == 0:
        return None
    gram = vectors @ vectors.T
    if float((gram - torch.eye(len(vectors), dtype=gram.dtype, device=gram.device)).abs().max()) > 1e-3:
        return None
    return vectors, torch.cat([eig.top.values, eig.bottom.values])


def _deflated_record(trace: TraceEstimate) -> dict[str, Any] | None:
    d = trace.deflated
    if d is None:
        return None
    return {"estimate": d.estimate, "standard_error": d.standard_error, "explicit": d.explicit, "k": d.k,
            "variance_ratio": d.variance_ratio}


def _moments(density, n: int) -> dict[str, float]:
    """tr(H) and tr(H^2) from the SLQ Gauss rules (N times the mean first and second moments), with SEs."""
    out = {}
    for power, name in ((1, "trace_h"), (2, "trace_h2")):
        per_probe = n * density.moment(power)
        out[name] = float(per_probe.mean())
        out[name + "_se"] = float(per_probe.std(ddof=1) / np.sqrt(len(per_probe))) if len(per_probe) > 1 else float("nan")
    return out


def _pairs(p) -> dict[str, list]:
    return {"values": p.values.tolist(), "residuals": p.residuals.tolist(), "converged": p.converged.tolist(),
            "residual_estimates": p.residual_estimates.tolist() if p.residual_estimates is not None else None}


@dataclasses.dataclass
class HessianResult:
    """Everything the step computed: the summary record and the arrays behind it."""

    summary: dict[str, Any]
    eigen: LanczosResult
    trace: TraceEstimate
    density: SpectralDensity
    parameter_names: list[str]
    parameter_shapes: list[list[int]]


def compute(model: torch.nn.Module, dataset: Dataset, settings: HessianSettings, log=print,
            partial: PartialFile | None = None) -> HessianResult:
    """Eigenpairs of both ends, the Hutchinson trace and the SLQ density of ``model`` (on its device) on ``dataset``.

    With ``partial``, each of the three loops saves its work in progress there and continues from it."""
    slot = partial.slot if partial is not None else (lambda key: None)
    device = next(model.parameters()).device
    x, y = loss_examples(dataset, settings.split, settings.examples, settings.seed)
    product_slot = slot("products")
    chosen = product_slot.load() if product_slot is not None else None  # a resumed job computes as it began
    op = HessianOperator(
        model,
        loss_function(dataset.task),
        x,
        y,
        batch_size=settings.batch_size,
        dtype=DTYPES[settings.dtype],
        method=chosen["method"] if chosen else settings.method,
        compile=bool(chosen["compiled"]) if chosen else settings.compile,
        block=int(chosen["block"]) if chosen else None,
        vmap_blocks=chosen.get("vmap_blocks") if chosen else None,  # (absent from a record before 2026-12-07)
        # at most, so that auto compiles only when the products could repay it
        expected_products=settings.max_hvps + settings.hutchinson_samples + settings.slq_probes * settings.slq_steps,
    )
    if chosen is None and product_slot is not None:  # choose now (auto times here) and keep the choice for a resume
        op.block  # noqa: B018 (the property makes the choice)
        product_slot.save({"method": op.method, "block": op.block, "compiled": int(op.compiled),
                           "vmap_blocks": int(op._vmap_blocks)}, final=True)
    log(f"N = {op.n_params} parameters, {len(x)} {settings.split} examples, {settings.dtype} on {device}; "
        f"products: {op.method}, {op.block} per pass{', compiled' if op.compiled else ''}")
    timings = {}

    tick = time.perf_counter()
    eig = extreme_eigenpairs(
        op,
        k_top=settings.k_top,
        k_bottom=settings.k_bottom,
        tol=settings.tol,
        max_basis=settings.max_basis,
        max_hvps=settings.max_hvps,
        seed=settings.seed,
        resume=slot("lanczos"),
        explicit_residuals=settings.explicit_residuals,
        keep_tridiagonal=min(settings.slq_steps, op.n_params),  # SLQ's first probe, free
    )
    timings["eigenpairs_s"] = time.perf_counter() - tick
    log(
        f"eigenpairs: top {[round(v, 6) for v in eig.top.values.tolist()]}, "
        f"bottom {[round(v, 6) for v in eig.bottom.values.tolist()]}, "
        f"{eig.hvps} products, {eig.restarts} restarts, converged: {eig.converged}"
    )

    tick = time.perf_counter()
    trace = hutchinson_trace(op, samples=settings.hutchinson_samples, seed=settings.seed + 1, resume=slot("hutchinson"),
                             deflate=deflation(eig))
    timings["hutchinson_s"] = time.perf_counter() - tick
    log(f"Hutchinson: tr(H) = {trace.estimate:.6g} +- {trace.standard_error:.2g} ({trace.hvps} products)")
    if trace.deflated is not None:
        d = trace.deflated
        log(f"deflated by {d.k} eigenpairs, same probes: tr(H) = {d.estimate:.6g} +- {d.standard_error:.2g} "
            f"(variance / {d.variance_ratio:.3g})")

    tick = time.perf_counter()
    density = slq_density(op, probes=settings.slq_probes, steps=settings.slq_steps, seed=settings.seed + 2,
                          resume=slot("slq"), first=eig.start_tridiagonal)
    timings["slq_s"] = time.perf_counter() - tick
    _, sigma = density.default_grid()
    log(f"SLQ: {settings.slq_probes} probes x {settings.slq_steps} steps ({density.hvps} products)")

    if device.type == "cuda":
        timings["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    summary = {
        "n_parameters": op.n_params,
        "n_examples": len(x),
        "split": settings.split,
        "dtype": settings.dtype,
        "device": str(device),
        "hvp_method": op.method,
        "hvp_block": op.block,  # vectors per batched product in Hutchinson (1: one at a time)
        # whether those blocks are vmapped forward-over-reverse (auto may pick double backward for one vector alone)
        "hvp_vmap_blocks": bool(op._vmap_blocks),
        "hvp_choice": op.choice or chosen,  # under method auto: the candidates' timings and what was kept
        "loss": op.loss(),
        "gradient_norm": float(op.gradient().norm()),
        "eigen": {
            "top": _pairs(eig.top),
            "bottom": _pairs(eig.bottom),
            "hvps": eig.hvps,
            "iterations": eig.iterations,
            "restarts": eig.restarts,
            "tol": eig.tol,
            "scale": eig.scale,
            "converged": eig.converged,
        },
        "trace": {
            "hutchinson": trace.estimate,
            "standard_error": trace.standard_error,
            "samples": settings.hutchinson_samples,
            "hvps": trace.hvps,
            "mean_curvature": trace.estimate / op.n_params,
            "deflated": _deflated_record(trace),  # the same probes with the eigenpairs' part taken exactly
        },
        "density": {"probes": settings.slq_probes, "steps": settings.slq_steps, "sigma": sigma, "hvps": density.hvps,
                    "first_probe_from_eigenpair_run": density.reused_first_probe},
        "density_moments": _moments(density, op.n_params),
        "hvps_total": eig.hvps + trace.hvps + density.hvps,  # what the results cost, resumed or not
        "hvps_this_run": op.hvps,  # the products this process computed (fewer after a resume)
        "timings": timings,
        "wall_s": sum(v for k, v in timings.items() if k.endswith("_s")),
        "settings": dataclasses.asdict(settings),
        "provenance": provenance(seed=settings.seed),
    }
    return HessianResult(summary, eig, trace, density, list(op.names), [list(s) for s in op.shapes])


def write(result: HessianResult, out_dir: str | Path) -> None:
    """eigenvectors.pt, trace_samples.csv, density.csv, slq_nodes.csv and, last, summary.json."""
    out = Path(out_dir)
    eig, trace, density = result.eigen, result.trace, result.density
    save_torch(
        {
            "format": EIGENVECTORS_FORMAT,
            "top_values": eig.top.values,
            "top_vectors": eig.top.vectors.cpu(),
            "bottom_values": eig.bottom.values,
            "bottom_vectors": eig.bottom.vectors.cpu(),
            "parameter_names": result.parameter_names,
            "parameter_shapes": result.parameter_shapes,
            "inputs": result.summary.get("inputs", {}),  # the model file's fingerprint, checked by every reader
        },
        out / "eigenvectors.pt",
    )
    write_csv(pd.DataFrame({"sample": np.arange(1, len(trace.samples) + 1), "zHz": trace.samples}), out / "trace_samples.csv")
    grid, sigma = density.default_grid()
    write_csv(pd.DataFrame({"eigenvalue": grid, "density": density.smoothed(grid, sigma)}), out / "density.csv")
    probes, steps = np.indices(density.nodes.shape)
    nodes = pd.DataFrame(
        {"probe": probes.ravel(), "node": density.nodes.ravel(), "weight": density.weights.ravel()}
    ).dropna()
    write_csv(nodes, out / "slq_nodes.csv")
    write_json(result.summary, out / "summary.json")  # last: its presence means the step is complete


def run(model_path: str | Path, settings: HessianSettings, out_dir: str | Path, log=print) -> dict[str, Any]:
    """Load the model file, compute on the configured device, write into ``out_dir``; returns the summary."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    model, dataset, stored = load_model(model_path, pick_device(settings.device))
    log(f"{model_path} ({stored['info'].get('experiment')})")
    inputs = input_record(model=model_path)
    partial = PartialFile.for_job(Path(out_dir) / "partial.pt", inputs, settings)  # work in progress, beside the outputs
    result = compute(model, dataset, settings, log=log, partial=partial)
    result.summary.update({"experiment": stored["info"].get("experiment"), "model_file": str(model_path),
                           "inputs": inputs})
    write(result, out_dir)
    partial.remove()
    return result.summary


def table(summary_files) -> pd.DataFrame:
    """One row per model from its hessian/summary.json: the extreme eigenvalues, residuals, trace, cost."""
    rows = []
    for path in summary_files:
        s = json.loads(Path(path).read_text())
        eig, trace = s["eigen"], s["trace"]
        residuals = eig["top"]["residuals"] + eig["bottom"]["residuals"]
        rows.append(
            {
                "experiment": s.get("experiment"),
                "n_parameters": s["n_parameters"],
                "lambda_max": eig["top"]["values"][0] if eig["top"]["values"] else None,
                "lambda_min": eig["bottom"]["values"][0] if eig["bottom"]["values"] else None,
                "max_relative_residual": max(residuals) / eig["scale"] if residuals else None,
                "converged": eig["converged"],
                "trace_hutchinson": trace["hutchinson"],
                "trace_se": trace["standard_error"],
                "trace_deflated": (trace.get("deflated") or {}).get("estimate"),
                "trace_deflated_se": (trace.get("deflated") or {}).get("standard_error"),
                "deflation_variance_ratio": (trace.get("deflated") or {}).get("variance_ratio"),
                "mean_curvature": trace["mean_curvature"],
                "hvps_eigen": eig["hvps"],
                "restarts": eig["restarts"],
                "hvps_total": s["hvps_total"],
                "wall_s": s["wall_s"],
                "device": s["device"],
                "dtype": s["dtype"],
            }
        )
    return pd.DataFrame(rows)


def add_commands(steps) -> None:
    """CLI: ``lossgeom hessian`` and ``lossgeom summarize-hessian``."""
    command = steps.add_parser("hessian", help="eigenpairs of both ends, trace and spectral density of a model",
                              **settings_help(HessianSettings, "hessian"))
    command.add_argument("--model", required=True, type=Path, help="model.pt written by the train step")
    command.add_argument("--settings", default="{}", help="the hessian config block as JSON")
    command.add_argument("--out-dir", required=True, type=Path, help="writes summary.json, eigenvectors.pt, ...")
    command.set_defaults(func=lambda args: run(args.model, HessianSettings.from_mapping(json.loads(args.settings)),
                                               args.out_dir, log=logging.getLogger(__name__).info))
    summarize = steps.add_parser("summarize-hessian", help="one CSV row per model from hessian/summary.json")
    summarize.add_argument("summaries", nargs="+", type=Path, help="hessian/summary.json files")
    summarize.add_argument("--out", required=True, type=Path, help="CSV to write")
    summarize.set_defaults(func=lambda args: write_csv(table(args.summaries), args.out))
