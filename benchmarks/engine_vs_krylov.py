"""The engine against the Krylov minimum (eigenpairs) and against XTrace (trace), before and after issue 28 item 2.

Eigenpairs (``--part eigen``), per case: dense test matrices with known spectra (lossgeom.MatrixOperator:
well-separated outliers, a clustered top, a negative end just below a near-zero cluster) and the trained models of
a run (loaded with lossgeom.load_model, the examples the hessian step used):
  - ``before``: the engine at commit 06fafcb (loaded from git), ``after``: this tree; top-10 at tol 1e-6, and both ends
    (10 + 3) at the workflow's settings (tol 1e-5, the model's dtype);
  - ``krylov_minimum``: one Lanczos run from the same start, the first step m at which the top-10 Ritz values are all
    within the target of the reference (an oracle stop: the fewest products any stop on this Krylov space can use),
    against ``after`` with ``value_tol`` = target and ``before`` with tol = target, for targets 1e-3, 1e-6, 1e-10
    (relative to |lambda_max|);
  - references: dense eigh (matrices), or this engine at tol 1e-11 in float64 with certified residuals (models).
Reuse (``--part reuse``): the hessian step's own Hutchinson probes deflated by its 13 eigenvectors (as now) or by
the eigenpair run's whole Krylov basis (Q, T), at no extra product.
Trace (``--part trace``): at equal products (60, 150, 300), over seeds, plain Hutchinson, curvlinops' XTrace (its own
function on a torch tensor or our operator) and krylov_trace (Lanczos deflation + XTrace on the rest). RMS error is
against the exact trace where ``--exact`` computes it (N products), and the spread over seeds otherwise (the
estimators are unbiased, so the spread is the RMS error).

    uv run python benchmarks/engine_vs_krylov.py --part eigen --results /tmp/after/results
    uv run python benchmarks/engine_vs_krylov.py --part trace --results /tmp/after/results --models digits_mlp
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

import lossgeom  # noqa: E402
from lossgeom.engine.hessian import HessianOperator  # noqa: E402
from lossgeom.engine.lanczos import KrylovBasis, MatrixOperator, _random_unit, extreme_eigenpairs  # noqa: E402
from lossgeom.engine.trace import exact_trace, hutchinson_trace, krylov_trace  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.stages.hessian import loss_examples  # noqa: E402
from lossgeom.settings.hessian import HessianSettings  # noqa: E402
from lossgeom.theory.spectra import known_spectrum  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BEFORE = "06fafcb"  # the last commit before the products were kept
MODELS = ("digits_mlp", "digits_mlp_tanh", "sines_mlp", "digits_cnn", "mnist1d_cnn")
TARGETS = (1e-3, 1e-6, 1e-10)


def engine_before():
    """extreme_eigenpairs as it was at BEFORE, imported from git as a module of lossgeom.engine."""
    source = subprocess.run(["git", "show", f"{BEFORE}:src/lossgeom/engine/lanczos.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    path = REPO / "benchmarks/out/cache/lanczos_before.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("lossgeom.engine._lanczos_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.extreme_eigenpairs


def spectrum(kind: str, n: int = 3000, seed: int = 0):
    """(A, values): the test matrices of tests/unit/engine/test_lanczos.py at n = 3000 (theory.spectra.known_spectrum)."""
    A, values, _ = known_spectrum(kind, n, seed)
    return A, values


def model_operator(results: Path, name: str, dtype: torch.dtype):
    model, ds, _ = lossgeom.load_model(results / name / "model.pt")
    summary = json.loads((results / name / "hessian/summary.json").read_text())
    settings = HessianSettings.from_mapping(summary["settings"])
    x, y = loss_examples(ds, settings.split, settings.examples, settings.seed)
    # the product method and block the hessian step chose (auto) for this model, not a new timing
    op = HessianOperator(model, loss_function(ds.task), x, y, batch_size=settings.batch_size, dtype=dtype,
                         method=summary["hvp_method"], block=summary["hvp_block"])
    return op, settings


def timed(fn, op):
    op.hvps = 0
    tick = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - tick, op.hvps


def krylov_minimum(op, reference_top: np.ndarray, scale: float, steps: int, seed: int = 0) -> dict:
    """First Lanczos step (same start as extreme_eigenpairs) whose top-k Ritz values are within each target."""
    k = len(reference_top)
    basis = KrylovBasis(op, min(steps, op.n_params))
    basis.append(_random_unit(op.n_params, seed, op.device, op.dtype))
    first = {}
    while True:
        beta = basis.expand()
        theta, _ = basis.ritz()
        if basis.size >= k:
            error = float(np.abs(theta.flip(0)[:k].numpy() - reference_top).max()) / scale
            for target in TARGETS:
                if target not in first and error <= target:
                    first[target] = basis.size
        if len(first) == len(TARGETS) or basis.size == basis.Q.shape[0] or beta == 0:
            break
        basis.append(basis.residual)
    return {str(t): first.get(t) for t in TARGETS}


def top_error(pairs, reference_top, scale) -> float:
    return float(np.abs(pairs.values.numpy() - reference_top[: len(pairs.values)]).max()) / scale


def eigen_case(name, op, reference, scale, before, workflow_tol, rows_dtype) -> dict:
    reference_top = reference[::-1][:10].copy()
    row = {"case": name, "n_parameters": op.n_params, "dtype": str(op.dtype).replace("torch.", ""), "scale": scale}
    for label, fn in (("before", before), ("after", extreme_eigenpairs)):
        res, sec, hvps = timed(lambda fn=fn: fn(op, k_top=10, k_bottom=0, tol=1e-6, max_basis=150, max_hvps=3000,
                                                 seed=0), op)
        row[f"top10_tol1e-6_{label}"] = {"hvps": hvps, "iterations": res.iterations, "seconds": sec,
                                         "max_error": top_error(res.top, reference_top, scale),
                                         "max_residual": float(res.top.residuals.max()) / res.scale}
    row["krylov_minimum_top10"] = krylov_minimum(op, reference_top, scale, 400)
    for target in TARGETS:
        res, sec, hvps = timed(lambda: extreme_eigenpairs(op, k_top=10, k_bottom=0, tol=1e-14, value_tol=target,
                                                          max_basis=150, max_hvps=3000, seed=0), op)
        row[f"top10_value{target:g}_after"] = {"hvps": hvps, "seconds": sec, "converged": res.converged,
                                               "max_error": top_error(res.top, reference_top, scale),
                                               "max_error_bound": float(res.top.error_bounds.max()) / res.scale}
        res, sec, hvps = timed(lambda: before(op, k_top=10, k_bottom=0, tol=target, max_basis=150, max_hvps=3000,
                                              seed=0), op)
        row[f"top10_value{target:g}_before"] = {"hvps": hvps, "seconds": sec, "converged": res.converged,
                                                "max_error": top_error(res.top, reference_top, scale)}
    if workflow_tol is not None:  # both ends at the workflow's settings, in the workflow's dtype
        wop, settings = workflow_tol
        for label, fn in (("before", before), ("after", extreme_eigenpairs)):
            res, sec, hvps = timed(lambda fn=fn: fn(wop, k_top=settings.k_top, k_bottom=settings.k_bottom,
                                                     tol=settings.tol, max_basis=settings.max_basis,
                                                     max_hvps=settings.max_hvps, seed=settings.seed), wop)
            row[f"workflow_{label}"] = {
                "dtype": settings.dtype, "tol": settings.tol, "hvps": hvps, "iterations": res.iterations,
                "restarts": res.restarts, "seconds": sec, "converged": res.converged,
                "top": res.top.values.tolist(), "bottom": res.bottom.values.tolist(),
                "max_residual": float(max(res.top.residuals.max(), res.bottom.residuals.max())) / res.scale}
    print(name, json.dumps({k: v for k, v in row.items() if k not in ("case",)}, default=str)[:1500], flush=True)
    return row


def part_eigen(args, before) -> list:
    rows = []
    for kind in args.matrices:
        A, values = spectrum(kind)
        scale = float(values.abs().max())
        rows.append(eigen_case(f"matrix:{kind}", MatrixOperator(A), values.numpy(), scale, before, None, None))
    for name in args.models:
        op64, settings = model_operator(Path(args.results), name, torch.float64)
        wop, _ = model_operator(Path(args.results), name, getattr(torch, settings.dtype))
        if name in args.workflow_only:
            row = {"case": name, "n_parameters": op64.n_params}
            for label, fn in (("before", before), ("after", extreme_eigenpairs)):
                res, sec, hvps = timed(lambda fn=fn: fn(wop, k_top=settings.k_top, k_bottom=settings.k_bottom,
                                                         tol=settings.tol, max_basis=settings.max_basis,
                                                         max_hvps=settings.max_hvps, seed=settings.seed), wop)
                row[f"workflow_{label}"] = {"dtype": settings.dtype, "tol": settings.tol, "hvps": hvps,
                                            "iterations": res.iterations, "seconds": sec, "converged": res.converged,
                                            "top": res.top.values.tolist(), "bottom": res.bottom.values.tolist()}
            print(name, row, flush=True)
            rows.append(row)
            continue
        tight = extreme_eigenpairs(op64, k_top=10, k_bottom=3, tol=1e-11, max_basis=200, max_hvps=5000, seed=1)
        reference = np.concatenate([tight.bottom.values.numpy(), tight.top.values.numpy()[::-1]])
        scale = tight.scale
        row = eigen_case(name, op64, reference, scale, before, (wop, settings), None)
        row["reference"] = {"kind": "lossgeom tol 1e-11 float64, seed 1", "hvps": tight.hvps,
                            "max_residual": float(max(tight.top.residuals.max(), tight.bottom.residuals.max())) / scale}
        rows.append(row)
    return rows


def part_trace(args) -> list:
    from curvlinops import xtrace

    class Columns:
        """Our operator for curvlinops' xtrace: A @ W on columns (N, k), through apply_rows (counted)."""

        def __init__(self, op):
            self.op, self.shape, self.device, self.dtype = op, (op.n_params, op.n_params), op.device, op.dtype

        def __matmul__(self, W):
            from lossgeom.engine.operator import apply_rows
            return apply_rows(self.op, W.T.contiguous()).T

    rows = []
    for name in args.models:
        op, settings = model_operator(Path(args.results), name, getattr(torch, args.trace_dtype))
        exact = None
        if name in args.exact:
            exact, sec, _ = timed(lambda: exact_trace(op), op)
            print(f"{name}: exact trace {exact:.8g} ({sec:.0f} s)", flush=True)
        for budget in args.budgets:
            out = {"case": name, "n_parameters": op.n_params, "dtype": args.trace_dtype, "budget": budget, "exact": exact}
            for method in args.methods:
                estimates, seconds, products, steps = [], [], [], []
                for seed in range(args.seeds):
                    if method == "hutchinson":
                        value, sec, hvps = timed(lambda: hutchinson_trace(op, budget, seed=seed).estimate, op)
                    elif method == "xtrace":
                        torch.manual_seed(seed)
                        value, sec, hvps = timed(lambda: float(xtrace(Columns(op), budget)), op)
                    else:
                        t, sec, hvps = timed(lambda: krylov_trace(op, budget, seed=seed), op)
                        value = t.estimate
                        steps.append(t.lanczos_steps)
                    estimates.append(value)
                    seconds.append(sec)
                    products.append(hvps)
                e = np.asarray(estimates)
                out[method] = {"mean": float(e.mean()), "std": float(e.std(ddof=1)), "seconds_median": float(np.median(seconds)),
                               "products": sorted(set(products)), "estimates": e.tolist(),
                               "rms_relative": (float(np.sqrt(np.mean((e - exact) ** 2)) / abs(exact)) if exact is not None
                                                else float(e.std(ddof=1) / abs(e.mean()))),
                               "rms_against": "exact" if exact is not None else "spread over seeds / |mean|",
                               **({"lanczos_steps": steps} if steps else {})}
            print(name, budget, {m: (round(out[m]["rms_relative"], 5), out[m]["seconds_median"]) for m in args.methods},
                  flush=True)
            rows.append(out)
    return rows


def part_reuse(args) -> list:
    """What the hessian step could get for free: its eigenpair run (workflow settings, keep_basis) and its Hutchinson
    probes deflated by the 13 eigenvectors (as now) or by the run's whole Krylov basis (Q, T), the same probes."""
    rows = []
    for name in args.models:
        op, settings = model_operator(Path(args.results), name, getattr(torch, args.trace_dtype))
        exact = None
        if name in args.exact:
            exact = exact_trace(op)
        for seed in range(args.seeds):
            eig, sec_eig, hvps_eig = timed(lambda: extreme_eigenpairs(
                op, k_top=settings.k_top, k_bottom=settings.k_bottom, tol=settings.tol, max_basis=settings.max_basis,
                max_hvps=settings.max_hvps, seed=seed, keep_basis=True), op)
            vectors = torch.cat([eig.top.vectors, eig.bottom.vectors])
            values = torch.cat([eig.top.values, eig.bottom.values])
            pairs = hutchinson_trace(op, settings.hutchinson_samples, seed=seed + 1, deflate=(vectors, values))
            basis = hutchinson_trace(op, settings.hutchinson_samples, seed=seed + 1, deflate=(eig.basis.Q, eig.basis.T))
            row = {"case": name, "seed": seed, "exact": exact, "eigen_hvps": hvps_eig, "probes": settings.hutchinson_samples,
                   "basis_size": len(eig.basis.Q), "plain": {"estimate": pairs.estimate, "se": pairs.standard_error},
                   "deflated_eigenpairs": {"estimate": pairs.deflated.estimate, "se": pairs.deflated.standard_error},
                   "deflated_basis": {"estimate": basis.deflated.estimate, "se": basis.deflated.standard_error}}
            print(name, seed, {k: v for k, v in row.items() if isinstance(v, dict)}, flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("eigen", "trace", "reuse"), required=True)
    parser.add_argument("--results", default=str(REPO / "results"))
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--matrices", nargs="*", default=["outliers", "clustered", "negative_end"])
    parser.add_argument("--workflow-only", nargs="*", default=[], help="models measured at the workflow settings only")
    parser.add_argument("--budgets", nargs="+", type=int, default=[60, 150, 300])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=["hutchinson", "xtrace", "krylov_trace"])
    parser.add_argument("--exact", nargs="*", default=[], help="models whose exact trace is computed (N products)")
    parser.add_argument("--trace-dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="1 by default: on a shared machine more threads are slower")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {"eigen": lambda: part_eigen(args, engine_before()), "trace": lambda: part_trace(args),
            "reuse": lambda: part_reuse(args)}[args.part]()
    out = args.out or str(REPO / f"benchmarks/out/engine_vs_krylov-{args.part}.json")
    write_result(out, {"benchmark": f"engine_vs_krylov-{args.part}", "machine": machine(torch.device("cpu")),
                       "before_commit": BEFORE, "rows": rows})


if __name__ == "__main__":
    main()
