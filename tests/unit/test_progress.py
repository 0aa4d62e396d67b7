"""Long loops report progress at a steady interval, with what they have done and the time left."""

from __future__ import annotations

import logging

import torch

from lossgeom.engine.lanczos import extreme_eigenpairs
from lossgeom.engine.operator import MatrixOperator
from lossgeom.engine.trace import hutchinson_trace
from lossgeom.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_at_the_interval_with_elapsed_time_and_time_left():
    clock, lines = FakeClock(), []
    progress = Progress("loop", 100, "steps", interval_s=30, emit=lines.append, clock=clock)
    for done in range(1, 101):
        clock.now = done * 1.0  # one second per step
        if done < 100:
            progress.update(done, worst=0.5)
    progress.finish(100, worst=0.25)
    assert len(lines) == 4  # at 30, 60 and 90 s, and the last
    assert lines[0] == "loop: 30 of 100 steps (30%), worst 0.5; 30 s elapsed, 70 s left"
    assert lines[-1] == "loop: 100 of 100 steps (100%), worst 0.25; done in 1.7 min"


def test_an_upper_bound_says_so_and_status_callables_run_only_when_a_line_is_written():
    clock, lines, calls = FakeClock(), [], []
    progress = Progress("lanczos", 2000, "products", upper_bound=True, interval_s=60, emit=lines.append, clock=clock)
    clock.now = 30.0
    progress.update(100, estimate=lambda: calls.append(1) or "x")
    assert not lines and not calls
    clock.now = 120.0
    progress.update(200, estimate=lambda: calls.append(1) or "x")
    assert lines == ["lanczos: 200 of at most 2000 products (10%), estimate x; 2.0 min elapsed, at most 18.0 min left"]


def test_the_engine_loops_log_their_progress(caplog):
    H = torch.diag(torch.linspace(-1.0, 2.0, 50, dtype=torch.float64))
    with caplog.at_level(logging.INFO, logger="lossgeom.progress"):
        extreme_eigenpairs(MatrixOperator(H), k_top=2, k_bottom=1, tol=1e-8, max_hvps=500)
        hutchinson_trace(MatrixOperator(H), samples=5)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("lanczos: ") and "of at most 500 products" in m and "worst residual" in m for m in messages)
    assert any(m.startswith("hutchinson: 5 of 5 probes (100%), tr H ") and "+-" in m for m in messages)
