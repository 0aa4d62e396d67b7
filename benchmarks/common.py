"""Helpers shared by the benchmark scripts: machine description, timing, JSON output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import platform
import statistics
from pathlib import Path
from typing import Iterator

import torch

from lossgeom.io.provenance import provenance
from lossgeom.timing import call_times


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    return {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
    }


def median_time(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    return statistics.median(call_times(fn, device, repeats, warmup))


def write_result(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "provenance": provenance()}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")


@contextlib.contextmanager
def pyhessian_products() -> Iterator[tuple[object, dict]]:
    """(the pyhessian.hessian module, {"hvps": n}) for the body: PyHessian's products counted at its
    ``hessian_vector_product``, float64 as the default dtype (PyHessian draws its vectors in it) and torch's global
    generator seeded with 0; the module's function and the default dtype are put back afterwards."""
    import pyhessian  # noqa: F401  (the package's attribute 'hessian' is the class, not the module)

    module = sys.modules["pyhessian.hessian"]
    count = {"hvps": 0}
    original, previous = module.hessian_vector_product, torch.get_default_dtype()

    def counted(*args, **kwargs):
        count["hvps"] += 1
        return original(*args, **kwargs)

    module.hessian_vector_product = counted
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        yield module, count
    finally:
        module.hessian_vector_product = original
        torch.set_default_dtype(previous)

