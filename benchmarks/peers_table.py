"""The docs' peer tables (docs/benchmarks.md, section "Peers") from benchmarks/out/peers-*.json, so that no number is
typed by hand. Prints the Markdown; ``--write`` replaces the text between the markers in docs/benchmarks.md.

Where a peer needs fewer products (or less time) than lossgeom for a target, the row says so and why, from the
measurements themselves: lossgeom's products split into Lanczos steps and explicit residual products, and the
tolerance step of its sweep just above the one that reached the target.

    uv run python benchmarks/peers_table.py --write
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

START, END = "<!-- peers-table:start (benchmarks/peers_table.py writes this part) -->", "<!-- peers-table:end -->"
TARGETS = ("0.001", "1e-06", "1e-10")
PEERS = (("eigenthings", "eigenthings `lanczos` (smallest m)"), ("scipy", "SciPy `eigsh` (curvlinops)"),
         ("pyhessian", "PyHessian"))
CASE_TITLES = {"top10": "top-10", "bottom3": "bottom-3", "both": "both ends (10 + 3)"}


def load(out: Path, part: str, suffix: str = "") -> dict | None:
    path = out / f"peers-{part}{suffix}.json"
    return json.loads(path.read_text()) if path.exists() else None


def cell(r: dict | None, key: str = "hvps") -> str:
    if r is None:
        return "—"
    return f"{r[key]:.2f}" if key == "seconds" else str(r[key])


def triple(reach: dict | None, key: str = "hvps") -> str:
    if reach is None:
        return "n/a"
    return " / ".join(cell(reach.get(t), key) for t in TARGETS)


def wanted(reference: dict, case: str) -> list[float]:
    k_top, k_bottom = {"top10": (10, 0), "bottom3": (0, 3), "both": (10, 3)}[case]
    return reference["top"][:k_top] + reference["bottom"][:k_bottom]


def lossgeom_reason(case: dict, targets: list[str], peer_best: dict[str, int], values: list[float],
                    norm: float) -> str:
    """Why lossgeom needed more products than the best peer at ``targets``, from its own sweep: its products split
    into Lanczos steps and explicit-residual products, and what the looser tolerances of its sweep returned."""
    reach = case["reach"]
    explicit = any(reach[t]["hvps"] > reach[t]["hvps_free"] for t in targets)
    knobs = " / ".join(f"{reach[t].get('stop', 'tol')} {reach[t][reach[t].get('stop', 'tol')]:g}" for t in targets)
    if explicit:
        split = " / ".join(f"{reach[t]['hvps_free']} + {reach[t]['hvps'] - reach[t]['hvps_free']}" for t in targets)
        notes = [f"lossgeom's products = Lanczos steps + explicit residuals: {split} ({knobs})"]
        if all(reach[t]["hvps_free"] <= peer_best[t] for t in targets):
            notes.append("without the explicit residuals it would be level or ahead")
    else:
        gap = " / ".join(f"{reach[t]['hvps'] - peer_best[t]:+d}" for t in targets)
        notes = [f"every product is a Lanczos step ({knobs}); {gap} steps against the best peer, whose knob (a fixed "
                 "Krylov size, or ARPACK's tol) was chosen knowing the answer, while lossgeom stops on its own "
                 "certificate (residual or eigenvalue-error bound) after the step that proves the target"]
    smallest = min(abs(v) for v in values) / norm
    missed = [r for r in case["runs"] if r["error"] >= 0.1 and r.get("converged") and r.get("stop", "tol") == "tol"]
    if missed:
        r = max(missed, key=lambda r: r["tol"])
        bound = r["tol"] / smallest  # a Ritz value lies within its residual (<= tol ||H||) of an eigenvalue
        what = (f"beyond the residual bound tol ||H|| / |lambda| = {bound:.1g}: a wanted eigenvalue was missed (pairs "
                "with small residuals that are not the wanted extreme ones)" if r["error"] > bound else
                f"within the residual bound tol ||H|| / |lambda| = {bound:.1g}: the residual is measured against "
                f"||H||, and the smallest wanted |lambda| is {smallest:.1g} ||H||")
        notes.append(f"at tol {r['tol']:g} it stopped after {r['hvps']} products, converged by its residuals, with a "
                     f"relative error of {r['error']:.1g}, {what}; so only a tighter tol reached the targets")
    far = [t for t in targets if reach[t]["error"] < float(t) / 100 and not missed and reach[t].get("stop", "tol") == "tol"]
    if far:
        notes.append("at the cheapest tol that reached " + ", ".join(far) + " the error was already far below it "
                     "(" + ", ".join(f"{reach[t]['error']:.0e}" for t in far) + "): the stop is on residuals, and the "
                     "eigenvalue error falls like residual² / gap, so the sweep's steps of 10 overshoot")
    return "; ".join(notes)


def eigen_section(data: dict) -> list[str]:
    lines = []
    res = data["results"]
    ahead = []
    for case, title in CASE_TITLES.items():
        lines += [f"**{title}**: products to reach a relative eigenvalue error of 1e-3 / 1e-6 / 1e-10 (— not reached "
                  "within the sweep; n/a: no routine), and below them the wall seconds at the same targets", "",
                  "| problem | N | lossgeom | " + " | ".join(t for _, t in PEERS) + " | eigenthings m = 2k: error |",
                  "|---|---|---|" + "---|" * len(PEERS) + "---|"]
        for name, r in res.items():
            if case not in r.get("lossgeom", {}):
                continue
            ours = r["lossgeom"][case]["reach"]
            row = [name, str(r["problem"]["n_parameters"]), triple(ours)]
            secs = ["", "", triple(ours, "seconds")]
            by_products, by_time = {}, {}
            for peer, _ in PEERS:
                p = r.get(peer, {}).get(case, {})
                reach = p.get("reach") if p.get("supported", True) else None
                row.append(triple(reach))
                secs.append(triple(reach, "seconds"))
                for t in TARGETS:
                    if not (reach and reach.get(t) and ours.get(t)):
                        continue
                    if reach[t]["hvps"] < ours[t]["hvps"]:
                        by_products.setdefault(t, []).append((peer, reach[t]["hvps"]))
                    elif reach[t]["seconds"] < ours[t]["seconds"]:
                        by_time.setdefault(t, []).append((peer, reach[t]["seconds"]))
            if by_products:
                targets = [t for t in TARGETS if t in by_products]
                best = {t: min(h for _, h in by_products[t]) for t in targets}
                who = "; ".join(f"{t}: " + ", ".join(f"{peer} {h}" for peer, h in by_products[t]) + f" vs {ours[t]['hvps']}"
                                for t in targets)
                ref = r["reference"]
                norm = ref.get("norm") or max(abs(ref["top"][0]), abs(ref["bottom"][0]))
                why = lossgeom_reason(r["lossgeom"][case], targets, best, wanted(ref, case), norm)
                ahead.append(f"- {name}, {title}, products ({who}). Why: {why}")
            if by_time:
                targets = [t for t in TARGETS if t in by_time]
                who = "; ".join(f"{t}: " + ", ".join(f"{peer} {sec:.2f} s" for peer, sec in by_time[t])
                                + f" vs {ours[t]['seconds']:.2f} s" for t in targets)
                per = " / ".join(f"{1e3 * ours[t]['seconds'] / ours[t]['hvps']:.1f}" for t in targets)
                ahead.append(f"- {name}, {title}, wall time with fewer products for lossgeom ({who}). Why: lossgeom "
                             f"spent {per} ms per product here (Lanczos with full reorthogonalization, restarts and "
                             "its product; see the product table for the product alone)")
            default = r.get("eigenthings", {}).get(case, {}).get("default_m_2k")
            row.append(f"{default['error']:.1e} ({default['hvps']} products)" if default else "n/a")
            secs.append("")
            lines.append("| " + " | ".join(row) + " |")
            lines.append("| " + " | ".join(secs) + " |")
        lines.append("")
    lines += ["Where a peer is ahead of lossgeom, and the measured reason:", ""]
    lines += ahead or ["- nowhere"]
    lines.append("")
    return lines


def rms_and_se(record: dict, exact: float) -> tuple[float, float]:
    """RMS relative error over the seeds and its standard error (delta method: SE(mean e^2) / (2 RMS))."""
    e = (np.asarray(record["estimates"]) - exact) / exact
    msq = float(np.mean(e**2))
    rms = math.sqrt(msq)
    se = float(np.std(e**2, ddof=1) / math.sqrt(len(e))) / (2 * rms) if rms > 0 else 0.0
    return rms, se


def trace_section(data: dict) -> list[str]:
    names = ["lossgeom_hutchinson", "lossgeom_deflated", "lossgeom_krylov", "eigenthings_hutchpp", "curvlinops_hutchpp",
             "curvlinops_xtrace"]
    titles = ["lossgeom Hutchinson", "lossgeom deflated", "lossgeom `krylov_trace`", "eigenthings Hutch++",
              "curvlinops Hutch++", "curvlinops XTrace"]
    ours_names = [n for n in names if n.startswith("lossgeom")]
    lines = [f"RMS relative error of tr(H) over {data['settings']['seeds']} seeds at 60 / 150 / 300 products (best "
             "in bold; the deflated estimate and `krylov_trace` count their Lanczos products):", "",
             "| problem | " + " | ".join(titles) + " |", "|---|" + "---|" * len(names)]
    ahead = []
    for name, r in data["results"].items():
        if "estimators" not in r:
            continue
        est = r["estimators"]
        cells = []
        for n in names:
            vals = []
            for b in ("60", "150", "300"):
                v = est[n][b]["rms_relative_error"]
                best = min(est[m][b]["rms_relative_error"] for m in names)
                vals.append(f"**{v:.1e}**" if v == best else f"{v:.1e}")
            cells.append(" / ".join(vals))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for b in ("60", "150", "300"):
            best_ours = min(ours_names, key=lambda n: est[n][b]["rms_relative_error"])
            ours, ours_se = rms_and_se(est[best_ours][b], r["exact"])
            better = []
            for n, t in zip(names, titles):
                if n in ours_names or est[n][b]["rms_relative_error"] >= ours:
                    continue
                theirs, theirs_se = rms_and_se(est[n][b], r["exact"])
                better.append((t, theirs, (ours - theirs) / math.hypot(ours_se, theirs_se)))
            if not better:
                continue
            who = ", ".join(f"{t} {e:.1e} ({z:.1f} standard errors below)" for t, e, z in better)
            title = dict(zip(names, titles))[best_ours]
            if all(z < 2 for _, _, z in better):
                why = (f"not resolved by {data['settings']['seeds']} seeds: the difference is under 2 standard errors "
                       "of the two RMS errors (each from the spread of the squared errors over the seeds)")
            else:
                k = est["lossgeom_krylov"][b]
                why = (f"`krylov_trace` spent {k.get('lanczos_products_mean', float('nan')):.0f} of the {b} products on "
                       "Lanczos steps and the rest on XTrace of the deflated operator: its Krylov basis takes the "
                       "outliers exactly, but where the eigenvalues beyond them still carry much of ||H||_F the rest "
                       "is a smaller sketch than XTrace's own (rank (budget - steps) / 2 against budget / 2)")
            ahead.append(f"- {name}, {b} products: {who} vs lossgeom's best, {title}, {ours:.1e} +- {ours_se:.0e}. "
                         f"Why: {why}")
    kinds = [f"{name}: {r['exact_kind']}" for name, r in data["results"].items() if r.get("exact_kind")]
    if kinds:
        lines += ["", "Exact traces (the reference): " + "; ".join(kinds) + "."]
    lines += ["", "Rows where a peer is ahead:", ""] + (ahead or ["- none"]) + [""]
    return lines


def product_section(hvp: dict | None, ggn: dict | None) -> list[str]:
    lines = []
    if hvp:
        libs = ["lossgeom_auto", "lossgeom_forward-over-reverse", "lossgeom_double-backward", "eigenthings",
                "curvlinops", "pyhessian"]
        lines += ["One Hessian-vector product in units of one gradient (loss.backward) on the same batch, median of "
                  f"{hvp['settings']['repeats']}, float32 / float64 (lossgeom auto: the product the operator chose; "
                  "PyHessian: a backward pass through the gradient graph it builds once):", "",
                  "| problem | N | " + " | ".join(libs) + " |", "|---|---|" + "---|" * len(libs)]
        for name, r in hvp["results"].items():
            if "float32" not in r:
                continue
            lines.append(f"| {name} | {r['problem']['n_parameters']} | " + " | ".join(
                f"{r['float32'][lib]:.2f} / {r['float64'][lib]:.2f}" for lib in libs) + " |")
        lines.append("")
    if ggn:
        lines += ["One Gauss-Newton product G v in units of one gradient, float64, and the largest relative difference "
                  "of the peers' G v from lossgeom's:", "",
                  "| problem | lossgeom | eigenthings | curvlinops | max relative difference |", "|---|---|---|---|---|"]
        for name, r in ggn["results"].items():
            if "lossgeom" not in r:
                continue
            lines.append(f"| {name} | {r['lossgeom']:.2f} | {r['eigenthings']:.2f} | {r['curvlinops']:.2f} | "
                         f"{r['max_relative_difference']:.1e} |")
        lines.append("")
    return lines


def render(out: Path, suffix: str = "") -> str:
    eigen, trace, hvp, ggn = (load(out, p, suffix) for p in ("eigen", "trace", "hvp", "ggn"))
    first = next((d for d in (eigen, trace, hvp, ggn) if d), None)
    if first is None:
        return "No peer measurements yet: `uv run python benchmarks/peers.py`.\n"
    m = first["machine"]
    v = first["versions"]
    where = (f"{m['cpu_model']}, {m['cpu_cores']} cores" if "cpu_model" in m else m["device_name"])
    lines = [f"Measured with `benchmarks/peers.py` on {where} ({m['device']}), {first['provenance'].get('created_utc', '')}"
             "; torch threads per problem below; versions: "
             + ", ".join(f"{k} {val}" for k, val in v.items() if k != "lossgeom_source") + ". Problems:", ""]
    # per problem, the parts grouped by the examples they ran on (a costly part may run on fewer)
    seen: dict[str, dict[tuple, list[str]]] = {}
    sizes, threads = {}, {}
    for part, d in zip(("eigen", "trace", "hvp", "ggn"), (eigen, trace, hvp, ggn)):
        for name, r in (d or {}).get("results", {}).items():
            p = r["problem"]
            sizes[name] = p["n_parameters"]
            seen.setdefault(name, {}).setdefault((p["examples"], p["note"]), []).append(part)
            threads.setdefault(name, []).append(f"{part} {r.get('torch_threads', 2)}")
    for n, groups in seen.items():
        if len(groups) == 1:
            ((examples, note),) = groups
            lines.append(f"- {n}: N = {sizes[n]}, {examples} examples; {note} (torch threads: {', '.join(threads[n])})")
        else:
            described = "; ".join(f"{', '.join(parts)}: {examples} examples, {note}"
                                  for (examples, note), parts in groups.items())
            lines.append(f"- {n}: N = {sizes[n]}; {described} (torch threads: {', '.join(threads[n])})")
    lines.append("")
    if eigen:
        lines += ["### Eigenpairs", ""] + eigen_section(eigen)
    if trace:
        lines += ["### Trace", ""] + trace_section(trace)
    if hvp or ggn:
        lines += ["### Products", ""] + product_section(hvp, ggn)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="benchmarks/out")
    parser.add_argument("--suffix", default="", help="'-quick' for the files of --quick runs")
    parser.add_argument("--write", action="store_true", help="replace the marked part of docs/benchmarks.md")
    parser.add_argument("--docs", default="docs/benchmarks.md")
    args = parser.parse_args()
    text = render(Path(args.out_dir), args.suffix)
    if not args.write:
        print(text)
        return
    docs = Path(args.docs)
    page = docs.read_text()
    if START not in page:
        raise SystemExit(f"{docs} has no marker {START!r}")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    docs.write_text(head + START + "\n" + text + "\n" + END + tail)
    print(f"wrote {docs}")


if __name__ == "__main__":
    main()
