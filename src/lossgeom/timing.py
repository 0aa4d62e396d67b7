"""Wall times of repeated calls, with CUDA work finished before each clock read (kernels run asynchronously,
so without a synchronize the clock would stop before the GPU does)."""

from __future__ import annotations

import time
from typing import Callable

import torch


def call_times(run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run`` after ``warmup`` untimed calls (which pay one-time setup:
    loading kernels, compiling)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        sync()
        tick = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - tick)
    return times
