"""Every torch stage's compute() in memory, chained as the workflow chains them, on a model small enough for a
dense float64 Hessian: what each stage returns is checked against that exact reference."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import scipy.linalg
import torch

from lossgeom.engine.hessian import dense_hessian, flat_model
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
                model=model, eigenvectors=eigenvectors)


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


def _dense_projection(chain, eta: torch.Tensor, delta: torch.Tensor, a: float, b: float):
    """(M, g) of L(theta + a eta + b delta) from the dense float64 Hessian and gradient of a model built at that point."""
    ds = chain["ds"]
    theta, outputs_of_flat = flat_model(chain["model"], ds.x_train)
    y = ds.y_train.double() if ds.y_train.is_floating_point() else ds.y_train
    loss = lambda t: loss_function(ds.task)(outputs_of_flat(t), y)  # noqa: E731
    point = theta + a * eta + b * delta
    H = torch.autograd.functional.hessian(loss, point)
    gradient = torch.autograd.functional.jacobian(loss, point)
    P = torch.stack([eta, delta], dim=1)
    return (P.T @ H @ P).numpy(), (P.T @ gradient).numpy()


def _graph_curvatures(M: np.ndarray, g: np.ndarray) -> list[float]:
    """Principal curvatures of the graph z = L(a, b): the generalized eigenvalues of its second fundamental form
    M / sqrt(1 + |g|^2) against its first, 1 + g g^T (largest first)."""
    return sorted(scipy.linalg.eigh(M / np.sqrt(1.0 + g @ g), np.eye(2) + np.outer(g, g), eigvals_only=True), reverse=True)


def test_check_curvature_compute_compares_each_pair_with_exact_curvatures(chain):
    """Each pair's rows: the exact side (theory) against curvatures from the dense float64 Hessian and gradient of
    models built at the grid's centre and at its off-centre point; the Hessian pair's centre curvatures also against
    the closed form lambda_max |eta|^2, lambda_min |delta|^2; the smooth tanh model's grid agrees within each row's
    stated tolerance."""
    rows, grids, meta = chain["curvature"], chain["grids"], chain["meta"]
    assert len(rows) == 16 and set(rows["verdict"]) <= {"pass", "FAIL"}
    settings = surfaces.SurfaceSettings.from_mapping(meta["settings"])
    exact = chain["exact"]
    for pair in ("random", "hessian"):
        eta, delta = (d.to(torch.float64) for d in surfaces.direction_pair(chain["model"], settings, chain["eigenvectors"], pair))
        assert [float(eta.norm()), float(delta.norm())] == pytest.approx(
            [meta["surfaces"][pair]["eta_norm"], meta["surfaces"][pair]["delta_norm"]], rel=1e-6)
        ours = rows[rows["case"].str.endswith(f" {pair} r=0.1")]
        assert len(ours) == 8, ours.to_string()
        fd, graph, saddle, away = ours.iloc[0:2], ours.iloc[2:4], ours.iloc[4:6], ours.iloc[6:8]
        assert fd["quantity"].str.contains("of the grid \\(central differences\\)").all()
        assert graph["quantity"].str.contains("graph surface").all() and away["quantity"].str.contains("graph surface").all()
        assert saddle["quantity"].str.contains("shows a saddle").all()
        M, g = _dense_projection(chain, eta, delta, 0.0, 0.0)
        kappas = sorted(np.linalg.eigvalsh(M), reverse=True)
        scale = float(np.abs(M).max())
        assert fd["theory"].tolist() == pytest.approx(kappas, abs=1e-9 * scale)
        assert graph["theory"].tolist() == pytest.approx(_graph_curvatures(M, g), abs=1e-9 * scale)
        assert saddle["theory"].tolist() == [float(kappas[0] * kappas[1] < 0)] * 2
        if pair == "hessian":  # eta, delta: v_max, v_min rescaled, so M = diag(lambda_max |eta|^2, lambda_min |delta|^2)
            closed = sorted([float(exact[-1]) * float(eta.norm()) ** 2, float(exact[0]) * float(delta.norm()) ** 2], reverse=True)
            assert fd["theory"].tolist() == pytest.approx(closed, abs=1e-6 * scale)
        # the grid's central differences agree with the dense curvatures within each row's stated tolerance
        assert (np.abs(fd["measured"].to_numpy() - kappas) <= fd["tolerance"].to_numpy()).all(), fd.to_string()
        a, b = grids[f"{pair}_r0.1_2d_a"], grids[f"{pair}_r0.1_2d_b"]
        where = re.match(r"at \(a, b\) = \(([^,]+), ([^)]+)\)", away["detail"].iloc[0])
        i, j = (int(np.argmin(np.abs(axis - float(v)))) for axis, v in ((a, where[1]), (b, where[2])))
        assert (i, j) != (len(a) // 2, len(b) // 2) and abs(a[i] - float(where[1])) < 1e-4 and abs(b[j] - float(where[2])) < 1e-4
        M_away, g_away = _dense_projection(chain, eta, delta, float(a[i]), float(b[j]))
        assert away["theory"].tolist() == pytest.approx(_graph_curvatures(M_away, g_away), abs=1e-9 * scale)


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
