"""The planned work and estimated GPU-hours of configs/taxonomy.yaml (Yang et al.'s ResNet-18 phase diagram).

No GPU has run these models here (issue 16 measures the GPU paths), so the time is an estimate from counted work and
two stated rates, not a measurement: the floating-point operations of one forward pass per image are counted by
torch's FlopCounterMode for every width k (exact for the convolutions and the linear head, which are almost all of
it), and a job's time is max(FLOPs / sustained rate, optimizer steps x the time of one step when the GPU waits on
kernel launches). Work per run, from the config:

- training: epochs x n_train x 3 forward passes (forward + backward), and the loop's evaluation of the training and
  test sets after every epoch (epochs x (n_train + n_test) forward passes); steps = epochs x ceil(n_train / batch);
- Hessian: ``products`` Hessian-vector products (Lanczos for lambda_max and lambda_min, Hutchinson, SLQ) over the
  config's ``examples``, each about 6 forward passes (a double backward);
- connectivity, per cell: every pair of seeds fits a Bezier bend for ``bend_epochs`` epochs (3 passes a step) and
  evaluates two paths at ``path_points`` points, each a BatchNorm pass over the training set and an evaluation of
  both splits.

    uv run python benchmarks/taxonomy_cost.py                      # writes benchmarks/out/taxonomy_cost.json
    uv run python benchmarks/taxonomy_cost.py --tflops 40 --step-ms 3
"""

from __future__ import annotations

import argparse
import math
import sys
from itertools import combinations
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from lossgeom.io.sweeps import expand_sweep  # noqa: E402
from lossgeom.problems.models import build_model, count_parameters  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CIFAR = {"n_train": 50000, "n_test": 10000, "shape": (3, 32, 32), "classes": 10}


def forward_flops(model_spec: dict) -> tuple[int, int]:
    """(FLOPs of one forward pass per image, parameters) of the model, counted on a batch of 2 on the CPU."""
    model = build_model(model_spec, CIFAR["shape"], CIFAR["classes"]).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(2, *CIFAR["shape"]))
    return counter.get_total_flops() // 2, count_parameters(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/taxonomy.yaml"))
    parser.add_argument("--tflops", type=float, default=20.0,
                        help="sustained rate of ResNet-18 training on one GPU, float32 without TF32 (TFLOP/s): "
                             "assumed, about a third of an H100's 67 TFLOP/s float32 peak")
    parser.add_argument("--step-ms", type=float, default=5.0,
                        help="the least time of one optimizer step (kernel launches of 20 layers forward and "
                             "backward and the update), whatever the width: assumed")
    parser.add_argument("--products", type=int, default=150,
                        help="Hessian-vector products per run (Lanczos for two eigenvalues at tol 1e-3, 50 "
                             "Hutchinson probes, 16 SLQ steps): assumed, the config's max_hvps bounds the Lanczos part")
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/taxonomy_cost.json"))
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    (name, sweep), = config["sweeps"].items()
    runs = expand_sweep(name, sweep, config["experiments"])
    hessian = config["hessian"]
    connectivity = sweep["connectivity"]
    rate = args.tflops * 1e12
    n, n_test = CIFAR["n_train"], CIFAR["n_test"]

    flops = {k: forward_flops({**sweep["base"]["model"], "width": k}) for k in sweep["grid"]["model.width"]}
    per_run, cells = [], {}
    for run_id, spec in runs.items():
        k, batch, epochs = spec["model"]["width"], spec["train"]["batch_size"], spec["train"]["epochs"]
        f = flops[k][0]
        steps = epochs * math.ceil(n / batch)
        train_s = max(epochs * (3 * n + n + n_test) * f / rate, steps * args.step_ms / 1e3)
        hessian_s = args.products * hessian["examples"] * 6 * f / rate
        per_run.append({"run": run_id, "k": k, "batch_size": batch, "train_h": train_s / 3600,
                        "hessian_h": hessian_s / 3600})
        cells.setdefault((k, batch), []).append(run_id)
    connectivity_h = 0.0
    for (k, batch), members in cells.items():
        f = flops[k][0]
        pairs = len(list(combinations(members, 2)))
        fit_steps = connectivity["bend_epochs"] * math.ceil(n / connectivity["batch_size"])
        fit_s = max(connectivity["bend_epochs"] * 3 * n * f / rate, fit_steps * args.step_ms / 1e3)
        evaluate_s = 2 * connectivity["path_points"] * (2 * n + n_test) * f / rate
        connectivity_h += pairs * (fit_s + evaluate_s) / 3600
    train_h = sum(r["train_h"] for r in per_run)
    hessian_h = sum(r["hessian_h"] for r in per_run)
    longest = max(per_run, key=lambda r: r["train_h"])
    payload = {
        "config": str(Path(args.config).relative_to(REPO)), "sweep": name, "runs": len(runs), "cells": len(cells),
        "assumed": {"sustained_tflops": args.tflops, "step_ms": args.step_ms, "hessian_products": args.products},
        "per_width": {str(k): {"parameters": p, "forward_gflop_per_image": f / 1e9} for k, (f, p) in flops.items()},
        "gpu_hours": {"train": train_h, "hessian": hessian_h, "connectivity": connectivity_h,
                      "total": train_h + hessian_h + connectivity_h},
        "longest_run": longest,
        "connectivity_parts": connectivity.get("parts", 1),
        "longest_connectivity_part_h": None,
        "machine": machine(torch.device("cpu")),
    }
    # the connectivity parts as the workflow deals them: whole cells, round robin in the grid's order
    parts = [0.0] * connectivity.get("parts", 1)
    for index, ((k, batch), members) in enumerate(cells.items()):
        f = flops[k][0]
        fit_steps = connectivity["bend_epochs"] * math.ceil(n / connectivity["batch_size"])
        cell_s = len(list(combinations(members, 2))) * (
            max(connectivity["bend_epochs"] * 3 * n * f / rate, fit_steps * args.step_ms / 1e3)
            + 2 * connectivity["path_points"] * (2 * n + n_test) * f / rate)
        parts[index % len(parts)] += cell_s / 3600
    payload["longest_connectivity_part_h"] = max(parts)
    write_result(args.out, payload)
    print(f"{len(runs)} runs in {len(cells)} cells; GPU-hours: train {train_h:.0f}, hessian {hessian_h:.0f}, "
          f"connectivity {connectivity_h:.0f}, total {train_h + hessian_h + connectivity_h:.0f}; longest run "
          f"{longest['run']}: {60 * longest['train_h']:.0f} min training, {60 * longest['hessian_h']:.1f} min Hessian; "
          f"longest connectivity part {max(parts):.1f} h")


if __name__ == "__main__":
    main()
