"""The tiny config through the whole workflow (the session's shared ``tiny_run``): training, stages, figures, report."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lossgeom.training.checkpoints import load_model
from tests.conftest import REPO, TINY, run_snakemake


def test_every_experiment_trained_with_logs_and_metrics(tiny_run):
    work, _ = tiny_run
    experiments = yaml.safe_load(TINY.read_text())["experiments"]
    summary = pd.read_csv(work / "results/training_summary.csv")
    assert sorted(summary["experiment"]) == sorted(experiments)
    for name, spec in experiments.items():
        metrics = pd.read_csv(work / f"results/{name}/metrics.csv")
        assert metrics["epoch"].tolist() == list(range(1, spec["train"]["epochs"] + 1))
        assert (work / f"logs/train/{name}.log").stat().st_size > 0
        assert (work / f"results/{name}/train.benchmark.tsv").exists()
        info = json.loads((work / f"results/{name}/train.json").read_text())
        assert info["device"] == "cpu" and info["provenance"]["torch"]
        model, dataset, _ = load_model(work / f"results/{name}/model.pt")
        assert info["n_parameters"] == sum(p.numel() for p in model.parameters())
        assert dataset.name == spec["dataset"]["name"]


def test_rerun_has_nothing_to_do(tiny_run):
    work, _ = tiny_run
    result = run_snakemake("-n", "--configfile", str(TINY), "-d", str(work))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_an_experiment_retrains_only_it(tiny_run, tmp_path):
    work, _ = tiny_run
    config = yaml.safe_load(TINY.read_text())
    config["experiments"]["blobs_mlp"]["train"]["epochs"] = 3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", str(changed), "-d", str(work))
    assert result.returncode == 0, result.stderr
    assert "results/blobs_mlp/model.pt" in result.stdout
    for other in ("digits_mlp", "mnist1d_cnn", "sines_mlp"):
        assert f"results/{other}/model.pt" not in result.stdout


def test_hessian_stage_outputs_match_a_dense_reference(tiny_run):
    """Whole chain (model file, data split, operator, Lanczos): the smallest model against eigh of its dense H."""
    import torch

    from lossgeom.engine.hessian import dense_hessian
    from lossgeom.problems.losses import loss_function

    work, _ = tiny_run
    table = pd.read_csv(work / "results/hessian_summary.csv")
    assert sorted(table["experiment"]) == sorted(yaml.safe_load(TINY.read_text())["experiments"])
    assert table["converged"].all()
    summary = json.loads((work / "results/blobs_mlp/hessian/summary.json").read_text())
    assert summary["dtype"] == "float64" and summary["device"] == "cpu"
    model, ds, _ = load_model(work / "results/blobs_mlp/model.pt")
    exact = torch.linalg.eigvalsh(dense_hessian(model.double(), loss_function(ds.task), ds.x_train, ds.y_train))
    scale = float(exact.abs().max())
    top = torch.tensor(summary["eigen"]["top"]["values"], dtype=torch.float64)
    assert (top - exact.flip(0)[: len(top)]).abs().max() <= 1e-4 * scale  # the tiny config's tol
    assert abs(summary["eigen"]["bottom"]["values"][0] - float(exact[0])) <= 1e-4 * scale
    assert abs(summary["trace"]["hutchinson"] - float(exact.sum())) <= 4 * summary["trace"]["standard_error"]
    for name in ("eigenvectors.pt", "trace_samples.csv", "density.csv", "slq_nodes.csv"):
        assert (work / "results/blobs_mlp/hessian" / name).stat().st_size > 0
    for key in ("torch", "git_commit", "seed"):
        assert key in summary["provenance"]


def test_checks_table_has_verdicts(tiny_run):
    work, _ = tiny_run
    config = yaml.safe_load(TINY.read_text())
    experiments, checks = config["experiments"], config["checks"]["models"]
    table = pd.read_csv(work / "results/checks/summary.csv")
    assert list(table.columns) == ["check", "case", "quantity", "theory", "measured", "tolerance", "detail", "verdict"]
    assert set(table["verdict"]) <= {"pass", "FAIL", "unresolved"}
    # a decided row is decided by its numbers: all finite, and a FAIL misses its theory by more than its tolerance
    # (two-sided rows and one-sided bounds alike)
    decided = table[table["verdict"] != "unresolved"]
    assert np.isfinite(decided[["theory", "measured", "tolerance"]].to_numpy()).all(), decided.to_string()
    failed = table[table["verdict"] == "FAIL"]
    assert ((failed["measured"] - failed["theory"]).abs() > failed["tolerance"]).all(), failed.to_string()
    # the summary holds each model's own check tables row for row
    for name in experiments:
        for part in (f"model_{name}", f"curvature_{name}"):
            rows = pd.read_csv(work / f"results/checks/{part}.csv")
            assert len(rows) > 0, part
            ours = table[table["check"].isin(set(rows["check"])) & table["case"].isin(set(rows["case"]))]
            pd.testing.assert_frame_equal(ours.reset_index(drop=True), rows, check_dtype=False, rtol=1e-12, obj=part)
    synthetic = table[table["check"].str.startswith("synthetic")]
    assert len(synthetic) == 2 * 2 * 6  # tiny config: 2 dimensions x 2 mean curvatures x 6 quantities
    # no FAIL; the tiny config's 100 projections cannot decide a saddle fraction near 0.1 (unresolved, not pass)
    assert set(synthetic["verdict"]) <= {"pass", "unresolved"}, synthetic[synthetic["verdict"] == "FAIL"].to_string()
    undecided = synthetic[synthetic["verdict"] == "unresolved"]
    assert (undecided["tolerance"] >= undecided["theory"].abs()).all() and len(undecided) <= 4, undecided.to_string()
    for name in experiments:
        rows = table[table["case"].str.startswith(f"{name} (")]
        assert "mean projected curvature (Gaussian) vs Hutchinson tr(H)" in set(rows["quantity"]), name
        trace = pd.read_csv(work / f"results/{name}/checks/trace_vs_samples.csv")
        assert trace["S"].tolist() == list(range(1, max(checks["slices"], checks["hutchinson_samples"]) + 1))
    # the sign question: one row per model, its eigenvalues those of the Hessian step, its fractions counts of the
    # configured projections that sum to one (a Gaussian pair's curvature is 0 with probability 0) and equal to
    # the fraction in the model's check row
    signs = pd.read_csv(work / "results/checks/sign_question.csv").set_index("experiment")
    assert sorted(signs.index) == sorted(experiments)
    hessian = pd.read_csv(work / "results/hessian_summary.csv").set_index("experiment")
    P = checks["projections"]
    for name in experiments:
        sign = signs.loc[name]
        assert sign["n_parameters"] == hessian.loc[name, "n_parameters"], name
        assert [sign["lambda_max"], sign["lambda_min"]] == pytest.approx(
            [hessian.loc[name, "lambda_max"], hessian.loc[name, "lambda_min"]], rel=1e-12), name
        assert sign["mean_curvature"] == pytest.approx(sign["trace"] / sign["n_parameters"], rel=1e-12), name
        fractions = np.array([sign["fraction_minimum"], sign["fraction_maximum"], sign["fraction_saddle"]], dtype=float)
        assert np.abs(fractions * P - np.round(fractions * P)).max() < 1e-9 and fractions.sum() == pytest.approx(1.0), name
        assert bool(sign["looks_like_minimum_despite_negative_curvature"]) == (
            sign["lambda_min"] < 0 and sign["fraction_minimum"] > 0.5), name
        if sign["lambda_min"] > 1e-3 * abs(sign["lambda_max"]):  # H positive definite: so is every projection of it
            assert sign["fraction_minimum"] == 1.0, name
        row = table[table["case"].str.startswith(f"{name} (")
                    & (table["quantity"] == "fraction of random projections showing a saddle")]
        assert len(row) == 1 and row["measured"].iloc[0] == pytest.approx(sign["fraction_saddle"], abs=1e-12), name


def test_smooth_model_passes_its_exact_trace_checks(tiny_run):
    """The tanh regression model is smooth: projections and finite differences agree with the exact trace."""
    work, _ = tiny_run
    rows = pd.read_csv(work / "results/checks/model_sines_mlp.csv").set_index("quantity")
    for quantity in ("mean projected curvature (Gaussian) vs exact tr(H)", "HVP-free trace vs exact tr(H)"):
        assert rows.loc[quantity, "verdict"] == "pass", rows.loc[quantity].to_dict()


def test_surface_curvatures_are_tabulated_for_every_model(tiny_run):
    """Each model's narrowest grids get their curvature rows (8 per direction pair) in the checks table; the
    smooth tanh model's grid curvatures agree with the exact ones from Hessian-vector products."""
    work, _ = tiny_run
    table = pd.read_csv(work / "results/checks/summary.csv")
    curvature = table[table["check"] == "surface_curvature"]
    for name in yaml.safe_load(TINY.read_text())["experiments"]:
        rows = curvature[curvature["case"].str.startswith(f"{name} (")]
        assert len(rows) == 16 and rows["case"].str.endswith(("random r=0.1", "hessian r=0.1")).all(), rows.to_string()
        meta = json.loads((work / f"results/{name}/checks/surface_curvature.json").read_text())
        assert sum(meta["verdicts"].values()) == 16 and "git_commit" in meta["provenance"]
    smooth = curvature[curvature["case"].str.startswith("sines_mlp (") & curvature["quantity"].str.startswith("kappa")]
    # no FAIL; a row whose tolerance cannot tell the exact curvature from 0 is unresolved, not a pass
    assert set(smooth["verdict"]) <= {"pass", "unresolved"} and (smooth["verdict"] == "pass").any(), smooth.to_string()
    undecided = smooth[smooth["verdict"] == "unresolved"]
    assert (undecided["tolerance"] >= undecided["theory"].abs()).all()


def test_surfaces_random_and_hessian(tiny_run):
    """Grids have the configured shapes; at the centre every surface equals the trained loss; Hessian
    directions are v_max and v_min rescaled to the random directions' norms."""
    import numpy as np

    work, _ = tiny_run
    config = yaml.safe_load(TINY.read_text())["surfaces"]
    for name in yaml.safe_load(TINY.read_text())["experiments"]:
        grids = np.load(work / f"results/{name}/surfaces/surfaces.npz")
        meta = json.loads((work / f"results/{name}/surfaces/surfaces.json").read_text())
        final = json.loads((work / f"results/{name}/train.json").read_text())["final"]
        c = config["points"] // 2
        for pair in ("random", "hessian"):
            for r in config["ranges"]:
                key = f"{pair}_r{r:g}"
                assert grids[f"{key}_2d_train_loss"].shape == (config["points"], config["points"])
                assert grids[f"{key}_1d_eta_test_loss"].shape == (config["points_1d"], 1)
                np.testing.assert_allclose(grids[f"{key}_2d_train_loss"][c, c], final["train_loss"], rtol=1e-4)
        assert abs(meta["surfaces"]["random"]["cos_eta_delta"]) < 1e-5
        assert meta["surfaces"]["hessian"]["eta_norm"] == pytest.approx(meta["surfaces"]["random"]["eta_norm"], rel=1e-5)
        assert (work / f"results/{name}/surfaces/tiles").is_dir()


FIGURES = [f"F{i}" for i in range(1, 9)] + ["F13", "F14", "F15"]  # tiny sweeps blobs_seeds; blobs_lr, blobs_l2; blobs_phase


def test_every_figure_is_a_valid_pdf_and_png_with_its_executed_notebook(tiny_run):
    import nbformat

    work, _ = tiny_run
    for name in FIGURES:
        pdf, png = work / f"results/figures/{name}.pdf", work / f"results/figures/{name}.png"
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000, name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        executed = nbformat.read(work / f"results/figures/{name}.ipynb", as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "results/figures" in injected[0].source, name  # papermill replaced the defaults
        assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code"), name
        assert (work / f"logs/figures/{name}.log").exists()


def test_table_one_has_a_row_per_model_and_the_checks(tiny_run):
    work, _ = tiny_run
    experiments = yaml.safe_load(TINY.read_text())["experiments"]
    table = pd.read_csv(work / "results/figures/T1.csv")
    assert len(table) == len(experiments)
    hessian = pd.read_csv(work / "results/hessian_summary.csv").set_index("experiment")
    for name in experiments:
        row = table[table["model"].str.endswith(f"({name})")].iloc[0]
        assert row["lambda_max"] == pytest.approx(hessian.loc[name, "lambda_max"])
        assert row["parameters"] == hessian.loc[name, "n_parameters"]
    checks_html = (work / "results/figures/T1_checks.html").read_text()
    assert "synthetic_random_projection" in checks_html and "verdict" in checks_html


def test_report_builds_with_every_figure(tiny_run):
    work, _ = tiny_run
    report = work / "results/report.html"
    result = run_snakemake("--configfile", str(TINY), "-d", str(work), "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stderr, result.stderr[-3000:]  # e.g. a caption that is not valid reStructuredText
    text = report.read_text()
    for name in [*FIGURES, "T1"]:
        assert f"{name}.png" in text or f"{name}.html" in text, name


def test_editing_one_notebook_reruns_that_figure_only(tiny_run, tmp_path):
    """An edited notebook is a changed input of its figure's job. (Touching it without a change does not
    rerun anything: Snakemake compares the checksum of small inputs with the one it recorded.)

    The edit is made in a copy of the project, never in the repository's notebooks: the project and the tiny run
    are copied (time stamps kept) to the same places relative to each other, so the copy's notebooks are the inputs
    the run recorded, at the same relative paths (the workflow names them relative to the working directory)."""
    import nbformat

    from tests.workflow.test_moved_project import PROJECT
    from tests.workflow.test_plan import planned_jobs

    work, _ = tiny_run
    common = Path(os.path.commonpath([work, REPO]))
    project, copied = tmp_path / REPO.relative_to(common), tmp_path / work.relative_to(common)
    ignore = shutil.ignore_patterns("__pycache__")
    project.mkdir(parents=True)
    for name in PROJECT:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, project / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(REPO / name, project / name)
    shutil.copytree(work, copied, symlinks=True)
    assert os.path.relpath(project / "notebooks", copied) == os.path.relpath(REPO / "notebooks", work)
    original = (REPO / "notebooks/F4.ipynb").read_bytes()
    path = project / "notebooks/F4.ipynb"
    notebook = nbformat.reads(path.read_text(), as_version=4)
    notebook.cells.append(nbformat.v4.new_markdown_cell("An edit by the test."))
    nbformat.write(notebook, path)
    result = run_snakemake("-n", "--configfile", str(project / "configs/tiny.yaml"), "-d", str(copied), cwd=project,
                           project=project)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout) == {"F4": 1, "all": 1}, result.stdout[-4000:]
    assert (REPO / "notebooks/F4.ipynb").read_bytes() == original


def test_the_phase_diagram_of_the_tiny_taxonomy_sweep(tiny_run):
    """blobs_phase: connectivity in two parts of whole cells, merged; one cell per width x batch size with its seeds'
    means and a phase; its rows in the summary table, its per-cell connectivity rows kept out of it."""
    from lossgeom.checks.taxonomy import PHASES

    work, _ = tiny_run
    sweep = work / "results/sweeps/blobs_phase"
    parts = [json.loads((sweep / f"connectivity/part{i}/summary.json").read_text()) for i in (0, 1)]
    merged = json.loads((sweep / "connectivity/summary.json").read_text())
    assert sorted(merged["conditions"]) == sorted(c for p in parts for c in p["conditions"])
    assert all(p["conditions"] for p in parts) and not set(parts[0]["conditions"]) & set(parts[1]["conditions"])
    cells = pd.read_csv(sweep / "taxonomy/cells.csv")
    runs = pd.read_csv(sweep / "runs.csv")
    assert len(cells) == 4 and set(cells["phase"]) <= set(PHASES) and (cells["seeds"] == 3).all()
    assert cells["lambda_max"].mean() == pytest.approx(runs["lambda_max"].mean())  # every cell has three runs
    summary = pd.read_csv(work / "results/checks/summary.csv")
    ours = summary[summary["case"].str.startswith("blobs_phase")]
    assert set(ours["check"]) >= {"taxonomy_small_width_poorly_connected", "taxonomy_spearman_cka"}
    assert not ours["check"].str.startswith("global_").any()
