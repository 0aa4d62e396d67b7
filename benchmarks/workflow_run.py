"""The whole workflow from an empty results/: wall time, where the time went, and how well the cores were used.

Runs ``snakemake --cores N`` with a config in a fresh working directory (the repository's results/ are not
touched), then reads every job's benchmark file: wall seconds and CPU seconds per job and per rule, and the
run's efficiency, sum of the jobs' CPU time / (wall time x cores) (1.0: every core busy computing all along).
Also gathers what the README quotes from the same run: verdict counts and, per model, the Hutchinson trace
plain vs deflated (the variance ratio is how many times fewer probes give the same standard error).

    uv run python benchmarks/workflow_run.py                          # config.yaml on 2 cores
    uv run python benchmarks/workflow_run.py --configfile configs/tiny.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def job_table(results: Path) -> pd.DataFrame:
    """One row per job: its rule's benchmark file, wall seconds, CPU seconds."""
    rows = []
    for path in sorted(results.rglob("*benchmark*.tsv")):
        record = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"file": str(path.relative_to(results)), "wall_s": float(record["s"]),
                     "cpu_s": float(record["cpu_time"])})
    return pd.DataFrame(rows)


def trace_deflation(results: Path) -> dict[str, dict]:
    """Per model: plain and deflated Hutchinson trace from the hessian step, and the share of the top eigenvalues."""
    out = {}
    for path in sorted(results.glob("*/hessian/summary.json")):
        s = json.loads(path.read_text())
        trace, deflated = s["trace"], s["trace"].get("deflated") or {}
        out[path.parts[-3]] = {
            "plain": trace["hutchinson"], "plain_se": trace["standard_error"], "samples": trace["samples"],
            "deflated": deflated.get("estimate"), "deflated_se": deflated.get("standard_error"),
            "variance_ratio": deflated.get("variance_ratio"),
            "top_share_of_trace": sum(s["eigen"]["top"]["values"]) / trace["hutchinson"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=str(REPO / "config.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", help="run here (default: a temporary folder)")
    parser.add_argument("--out", help="JSON to write (default benchmarks/out/workflow_run-<config>.json)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="lossgeom_run_"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", str(args.cores),
           "--configfile", str(Path(args.configfile).resolve()), "-d", str(work)]
    tick = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - tick
    if done.returncode != 0:
        sys.exit(done.stderr[-4000:])
    jobs = job_table(work / "results")
    jobs["rule"] = jobs["file"].str.replace(r"[^/]*/", "", regex=True)  # benchmark file name: per rule kind
    checks = pd.read_csv(work / "results/checks/summary.csv")
    payload = {
        "config": args.configfile, "cores": args.cores, "workdir": str(work), "wall_s": wall,
        "jobs": len(jobs), "job_wall_s": float(jobs["wall_s"].sum()), "job_cpu_s": float(jobs["cpu_s"].sum()),
        "efficiency": float(jobs["cpu_s"].sum() / (wall * args.cores)),
        "occupancy": float(jobs["wall_s"].sum() / (wall * args.cores)),
        "slowest_jobs": jobs.sort_values("wall_s", ascending=False).head(12).to_dict("records"),
        "verdicts": checks["verdict"].value_counts().to_dict(), "rows": len(checks),
        "trace_deflation": trace_deflation(work / "results"),
    }
    name = Path(args.configfile).stem
    write_result(args.out or REPO / f"benchmarks/out/workflow_run-{name}.json", payload)
    print(json.dumps({k: payload[k] for k in ("wall_s", "jobs", "job_cpu_s", "efficiency", "verdicts")}, indent=1))


if __name__ == "__main__":
    main()
