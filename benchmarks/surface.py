"""Loss-grid throughput: this library vs the pure forward-pass limit vs loss-landscapes 3.0.6.

On one trained model and its training set, all in one process:
  - forward limit: the loss at the trained point evaluated repeatedly (no parameter moves): the best
    any grid evaluator can do per point with the same evaluation code;
  - lossgeom: compute_surface on a steps x steps grid (filter-normalized random directions, parameters
    moved in place, tiles written to a temporary directory), loss and accuracy;
  - loss-landscapes: random_plane(..., normalization="filter") on the same model, data and grid size,
    loss only (its Loss metric), in its default in-place mode.
Points per second are reported for each, and the two ratios the targets refer to.

    uv sync --group bench && uv run python benchmarks/surface.py --model results/digits_cnn/model.pt
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from lossgeom.training.checkpoints import load_model  # noqa: E402
from lossgeom.geometry.directions import random_direction  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.geometry.surfaces import compute_surface  # noqa: E402
from lossgeom.training.evaluation import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="results/digits_cnn/model.pt")
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, ds, _ = load_model(args.model, device)
    x, y = ds.x_train.to(device), ds.y_train.to(device)
    points = args.steps**2

    evaluate(model, x, y, ds.task, 4096)
    tick = time.perf_counter()
    for _ in range(points):
        evaluate(model, x, y, ds.task, 4096)
    forward_pps = points / (time.perf_counter() - tick)

    eta, delta = random_direction(model, "filter", 0), random_direction(model, "filter", 1)
    grid = np.linspace(-1, 1, args.steps)
    with tempfile.TemporaryDirectory() as tiles:
        tick = time.perf_counter()
        compute_surface(model, {"train": (x, y)}, ds.task, eta, delta, grid, grid, tiles_dir=tiles, key="bench", progress=False)
        ours_pps = points / (time.perf_counter() - tick)

    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(loss_function(ds.task), x, y)
    model.eval()
    tick = time.perf_counter()
    loss_landscapes.random_plane(model, metric, distance=1, steps=args.steps, normalization="filter")
    theirs_pps = points / (time.perf_counter() - tick)

    result = {
        "model": args.model, "examples": len(x), "grid": f"{args.steps}x{args.steps}",
        "forward_limit_points_per_s": forward_pps, "lossgeom_points_per_s": ours_pps,
        "loss_landscapes_points_per_s": theirs_pps,
        "lossgeom_over_forward_limit": ours_pps / forward_pps,
        "lossgeom_over_loss_landscapes": ours_pps / theirs_pps,
        "note": "lossgeom computes loss and accuracy per point, loss-landscapes the loss only",
    }
    print(result)
    write_result(args.out or f"benchmarks/out/surface-{device.type}.json",
                 {"benchmark": "surface", "machine": machine(device), **result})


if __name__ == "__main__":
    main()
