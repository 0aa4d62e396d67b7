"""Helpers shared by the benchmark scripts: machine description, timing, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path

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
