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

Certificates without extra products: the basis keeps every product it computed, W = H Q (rows w_j = H q_j, as
the product returned them, before any orthogonalization; thick restarts compress W with Q). H is linear, so for a
Ritz vector y = Q^T s the product H y = W^T s is a combination of actual products, and the residual
||W^T s - (y^T W^T s) y|| is an explicit one: it does not rely on the Lanczos relation or on the basis staying
orthogonal, only on the products themselves (its rounding is that of forming one more combination of N-vectors,
the same order as a fresh product's). Stopping is decided on the free Lanczos estimates beta_m |s_m| (every
step), and the returned residuals are these certificates. The memory is twice the basis's
(``residual_products=True`` instead recomputes H y with one fresh product per pair, as before, and keeps no W).
Products are counted.

Eigenvalue errors: a pair with residual r and gap delta to the rest of the spectrum has an eigenvalue within
min(r, r^2 / delta) (Kato-Temple), so eigenvalues are far more accurate than their residuals where the gaps
are wide, as for the outliers of trained networks. ``value_tol`` stops on that bound (delta from the other Ritz
values, less both values' residual estimates); every pair reports it (``error_bounds``).

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
    ``residual_estimates`` (k,): the free Lanczos estimates beta_m |s_m| of the Ritz pairs, always;
    ``error_bounds`` (k,): min(r, r^2 / gap) with r the returned residual, a bound on |value - eigenvalue|."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    residual_estimates: torch.Tensor | None = None
    error_bounds: torch.Tensor | None = None


@dataclass
class KrylovState:
    """The final basis of a run: Q (m, N) orthonormal rows, T = Q H Q^T (m, m) from the products (float64), and
    W = H Q^T as rows (m, N) when products were kept. Deflating by Q: tr(H) = tr(T) + tr(P H P), P = I - Q^T Q."""

    Q: torch.Tensor
    T: torch.Tensor
    W: torch.Tensor | None = None


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
    value_tol: float | None = None
    basis: KrylovState | None = None  # the final Krylov basis, with ``keep_basis=True``

    @property
    def converged(self) -> bool:
        return bool(self.top.converged.all() and self.bottom.converged.all())


class KrylovBasis:
    """An orthonormal basis Q (rows) with T = Q^T H Q, grown one product at a time; with ``keep_products`` also
    W = H Q (rows w_j = H q_j as computed)."""

    def __init__(self, op: LinearOperator, capacity: int, keep_products: bool = False) -> None:
        self.op = op
        self.Q = torch.zeros(capacity, op.n_params, device=op.device, dtype=op.dtype)
        self.W = torch.zeros_like(self.Q) if keep_products else None
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
        hq = self.op.matvec(self.Q[j])
        self.hvps += 1
        if self.W is not None:
            self.W[j] = hq
        w, coeff = self.orthogonalize(hq)
        c = coeff.double().cpu()
        self.T[: self.size, j] = c
        self.T[j, : self.size] = c
        self.residual = w
        return float(w.norm())

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.size
        T = self.T[:n, :n]
        return torch.linalg.eigh(0.5 * (T + T.T))

    def compress(self, S_keep: torch.Tensor, values: torch.Tensor) -> None:
        """Keep the Ritz vectors Q^T S_keep (and their products W^T S_keep); T becomes diag(values)."""
        S_keep = S_keep.to(self.op.device, self.op.dtype)
        kept = S_keep.T @ self.Q[: self.size]
        kept_W = S_keep.T @ self.W[: self.size] if self.W is not None else None
        k = len(values)
        self.Q.zero_()
        self.T.zero_()
        self.Q[:k] = kept
        if self.W is not None:
            self.W.zero_()
            self.W[:k] = kept_W
        self.T[:k, :k] = torch.diag(values)
        self.size = k

    def certify(self, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the Ritz coefficient columns S (m, k): unit Ritz vectors Y (k, N), their Rayleigh quotients and
        residuals ||H y - (y^T H y) y||, with H y = W^T s from the kept products (no new product)."""
        S = S.to(self.op.device, self.op.dtype)
        Y = S.T @ self.Q[: self.size]
        HY = S.T @ self.W[: self.size]
        norms = Y.norm(dim=1, keepdim=True)
        Y, HY = Y / norms, HY / norms
        values = (Y * HY).sum(dim=1)
        residuals = (HY - values[:, None] * Y).norm(dim=1)
        return Y, values.double().cpu(), residuals.double().cpu()


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
    value_tol: float | None = None,
    residual_products: bool = False,
    keep_basis: bool = False,
) -> LanczosResult:
    """The ``k_top`` largest and ``k_bottom`` most negative eigenpairs of the symmetric operator ``op``.

    ``op`` is any :class:`~lossgeom.engine.operator.LinearOperator` (a Hessian, a dense matrix).
    Stops when every wanted pair has a residual <= ``tol`` * scale, or after
    ``max_hvps`` products (then ``converged`` says which pairs made it). With ``resume``, the compressed
    basis is saved at thick restarts and the result at the end, and a killed run continues from there.

    With full reorthogonalization, H y - theta y = beta_m s_m q_{m+1} for a Ritz pair (theta, y = Q s), so the
    residual norm beta_m |s_m| is known without a product; the run stops on it. ``explicit_residuals`` (default)
    returns for every pair a certificate independent of the basis's orthogonality: H y formed from the products
    the run kept (H y = W^T s, no product; the value becomes y^T H y), or, with ``residual_products``, from one
    fresh product per pair. Both are returned (``residual_estimates``); benchmarks/residual_estimates.py
    measures their gap.

    ``value_tol``: also stop once every wanted pair's eigenvalue error bound min(r, r^2 / gap) (gap to the
    nearest other Ritz value, less both values' residual estimates; checked once the basis holds more vectors
    than pairs wanted, so that the innermost pairs have a neighbour inside) is <= ``value_tol`` * scale; such pairs
    count as converged. Like any residual-based stop, it cannot see an eigenvalue the Krylov space has not found yet:
    a target looser than the spectrum's gaps near the k-th eigenvalue can stop on a bulk Ritz value. For
    well-separated outliers the eigenvalues reach ``value_tol`` long before the residuals reach it. ``keep_basis``
    returns the final basis (``basis``: Q, T and the products W), for deflating a trace estimate by the whole Krylov
    space (:func:`lossgeom.engine.trace.hutchinson_trace`).

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
    keep_products = explicit_residuals and not residual_products
    basis = KrylovBasis(op, capacity, keep_products=keep_products)
    restarts = iterations = 0
    first_T = None
    if saved is not None:  # the basis as compressed at the last saved thick restart
        first_T = saved.get("first_T")
        size = saved["size"]
        basis.Q[:size] = saved["Q"].to(op.device, op.dtype)
        basis.T[:size, :size] = saved["T"]
        basis.size, basis.residual, basis.hvps = size, saved["residual"].to(op.device, op.dtype), saved["hvps"]
        restarts, iterations = saved["restarts"], saved["iterations"]
        if basis.W is not None:
            if saved.get("W") is not None:
                basis.W[:size] = saved["W"].to(op.device, op.dtype)
            else:  # saved by a version that kept no products: recompute them (counted)
                for j in range(size):
                    basis.W[j] = op.matvec(basis.Q[j])
                basis.hvps += size
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

    def gaps(theta: torch.Tensor, estimates: torch.Tensor) -> torch.Tensor:
        """Per Ritz value, the distance to the nearest other one, less both residual estimates (>= 0): each Ritz
        value is only known to lie within its estimate of an eigenvalue, so the gap between eigenvalues is taken
        at its smallest."""
        if len(theta) < 2:
            return torch.full_like(theta, float("inf"))
        distance = (theta[:, None] - theta[None, :]).abs() - estimates[None, :] - estimates[:, None]
        distance.fill_diagonal_(float("inf"))
        return distance.min(dim=1).values.clamp_min(0.0)

    while True:
        beta = basis.expand()
        iterations += 1
        if keep_tridiagonal and first_T is None and restarts == 0 and basis.size == keep_tridiagonal:
            first_T = basis.T[: basis.size, : basis.size].clone()
        theta, S = basis.ritz()
        scale = float(theta.abs().max())
        estimates = beta * S[-1].abs()
        wanted_idx = ends(theta, k_top, k_bottom)
        done = basis.size >= wanted and bool((estimates[wanted_idx] <= tol * scale).all())
        # value_tol needs a Ritz value inside the wanted ones (size > wanted): the innermost pairs' gap is to the
        # rest of the spectrum, unseen without it (with m == k, the k-th Ritz value of a low-rank top looks isolated)
        if value_tol is not None and not done and basis.size > wanted:
            bounds = error_bound(estimates, gaps(theta, estimates))
            done = bool((bounds[wanted_idx] <= value_tol * scale).all())
        exhausted = basis.hvps >= max_hvps or beta <= 10 * eps * max(scale, 1e-300) or basis.size == n
        worst = float(estimates[ends(theta, k_top, k_bottom)].max()) / max(scale, 1e-300)
        status = dict(basis=basis.size, restarts=restarts, worst_residual=f"{worst:.2g} x scale (tol {tol:g})")
        if done or exhausted:
            progress.finish(basis.hvps, **status)
            break
        progress.update(basis.hvps, **status)
        if basis.size == capacity:  # thick restart: keep both ends' Ritz vectors, continue from the residual
            keep = ends(theta, min(k_top + extra, capacity // 4 + k_top), min(k_bottom + extra, capacity // 4 + k_bottom))
            basis.compress(S[:, keep], theta[keep])
            restarts += 1
            if resume is not None:
                resume.save({"Q": basis.Q[: basis.size].cpu().clone(), "T": basis.T[: basis.size, : basis.size].clone(),
                             "W": basis.W[: basis.size].cpu().clone() if basis.W is not None else None,
                             "residual": basis.residual.cpu().clone(), "size": basis.size, "hvps": basis.hvps,
                             "restarts": restarts, "iterations": iterations, "first_T": first_T})
        basis.append(basis.residual)

    free = estimates.to(torch.float64).cpu()  # the last iteration's Ritz pairs and their free residual estimates
    gap = gaps(theta, estimates).to(torch.float64).cpu()
    order = torch.argsort(theta)
    top_idx = order.flip(0)[:k_top]
    bottom_idx = order[:k_bottom]

    def finish(idx: torch.Tensor) -> EigenPairs:
        idx_cpu = idx.cpu()
        if not explicit_residuals:
            vectors = S[:, idx].T.to(op.device, op.dtype) @ basis.Q[: basis.size]
            vectors = vectors / vectors.norm(dim=1, keepdim=True)
            values, residuals_t = theta[idx].to(torch.float64).cpu(), free[idx_cpu]
        elif not residual_products:
            vectors, values, residuals_t = basis.certify(S[:, idx])
        else:
            vectors = S[:, idx].T.to(op.device, op.dtype) @ basis.Q[: basis.size]
            values, residuals = [], []
            for i in range(len(idx)):
                y = vectors[i] / vectors[i].norm()
                vectors[i] = y
                hy = op.matvec(y)
                value = float(torch.dot(y, hy))
                values.append(value)
                residuals.append(float((hy - value * y).norm()))
            values, residuals_t = torch.tensor(values, dtype=torch.float64), torch.tensor(residuals, dtype=torch.float64)
        bounds = error_bound(residuals_t, gap[idx_cpu])
        converged = residuals_t <= tol * scale
        if value_tol is not None:
            converged |= bounds <= value_tol * scale
        return EigenPairs(values=values, vectors=vectors, residuals=residuals_t, converged=converged,
                          residual_estimates=free[idx_cpu], error_bounds=bounds)

    top, bottom = finish(top_idx), finish(bottom_idx)
    result = LanczosResult(
        top=top,
        bottom=bottom,
        hvps=basis.hvps + (k_top + k_bottom if explicit_residuals and residual_products else 0),
        iterations=iterations,
        restarts=restarts,
        tol=tol,
        scale=scale,
        start_tridiagonal=first_T,
        value_tol=value_tol,
        basis=KrylovState(Q=basis.Q[: basis.size].clone(), T=basis.T[: basis.size, : basis.size].clone(),
                          W=basis.W[: basis.size].clone() if basis.W is not None else None) if keep_basis else None,
    )
    if resume is not None:
        resume.save({"result": _result_state(result)}, final=True)
    return result


def error_bound(residuals: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """min(r, r^2 / gap): the distance from a Ritz value to an eigenvalue (Kato-Temple where gap > r)."""
    return torch.minimum(residuals, residuals**2 / gap.clamp_min(1e-300))


def _result_state(result: LanczosResult) -> dict[str, Any]:
    ends = {name: {k: getattr(getattr(result, name), k).cpu()
                   for k in ("values", "vectors", "residuals", "converged", "residual_estimates", "error_bounds")}
            for name in ("top", "bottom")}
    state = {**ends, **{k: getattr(result, k) for k in ("hvps", "iterations", "restarts", "tol", "scale",
                                                         "start_tridiagonal", "value_tol")}}
    if result.basis is not None:
        state["basis"] = {k: (v.cpu() if v is not None else None) for k, v in vars(result.basis).items()}
    return state


def _result_from_state(state: dict[str, Any], op: LinearOperator) -> LanczosResult:
    ends = {name: EigenPairs(**{k: v.to(op.device, op.dtype) if k == "vectors" else v for k, v in state[name].items()})
            for name in ("top", "bottom")}
    basis = state.get("basis")
    if basis is not None:
        basis = KrylovState(**{k: (v.to(op.device, op.dtype) if v is not None and k != "T" else v) for k, v in basis.items()})
    return LanczosResult(**ends, **{k: state[k] for k in ("hvps", "iterations", "restarts", "tol", "scale")},
                         start_tridiagonal=state.get("start_tridiagonal"), value_tol=state.get("value_tol"), basis=basis)


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
