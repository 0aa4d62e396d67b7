"""Extreme eigenpairs of a symmetric operator: Lanczos with full reorthogonalization and thick restart.

One Krylov basis serves both ends of the spectrum: Lanczos approximates the largest AND the most negative
eigenvalues from the same subspace, so one run gives both whenever the basis fits in memory.

The basis Q (rows, on the operator's device) is kept orthonormal by two passes of classical Gram-Schmidt
against all earlier vectors ("twice is enough"), and the projected matrix T = Q^T H Q is filled from those
very coefficients, so every entry of T comes from an actual product. Then H Q = Q T + r e_last^T, and the
residual of a Ritz pair (theta, Q^T s) is ||r|| |s_last| without any further product.

Negative end, and why restarts: in trained networks the most negative eigenvalues sit just below a huge
cluster near zero and are much smaller in magnitude than lambda_max, so they converge more slowly than the
top. When the basis reaches ``max_basis`` vectors before every wanted pair has converged, the run restarts
*thickly* (Wu & Simon 2000; Stathopoulos et al. 1998): it keeps the Ritz vectors of the wanted pairs at both
ends plus ``keep_extra`` neighbours at each end, and continues from the current residual direction. Pairs
that have converged stay in the basis (so they are not found again) while the new Krylov directions go to
the ones that have not; memory stays bounded at ``max_basis`` vectors.

Convergence is decided only by residual norms: a pair is converged when ||H y - theta y|| <= tol * scale,
where scale is the largest |Ritz value| (= |lambda_max| when the top dominates, as in trained networks).
The residuals returned are recomputed explicitly from one more product per pair, so they are honest even
when rounding has broken the Lanczos relations. Products are counted.

Example (a diagonal matrix with a prescribed spectrum)::

    >>> import torch
    >>> op = MatrixOperator(torch.diag(torch.linspace(-2.0, 10.0, 200, dtype=torch.float64)))
    >>> res = extreme_eigenpairs(op, k_top=2, k_bottom=1, tol=1e-10, seed=0)
    >>> [round(v, 6) for v in res.top.values.tolist()], round(res.bottom.values.item(), 6)
    ([10.0, 9.939698], -2.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..progress import Progress
from .operator import LinearOperator, MatrixOperator  # noqa: F401  (MatrixOperator: used by the doctest, imported from here by tests)
from .resume import ResumeSlot


@dataclass
class EigenPairs:
    """Eigenpairs of one end: ``values`` (k,), ``vectors`` (k, N) unit rows, ``residuals`` (k,): explicit
    ||H y - (y^T H y) y|| (one product each), or the free estimates when explicit residuals were not asked for;
    ``residual_estimates`` (k,): the free Lanczos estimates beta_m |s_m| of the Ritz pairs, always."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    residual_estimates: torch.Tensor | None = None


@dataclass
class LanczosResult:
    """``top`` in descending order, ``bottom`` in ascending order (most negative first)."""

    top: EigenPairs
    bottom: EigenPairs
    hvps: int  # all products, including one per returned pair for the explicit residuals
    iterations: int
    restarts: int
    tol: float
    scale: float  # the |eigenvalue| that residuals are measured against
    start_tridiagonal: torch.Tensor | None = None  # T of the first ``keep_tridiagonal`` steps from the random start

    @property
    def converged(self) -> bool:
        return bool(self.top.converged.all() and self.bottom.converged.all())


class KrylovBasis:
    """An orthonormal basis Q (rows) with T = Q^T H Q, grown one product at a time."""

    def __init__(self, op: LinearOperator, capacity: int) -> None:
        self.op = op
        self.Q = torch.zeros(capacity, op.n_params, device=op.device, dtype=op.dtype)
        self.T = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.size = 0
        self.residual = None  # r with H Q = Q T + r e_last^T
        self.hvps = 0

    def orthogonalize(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w minus its projection on the basis (two Gram-Schmidt passes); returns (w, coefficients)."""
        Q = self.Q[: self.size]
        coeff = Q @ w
        w = w - coeff @ Q
        again = Q @ w
        return w - again @ Q, coeff + again

    def append(self, q: torch.Tensor) -> None:
        self.Q[self.size] = q / q.norm()
        self.size += 1

    def expand(self) -> float:
        """Apply H to the newest basis vector, fill its row/column of T; return ||residual||."""
        j = self.size - 1
        w, coeff = self.orthogonalize(self.op.matvec(self.Q[j]))
        self.hvps += 1
        c = coeff.double().cpu()
        self.T[: self.size, j] = c
        self.T[j, : self.size] = c
        self.residual = w
        return float(w.norm())

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.size
        T = self.T[:n, :n]
        return torch.linalg.eigh(0.5 * (T + T.T))


def _random_unit(n: int, seed: int, device, dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=g, dtype=torch.float64)
    return (v / v.norm()).to(device, dtype)


def extreme_eigenpairs(
    op: LinearOperator,
    *,
    k_top: int = 10,
    k_bottom: int = 3,
    tol: float = 1e-6,
    max_basis: int = 120,
    keep_extra: int | None = None,
    max_hvps: int = 5000,
    seed: int = 0,
    resume: ResumeSlot | None = None,
    explicit_residuals: bool = True,
    keep_tridiagonal: int = 0,
) -> LanczosResult:
    """The ``k_top`` largest and ``k_bottom`` most negative eigenpairs of the symmetric operator ``op``.

    ``op`` is any :class:`~lossgeom.engine.operator.LinearOperator` (a Hessian, a dense matrix).
    Stops when every wanted pair has a residual <= ``tol`` * scale, or after
    ``max_hvps`` products (then ``converged`` says which pairs made it). With ``resume``, the compressed
    basis is saved at thick restarts and the result at the end, and a killed run continues from there.

    With full reorthogonalization, H y - theta y = beta_m s_m q_{m+1} for a Ritz pair (theta, y = Q s), so the
    residual norm beta_m |s_m| is known without a product; ``explicit_residuals`` (default) recomputes H y for
    every returned pair anyway (one product each; the value becomes y^T H y), a certificate independent of the
    basis's orthogonality. Both are returned (``residual_estimates``); benchmarks/residual_estimates.py
    measures their gap.

    ``keep_tridiagonal`` = m > 0 keeps T of the first m steps (before any restart) as ``start_tridiagonal``: the
    run starts from a random unit vector, so that T is one probe of stochastic Lanczos quadrature, free
    (:func:`lossgeom.engine.density.slq_density` takes it as its first probe).
    """
    saved = resume.load() if resume is not None else None
    if saved is not None and "result" in saved:
        return _result_from_state(saved["result"], op)
    n = op.n_params
    wanted = k_top + k_bottom
    if wanted == 0 or wanted > n:
        raise ValueError(f"need 0 < k_top + k_bottom <= N, got k_top={k_top}, k_bottom={k_bottom}, N={n}")
    capacity = min(max(max_basis, 2 * wanted + 2), n)
    extra = keep_extra if keep_extra is not None else max(5, max(k_top, k_bottom))
    basis = KrylovBasis(op, capacity)
    restarts = iterations = 0
    first_T = None
    if saved is not None:  # the basis as compressed at the last saved thick restart
        first_T = saved.get("first_T")
        size = saved["size"]
        basis.Q[:size] = saved["Q"].to(op.device, op.dtype)
        basis.T[:size, :size] = saved["T"]
        basis.size, basis.residual, basis.hvps = size, saved["residual"].to(op.device, op.dtype), saved["hvps"]
        restarts, iterations = saved["restarts"], saved["iterations"]
        basis.append(basis.residual)
    else:
        basis.append(_random_unit(n, seed, op.device, op.dtype))
    eps = torch.finfo(op.dtype).eps
    progress = Progress("lanczos", max_hvps, "products", upper_bound=True)

    def ends(theta: torch.Tensor, count_top: int, count_bottom: int) -> list[int]:
        order = list(range(len(theta)))  # eigh sorts ascending
        bottom = order[:count_bottom]
        top = order[::-1][:count_top]
        return sorted(set(bottom) | set(top))

    while True:
        beta = basis.expand()
        iterations += 1
        if keep_tridiagonal and first_T is None and restarts == 0 and basis.size == keep_tridiagonal:
            first_T = basis.T[: basis.size, : basis.size].clone()
        theta, S = basis.ritz()
        scale = float(theta.abs().max())
        estimates = beta * S[-1].abs()
        done = basis.size >= wanted and bool(
            (estimates[ends(theta, k_top, k_bottom)] <= tol * scale).all()
        )
        exhausted = basis.hvps >= max_hvps or beta <= 10 * eps * max(scale, 1e-300) or basis.size == n
        worst = float(estimates[ends(theta, k_top, k_bottom)].max()) / max(scale, 1e-300)
        status = dict(basis=basis.size, restarts=restarts, worst_residual=f"{worst:.2g} x scale (tol {tol:g})")
        if done or exhausted:
            progress.finish(basis.hvps, **status)
            break
        progress.update(basis.hvps, **status)
        if basis.size == capacity:  # thick restart: keep both ends' Ritz vectors, continue from the residual
            keep = ends(theta, min(k_top + extra, capacity // 4 + k_top), min(k_bottom + extra, capacity // 4 + k_bottom))
            S_keep = S[:, keep].to(op.device, op.dtype)
            kept = S_keep.T @ basis.Q[: basis.size]
            basis.Q.zero_()
            basis.T.zero_()
            basis.Q[: len(keep)] = kept
            basis.T[: len(keep), : len(keep)] = torch.diag(theta[keep])
            basis.size = len(keep)
            restarts += 1
            if resume is not None:
                resume.save({"Q": basis.Q[: basis.size].cpu().clone(), "T": basis.T[: basis.size, : basis.size].clone(),
                             "residual": basis.residual.cpu().clone(), "size": basis.size, "hvps": basis.hvps,
                             "restarts": restarts, "iterations": iterations, "first_T": first_T})
        basis.append(basis.residual)

    free = estimates.to(torch.float64).cpu()  # the last iteration's Ritz pairs and their free residual estimates
    order = torch.argsort(theta)
    top_idx = order.flip(0)[:k_top]
    bottom_idx = order[:k_bottom]

    def finish(idx: torch.Tensor) -> EigenPairs:
        vectors = S[:, idx].T.to(op.device, op.dtype) @ basis.Q[: basis.size]
        if not explicit_residuals:
            vectors = vectors / vectors.norm(dim=1, keepdim=True)
            estimates = free[idx.cpu()]
            return EigenPairs(values=theta[idx].to(torch.float64).cpu(), vectors=vectors, residuals=estimates,
                              converged=estimates <= tol * scale, residual_estimates=estimates)
        values, residuals = [], []
        for i in range(len(idx)):
            y = vectors[i] / vectors[i].norm()
            vectors[i] = y
            hy = op.matvec(y)
            value = float(torch.dot(y, hy))
            values.append(value)
            residuals.append(float((hy - value * y).norm()))
        residuals_t = torch.tensor(residuals, dtype=torch.float64)
        return EigenPairs(
            values=torch.tensor(values, dtype=torch.float64),
            vectors=vectors,
            residuals=residuals_t,
            converged=residuals_t <= tol * scale,
            residual_estimates=free[idx.cpu()],
        )

    top, bottom = finish(top_idx), finish(bottom_idx)
    result = LanczosResult(
        top=top,
        bottom=bottom,
        hvps=basis.hvps + (k_top + k_bottom if explicit_residuals else 0),
        iterations=iterations,
        restarts=restarts,
        tol=tol,
        scale=scale,
        start_tridiagonal=first_T,
    )
    if resume is not None:
        resume.save({"result": _result_state(result)}, final=True)
    return result


def _result_state(result: LanczosResult) -> dict[str, Any]:
    ends = {name: {k: getattr(getattr(result, name), k).cpu()
                   for k in ("values", "vectors", "residuals", "converged", "residual_estimates")}
            for name in ("top", "bottom")}
    return {**ends, **{k: getattr(result, k) for k in ("hvps", "iterations", "restarts", "tol", "scale", "start_tridiagonal")}}


def _result_from_state(state: dict[str, Any], op: LinearOperator) -> LanczosResult:
    ends = {name: EigenPairs(**{k: v.to(op.device, op.dtype) if k == "vectors" else v for k, v in state[name].items()})
            for name in ("top", "bottom")}
    return LanczosResult(**ends, **{k: state[k] for k in ("hvps", "iterations", "restarts", "tol", "scale")},
                         start_tridiagonal=state.get("start_tridiagonal"))


def lanczos_tridiagonal(op: LinearOperator, start: torch.Tensor, steps: int) -> tuple[torch.Tensor, int]:
    """T = Q^T H Q of ``steps`` Lanczos steps from ``start`` (fully reorthogonalized); returns (T, products).

    Used by stochastic Lanczos quadrature: the eigenvalues of T are Gauss nodes, the squared first
    components of its eigenvectors the Gauss weights, for the spectral measure of H seen from ``start``.
    """
    steps = min(steps, op.n_params)
    basis = KrylovBasis(op, steps)
    basis.append(start.to(op.device, op.dtype))
    eps = torch.finfo(op.dtype).eps
    while True:
        beta = basis.expand()
        scale = float(basis.T[: basis.size, : basis.size].abs().max())
        # Breakdown: the start vector's Krylov space is exhausted. After full reorthogonalization the residual
        # is rounding noise of a few eps x scale (4.5e-15 with scale 2 in float64, measured), so the test
        # needs headroom; continuing would add ghost copies of the nodes found, with Gauss weight ~0.
        if basis.size == steps or beta <= 100 * eps * max(scale, 1e-300):
            break
        basis.append(basis.residual)
    n = basis.size
    return basis.T[:n, :n].clone(), basis.hvps
