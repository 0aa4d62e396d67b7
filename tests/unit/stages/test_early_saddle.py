"""The early_saddle step: it picks the snapshot with the most negative lambda_min / lambda_max before the end, its
Hessian-direction curvatures equal the eigenvalues (rescaled like the directions), and its rows report the grids."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lossgeom.errors import InputMismatch
from lossgeom.stages import early_saddle, hessian, run_trajectory, sweep_trajectory, train

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 60, "n_test": 30},
        "model": {"name": "mlp", "hidden": [5], "activation": "tanh", "init_scale": 0.5},
        "train": {"epochs": 3, "batch_size": 20, "device": "cpu", "snapshots": [0, 1, 3, 9]}}
HESSIAN = hessian.HessianSettings(k_top=3, k_bottom=1, tol=1e-10, hutchinson_samples=8, slq_probes=4, slq_steps=10,
                                  dtype="float64", device="cpu")
quiet = lambda *_: None  # noqa: E731


def test_the_cases_are_the_most_negative_ratio_and_the_most_negative_the_trace_dominates():
    t = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 4, "step": [0, 1, 3, 9] * 2,
                      "lambda_max": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0],
                      "lambda_min": [-5.0, -0.2, -0.1, -9.0, -3.0, -0.5, -0.3, -0.1]})
    early = early_saddle.early_snapshots(t)  # step 0 and the ends are left out
    assert sorted(zip(early["run"], early["step"])) == [("a", 1), ("a", 3), ("b", 1), ("b", 3)]
    predicted = pd.Series([0.3, 0.2, 0.6, 0.1], index=early.index)  # b step 1 (-0.25) shows saddles in random directions
    cases = early_saddle.choose_cases(early, predicted)
    assert {k: (v["run"], v["step"]) for k, v in cases.items()} == {"most negative": ("b", 1),
                                                                     "trace-dominated": ("a", 1)}
    assert list(early_saddle.choose_cases(early, pd.Series(0.1, index=early.index))) == ["most negative"]
    with pytest.raises(InputMismatch, match="snapshots in between"):
        early_saddle.early_snapshots(t[t["step"].isin([0, 9])])


def test_rows_grids_and_the_exact_curvatures_of_a_small_network(tmp_path):
    sweep = tmp_path / "sweep"
    paths = train.TrainPaths.in_directory(sweep / "r")
    train.run("r", SPEC, paths, progress=False)
    run_trajectory.run(paths.snapshots, paths.model, HESSIAN, None, sweep / "r" / "trajectory", log=quiet)
    table = sweep_trajectory.compute({"r": {"train.seed": 0}}, {"r": sweep / "r"})
    table.to_csv(tmp_path / "trajectory.csv", index=False)
    settings = early_saddle.SaddleSettings(points=7, range=0.5, check_range=1e-4, projections=40, device="cpu")
    rows = early_saddle.run(tmp_path / "trajectory.csv", sweep, "demo", settings, tmp_path / "rows.csv",
                            tmp_path / "saddle" / "grids.npz", tmp_path / "saddle" / "saddle.json", log=quiet)
    record = json.loads((tmp_path / "saddle" / "saddle.json").read_text())
    inside = table[(table["step"] > 0) & (table["step"] < 9)]
    expected = inside.loc[(inside["lambda_min"] / inside["lambda_max"]).idxmin()]
    first = record["cases"][0]
    assert first["case"] == "most negative" and first["step"] == expected["step"] and first["run"] == "r"
    assert len(record["candidates"]) == len(inside)
    grids = np.load(tmp_path / "saddle" / "grids.npz")
    # v_max, v_min are unit eigenvectors rescaled to the random directions' norms: M = diag(lam s1^2, lam s2^2)
    M = grids["most_negative_hessian_exact_M"]
    assert abs(M[0, 1]) < 1e-6 * abs(M[0, 0])
    assert np.sign(M[0, 0]) == np.sign(first["lambda_max"]) and np.sign(M[1, 1]) == np.sign(first["lambda_min"])
    assert grids["most_negative_hessian_display_loss"].shape == (7, 7)
    assert grids["most_negative_random_check_loss"].shape == (5, 5)
    centre = grids["most_negative_hessian_display_loss"][3, 3]
    assert centre == pytest.approx(grids["most_negative_random_display_loss"][3, 3], rel=1e-12)  # both: the snapshot
    checks = set(rows["quantity"])
    assert any("shows a saddle" in q for q in checks) and any("kappa+" in q for q in checks)
    assert (rows["check"] == "early_saddle").all() and len(rows) == 6 * len(record["cases"])
    assert set(rows["verdict"]) <= {"pass", "FAIL", "unresolved"}
    # the smooth (tanh) network at a tiny check range: the grid's kappa+- agree with the exact ones
    kappa = rows[rows["quantity"].str.startswith("kappa")]
    assert (kappa["verdict"] == "pass").all(), kappa[["quantity", "theory", "measured", "tolerance"]]


def test_settings_name_the_bad_key():
    from lossgeom.errors import ConfigError

    with pytest.raises(ConfigError, match="saddle.points"):
        early_saddle.SaddleSettings(points=6)
