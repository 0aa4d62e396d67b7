"""lossgeom against the 2026 peers, side by side: hessian-eigenthings 1.0.0a5, curvlinops 3.0.1 (+ SciPy), PyHessian 0.1.

Issue 28, item 1. Every library runs in this one process, in float64, on the same model, loss and examples, and
every product is counted at the operator (a counting wrapper around each library's own operator). Parts (each
writes its own JSON, ``benchmarks/out/peers-<part>.json``, so one part can be rerun alone):

  eigen  top-10, bottom-3 and both ends: products and wall time to reach a relative eigenvalue error
         max_i |lambda_i - lambda_i^ref| / |lambda_i^ref| of 1e-3, 1e-6, 1e-10 (the error relative to the spectral
         norm, max_i |.| / ||H||, is recorded too). References: the dense Hessian's eigvalsh up to ``--dense-max``
         parameters (N products, cached in benchmarks/out/cache), ARPACK at tol 0 above (an implementation
         independent of ours), the known eigenvalues for the test matrices. Each method's accuracy knob is swept and
         the cheapest setting that reaches a target is reported:
           lossgeom      extreme_eigenpairs (its defaults: max_basis 120, certificates from the kept products), one
                         run for both ends; two sweeps pooled: the residual stop ``tol``, and the eigenvalue-error
                         stop ``value_tol`` (opt-in); every product is a Lanczos step;
           eigenthings   ``lanczos`` with a fixed Krylov size m: the smallest m that reaches each target (read off
                         the prefixes of one fully reorthogonalized Lanczos run from the seed ``lanczos`` draws, then
                         confirmed and timed by calling ``lanczos(max_iter=m, reorthogonalize=True)``), and its
                         default m = 2k (default reorthogonalization); LA for the top, SA for the bottom, both ends
                         = the two runs;
           scipy         ``eigsh`` (ARPACK) on curvlinops' ``HessianLinearOperator.to_scipy()``, tol swept, LA k=10
                         and SA k=3 (both ends = the two runs);
           pyhessian     ``hessian.eigenvalues(top_n=10)`` (power iteration with deflation), tol swept; top only.
  trace  RMS relative error of tr(H) over ``--seeds`` seeds at budgets of 60, 150, 300 products: lossgeom plain and
         deflated Hutchinson (the deflation's Lanczos products, half the budget at most, count), ``krylov_trace``
         (Lanczos deflation of the whole Krylov basis, then XTrace on the rest, at the same total), eigenthings
         ``hutch_plus_plus``, curvlinops ``hutchpp_trace`` and ``xtrace``. All estimators multiply with one shared
         counting operator (lossgeom's H products), so only the estimator differs; the reference is the exact
         trace (the sum of the dense eigenvalues, or the known ones; above ``--dense-max`` on a ReLU network, where
         diag(H) = diag(G), tr(G) from the per-example Jacobians, :func:`reference_trace`).
  hvp    one Hessian-vector product relative to one gradient (loss.backward on the model), median of repeats, for
         each library's own product on the same batch, float32 and float64.
  ggn    one Gauss-Newton product per library (lossgeom GaussNewtonOperator, eigenthings GGNOperator, curvlinops
         GGNLinearOperator) relative to one gradient, and the largest relative difference between their G v.

Models: the five default experiments (trained model files, ``--results``; the examples of the hessian step's
settings, :func:`lossgeom.stages.hessian.loss_examples`; ``--examples`` caps them, stated in the JSON), LeNet-5 and
ResNet-20 (``--paper-examples`` random examples of MNIST / CIFAR shape, untrained; ResNet-20 not in the trace part,
whose 57,000 products would take 8 hours or more on this CPU; ResNet-20's eigen part is run without PyHessian, whose
power iteration would take hours of products there: ``--libraries lossgeom eigenthings scipy``) and three dense
test matrices with known spectra (``separated``, ``clustered``, ``negative``, see :func:`test_spectrum`) as the
quadratic loss 0.5 theta^T A theta, which every library accepts as a model.

    uv sync --group bench
    uv run python benchmarks/peers.py --part eigen --models matrices sines_mlp --threads 1
    uv run python benchmarks/peers.py --quick            # every part, small settings, for a smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, pyhessian_products, write_result  # noqa: E402

from lossgeom import (GaussNewtonOperator, HessianOperator, MatrixOperator, extreme_eigenpairs,  # noqa: E402
                      gauss_newton_trace, hutchinson_trace, krylov_trace, load_model)
from lossgeom.engine.operator import dense_matrix  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.problems.models import build_model  # noqa: E402

DEFAULT_MODELS = ["digits_mlp", "digits_cnn", "digits_mlp_tanh", "mnist1d_cnn", "sines_mlp"]
MATRICES = ["separated", "clustered", "negative"]
TARGETS = (1e-3, 1e-6, 1e-10)
BUDGETS = (60, 150, 300)
CASES = {"top10": (10, 0), "bottom3": (0, 3), "both": (10, 3)}
LIBRARIES = ("lossgeom", "eigenthings", "scipy", "pyhessian")


def log(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# problems: a model, its loss, the examples, and the reference spectrum


class MeanSquaredError(nn.Module):
    """lossgeom's regression loss as a module with ``reduction`` (curvlinops reads it to weight batches)."""

    reduction = "mean"

    def forward(self, prediction, target):
        return (prediction - target).square().mean()


class CrossEntropy(nn.CrossEntropyLoss):
    pass


class Quadratic(nn.Module):
    """The parameters theta (N,) as the model's output; with :class:`QuadraticLoss` the loss is 0.5 theta^T A theta,
    whose Hessian is A for every library."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(n, dtype=torch.float64))

    def forward(self, x):
        return self.theta.expand(len(x), -1)


class QuadraticLoss(nn.Module):
    reduction = "mean"  # one example: weight 1 in every library

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("matrix", matrix)

    def forward(self, output, target):
        theta = output[0]
        return 0.5 * theta @ (self.matrix @ theta)


def test_spectrum(name: str, n: int, seed: int = 0) -> np.ndarray:
    """Eigenvalues, descending, of the three test spectra (N = n):

    separated  10 outliers 10, 15, ..., 55 above a bulk uniform in [-1, 1], 3 negative ones -2, -3, -4 below it;
    clustered  the top 10 in [0.95, 1.0] (gaps 5e-3) just above a bulk uniform in [-0.5, 0.94], the bottom 3 at
               -0.6, -0.605, -0.61 just below it;
    negative   as a trained network: 10 outliers in [1, 10], a cluster of n - 13 values in [-1e-3, 1e-3] near zero
               and the 3 most negative at -2e-3, -3e-3, -5e-3 just below it.
    """
    rng = np.random.default_rng(seed)
    m = n - 13
    if name == "separated":
        top, bulk, bottom = 10 + 5 * np.arange(10.0), rng.uniform(-1, 1, m), np.array([-2.0, -3.0, -4.0])
    elif name == "clustered":
        top, bulk, bottom = 0.95 + 5e-3 * np.arange(10.0), rng.uniform(-0.5, 0.94, m), np.array([-0.6, -0.605, -0.61])
    elif name == "negative":
        top, bulk, bottom = np.linspace(1, 10, 10), rng.uniform(-1e-3, 1e-3, m), np.array([-2e-3, -3e-3, -5e-3])
    else:
        raise ValueError(name)
    return np.sort(np.concatenate([top, bulk, bottom]))[::-1]


class Problem:
    """Model, loss (callable and module), examples, and the reference spectrum (filled lazily)."""

    def __init__(self, name, model, loss, loss_module, x, y, note="", exact=None) -> None:
        self.name, self.model, self.loss, self.loss_module, self.x, self.y, self.note = name, model, loss, loss_module, x, y, note
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n_params = sum(p.numel() for p in self.params)
        self.exact = exact  # all eigenvalues, descending, when known
        self.reference: dict | None = None
        # every output piecewise linear in each parameter (ReLU, max-pooling, eval-mode BatchNorm): tr(H) = tr(G)
        self.piecewise_linear = False

    def describe(self) -> dict:
        return {"name": self.name, "n_parameters": self.n_params, "examples": len(self.x), "note": self.note}


def load_problem(name: str, args) -> Problem:
    if name in MATRICES:
        values = test_spectrum(name, args.matrix_size)
        g = torch.Generator().manual_seed(1)
        basis, _ = torch.linalg.qr(torch.randn(args.matrix_size, args.matrix_size, generator=g, dtype=torch.float64))
        matrix = (basis * torch.from_numpy(values.copy())) @ basis.T
        matrix = 0.5 * (matrix + matrix.T)
        loss_module = QuadraticLoss(matrix)
        x, y = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        return Problem(name, Quadratic(args.matrix_size), loss_module, loss_module, x, y,
                       note=f"diag(spectrum) in a random orthogonal basis, N = {args.matrix_size}", exact=values)
    if name in ("lenet5", "resnet20"):
        torch.manual_seed(0)
        shape = (1, 28, 28) if name == "lenet5" else (3, 32, 32)
        spec = ({"name": "lenet", "channels": [6, 16], "kernel_size": 5, "hidden": [120, 84], "activation": "relu"}
                if name == "lenet5" else {"name": "resnet", "depth": 20, "width": 16})
        model = build_model(spec, shape, 10).double().eval()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(args.paper_examples, *shape, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (args.paper_examples,), generator=g)
        prob = Problem(name, model, loss_function("classification"), CrossEntropy(), x, y,
                       note=f"untrained, {args.paper_examples} random examples of shape {list(shape)} (fewer than the "
                            f"paper's data: 2 CPU cores)")
        prob.piecewise_linear = True  # ReLU, max-pooling / eval-mode BatchNorm
        return prob
    from lossgeom.settings.hessian import HessianSettings
    from lossgeom.stages.hessian import loss_examples

    path = Path(args.results) / name / "model.pt"
    model, ds, saved = load_model(path)
    model = model.double().eval()
    recorded = json.loads((Path(args.results) / name / "hessian" / "summary.json").read_text())["settings"]
    s = HessianSettings.from_mapping(recorded)
    x, y = loss_examples(ds, s.split, s.examples, s.seed)
    note = f"trained; the hessian step's examples ({s.split}, examples={s.examples}, seed={s.seed})"
    if args.examples and args.examples < len(x):
        x, y = x[: args.examples], y[: args.examples]
        note += f", the first {args.examples} of them (--examples)"
    x = x.double()
    y = y.double() if ds.task == "regression" else y
    loss_module = CrossEntropy() if ds.task == "classification" else MeanSquaredError()
    prob = Problem(name, model, loss_function(ds.task), loss_module, x, y, note=note)
    prob.digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    spec = saved["experiment"]["model"]
    prob.piecewise_linear = spec["name"] in ("mlp", "lenet") and spec.get("activation", "relu") == "relu"
    return prob


# ---------------------------------------------------------------------------------------------------------------
# each library's operator, counted


def ours(prob: Problem, **kw) -> HessianOperator:
    return HessianOperator(prob.model, prob.loss, prob.x, prob.y, **kw)


def eigenthings_operator(prob: Problem, kind: str = "hessian"):
    import hessian_eigenthings as he

    batches = [(prob.x, prob.y)]  # one batch: its mean is the mean over all examples
    if kind == "hessian":
        op = he.HessianOperator(prob.model, batches, he.supervised_loss(prob.loss))
    else:
        op = he.GGNOperator(prob.model, batches, he.supervised_forward, he.supervised_loss_of_output(prob.loss))
    return counted_matvec(op)


def counted_matvec(op):
    op.hvps = 0
    inner = op.matvec

    def matvec(v):
        op.hvps += 1
        return inner(v)

    op.matvec = matvec
    return op


def curvlinops_operator(prob: Problem, kind: str = "hessian"):
    from curvlinops import GGNLinearOperator, HessianLinearOperator

    cls = HessianLinearOperator if kind == "hessian" else GGNLinearOperator
    op = cls(prob.model, prob.loss_module, prob.params, [(prob.x, prob.y)], check_deterministic=False)
    op.hvps = 0
    inner = op._matmat

    def matmat(M):  # list of tensors, trailing axis = columns
        op.hvps += M[0].shape[-1]
        return inner(M)

    op._matmat = matmat
    return op


class Shared:
    """One counting operator for the trace estimators of all libraries: lossgeom's H products (the matrix itself for
    a test matrix), exposed as our operator (matvec, matmat, block), eigenthings' CurvatureOperator (size, matvec) and
    a tensor-like for curvlinops' xtrace / hutchpp_trace (``shape``, ``A @ W`` with columns)."""

    def __init__(self, op) -> None:
        self.op = op
        self.n_params = self.size = op.n_params
        self.device, self.dtype = op.device, op.dtype
        self.shape = (op.n_params, op.n_params)
        self.block = getattr(op, "block", 16)

    @property
    def hvps(self) -> int:
        return self.op.hvps

    def matvec(self, v):
        return self.op.matvec(v)

    def matmat(self, rows):
        return self.op.matmat(rows)

    def __matmul__(self, v):
        if v.ndim == 1:
            return self.op.matvec(v)
        return self.op.matmat(v.T.contiguous()).T  # curvlinops: columns (N, k)


# ---------------------------------------------------------------------------------------------------------------
# eigen part


def reference_spectrum(prob: Problem, args) -> dict:
    """Top-10 (descending) and bottom-3 (ascending) reference eigenvalues, the trace when known, and how."""
    if prob.reference is not None:
        return prob.reference
    tick = time.perf_counter()
    if prob.exact is not None:
        values, kind = prob.exact, "known spectrum"
    elif prob.n_params <= args.dense_max:
        cache = Path("benchmarks/out/cache") / f"peers-dense-{getattr(prob, 'digest', prob.name)}-{len(prob.x)}.npy"
        if cache.exists():
            values = np.load(cache)
        else:
            log(f"{prob.name}: dense Hessian, {prob.n_params} products ...")
            H = dense_matrix(ours(prob, block=8, method="forward-over-reverse"))
            values = np.linalg.eigvalsh(H.numpy())[::-1].copy()
            del H
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, values)
        kind = "dense eigvalsh"
    else:
        from scipy.sparse.linalg import eigsh

        op = ours(prob, method="forward-over-reverse")
        lin, v0 = op.to_scipy(), np.random.default_rng(1).standard_normal(prob.n_params)
        log(f"{prob.name}: ARPACK tol 0 reference ...")
        top = np.sort(eigsh(lin, k=10, which="LA", tol=0, v0=v0, return_eigenvectors=False))[::-1]
        bottom = np.sort(eigsh(lin, k=3, which="SA", tol=0, v0=v0, return_eigenvectors=False))
        values = None
        prob.reference = {"kind": f"ARPACK eigsh tol=0 ({op.hvps} products)", "top": top.tolist(),
                          "bottom": bottom.tolist(), "trace": None, "seconds": time.perf_counter() - tick}
        return prob.reference
    prob.reference = {"kind": kind, "top": values[:10].tolist(), "bottom": values[::-1][:3].tolist(),
                      "trace": float(np.sum(values)), "seconds": time.perf_counter() - tick,
                      "norm": float(np.abs(values).max())}
    return prob.reference


def reference_trace(prob: Problem, args) -> tuple[float | None, str]:
    """The exact tr(H) and how: the sum of the known or dense eigenvalues up to ``--dense-max`` parameters; above,
    for a piecewise-linear model, tr(G) from the per-example Jacobians (``gauss_newton_trace``: diag(H) = diag(G)
    there), confirmed on the problem itself at 8 random coordinates (e_j^T H e_j against e_j^T G e_j); else None."""
    if prob.exact is not None or prob.n_params <= args.dense_max:
        ref = reference_spectrum(prob, args)
        return ref["trace"], ref["kind"]
    if not prob.piecewise_linear:
        return None, f"no exact trace: N = {prob.n_params} > --dense-max {args.dense_max}, not piecewise linear"
    tick = time.perf_counter()
    trace = gauss_newton_trace(prob.model, prob.loss, prob.x, prob.y)
    coordinates = torch.randperm(prob.n_params, generator=torch.Generator().manual_seed(0))[:8]
    units = torch.zeros(len(coordinates), prob.n_params, dtype=torch.float64)
    units[torch.arange(len(coordinates)), coordinates] = 1.0
    h = torch.stack([ours(prob, method="double-backward").matvec(u) for u in units])[:, coordinates].diagonal()
    gn = GaussNewtonOperator(prob.model, prob.loss, prob.x, prob.y)
    g = torch.stack([gn.matvec(u) for u in units])[:, coordinates].diagonal()
    difference = float((h - g).abs().max() / h.abs().max())
    if difference > 1e-8:
        raise RuntimeError(f"{prob.name}: diag(H) != diag(G) at random coordinates ({difference:.1e}): not piecewise "
                           "linear, so tr(G) is not tr(H)")
    return trace, (f"tr(G) from per-example Jacobians, {time.perf_counter() - tick:.0f} s (piecewise-linear model: "
                   f"diag(H) = diag(G); at 8 random coordinates they differ by {difference:.0e} relative)")


def errors(prob: Problem, top, bottom, k_top: int, k_bottom: int) -> dict:
    ref = prob.reference
    got = list(np.asarray(top, dtype=float)[:k_top]) + list(np.asarray(bottom, dtype=float)[:k_bottom])
    want = ref["top"][:k_top] + ref["bottom"][:k_bottom]
    if len(got) < len(want) or not np.all(np.isfinite(got)):
        return {"error": math.inf, "error_vs_norm": math.inf}
    got, want = np.asarray(got), np.asarray(want)
    norm = max(abs(ref["top"][0]), abs(ref["bottom"][0]))
    return {"error": float(np.max(np.abs(got - want) / np.abs(want))), "error_vs_norm": float(np.max(np.abs(got - want)) / norm)}


def reach(runs: list[dict]) -> dict:
    """For each target, the cheapest run (fewest products) whose error is at most the target."""
    out = {}
    for target in TARGETS:
        ok = [r for r in runs if r["error"] <= target]
        out[f"{target:g}"] = min(ok, key=lambda r: (r["hvps"], r["seconds"])) if ok else None
    return out


def add_reach(a: dict, b: dict) -> dict:
    """Both ends from two separate runs: products and seconds add, the error is the larger."""
    out = {}
    for key in a:
        if a[key] is None or b[key] is None:
            out[key] = None
        else:
            out[key] = {"hvps": a[key]["hvps"] + b[key]["hvps"], "seconds": a[key]["seconds"] + b[key]["seconds"],
                        "error": max(a[key]["error"], b[key]["error"]), "runs": [a[key], b[key]]}
    return out


def eigen_lossgeom(prob: Problem, args) -> dict:
    """Two sweeps, pooled: the residual stop (``tol``) and the eigenvalue-error stop (``value_tol``, with a residual
    tol too tight to stop first); each run says which (``stop``). The certificates come from the products the run
    kept, so every product is a Lanczos step (``hvps_free`` = steps; ``hvps`` - ``hvps_free`` would be explicit
    residual products, 0 since 566c37d)."""
    # one operator, as the hessian step builds it (auto: the product way is timed once, for the planned products;
    # that timing is not counted and is excluded from the runs' seconds)
    op = ours(prob, expected_products=args.max_products)
    op.matvec(torch.ones(prob.n_params, dtype=torch.float64))
    out = {"product": {"method": op.method, "block": op.block}}
    sweeps = [("tol", {"tol": tol}) for tol in args.lossgeom_tols]
    sweeps += [("value_tol", {"tol": 1e-13, "value_tol": v}) for v in args.lossgeom_value_tols]
    for case, (kt, kb) in CASES.items():
        runs, reached = [], set()
        for stop, knobs in sweeps:
            if stop in reached:
                continue
            op.hvps = 0
            tick = time.perf_counter()
            res = extreme_eigenpairs(op, k_top=kt, k_bottom=kb, max_hvps=args.max_products, **knobs)
            sec = time.perf_counter() - tick
            run = {"stop": stop, **knobs, "hvps": op.hvps, "hvps_free": res.iterations, "seconds": sec,
                   "restarts": res.restarts, "converged": res.converged,
                   "values": res.top.values.tolist() + res.bottom.values.tolist(),
                   **errors(prob, res.top.values, res.bottom.values, kt, kb)}
            runs.append(run)
            log(f"  lossgeom {case} {stop} {knobs[stop]:g}: {op.hvps} products, {sec:.2f} s, error {run['error']:.2e}")
            if run["error"] <= min(TARGETS):
                reached.add(stop)
        out[case] = {"runs": runs, "reach": reach(runs)}
    return out


def eigen_eigenthings(prob: Problem, args) -> dict:
    import hessian_eigenthings as he
    from hessian_eigenthings.algorithms.lanczos import _build_tridiag_matrix

    ends = {}
    for end, k, which in (("top", 10, "LA"), ("bottom", 3, "SA")):
        op = eigenthings_operator(prob)
        limit = min(args.eigenthings_max_m, prob.n_params - 1)
        gen = torch.Generator(device="cpu").manual_seed(0)  # the start vector lanczos(seed=0) draws
        v0 = torch.randn(op.size, dtype=op.dtype, generator=gen)
        first: dict[str, int | None] = {f"{t:g}": None for t in TARGETS}
        size, checked, tick = min(limit, 4 * k + 20), k - 1, time.perf_counter()
        while True:  # runs of 2x the length until every target is reached: the prefixes of a longer run are the same
            td = he.lanczos_tridiagonal(op, v0, size, reorthogonalize=True)
            T = _build_tridiag_matrix(td)
            for m in range(checked + 1, td.iterations + 1):
                theta = torch.linalg.eigvalsh(T[:m, :m]).numpy()
                vals = np.sort(theta)[::-1] if which == "LA" else np.sort(theta)
                err = errors(prob, vals, [], k, 0) if which == "LA" else errors(prob, [], vals, 0, k)
                for t in TARGETS:
                    if first[f"{t:g}"] is None and err["error"] <= t:
                        first[f"{t:g}"] = m
            checked = td.iterations
            if all(v is not None for v in first.values()) or size >= limit or td.iterations < size:
                break
            size = min(2 * size, limit)
        long_seconds = time.perf_counter() - tick
        log(f"  eigenthings {end}: smallest m per target {first} (searched up to m = {td.iterations}, "
            f"{long_seconds:.2f} s)")

        def call(m, reorth):
            op.hvps = 0
            tick = time.perf_counter()
            res = he.lanczos(op, k=k, max_iter=m, which=which, seed=0, reorthogonalize=reorth)
            sec = time.perf_counter() - tick
            vals = res.eigenvalues.numpy()
            err = errors(prob, vals, [], k, 0) if which == "LA" else errors(prob, [], vals, 0, k)
            return {"m": m, "reorthogonalize": reorth, "hvps": op.hvps, "seconds": sec, **err}

        confirmed = {}
        for key, m in first.items():
            confirmed[key] = call(m, True) if m is not None else None
        default = call(min(2 * k, prob.n_params - 1), None)
        log(f"  eigenthings {end}: default m = 2k: error {default['error']:.2e}")
        ends[end] = {"reach": confirmed, "default_m_2k": default, "searched_up_to_m": td.iterations}
    return {"top10": ends["top"], "bottom3": ends["bottom"],
            "both": {"reach": add_reach(ends["top"]["reach"], ends["bottom"]["reach"]),
                     "default_m_2k": {"hvps": ends["top"]["default_m_2k"]["hvps"] + ends["bottom"]["default_m_2k"]["hvps"],
                                      "error": max(ends["top"]["default_m_2k"]["error"],
                                                   ends["bottom"]["default_m_2k"]["error"])}}}


def eigen_scipy(prob: Problem, args) -> dict:
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    ends = {}
    for end, k, which in (("top", 10, "LA"), ("bottom", 3, "SA")):
        runs = []
        for tol in args.scipy_tols:
            op = curvlinops_operator(prob)
            lin = op.to_scipy(dtype=np.float64)
            tick = time.perf_counter()
            converged = True
            try:
                vals = eigsh(lin, k=k, which=which, tol=tol, v0=np.random.default_rng(0).standard_normal(prob.n_params),
                             maxiter=args.arpack_maxiter, return_eigenvectors=False)
            except ArpackNoConvergence as e:
                vals, converged = e.eigenvalues, False
            sec = time.perf_counter() - tick
            vals = np.sort(vals)[::-1] if which == "LA" else np.sort(vals)
            err = errors(prob, vals, [], k, 0) if which == "LA" else errors(prob, [], vals, 0, k)
            runs.append({"tol": tol, "hvps": op.hvps, "seconds": sec, "converged": converged, **err})
            log(f"  scipy {end} tol {tol:g}: {op.hvps} products, {sec:.2f} s, error {err['error']:.2e}")
            if err["error"] <= min(TARGETS):
                break
        ends[end] = {"runs": runs, "reach": reach(runs)}
    return {"top10": ends["top"], "bottom3": ends["bottom"],
            "both": {"reach": add_reach(ends["top"]["reach"], ends["bottom"]["reach"])}}


def eigen_pyhessian(prob: Problem, args) -> dict:
    runs = []
    for tol in args.pyhessian_tols:
        try:
            with pyhessian_products() as (module, count):
                tick = time.perf_counter()
                h = module.hessian(prob.model, prob.loss_module, data=(prob.x, prob.y), cuda=False)
                values, _ = h.eigenvalues(maxIter=args.pyhessian_maxiter, tol=tol, top_n=10)
                sec = time.perf_counter() - tick
        finally:
            for p in prob.model.parameters():
                p.grad = None
        err = errors(prob, np.sort(values)[::-1], [], 10, 0)
        runs.append({"tol": tol, "max_iter": args.pyhessian_maxiter, "hvps": count["hvps"], "seconds": sec, **err})
        log(f"  pyhessian top tol {tol:g}: {count['hvps']} products, {sec:.2f} s, error {err['error']:.2e}")
        if err["error"] <= min(TARGETS):
            break
    return {"top10": {"runs": runs, "reach": reach(runs)},
            "bottom3": {"supported": False, "note": "PyHessian 0.1 computes only the largest eigenvalues"},
            "both": {"supported": False}}


def warm_up(prob: Problem) -> None:
    """One uncounted product per library before any timing (first-use costs of torch.func and autograd)."""
    v = torch.ones(prob.n_params, dtype=torch.float64)
    ours(prob, method="forward-over-reverse").matvec(v)
    ours(prob, method="double-backward").matvec(v)
    eigenthings_operator(prob).matvec(v)
    curvlinops_operator(prob) @ v


def part_eigen(prob: Problem, args) -> dict:
    ref = reference_spectrum(prob, args)
    warm_up(prob)
    log(f"{prob.name}: reference {ref['kind']}: top {ref['top'][:3]}..., bottom {ref['bottom']}")
    out = {"reference": ref}
    for lib, fn in (("lossgeom", eigen_lossgeom), ("eigenthings", eigen_eigenthings), ("scipy", eigen_scipy),
                    ("pyhessian", eigen_pyhessian)):
        if lib not in args.libraries:
            continue
        log(f"{prob.name}: eigen, {lib}")
        out[lib] = fn(prob, args)
    return out


# ---------------------------------------------------------------------------------------------------------------
# trace part


def part_trace(prob: Problem, args) -> dict:
    import hessian_eigenthings as he
    from curvlinops import hutchpp_trace, xtrace

    exact, how = reference_trace(prob, args)
    if exact is None:
        return {"skipped": how}
    log(f"  exact trace {exact:.6g}: {how}")
    # the estimators' accuracy depends on H alone, not on how its products are computed: a test matrix multiplies
    # directly (MatrixOperator), a model through lossgeom's operator
    shared = Shared(MatrixOperator(prob.loss_module.matrix) if isinstance(prob.loss_module, QuadraticLoss)
                    else ours(prob, expected_products=1000))
    estimates: dict[str, dict[int, list[float]]] = {m: {b: [] for b in BUDGETS} for m in
                                                   ("lossgeom_hutchinson", "lossgeom_deflated", "lossgeom_krylov",
                                                    "eigenthings_hutchpp",
                                                    "curvlinops_hutchpp", "curvlinops_xtrace")}
    used: dict[str, dict[int, list[int]]] = {m: {b: [] for b in BUDGETS} for m in estimates}
    # the Lanczos products inside the deflated estimate and krylov_trace, per budget
    lanczos_used: dict[str, dict[int, list[int]]] = {m: {b: [] for b in BUDGETS}
                                                     for m in ("lossgeom_deflated", "lossgeom_krylov")}

    def spend(name, budget, fn):
        start = shared.hvps
        value = float(fn())
        estimates[name][budget].append(value)
        used[name][budget].append(shared.hvps - start)

    for seed in range(args.seeds):
        tick = time.perf_counter()
        start = shared.hvps
        plain = hutchinson_trace(shared, samples=max(BUDGETS), seed=seed)  # the first b probes = a run of b
        for b in BUDGETS:
            estimates["lossgeom_hutchinson"][b].append(float(plain.samples[:b].mean()))
            used["lossgeom_hutchinson"][b].append(b)
        assert shared.hvps - start == max(BUDGETS)
        for b in BUDGETS:
            def deflated(b=b, seed=seed):
                eig = extreme_eigenpairs(shared, k_top=10, k_bottom=0, tol=1e-3, max_hvps=b // 2, seed=seed,
                                         explicit_residuals=False)
                rest = b - eig.hvps
                lanczos_used["lossgeom_deflated"][b].append(eig.hvps)
                est = hutchinson_trace(shared, samples=rest, seed=10_000 + seed,
                                       deflate=(eig.top.vectors, eig.top.values))
                return est.deflated.estimate
            spend("lossgeom_deflated", b, deflated)

            def krylov(b=b, seed=seed):
                est = krylov_trace(shared, b, seed=seed)
                lanczos_used["lossgeom_krylov"][b].append(est.lanczos_steps)
                return est.estimate
            spend("lossgeom_krylov", b, krylov)
            spend("eigenthings_hutchpp", b, lambda b=b, seed=seed: he.hutch_plus_plus(shared, num_matvecs=b, seed=seed).estimate)
            torch.manual_seed(seed)
            spend("curvlinops_hutchpp", b, lambda b=b: hutchpp_trace(shared, num_matvecs=b))
            torch.manual_seed(seed)
            spend("curvlinops_xtrace", b, lambda b=b: xtrace(shared, num_matvecs=b))
        log(f"  trace seed {seed}: {time.perf_counter() - tick:.1f} s")
    out = {"exact": exact, "exact_kind": how, "seeds": args.seeds, "estimators": {}}
    for name in estimates:
        out["estimators"][name] = {}
        for b in BUDGETS:
            e = np.asarray(estimates[name][b])
            out["estimators"][name][str(b)] = {"rms_relative_error": float(np.sqrt(np.mean(((e - exact) / exact) ** 2))),
                                               "products": sorted(set(used[name][b])), "estimates": e.tolist()}
            if name in lanczos_used:
                out["estimators"][name][str(b)]["lanczos_products_mean"] = float(np.mean(lanczos_used[name][b]))
        log(f"  {name}: RMS relative error " + ", ".join(
            f"{b}: {out['estimators'][name][str(b)]['rms_relative_error']:.2e}" for b in BUDGETS))
    return out


# ---------------------------------------------------------------------------------------------------------------
# hvp and ggn parts


def _time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tick)
    return float(np.median(times))


def gradient_seconds(prob: Problem, repeats: int) -> float:
    def gradient():
        prob.model.zero_grad(set_to_none=True)
        prob.loss(prob.model(prob.x), prob.y).backward()
        prob.model.zero_grad(set_to_none=True)
    return _time(gradient, repeats)


def part_hvp(prob: Problem, args) -> dict:
    import hessian_eigenthings as he  # noqa: F401
    import pyhessian  # noqa: F401

    if isinstance(prob.loss_module, QuadraticLoss):
        return {"skipped": "a test matrix: its products are matrix products, the same in every library"}
    out = {}
    for dtype in (torch.float32, torch.float64):
        model = prob.model.to(dtype)
        x = prob.x.to(dtype)
        y = prob.y.to(dtype) if prob.y.is_floating_point() else prob.y
        if isinstance(prob.loss_module, QuadraticLoss):
            prob.loss_module.to(dtype)
        p = Problem(prob.name, model, prob.loss, prob.loss_module, x, y)
        v = torch.randn(p.n_params, dtype=dtype, generator=torch.Generator().manual_seed(0))
        grad_s = gradient_seconds(p, args.repeats)
        row = {"gradient_seconds": grad_s}
        for method in ("forward-over-reverse", "double-backward"):
            op = ours(p, method=method)
            row[f"lossgeom_{method}"] = _time(lambda: op.matvec(v), args.repeats) / grad_s
        op = ours(p, expected_products=100)  # auto times the ways (100 planned products: too few to compile)
        op.matvec(v)
        row["lossgeom_auto"] = _time(lambda: op.matvec(v), args.repeats) / grad_s
        row["lossgeom_auto_choice"] = {"method": op.method, "block": op.block}
        if op.block > 1:  # per vector, in a block
            V = v.repeat(op.block, 1)
            row["lossgeom_auto_per_vector_in_block"] = _time(lambda: op.matmat(V), args.repeats) / op.block / grad_s
        eo = eigenthings_operator(p)
        row["eigenthings"] = _time(lambda: eo.matvec(v), args.repeats) / grad_s
        co = curvlinops_operator(p)
        row["curvlinops"] = _time(lambda: co @ v, args.repeats) / grad_s
        module = sys.modules["pyhessian.hessian"]
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            h = module.hessian(p.model, p.loss_module, data=(p.x, p.y), cuda=False)
            vs = [t.view_as(q) for t, q in zip(torch.split(v, [q.numel() for q in h.params]), h.params)]
            row["pyhessian"] = _time(lambda: sys.modules["pyhessian.utils"].hessian_vector_product(h.gradsH, h.params, vs),
                                     args.repeats) / grad_s
            row["pyhessian_note"] = "a backward pass through the gradient graph PyHessian builds once at construction"
        finally:
            torch.set_default_dtype(previous)
            for q in p.model.parameters():
                q.grad = None
        out[str(dtype).replace("torch.", "")] = row
        log(f"  hvp {dtype}: " + ", ".join(f"{k} {v_:.2f}" for k, v_ in row.items() if isinstance(v_, float)))
    prob.model.double()
    if isinstance(prob.loss_module, QuadraticLoss):
        prob.loss_module.double()
    return out


def part_ggn(prob: Problem, args) -> dict:
    if isinstance(prob.loss_module, QuadraticLoss):
        return {"skipped": "a quadratic in the parameters: G is not defined apart from H"}
    v = torch.randn(prob.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    grad_s = gradient_seconds(prob, args.repeats)
    ours_op = GaussNewtonOperator(prob.model, prob.loss, prob.x, prob.y)
    eo = eigenthings_operator(prob, "ggn")
    co = curvlinops_operator(prob, "ggn")
    results = {"lossgeom": ours_op.matvec(v), "eigenthings": eo.matvec(v), "curvlinops": (co @ v).reshape(-1)}
    scale = float(results["lossgeom"].norm())
    row = {"gradient_seconds": grad_s,
           "lossgeom": _time(lambda: ours_op.matvec(v), args.repeats) / grad_s,
           "eigenthings": _time(lambda: eo.matvec(v), args.repeats) / grad_s,
           "curvlinops": _time(lambda: co @ v, args.repeats) / grad_s,
           "max_relative_difference": max(float((results[a] - results["lossgeom"]).norm()) / scale
                                          for a in ("eigenthings", "curvlinops")),
           "lossgeom_output_method": ours_op.output_method}
    log("  ggn: " + ", ".join(f"{k} {v_:.3g}" for k, v_ in row.items() if isinstance(v_, float)))
    return row


PARTS = {"eigen": part_eigen, "trace": part_trace, "hvp": part_hvp, "ggn": part_ggn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=list(PARTS), action="append", help="repeatable; default: all parts")
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"experiments, 'matrices', {MATRICES}, 'lenet5', 'resnet20' (default: all)")
    parser.add_argument("--results", default="results", help="directory with <experiment>/model.pt")
    parser.add_argument("--examples", type=int, default=0, help="cap the examples of a trained model (0: all)")
    parser.add_argument("--paper-examples", type=int, default=128)
    parser.add_argument("--matrix-size", type=int, default=2000)
    parser.add_argument("--dense-max", type=int, default=10000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-products", type=int, default=3000, help="lossgeom's max_hvps per run")
    parser.add_argument("--eigenthings-max-m", type=int, default=400)
    parser.add_argument("--arpack-maxiter", type=int, default=300)
    parser.add_argument("--pyhessian-maxiter", type=int, default=300)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small settings for a smoke test (matrices of N = 500, "
                        "3 seeds, 2 repeats, coarse sweeps)")
    parser.add_argument("--out-dir", default="benchmarks/out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # PyHessian calls backward(create_graph=True); its parameters' .grad are reset after each use
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    args.lossgeom_tols = [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10]
    args.lossgeom_value_tols = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10, 1e-12]
    args.scipy_tols = [1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8, 0.0]
    args.pyhessian_tols = [1e-3, 1e-4, 1e-6, 1e-8, 1e-10]
    if args.quick:
        args.matrix_size, args.seeds, args.repeats = 500, 3, 2
        args.lossgeom_tols, args.scipy_tols, args.pyhessian_tols = [1e-3, 1e-8], [1e-3, 0.0], [1e-3]
        args.lossgeom_value_tols = [1e-6, 1e-12]
        args.pyhessian_maxiter, args.eigenthings_max_m = 50, 120
        args.models = args.models or ["matrices"]
    models = args.models or ["matrices", *DEFAULT_MODELS, "lenet5", "resnet20"]
    names = [m for name in models for m in (MATRICES if name == "matrices" else [name])]
    parts = args.part or list(PARTS)
    settings = {k: v for k, v in vars(args).items() if k not in ("part", "models")}
    for part in parts:
        path = Path(args.out_dir) / f"peers-{part}{'-quick' if args.quick else ''}.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        results = previous.get("results", {})
        for name in names:
            if name == "resnet20" and part == "trace":
                continue  # ResNet-20 (270k parameters): 20 seeds x 2,850 products at ~0.5-1 s each, see the text
            log(f"== {part}: {name}")
            prob = load_problem(name, args)
            tick = time.perf_counter()
            record = PARTS[part](prob, args)
            results[name] = {"problem": prob.describe(), "seconds": time.perf_counter() - tick,
                             "torch_threads": torch.get_num_threads(), "settings": settings, **record}
            # written after every model: a long part can be stopped and rerun for the rest
            write_result(path, {"benchmark": f"peers-{part}", "machine": machine(torch.device("cpu")),
                                "settings": settings, "versions": versions(), "results": results})


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "scipy", "hessian-eigenthings", "curvlinops-for-pytorch", "pyhessian"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    import lossgeom

    out["lossgeom_source"] = str(Path(lossgeom.__file__).parent)  # a snapshot of a commit, or the working tree
    return out


if __name__ == "__main__":
    main()
