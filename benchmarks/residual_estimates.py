"""Can the free Lanczos residual estimate replace the explicit one? Both, on every trained model of a run.

For a Ritz pair (theta, y = Q s) of a Lanczos basis with full reorthogonalization, H y - theta y = beta_m s_m q_{m+1},
so ||H y - theta y|| = beta_m |s_m| costs nothing; the explicit residual recomputes H y (one product per pair).
With exact arithmetic they agree; in floating point the estimate drifts when the basis loses orthogonality.
This runs the hessian step's eigenpair search (top and bottom) on each model of a finished run in float32 and
float64 and reports, per pair, the estimate, the explicit residual and their gap relative to |lambda_max|.

    uv run python benchmarks/residual_estimates.py --results results      # after `snakemake --cores all`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from lossgeom.engine.hessian import HessianOperator  # noqa: E402
from lossgeom.engine.lanczos import extreme_eigenpairs  # noqa: E402
from lossgeom.problems.losses import loss_function  # noqa: E402
from lossgeom.training.checkpoints import load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(REPO / "results"))
    parser.add_argument("--k-top", type=int, default=10)
    parser.add_argument("--k-bottom", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/residual_estimates.json"))
    args = parser.parse_args()
    rows = []
    for model_file in sorted(Path(args.results).glob("*/model.pt")):
        model, ds, _ = load_model(model_file)
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            op = HessianOperator(model, loss_function(ds.task), ds.x_train, ds.y_train, batch_size=4096, dtype=dtype)
            eig = extreme_eigenpairs(op, k_top=args.k_top, k_bottom=args.k_bottom, tol=args.tol, seed=0)
            for end, pairs in (("top", eig.top), ("bottom", eig.bottom)):
                for i in range(len(pairs.values)):
                    estimate, explicit = float(pairs.residual_estimates[i]), float(pairs.residuals[i])
                    rows.append({"experiment": model_file.parent.name, "dtype": dtype_name, "end": end, "index": i,
                                 "value": float(pairs.values[i]), "estimate": estimate, "explicit": explicit,
                                 "gap_over_scale": abs(estimate - explicit) / eig.scale,
                                 "explicit_over_scale": explicit / eig.scale, "estimate_over_scale": estimate / eig.scale,
                                 "hvps": eig.hvps, "restarts": eig.restarts})
            worst = max(r["gap_over_scale"] for r in rows
                        if r["experiment"] == model_file.parent.name and r["dtype"] == dtype_name)
            print(f"{model_file.parent.name} {dtype_name}: {eig.hvps} products, {eig.restarts} restarts, "
                  f"max |estimate - explicit| / |lambda_max| = {worst:.2g}", flush=True)
    write_result(args.out, {"machine": machine(torch.device("cpu")), "tol": args.tol, "pairs": rows})


if __name__ == "__main__":
    main()
