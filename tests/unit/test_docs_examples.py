"""The documentation's examples run, so they cannot rot.

Every ```python block of README.md and docs/**/*.md is executed (each page's blocks in order, in one namespace per
page); a block right after the line ``<!-- fragment -->`` (it needs a trained model file or your own data) is only
compiled. The sweep example of the how-to is planned as the workflow would plan it; the README's quick-start commands
are the docs' and CI's; the results hook renders a checks table, and says how to produce one when there is none;
with a results folder at hand, the README's headline table is the one the hook prints from it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)```", re.S)
FRAGMENT = "<!-- fragment -->"
QUICK_START = ("uv run snakemake --cores all", "uv run pytest")


def python_blocks(page: Path) -> list[tuple[bool, str]]:
    """(runnable, code) for each ```python block of the page."""
    text = "\n" + page.read_text()
    return [(FRAGMENT not in m.group("before"), m.group("code")) for m in BLOCK.finditer(text)]


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


def load_hook():
    spec = importlib.util.spec_from_file_location("docs_results_hook", DOCS / "hooks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_have_python_examples():
    names = {page.relative_to(REPO).as_posix() for page in PAGES_WITH_CODE}
    assert {"README.md", "docs/how-to/own-model.md"} <= names


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: p.relative_to(REPO).as_posix())
def test_python_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    namespace: dict = {"__name__": "__docs_example__"}
    for i, (runnable, code) in enumerate(python_blocks(page)):
        compiled = compile(code, f"{page.relative_to(REPO)}, python block {i + 1}", "exec")
        if runnable:
            exec(compiled, namespace)


def test_sweep_example_plans_as_the_workflow_would(tmp_path):
    """The YAML of 'Add a sweep' in the default config is a valid plan (what `lossgeom check-config` says)."""
    from lossgeom.io.configcheck import read_config_files
    from lossgeom.planning import make_plan

    page = (DOCS / "how-to" / "add-a-sweep.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", page, re.S).group(1))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["sweeps"] = example["sweeps"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = make_plan(read_config_files([path]), sources=[str(path)])
    assert set(plan.sweeps) == {"width_batch", "early", "subspace"}
    assert sum(len(sweep.runs) for sweep in plan.sweeps.values()) == 18 + 6 + 12
    assert all("checks:" in block for block in re.split(r"\n  (?=\w+:)", page.split("```yaml")[1].split("```")[0])[1:])


def test_quick_start_commands_are_the_same_everywhere():
    readme = (REPO / "README.md").read_text()
    started = (DOCS / "getting-started.md").read_text()
    for command in QUICK_START:
        assert f"\n{command} " in readme and f"\n{command} " in started, command
    assert "\nuv run pytest\n" in (REPO / ".ci" / "run").read_text()
    assert "uv run mkdocs serve" in readme


def test_readme_fits_on_a_few_screens_and_shows_existing_figures():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for figure in re.findall(r"\]\((docs/figures/[^)]+)\)", readme):
        assert (REPO / figure).exists(), figure
    # every figure the workflow makes has its small copy for the docs
    assert {p.name for p in (DOCS / "figures").glob("F*.png")} >= {f"F{k}.png" for k in range(1, 16)}


SUMMARY = """check,case,quantity,theory,measured,tolerance,detail,verdict
hvp_free_trace,digits_mlp,trace vs Hutchinson,3.2,3.24,0.25,"S = 1000",pass
hvp_free_trace,digits_mlp,bias at r = 1e-6 vs 0,0.0,0.0003,0.0001,,FAIL
taxonomy_spearman_mc,phase_batch,rho > 0,0.0,-0.19,0.5,,unresolved
"""


def test_results_hook_renders_a_run_and_says_how_to_make_one(tmp_path):
    hook = load_hook()
    assert "uv run snakemake --cores all" in hook.render("claims", "", tmp_path / "none")
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "summary.csv").write_text(SUMMARY)
    assert hook.render("counts", "", tmp_path) == "3 rows: 1 pass, 1 FAIL, 1 unresolved"
    claims = hook.render("claims", "", tmp_path)
    assert "| Böttcher & Wheeler 2024 |" in claims and "| 1 | 1 | 0 |" in claims and "| 0 | 0 | 1 |" in claims
    assert "(concepts/boettcher-wheeler.md)" in claims
    rows = hook.render("rows", "hvp_free_trace", tmp_path)
    assert "2 rows: 1 pass, 1 FAIL, 0 unresolved" in rows and "**FAIL**" in rows and "taxonomy" not in rows
    assert hook.render("csv", "checks/summary.csv check,verdict", tmp_path).splitlines()[0] == "| check | verdict |"
    assert "1 pass, 1 **FAIL**" in hook.readme_table(hook.read_csv(tmp_path / "checks" / "summary.csv"))


def test_results_hook_reads_the_phases_run_from_its_own_folder(tmp_path, monkeypatch):
    """A ``results[phases]:`` directive reads LOSSGEOM_PHASES_RESULTS, not the default run; missing, it names the
    phases command; an unknown run is an error naming the page."""
    hook = load_hook()
    default, phases = tmp_path / "default", tmp_path / "phases"
    for folder, check in ((default, "hvp_free_trace"), (phases, "taxonomy_spearman_mc")):
        (folder / "checks").mkdir(parents=True)
        (folder / "checks" / "summary.csv").write_text(SUMMARY.replace("hvp_free_trace", check)
                                                       if folder is phases else SUMMARY)
    monkeypatch.setenv("LOSSGEOM_RESULTS", str(default))
    monkeypatch.setenv("LOSSGEOM_PHASES_RESULTS", str(phases))

    class Page:
        class file:
            src_uri = "concepts/yang.md"

    text = hook.on_page_markdown("<!-- results[phases]: rows hvp_free_trace -->\n<!-- results: rows hvp_free_trace -->",
                                 Page, None, None)
    first, second = text.split("\n", 1)
    assert "No rows of hvp_free_trace" in first and "2 rows: 1 pass, 1 FAIL" in second
    monkeypatch.setenv("LOSSGEOM_PHASES_RESULTS", str(tmp_path / "none"))
    assert "configs/phases.yaml" in hook.on_page_markdown("<!-- results[phases]: counts -->", Page, None, None)
    with pytest.raises(ValueError, match="concepts/yang.md: unknown run 'other'"):
        hook.on_page_markdown("<!-- results[other]: counts -->", Page, None, None)

def test_every_summary_check_has_a_claim_and_a_page():
    hook = load_hook()
    for check, (paper, claim, page) in hook.CLAIMS.items():
        assert paper in hook.PAPERS and claim, check
        assert (DOCS / "concepts" / f"{page}.md").exists(), check


def test_readme_table_is_the_runs_own():
    """With a results folder (a finished default run), the README's headline table is what the hook prints from it."""
    hook = load_hook()
    summary = hook.results_dir() / "checks" / "summary.csv"
    if not summary.exists():
        pytest.skip("no results/checks/summary.csv: run `uv run snakemake --cores all` first")
    rows = hook.read_csv(summary)
    readme = (REPO / "README.md").read_text()
    assert hook.readme_table(rows) in readme
    assert hook.counts_line(rows) in readme
