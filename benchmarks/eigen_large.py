"""Top-5 and most negative eigenpairs of a large model (DenseNet-121, ~7e6 parameters, 32x32x3 inputs).

Inputs are CIFAR-shaped standard-normal images with uniform labels (no dataset download is possible on the
machines this was written on), the weights are either the initialization or a trained model file. Records
products, wall time, peak memory (CUDA max_memory_allocated, or the process's peak RSS), residuals.

    uv run python benchmarks/eigen_large.py --device cuda --examples 5000   # on a GPU
    uv run python benchmarks/eigen_large.py --examples 64 --threads 2       # what a 2-core CPU allows
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from lossgeom.engine.hessian import HessianOperator  # noqa: E402
from lossgeom.engine.lanczos import extreme_eigenpairs  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.problems.models import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="densenet121", help="densenet121 or resnet<depth>")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--k-top", type=int, default=5)
    parser.add_argument("--k-bottom", type=int, default=1)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-basis", type=int, default=80)
    parser.add_argument("--max-hvps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = ({"name": "densenet121"} if args.model == "densenet121"
            else {"name": "resnet", "depth": int(args.model.removeprefix("resnet"))})
    torch.manual_seed(0)
    model = build_model(spec, (3, 32, 32), 10).to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.examples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.examples,), generator=g)
    op = HessianOperator(model, loss_function("classification"), x, y, batch_size=args.batch_size)
    print(f"{args.model}: N = {op.n_params}, {args.examples} examples on {device}", flush=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tick = time.perf_counter()
    op.matvec(torch.randn(op.n_params, device=device))
    one_hvp = time.perf_counter() - tick
    print(f"one product: {one_hvp:.2f} s", flush=True)
    op.hvps = 0
    tick = time.perf_counter()
    res = extreme_eigenpairs(op, k_top=args.k_top, k_bottom=args.k_bottom, tol=args.tol,
                             max_basis=args.max_basis, max_hvps=args.max_hvps, seed=0)
    seconds = time.perf_counter() - tick
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result = {
        "model": args.model, "n_parameters": op.n_params, "examples": args.examples, "batch_size": args.batch_size,
        "data": "CIFAR-shaped standard-normal inputs, uniform labels; weights at initialization",
        "dtype": "float32", "seconds": seconds, "seconds_per_hvp": one_hvp, "hvps": op.hvps,
        "restarts": res.restarts, "converged": res.converged, "tol": args.tol,
        "top": res.top.values.tolist(), "bottom": res.bottom.values.tolist(),
        "max_residual_relative": float(max(res.top.residuals.max(), res.bottom.residuals.max()) / res.scale),
        "peak_memory_mib": peak, "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
    }
    print({k: v for k, v in result.items()})
    write_result(args.out or f"benchmarks/out/eigen-large-{args.model}-{device.type}.json",
                 {"benchmark": "eigen_large", "machine": machine(device), **result})


if __name__ == "__main__":
    main()
