"""The trace of a symmetric operator from products alone (Hutchinson).

For z with i.i.d. Rademacher entries, E[z^T H z] = tr(H); the estimate is the sample mean over S probes,
and its standard error the sample standard deviation over sqrt(S).

Example (trace 5; each probe gives 5 + 2 z_1 z_2, so the estimate scatters with standard error 2 / sqrt(S))::

    >>> import torch
    >>> from lossgeom.engine.operator import MatrixOperator
    >>> op = MatrixOperator(torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64))
    >>> estimate = hutchinson_trace(op, samples=400, seed=0)
    >>> abs(estimate.estimate - 5.0) <= 4 * estimate.standard_error, round(estimate.standard_error, 1), estimate.hvps
    (True, 0.1, 400)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import Progress
from .operator import LinearOperator
from .resume import ResumeSlot, restore_samples, save_samples


def rademacher(n: int, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """A vector of n independent +-1 entries, each with probability 1/2."""
    return (torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8) * 2 - 1).to(device, dtype)


@dataclass
class TraceEstimate:
    """Hutchinson estimate of tr(H): ``estimate`` +- ``standard_error`` from ``samples`` (z^T H z each)."""

    estimate: float
    standard_error: float
    samples: np.ndarray
    hvps: int


def _running(values: np.ndarray) -> str:
    """The estimate so far, with its standard error once there are two samples."""
    se = f" +- {values.std(ddof=1) / math.sqrt(len(values)):.2g}" if len(values) > 1 else ""
    return f"{values.mean():.6g}{se}"


def hutchinson_trace(op: LinearOperator, samples: int = 100, seed: int = 0, *,
                     generator: torch.Generator | None = None, resume: ResumeSlot | None = None) -> TraceEstimate:
    """Estimate tr(H) from ``samples`` Rademacher probes (one product each).

    The probes come from a generator seeded with ``seed``, or from ``generator`` when a caller draws
    several kinds of random vectors from one stream.
    """
    if samples < 2:
        raise ValueError("Hutchinson needs at least 2 samples for a standard error")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    values = np.empty(samples)
    start = restore_samples(resume, "values", values, g)  # the probes a killed run finished
    progress = Progress("hutchinson", samples, "probes")
    for i in range(start, samples):
        z = rademacher(op.n_params, g, op.device, op.dtype)
        values[i] = float(torch.dot(z, op.matvec(z)))
        (progress.finish if i == samples - 1 else progress.update)(i + 1, tr_H=lambda i=i: _running(values[: i + 1]))
        save_samples(resume, "values", values[: i + 1], g, final=i == samples - 1)
    return TraceEstimate(
        estimate=float(values.mean()),
        standard_error=float(values.std(ddof=1) / math.sqrt(samples)),
        samples=values,
        hvps=samples,
    )
