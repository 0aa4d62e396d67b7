"""MkDocs hook: the results pages from a run's own files, not from numbers typed by hand.

Pages hold directives in HTML comments; this hook replaces each with what the run wrote:

    <!-- results: counts -->                  verdict counts of results/checks/summary.csv
    <!-- results: claims [PAPER] -->          one row per claim family (paper, claim, pass / FAIL / unresolved)
    <!-- results: rows CHECK [CHECK ...] -->  every row of those checks (case, quantity, theory, measured, ...)
    <!-- results: csv PATH [COL,COL,...] -->  a table of results/PATH (those columns)

The results folder is ``results/`` at the repository root, or the folder named by ``LOSSGEOM_RESULTS``. A directive
written ``results[phases]:`` reads the run of ``configs/phases.yaml`` instead, in its own folder (``runs/phases/results``
or ``LOSSGEOM_PHASES_RESULTS``), since two configs in one results/ would overwrite each other's summary and figures.
Without one, each directive becomes a note saying how to produce it, so the site builds from a fresh clone. Run as a script, it prints the README's headline table from a results folder (a test compares them)::

    uv run python docs/hooks/results.py [RESULTS]
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"<!--\s*results(?:\[(\w+)\])?:\s*(\w+)\s*(.*?)\s*-->")
# the runs a page may read: name -> (environment variable, default folder, the command that produces it)
RUNS = {
    "default": ("LOSSGEOM_RESULTS", "results", "uv run snakemake --cores all"),
    "phases": ("LOSSGEOM_PHASES_RESULTS", "runs/phases/results",
               "uv run snakemake --cores all --configfile configs/phases.yaml --directory runs/phases"),
}
VERDICTS = ("pass", "FAIL", "unresolved")

B_W = "Böttcher & Wheeler 2024"
SAGUN = "Sagun et al. 2017"
F_G = "Fort & Ganguli 2019"
F_J = "Fort & Jastrzebski 2019"
YANG = "Yang et al. 2021"

# check name (the summary's `check` column) -> (paper, the claim in short, the concept page and its anchor)
CLAIMS: dict[str, tuple[str, str, str]] = {
    "synthetic_random_projection": (B_W, "random 2D projections of a saddle: curvature set by tr(H)/N, "
                                    "saddle fraction as predicted (synthetic, N = 10 ... 1e5)", "boettcher-wheeler"),
    "synthetic_hessian_projection": (B_W, "projections on (v_max, v_min) show the saddle (synthetic)", "boettcher-wheeler"),
    "model_random_projection": (B_W, "trained networks: mean projected curvature = tr(H); saddle fraction as predicted",
                                "boettcher-wheeler"),
    "hvp_free_trace": (B_W, "tr(H) from loss values alone (second differences along random slices)", "boettcher-wheeler"),
    "surface_curvature": (B_W, "the plotted grids' curvatures equal exact ones; Hessian directions show the saddle",
                          "boettcher-wheeler"),
    "early_saddle": (B_W, "early in training: Hessian directions show the saddle random ones hide (as predicted)",
                     "boettcher-wheeler"),
    "local_a_outliers": (SAGUN, "outlier gap at k = C - 1 or C at the end of training (digits MLP)", "sagun"),
    "local_b_gauss_newton": (SAGUN, "H approaches the Gauss-Newton matrix G near a minimum", "sagun"),
    "spectra_a_outlier_gap": (SAGUN, "C - 1 outliers above the bulk (Gaussian mixtures, C classes)", "sagun"),
    "spectra_a_data_moves_outliers": (SAGUN, "the data move the outliers more than the bulk", "sagun"),
    "spectra_a_width_bulk": (SAGUN, "parameters widen the bulk near zero", "sagun"),
    "global_large_small_batch_one_basin": (SAGUN, "small batch continued from a large-batch solution: one basin", "sagun"),
    "local_c_gradient_overlap": (F_G, "the gradient lives in the top-C eigenspace", "fort-ganguli"),
    "local_d_transient_curvature": (F_G, "lambda_max rises then falls from a small init, only falls from a large one",
                                    "fort-ganguli"),
    "local_f_logit_clustering": (F_G, "logit gradients cluster by logit", "fort-ganguli"),
    "goldilocks_e1_ratio_peak": (F_G, "tr(H)/||H||_F in a random subspace peaks at an interior init scale",
                                 "fort-ganguli"),
    "goldilocks_e2_zone_training": (F_G, "subspace training succeeds in the Goldilocks zone, fails outside",
                                    "fort-ganguli"),
    "goldilocks_e3_dimension": (F_G, "in the zone, accuracy rises with the subspace dimension", "fort-ganguli"),
    "global_seeds_barrier": (F_J, "a straight line between independent seeds crosses a barrier", "fort-jastrzebski"),
    "global_bezier_removes_barrier": (F_J, "a trained Bezier curve removes the barrier", "fort-jastrzebski"),
    "global_simplex_low_loss": (F_J, "low-loss simplices join three solutions", "fort-jastrzebski"),
    "trends_same_sign": (F_J, "learning rate, width and L2 move lambda_max and tr(H) in one direction",
                         "fort-jastrzebski"),
    "taxonomy_small_width_poorly_connected": (YANG, "small models are poorly connected (mc < 0)", "yang"),
    "taxonomy_large_width_well_connected": (YANG, "the widest fitted models are well connected (|mc| < 2)", "yang"),
    "taxonomy_best_cell_well_connected": (YANG, "the best test accuracy sits in a well-connected cell", "yang"),
    "taxonomy_spearman_cka": (YANG, "test accuracy rises with CKA across fitted cells (Spearman +0.89)", "yang"),
    "taxonomy_spearman_lambda_max": (YANG, "test accuracy falls with lambda_max across fitted cells (-0.88)", "yang"),
    "taxonomy_spearman_trace_hutchinson": (YANG, "test accuracy falls with tr(H) across fitted cells (-0.87)", "yang"),
    "taxonomy_spearman_mc": (YANG, "test accuracy rises with mc across fitted cells (+0.61)", "yang"),
    "taxonomy_noise_lowers_connectivity": (YANG, "label noise lowers mc", "yang"),
}
PAPERS = (B_W, SAGUN, F_G, F_J, YANG)


def results_dir(run: str = "default") -> Path:
    """The results folder of a run: its environment variable if set (``LOSSGEOM_RESULTS`` for the default run), else
    its folder under the repository root (``results/``)."""
    variable, folder, _ = RUNS[run]
    return Path(os.environ.get(variable) or ROOT / folder)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def fmt(value: str) -> str:
    """Numbers to 4 significant digits; everything else as written (pipes escaped for the table)."""
    try:
        number = float(value)
    except ValueError:
        return value.replace("|", "\\|").replace("\n", " ")
    if math.isnan(number):
        return ""
    if number == int(number) and abs(number) < 1e6 and "." not in value and "e" not in value.lower():
        return value
    return f"{number:.4g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def verdict_cell(verdict: str) -> str:
    return f"**{verdict}**" if verdict == "FAIL" else verdict


def counts_line(rows: list[dict[str, str]]) -> str:
    count = Counter(r["verdict"] for r in rows)
    parts = ", ".join(f"{count.get(v, 0)} {v}" for v in VERDICTS)
    return f"{len(rows)} rows: {parts}"


def claims_table(rows: list[dict[str, str]], paper: str | None = None, links: bool = True, prefix: str = "") -> str:
    """One row per check (claim family) in CLAIMS order, then any check CLAIMS does not know."""
    order = [c for c in CLAIMS if paper is None or CLAIMS[c][0].startswith(paper)]
    if paper is None:
        order += sorted({r["check"] for r in rows} - set(CLAIMS))
    body = []
    for check in order:
        mine = [r for r in rows if r["check"] == check]
        if not mine:
            continue
        count = Counter(r["verdict"] for r in mine)
        who, claim, page = CLAIMS.get(check, ("(not listed)", "", ""))
        name = f"[`{check}`]({prefix}concepts/{page}.md)" if links and page else f"`{check}`"
        claim = claim.replace("|", "\\|")
        cells = [who, claim, name] if paper is None else [claim, name]
        body.append(cells + [str(count.get(v, 0)) for v in VERDICTS])
    header = (["paper", "claim", "check"] if paper is None else ["claim", "check"]) + ["pass", "FAIL", "unresolved"]
    return table(header, body)


def rows_table(rows: list[dict[str, str]], checks: list[str]) -> str:
    mine = [r for r in rows if r["check"] in checks]
    if not mine:
        return f"*No rows of {', '.join(checks)} in this run's summary.*"
    header = ["check", "case", "quantity", "theory", "measured", "tolerance", "verdict", "detail"]
    body = [[r["check"], fmt(r["case"]), fmt(r["quantity"]), fmt(r["theory"]), fmt(r["measured"]),
             fmt(r["tolerance"]), verdict_cell(r["verdict"]), fmt(r.get("detail", ""))] for r in mine]
    text = f"{counts_line(mine)}.\n\n" + table(header, body)
    if len(mine) > 12:  # long families fold away
        indented = "\n".join("    " + line for line in text.splitlines())
        return f'??? note "The {len(mine)} rows of {", ".join(checks)}"\n\n{indented}\n'
    return text


def csv_table(path: Path, columns: list[str] | None) -> str:
    rows = read_csv(path)
    columns = columns or list(rows[0]) if rows else (columns or [])
    return table(columns, [[fmt(r.get(c, "")) for c in columns] for r in rows])


def missing(what: str, run: str = "default") -> str:
    variable, _, command = RUNS[run]
    which = "the default workflow" if run == "default" else f"the `{run}` run"
    return (f'!!! info "Not rendered: no {what} here"\n'
            f"    This table is read from a run's own files. Run {which} (`{command}`),\n"
            "    then build the docs again (`uv run mkdocs serve`); or point\n"
            f"    `{variable}` at another run's `results/` folder.\n")


def render(kind: str, args: str, results: Path, prefix: str = "", run: str = "default") -> str:
    summary = results / "checks" / "summary.csv"
    if kind in ("counts", "claims", "rows"):
        if not summary.exists():
            return missing("`results/checks/summary.csv`", run)
        rows = read_csv(summary)
        if kind == "counts":
            return counts_line(rows)
        if kind == "claims":
            return claims_table(rows, paper=args or None, prefix=prefix)
        return rows_table(rows, args.split())
    if kind == "csv":
        name, _, columns = args.partition(" ")
        path = results / name
        if not path.exists():
            return missing(f"`results/{name}`", run)
        return csv_table(path, [c for c in columns.split(",") if c] or None)
    raise ValueError(f"unknown results directive {kind!r} (counts, claims, rows, csv)")


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs event: replace every results directive on the page."""
    if "<!-- results" not in markdown:
        return markdown
    depth = page.file.src_uri.count("/")
    prefix = "../" * depth

    def replace(match: re.Match) -> str:
        run = match.group(1) or "default"
        if run not in RUNS:
            raise ValueError(f"{page.file.src_uri}: unknown run {run!r} in a results directive; known: {', '.join(RUNS)}")
        return render(match.group(2), match.group(3), results_dir(run), prefix, run)

    return DIRECTIVE.sub(replace, markdown)


def verdict_text(rows: list[dict[str, str]]) -> str:
    """'75 pass' or '2 pass, 2 **FAIL**, 1 unresolved': the verdicts of one claim family."""
    count = Counter(r["verdict"] for r in rows)
    return ", ".join(f"{count[v]} {verdict_cell(v)}" for v in VERDICTS if count.get(v))


def readme_table(rows: list[dict[str, str]]) -> str:
    """The README's headline table: paper, claim, verdicts on the run (one line per claim family)."""
    body = []
    for check, (paper, claim, _) in CLAIMS.items():
        mine = [r for r in rows if r["check"] == check]
        if mine:
            body.append([paper, claim.replace("|", "\\|"), verdict_text(mine)])
    return table(["paper", "claim", "verdicts on the default run"], body)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else results_dir()
    found = read_csv(folder / "checks" / "summary.csv")
    print(counts_line(found))
    print()
    print(readme_table(found))
