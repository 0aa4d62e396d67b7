"""The trace of a symmetric operator from products alone (Hutchinson), plain and deflated; exactly from N products.

For z with i.i.d. Rademacher entries, E[z^T H z] = tr(H); the estimate is the sample mean over S probes,
and its standard error the sample standard deviation over sqrt(S).

Deflated, from the same probes and no further product: with k computed eigenpairs (rows V, orthonormal, and
Rayleigh quotients lambda_i = v_i^T H v_i) and P = I - V^T V, tr(H) = sum_i lambda_i + tr(P H P) exactly, and
E[(P z)^T H (P z)] = tr(P H P). Expanding with a = V z and b = V (H z), both k numbers from the product H z
the plain estimate computes anyway,

    (P z)^T H (P z) = z^T H z - 2 a.b + a^T M a,   M = V H V^T = diag(lambda) + E,

where |E_ij| = |v_i^T r_j| <= ||r_j|| (r_j = H v_j - lambda_j v_j, the eigenpair's residual). Taking M =
diag(lambda) leaves the estimate unbiased: E[a a^T] = V V^T = I, so the dropped term has expectation
tr(E) = sum_i (v_i^T H v_i - lambda_i) = 0 when the lambda_i are the vectors' Rayleigh quotients (as the
eigensolver returns them, up to rounding); the off-diagonal E_ij only add variance. The variance drops by
what the deflated eigenvalues contributed (in the spirit of Hutch++, with the eigenvectors the Hessian step
computes anyway in place of a random sketch): large where a few outliers carry much of ||H||_F^2, as on
trained networks.

The same holds for any orthonormal V with M = V H V^T known from products: ``deflate`` = (Q, T) of a Lanczos
basis (T = Q H Q^T is what Lanczos computes) deflates by the whole Krylov space, not only its converged
eigenvectors, and tr(H) = tr(T) + tr(P H P) then holds exactly (no Rayleigh-quotient argument needed).

Krylov-deflated trace at a budget of B products (:func:`krylov_trace`; Chen & Hallman 2023, "Krylov-aware
stochastic trace estimation", in its simplest form): m Lanczos steps from a random start, then B - m Rademacher
probes independent of the basis, each giving (P z)^T H (P z) from its one product H z as above:

    t = tr(T) + (1 / s) sum_i (P z_i)^T H (P z_i),   E[t] = tr(T) + tr(P H P) = tr(H),
    Var[t] = Var_z[(P z)^T H (P z)] / s  <= 2 ||P H P||_F^2 / s,   s = B - m.

Unbiased for every m (the basis depends only on the start vector, drawn independently of the probes). Lanczos
captures the outlying eigenvalues of both ends in few steps, which carry most of ||H||_F^2 in trained networks,
so ||P H P||_F^2 falls far below ||H||_F^2 (Hutch++ and XTrace deflate by a one-pass sketch H Omega instead).
m is chosen while the basis grows: ||P H P||_F^2 = ||H||_F^2 - 2 ||H Q^T||_F^2 + ||T||_F^2, where only
||H||_F^2 is unknown (estimated by N ||H q_1||^2, unbiased for a Rademacher start), and the basis stops growing
when one more step would no longer lower the variance bound 2 ||P H P||_F^2 / (B - m).

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
from .operator import LinearOperator, apply_rows, block_size
from .resume import ResumeSlot, restore_samples, save_samples


def rademacher(n: int, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """A vector of n independent +-1 entries, each with probability 1/2."""
    return (torch.randint(0, 2, (n,), generator=generator, dtype=torch.int8) * 2 - 1).to(device, dtype)


@dataclass
class DeflatedTrace:
    """tr(H) = ``explicit`` (sum of k eigenvalues) + Hutchinson on the deflated operator, from the plain probes."""

    estimate: float
    standard_error: float
    samples: np.ndarray  # (P z)^T H (P z) per probe
    explicit: float
    k: int
    variance_ratio: float  # var(plain samples) / var(deflated samples): how many times fewer probes give the same SE


@dataclass
class TraceEstimate:
    """Hutchinson estimate of tr(H): ``estimate`` +- ``standard_error`` from ``samples`` (z^T H z each);
    ``deflated`` when eigenpairs (or a Krylov basis) were given."""

    estimate: float
    standard_error: float
    samples: np.ndarray
    hvps: int
    deflated: DeflatedTrace | None = None


def _running(values: np.ndarray) -> str:
    """The estimate so far, with its standard error once there are two samples."""
    se = f" +- {values.std(ddof=1) / math.sqrt(len(values)):.2g}" if len(values) > 1 else ""
    return f"{values.mean():.6g}{se}"


def hutchinson_trace(op: LinearOperator, samples: int = 100, seed: int = 0, *,
                     generator: torch.Generator | None = None, resume: ResumeSlot | None = None,
                     deflate: tuple[torch.Tensor, torch.Tensor] | None = None,
                     prior: np.ndarray | None = None) -> TraceEstimate:
    """Estimate tr(H) from ``samples`` Rademacher probes (one product each).

    The probes come from a generator seeded with ``seed``, or from ``generator`` when a caller draws
    several kinds of random vectors from one stream. ``deflate`` = (vectors (k, N) orthonormal rows, their Rayleigh
    quotients (k,)) adds the deflated estimate from the same products; the second element may also be the matrix M = V
    H V^T (k, k), e.g. (Q, T) of a Lanczos basis (:class:`lossgeom.engine.lanczos.KrylovState`). Probes are drawn in
    order and their products computed in blocks of the operator's ``block`` (one at a time unless batching is faster):
    the same probes, and the same samples up to rounding, whatever the block.
    ``prior``: z^T H z of probes another run already took (independent Rademacher probes from another
    stream), used as the first samples, so that only ``samples - len(prior)`` products are computed here; the
    mean stays unbiased because every probe is independent of the others. Not combined with ``deflate``.
    """
    if samples < 2:
        raise ValueError("Hutchinson needs at least 2 samples for a standard error")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    if deflate is not None:
        V, lam = deflate[0].to(op.device, op.dtype), deflate[1].to(op.device, op.dtype)
        if lam.ndim == 2:
            lam = 0.5 * (lam + lam.T)
    if prior is not None and deflate is not None:
        raise ValueError("prior samples carry no deflated values; pass prior or deflate, not both")
    values = np.empty((samples, 2))  # z^T H z and (P z)^T H (P z)
    reused = 0 if prior is None else min(len(prior), samples)
    if reused:
        values[:reused, 0] = np.asarray(prior, dtype=float)[:reused]
    start = max(restore_samples(resume, "values", values, g), reused)  # the probes a killed run finished
    progress = Progress("hutchinson", samples, "probes")
    block = block_size(op)  # probes drawn in order, their products computed together where that is faster
    for first in range(start, samples, block):
        last = min(first + block, samples)
        Z = torch.stack([rademacher(op.n_params, g, op.device, op.dtype) for _ in range(first, last)])
        HZ = apply_rows(op, Z)
        values[first:last, 0] = (Z * HZ).sum(dim=1).double().cpu().numpy()
        if deflate is not None:
            A, B = Z @ V.T, HZ @ V.T  # a = V z and b = V (H z), one row per probe
            quadratic = ((A @ lam) * A).sum(1) if lam.ndim == 2 else (lam * A * A).sum(1)  # a^T M a
            values[first:last, 1] = values[first:last, 0] + (-2 * (A * B).sum(1) + quadratic).double().cpu().numpy()
        i = last - 1
        (progress.finish if last == samples else progress.update)(last, tr_H=lambda i=i: _running(values[: i + 1, 0]))
        save_samples(resume, "values", values[:last], g, final=last == samples)
    plain = values[:, 0]
    deflated = None
    if deflate is not None:
        M = deflate[1].double()
        explicit = float(M.diagonal().sum() if M.ndim == 2 else M.sum())
        deflated = DeflatedTrace(estimate=explicit + float(values[:, 1].mean()),
                                 standard_error=float(values[:, 1].std(ddof=1) / math.sqrt(samples)),
                                 samples=values[:, 1].copy(), explicit=explicit, k=len(M),
                                 variance_ratio=float(np.var(plain, ddof=1) / max(np.var(values[:, 1], ddof=1), 1e-300)))
    return TraceEstimate(
        estimate=float(plain.mean()),
        standard_error=float(plain.std(ddof=1) / math.sqrt(samples)),
        samples=plain.copy(),
        hvps=samples - reused,
        deflated=deflated,
    )


@dataclass
class KrylovTrace:
    """:func:`krylov_trace`: ``estimate`` = ``explicit`` (tr T of the ``lanczos_steps``-vector Lanczos basis) + the
    estimate of tr(P H P) from the rest of the products (``method``), +- ``standard_error`` (the spread of the
    per-probe estimates over sqrt(probes): exact for Hutchinson, the usual error estimate for XTrace, whose
    leave-one-out estimates are correlated); ``hvps`` = all products."""

    estimate: float
    standard_error: float
    explicit: float
    samples: np.ndarray  # per probe: (P z)^T H (P z) (hutchinson) or the leave-one-out estimates of tr(P H P) (xtrace)
    lanczos_steps: int
    hvps: int
    method: str
    variance_bounds: np.ndarray  # 2 ||P_m H P_m||_F^2 (with the estimated ||H||_F^2) after each step m


def _deflated_rows(op: LinearOperator, Q: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Rows P H P v for the rows v of V, P = I - Q^T Q (one product per row, in the operator's blocks)."""
    out = []
    for first in range(0, len(V), block_size(op)):
        rows = V[first: first + block_size(op)]
        rows = rows - (rows @ Q.T) @ Q
        products = apply_rows(op, rows)
        out.append(products - (products @ Q.T) @ Q)
    return torch.cat(out)


def xtrace_rows(op: LinearOperator, probes: int, generator: torch.Generator, Q: torch.Tensor | None = None
                ) -> tuple[float, np.ndarray, int]:
    """XTrace (Epperly, Tropp & Webber 2024) of A = P H P (P = I - Q^T Q; A = H without ``Q``) from 2 * ``probes``
    products: Rademacher Omega (s rows), Y = A Omega, its orthonormal basis U (Y = R^T U), and for each probe i the
    leave-one-out basis U_i (the span of the other rows of Y: U_i^T U_i = U^T (I - s_i s_i^T) U with s_i the
    normalized i-th column of R^-T), then t_i = tr(U_i A U_i^T) + w_i^T (I - U_i^T U_i) A (I - U_i^T U_i) w_i, each
    unbiased for tr(A) since w_i is independent of U_i. Returns (mean of t_i, the t_i, products)."""
    n = Q.shape[1] if Q is not None else op.n_params
    device, dtype = op.device, op.dtype
    Qd = Q if Q is not None else torch.zeros(0, n, device=device, dtype=dtype)
    Omega = torch.stack([rademacher(n, generator, device, dtype) for _ in range(probes)])
    Y = _deflated_rows(op, Qd, Omega)  # rows A w_i
    U_cols, R = torch.linalg.qr(Y.T.double())  # Y^T = U_cols R
    U = U_cols.T.to(dtype)  # rows
    Z = _deflated_rows(op, Qd, U).double()  # rows A u_j
    U, Omega_d, Y_d = U.double(), Omega.double(), Y.double()
    T = U @ Z.T
    T = 0.5 * (T + T.T)
    Rinv_T = torch.linalg.inv(R).T  # columns: R^-T e_i
    S = Rinv_T / Rinv_T.norm(dim=0, keepdim=True)  # s_i as columns
    loo = float(torch.trace(T)) - ((S * (T @ S)).sum(0))  # tr(U_i A U_i^T) = tr(T) - s_i^T T s_i
    C = U @ Omega_d.T  # columns c_i = U w_i
    D = C - S * (S * C).sum(0, keepdim=True)  # d_i = (I - s_i s_i^T) c_i: coordinates of U_i^T U_i w_i
    ZtO = Z @ Omega_d.T  # (A u_j) . w_i
    w_Aw = (Omega_d * Y_d).sum(1)
    w_APw = w_Aw - (ZtO * D).sum(0)  # w_i . (A w_i - A U^T d_i)
    QtAPw = R - T @ D  # U (A w_i - A U^T d_i); U Y^T = R
    E = QtAPw - S * (S * QtAPw).sum(0, keepdim=True)
    probe_terms = w_APw - (C * E).sum(0)
    estimates = (loo + probe_terms).cpu().numpy()
    return float(estimates.mean()), estimates, 2 * probes


def krylov_trace(op: LinearOperator, products: int, seed: int = 0, *, lanczos_steps: int | None = None,
                 method: str = "xtrace", generator: torch.Generator | None = None) -> KrylovTrace:
    """tr(H) from ``products`` products: Lanczos deflation, then XTrace or Hutchinson on the rest (see the module
    docstring).

    ``lanczos_steps`` fixes m; by default m is chosen as the basis grows (at most ``products`` // 2, at least
    min(4, products // 4)); on the trained MLPs it stops at 10-15 steps, once the outliers are in the basis.
    Measured against curvlinops' XTrace at equal products (benchmarks/engine_vs_krylov.py, float32, 20 seeds):
    within 0.9-1.2x of XTrace's RMS error on digits_mlp, digits_mlp_tanh and sines_mlp at 60, 150 and 300 products,
    i.e. level with it within the seed noise, not ahead; m = products // 2 was better on digits_mlp at 150 (0.6x on 30
    seeds, 1.4x on 20 others) and worse on digits_mlp_tanh (1.3-1.5x). With a Hutchinson rest instead (digits_mlp, 20
    seeds): m = products // 2 gave 0.81-1.10x XTrace's error, m = 3 products // 4 0.84-1.13x, both within the seeds'
    noise (~16% on an RMS error), so the default stays. ``method``: "xtrace" (default; the remaining
    products go in pairs to XTrace on P H P) or "hutchinson" (one Rademacher probe per remaining product). The start
    vector and then the probes are drawn from one generator seeded with ``seed`` (or ``generator``): the basis never
    depends on the probes, so the
    estimate is unbiased whatever m is.

    Example (rank 2: the Krylov space of the start vector holds the range after 3 steps, so the probes see
    P H P = 0, and the estimate is exact, where plain Hutchinson's standard error would be ~1.3)::

        >>> import torch
        >>> from lossgeom.engine.operator import MatrixOperator
        >>> values = torch.cat([torch.tensor([50.0, 20.0]), torch.zeros(98)]).double()
        >>> t = krylov_trace(MatrixOperator(torch.diag(values)), products=30, seed=0, method="hutchinson")
        >>> round(t.estimate, 9), t.lanczos_steps, t.hvps
        (70.0, 3, 30)
    """
    from .lanczos import KrylovBasis  # (lanczos imports nothing from here; avoids a cycle with density)

    n = op.n_params
    if method not in ("xtrace", "hutchinson"):
        raise ValueError(f"method must be 'xtrace' or 'hutchinson', got {method!r}")
    if products < 6 or products > n:
        raise ValueError(f"krylov_trace needs 6 <= products <= N, got products={products}, N={n}")
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    least = 4 if method == "xtrace" else 2  # products left for the rest (two XTrace probes, or two Hutchinson probes)
    cap = lanczos_steps if lanczos_steps is not None else products // 2
    if not 1 <= cap <= products - least:
        raise ValueError(f"lanczos_steps must be in [1, products - {least}], got {cap} for products={products}")
    floor = min(4, products // 4) if lanczos_steps is None else cap
    basis = KrylovBasis(op, cap)
    basis.append(rademacher(n, g, op.device, op.dtype))
    eps = torch.finfo(op.dtype).eps
    frobenius_h = None  # the estimate of ||H||_F^2
    products_norm2 = 0.0  # ||H Q^T||_F^2
    bounds = []
    while True:
        j = basis.size - 1
        beta = basis.expand()
        hq_norm2 = float((basis.T[: basis.size, j] ** 2).sum()) + beta**2  # ||H q_j||^2 (full reorthogonalization)
        products_norm2 += hq_norm2
        if frobenius_h is None:
            frobenius_h = n * hq_norm2  # N ||H q_1||^2, q_1 = z / sqrt(N): unbiased for ||H||_F^2
        m = basis.size
        T = basis.T[:m, :m]
        bounds.append(2 * max(frobenius_h - 2 * products_norm2 + float((T**2).sum()), 0.0))
        if m >= cap or beta <= 100 * eps * max(float(T.abs().max()), 1e-300):
            break
        # the step just taken lowered the bound by bounds[-2] - bounds[-1]; go on while that paid for its product
        if m >= floor and len(bounds) >= 2 and bounds[-1] / (products - m) >= bounds[-2] / (products - m + 1):
            break
        basis.append(basis.residual)
    m = basis.size
    Q, T = basis.Q[:m], basis.T[:m, :m].clone()
    explicit = float(T.diagonal().sum())
    rest = products - basis.hvps
    if method == "hutchinson":
        est = hutchinson_trace(op, samples=rest, generator=g, deflate=(Q, T))
        samples, used = est.deflated.samples, est.hvps
        remainder = float(samples.mean())
    else:
        remainder, samples, used = xtrace_rows(op, rest // 2, g, Q)
    return KrylovTrace(estimate=explicit + remainder, standard_error=float(samples.std(ddof=1) / math.sqrt(len(samples))),
                       explicit=explicit, samples=samples, lanczos_steps=m, hvps=basis.hvps + used, method=method,
                       variance_bounds=np.asarray(bounds))


def exact_trace(op: LinearOperator) -> float:
    """tr(H) = sum_i e_i^T H e_i from N products with the unit vectors (in blocks of the operator's ``block``).

    Exact to rounding, at N products: the reference the estimators are checked against on small models.
    """
    n, block, total = op.n_params, block_size(op), 0.0
    for first in range(0, n, block):
        columns = torch.arange(first, min(first + block, n), device=op.device)
        rows = torch.arange(len(columns), device=op.device)  # unit vector e_(first + r) in row r
        units = torch.zeros(len(columns), n, device=op.device, dtype=op.dtype)
        units[rows, columns] = 1.0
        total += float(apply_rows(op, units)[rows, columns].double().sum())
    return total
