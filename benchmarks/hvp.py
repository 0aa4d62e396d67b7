"""Cost of one Hessian-vector product relative to one gradient: wall time and peak memory.

For each model, in a fresh process per measurement (so peak memory is not polluted by earlier ones):
the gradient of the mean loss over one batch (an ordinary ``loss.backward()``, model in eval mode), and
H v by forward-over-reverse, by double backward, forward-over-reverse under torch.compile, by what
``method="auto"`` keeps (its timed choice of method and block; per vector, from blocks of 8 vectors, as
Hutchinson hands them over), and the Gauss-Newton product G v (``GaussNewtonOperator``: J v forward, the output
Hessian, J^T back). Memory is the peak increase over the state after setup (model,
data, vector) after two warm-up products: CUDA's max_memory_allocated on a GPU; on a CPU the peak RSS
(VmHWM, reset after warm-up) with glibc's mmap threshold fixed at 64 KiB so that RSS follows live memory.

    uv run python benchmarks/hvp.py                      # CPU, writes benchmarks/out/hvp-cpu.json
    uv run python benchmarks/hvp.py --device cuda        # on a GPU machine
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_time, write_result  # noqa: E402

from lossgeom.engine.gauss_newton import GaussNewtonOperator  # noqa: E402
from lossgeom.engine.hessian import BLOCK, HessianOperator  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.problems.models import build_model, count_parameters  # noqa: E402

MODELS = {
    # name: (model spec, input shape, batch size); inputs are standard normal, labels uniform
    "mlp": ({"name": "mlp", "hidden": [512, 512]}, (1, 28, 28), 256),
    "cnn": ({"name": "lenet"}, (1, 28, 28), 256),
    "resnet20": ({"name": "resnet", "depth": 20}, (3, 32, 32), 128),
    "densenet121": ({"name": "densenet121"}, (3, 32, 32), 64),
}
KINDS = ("gradient", "hvp_forward_over_reverse", "hvp_double_backward", "hvp_compiled", "hvp_auto", "ggn")


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_cpu_peak() -> bool:
    """Reset the process's peak RSS (Linux: write 5 to /proc/self/clear_refs); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(model_name: str, kind: str, device_name: str, repeats: int) -> dict:
    """One measurement, in this (fresh) process."""
    device = torch.device(device_name)
    spec, shape, batch = MODELS[model_name]
    torch.manual_seed(0)
    model = build_model(spec, shape, 10).to(device)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    method = {"hvp_double_backward": "double-backward", "hvp_auto": "auto"}.get(kind, "forward-over-reverse")
    # auto times its candidates for a plan of products as long as the hessian step's defaults
    planned = 2000 + 100 + 8 * 64  # max_hvps + hutchinson_samples + slq_probes x slq_steps
    if kind == "ggn":
        op = GaussNewtonOperator(model, loss_function("classification"), x, y)
    else:
        op = HessianOperator(model, loss_function("classification"), x, y, method=method,
                             compile=kind == "hvp_compiled", expected_products=planned)
    v = torch.randn(op.n_params, device=device)
    block = torch.randn(BLOCK, op.n_params, device=device)

    def gradient():  # the baseline a user knows: one ordinary backward pass over the same batch
        model.zero_grad(set_to_none=True)
        loss_function("classification")(model(x), y).backward()

    fn = gradient if kind == "gradient" else (lambda: op.matvec(v))
    per_call = 1
    if kind == "hvp_auto":  # per vector of a block, as the loops hand independent vectors over
        fn, per_call = (lambda: op.matmat(block)), BLOCK
    for _ in range(2):  # warm up first: one-time work (loading forward-AD decompositions, compiling) is not the product's
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2**20
    else:
        gc.collect()
        exact = reset_cpu_peak()
        base = _status_mib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = median_time(fn, device, repeats, warmup=0) / per_call
    if device.type == "cuda":
        peak, how = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    elif exact:
        peak, how = _status_mib("VmHWM"), "peak RSS after warm-up (VmHWM reset via clear_refs)"
    else:
        peak, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "lifetime peak RSS (includes warm-up)"
    return {"seconds": seconds, "peak_increase_mib": peak - base, "memory_measure": how,
            "n_parameters": count_parameters(model), "batch": batch,
            **({"choice": op.choice} if kind == "hvp_auto" else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="mlp,cnn,resnet20", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(*args.child, args.device, args.repeats)))
        return

    results = []
    for model_name in args.models.split(","):
        row = {"model": model_name}
        for kind in KINDS:
            if kind == "hvp_compiled" and args.no_compile:
                continue
            cmd = [sys.executable, __file__, "--device", args.device, "--repeats", str(args.repeats), "--child", model_name, kind]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            # Large blocks mmap-backed and unmapped on free (a fixed threshold also stops glibc from raising it),
            # so that RSS follows live memory and the peak after warm-up is the product's own.
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                row[kind] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
                print(model_name, kind, "FAILED:", row[kind]["error"])
                continue
            row[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            row["n_parameters"], row["batch"] = row[kind]["n_parameters"], row[kind]["batch"]
        grad = row.get("gradient", {})
        for kind in KINDS[1:]:
            m = row.get(kind, {})
            if "seconds" in m and "seconds" in grad:
                m["time_ratio"] = m["seconds"] / grad["seconds"]
                m["memory_ratio"] = m["peak_increase_mib"] / max(grad["peak_increase_mib"], 1e-9)
        print(
            f"{model_name:12s} N={row.get('n_parameters')}: "
            + ", ".join(
                f"{k.removeprefix('hvp_')} {row[k]['time_ratio']:.2f}x time {row[k]['memory_ratio']:.2f}x mem"
                for k in KINDS[1:]
                if "time_ratio" in row.get(k, {})
            )
        )
        results.append(row)
    device = torch.device(args.device)
    out = args.out or f"benchmarks/out/hvp-{device.type}.json"
    write_result(out, {"benchmark": "hvp", "machine": machine(device), "repeats": args.repeats, "results": results})


if __name__ == "__main__":
    main()
