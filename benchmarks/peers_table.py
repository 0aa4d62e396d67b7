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
from pathlib import Path

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


def lossgeom_reason(case: dict, target: str, peer_hvps: int) -> str:
    """Why lossgeom needed more products than ``peer_hvps`` for ``target``, from its own sweep."""
    ours = case["reach"][target]
    k = ours["hvps"] - ours["hvps_free"]
    parts = [f"{ours['hvps_free']} Lanczos products + {k} explicit-residual products at tol {ours['tol']:g}"]
    if ours["hvps_free"] <= peer_hvps:
        parts.append("the explicit residuals alone make the difference")
    looser = [r for r in case["runs"] if r["tol"] > ours["tol"]]
    if looser:
        r = min(looser, key=lambda r: r["tol"])
        parts.append(f"tol {r['tol']:g} stopped at {r['hvps']} products with error {r['error']:.1e}: the residual "
                     f"stop overshoots the eigenvalue error (error ~ residual² / gap)")
    if ours.get("restarts"):
        parts.append(f"{ours['restarts']} thick restarts")
    return "; ".join(parts)


def eigen_section(data: dict) -> list[str]:
    lines = []
    res = data["results"]
    ahead = []
    for case, title in CASE_TITLES.items():
        lines += [f"**{title}**: products to reach a relative eigenvalue error of 1e-3 / 1e-6 / 1e-10 (— not reached "
                  "within the sweep; n/a: no routine), and wall seconds at the same targets", "",
                  "| problem | N | lossgeom | " + " | ".join(t for _, t in PEERS) + " | eigenthings m = 2k: error |",
                  "|---|---|---|" + "---|" * len(PEERS) + "---|"]
        for name, r in res.items():
            if case not in r.get("lossgeom", {}):
                continue
            ours = r["lossgeom"][case]["reach"]
            row = [name, str(r["problem"]["n_parameters"]), triple(ours)]
            secs = ["", "", triple(ours, "seconds")]
            for peer, _ in PEERS:
                p = r.get(peer, {}).get(case, {})
                reach = p.get("reach") if p.get("supported", True) else None
                row.append(triple(reach))
                secs.append(triple(reach, "seconds"))
                for t in TARGETS:
                    if reach and reach.get(t) and ours.get(t):
                        if reach[t]["hvps"] < ours[t]["hvps"]:
                            ahead.append(f"- {name}, {title}, {t}: {peer} {reach[t]['hvps']} products vs lossgeom "
                                         f"{ours[t]['hvps']} ({lossgeom_reason(r['lossgeom'][case], t, reach[t]['hvps'])})")
                        elif reach[t]["seconds"] < ours[t]["seconds"]:
                            per_ours = ours[t]["seconds"] / ours[t]["hvps"]
                            per_peer = reach[t]["seconds"] / reach[t]["hvps"]
                            ahead.append(f"- {name}, {title}, {t}: {peer} {reach[t]['seconds']:.2f} s vs lossgeom "
                                         f"{ours[t]['seconds']:.2f} s at fewer products for lossgeom "
                                         f"({ours[t]['hvps']} vs {reach[t]['hvps']}): {per_ours * 1e3:.1f} ms per "
                                         f"product against {per_peer * 1e3:.1f} ms (Lanczos overhead and product "
                                         f"cost; see the product table)")
            default = r.get("eigenthings", {}).get(case, {}).get("default_m_2k")
            row.append(f"{default['error']:.1e} ({default['hvps']} products)" if default else "n/a")
            secs.append("")
            lines.append("| " + " | ".join(row) + " |")
            lines.append("| " + " | ".join(secs) + " |")
        lines.append("")
    lines += ["Rows where a peer is ahead of lossgeom, and the measured reason:", ""]
    lines += ahead or ["- none"]
    lines.append("")
    return lines


def trace_section(data: dict) -> list[str]:
    names = ["lossgeom_hutchinson", "lossgeom_deflated", "eigenthings_hutchpp", "curvlinops_hutchpp", "curvlinops_xtrace"]
    titles = ["lossgeom Hutchinson", "lossgeom deflated", "eigenthings Hutch++", "curvlinops Hutch++", "curvlinops XTrace"]
    lines = [f"RMS relative error of tr(H) over {data['settings']['seeds']} seeds at 60 / 150 / 300 products (best "
             "in bold; the deflated estimate counts its Lanczos products):", "",
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
            ours = min(est["lossgeom_hutchinson"][b]["rms_relative_error"], est["lossgeom_deflated"][b]["rms_relative_error"])
            for n, t in zip(names[2:], titles[2:]):
                theirs = est[n][b]["rms_relative_error"]
                if theirs < ours:
                    ahead.append(f"- {name}, {b} products: {t} {theirs:.1e} vs lossgeom's best {ours:.1e}: "
                                 "its sketch spans the top of the spectrum with a third (Hutch++) or half (XTrace) of "
                                 "the products and takes that part exactly, while the deflated estimate spends half "
                                 "the budget on 10 Lanczos eigenpairs only")
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
    lines = [f"Measured with `benchmarks/peers.py` on {m['device_name']} ({m['device']}, {m['cpu_threads']} torch "
             f"thread(s)), {first['provenance'].get('created_utc', '')}; versions: "
             + ", ".join(f"{k} {val}" for k, val in v.items()) + ". Problems:", ""]
    seen = {}
    for d in (eigen, trace, hvp, ggn):
        for name, r in (d or {}).get("results", {}).items():
            seen.setdefault(name, r["problem"])
    lines += [f"- {n}: N = {p['n_parameters']}, {p['examples']} examples; {p['note']}" for n, p in seen.items()]
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
