"""Progress of long loops, logged at a steady interval with the time left.

A paper-scale Lanczos run takes hours; without this its log stays silent until the end. Each long loop
(Lanczos, Hutchinson, SLQ, the checks' projections and slices) makes one :class:`Progress` and calls
:meth:`Progress.update` after every unit of work; a line is logged when ``interval_s`` has passed since the
last one (and always at the end), e.g.::

    lanczos: 120 of at most 2000 products (6%), basis 60, restarts 1, worst residual 3.1e-04 x scale;
    2.1 min elapsed, at most 33 min left

The time left is the mean time per unit so far times the units left (an upper bound where ``total`` is one).
Status values may be callables, evaluated only when a line is written.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

INTERVAL_S = 30.0  # default seconds between two progress lines

log = logging.getLogger("lossgeom.progress")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """``what``: the loop's name; ``total``: units of work (``upper_bound``: the loop may stop earlier)."""

    def __init__(self, what: str, total: int, unit: str, *, upper_bound: bool = False,
                 interval_s: float | None = None, emit: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.unit, self.upper_bound = what, max(int(total), 1), unit, upper_bound
        self.interval_s = INTERVAL_S if interval_s is None else interval_s
        self.emit = emit or log.info
        self.clock = clock
        self.start = self.last = clock()
        self.lines = 0

    def update(self, done: int, **status: Any) -> None:
        """Log a line if the interval has passed since the last one."""
        now = self.clock()
        if now - self.last >= self.interval_s:
            self._log(done, now, status)

    def finish(self, done: int, **status: Any) -> None:
        """Log the last line (always)."""
        self._log(done, self.clock(), status, final=True)

    def line(self, done: int, now: float, status: dict[str, Any], final: bool = False) -> str:
        elapsed = now - self.start
        of = f"{'at most ' if self.upper_bound else ''}{self.total}"
        head = f"{self.what}: {done} of {of} {self.unit} ({100 * done / self.total:.0f}%)"
        details = "".join(f", {key.replace('_', ' ')} {_format(value)}" for key, value in status.items())
        if final:
            return f"{head}{details}; done in {_duration(elapsed)}"
        left = elapsed / done * (self.total - done) if done else float("nan")
        eta = f"{'at most ' if self.upper_bound else ''}{_duration(left)} left" if done else "time left unknown yet"
        return f"{head}{details}; {_duration(elapsed)} elapsed, {eta}"

    def _log(self, done: int, now: float, status: dict[str, Any], final: bool = False) -> None:
        self.emit(self.line(done, now, status, final))
        self.last = now
        self.lines += 1


def _format(value: Any) -> str:
    """A status value as text; a callable is called only now, when a line is written (running estimates)."""
    value = value() if callable(value) else value
    return f"{value:.3g}" if isinstance(value, float) else str(value)
