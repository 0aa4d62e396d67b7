"""Every torch stage's compute() in memory, chained as the workflow chains them, on a model small enough for a
dense float64 Hessian: what each stage returns is checked against that exact reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lossgeom.engine.hessian import dense_hessian
from lossgeom.problems.losses import loss_function
from lossgeom.stages import check_curvature, check_model, hessian, surfaces, train

SPEC = {"dataset": {"name": "sines", "n_train": 64, "n_test": 32},
        "model": {"name": "mlp", "hidden": [6], "activation": "tanh"},
        "train": {"epochs": 3, "batch_size": 16, "optimizer": "adam", "lr": 0.01, "device": "cpu"}}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain")
    paths = train.TrainPaths.in_directory(out)
    trained = train.compute("chain", SPEC, paths, progress=False)
    model, ds = trained.model, trained.dataset
    H = dense_hessian(model, loss_function(ds.task), ds.x_train, ds.y_train)
    exact = torch.linalg.eigvalsh(H)
    quiet = lambda *_: None  # noqa: E731
    h = hessian.compute(model, ds, hessian.HessianSettings(k_top=2, k_bottom=1, tol=1e-8, hutchinson_samples=8,
                                                          slq_probes=2, slq_steps=8, device="cpu"), log=quiet)
    s_settings = surfaces.SurfaceSettings(points=9, points_1d=5, ranges=(0.1,), tile_rows=3, device="cpu")
    eigenvectors = {"top_vectors": h.eigen.top.vectors, "bottom_vectors": h.eigen.bottom.vectors}
    grids, meta = surfaces.compute(model, ds, s_settings, eigenvectors, out / "tiles", log=quiet)
    summary = json.loads(json.dumps(h.summary))  # as the check reads it from summary.json
    checks = check_model.compute(model, ds, summary, check_model.ModelCheckSettings(
        projections=6, slices=8, hutchinson_samples=8, bias_slices=2, device="cpu"), "chain", log=quiet)
    meta = json.loads(json.dumps(meta))
    curvature = check_curvature.compute(model, ds, eigenvectors, grids, meta, "chain", log=quiet)
    return dict(H=H, exact=exact, hessian=h, grids=grids, meta=meta, checks=checks, curvature=curvature, ds=ds,
                model=model)


def test_hessian_compute_matches_the_dense_hessian(chain):
    exact, summary = chain["exact"], chain["hessian"].summary
    scale = float(exact.abs().max())
    assert summary["eigen"]["top"]["values"] == pytest.approx(exact.flip(0)[:2].tolist(), abs=1e-7 * scale)
    assert summary["eigen"]["bottom"]["values"][0] == pytest.approx(float(exact[0]), abs=1e-7 * scale)
    assert summary["n_parameters"] == chain["H"].shape[0]


def test_surfaces_compute_has_the_trained_loss_at_the_centre(chain):
    grids, ds = chain["grids"], chain["ds"]
    loss = chain["hessian"].summary["loss"]
    for pair in ("random", "hessian"):
        assert grids[f"{pair}_r0.1_2d_train_loss"].shape == (9, 9)
        assert grids[f"{pair}_r0.1_2d_train_loss"][4, 4] == pytest.approx(loss, rel=1e-5)
    assert chain["meta"]["task"] == ds.task


def test_check_model_compute_uses_the_exact_trace_of_a_small_model(chain):
    result = chain["checks"]
    assert result.trace_table["exact"].iloc[0] == pytest.approx(float(torch.trace(chain["H"])), rel=1e-9)
    assert list(result.trace_table["S"]) == list(range(1, 9))
    quantities = set(result.rows["quantity"])
    assert {"mean projected curvature (Gaussian) vs exact tr(H)", "HVP-free trace vs exact tr(H)"} <= quantities
    assert result.sign["lambda_min"] == chain["hessian"].summary["eigen"]["bottom"]["values"][0]


def test_check_curvature_compute_compares_each_pair_with_exact_curvatures(chain):
    rows = chain["curvature"]
    assert len(rows) == 16 and set(rows["verdict"]) <= {"pass", "FAIL"}
    centre = rows[rows["quantity"].str.startswith("kappa+ of the grid")]
    assert len(centre) == 2 and np.isfinite(centre["theory"]).all()


def test_check_model_reuses_the_hessian_steps_probes_and_draws_only_the_rest(chain):
    """The hessian step's 8 Hutchinson samples are the first 8 of the checks' 12 (same loss, same dtype)."""
    h = chain["hessian"]
    summary = json.loads(json.dumps(h.summary))
    settings = check_model.ModelCheckSettings(projections=6, slices=8, hutchinson_samples=12, bias_slices=2, device="cpu")
    quiet = lambda *_: None  # noqa: E731
    reused = check_model.compute(chain["model"], chain["ds"], summary, settings, "chain", log=quiet,
                                 hessian_trace_samples=h.trace.samples)
    running = reused.trace_table.set_index("S")["hutchinson"]
    prior = h.trace.samples
    assert [running[s] for s in (1, 4, 8)] == pytest.approx([prior[:s].mean() for s in (1, 4, 8)], rel=1e-12)
    fresh = check_model.compute(chain["model"], chain["ds"], summary, settings, "chain", log=quiet)
    assert fresh.trace_table.set_index("S")["hutchinson"][8] != pytest.approx(prior.mean(), rel=1e-9)
    other = dict(summary, dtype="float32")  # products in another precision: nothing reused
    unshared = check_model.compute(chain["model"], chain["ds"], other, settings, "chain", log=quiet,
                                   hessian_trace_samples=h.trace.samples)
    assert unshared.trace_table.set_index("S")["hutchinson"][8] == fresh.trace_table.set_index("S")["hutchinson"][8]
