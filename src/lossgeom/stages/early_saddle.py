"""The ``early_saddle`` step: the paper's visual claim on a real network early in training (issue 14 g).

At the end of training lambda_min is hundreds to tens of thousands of times smaller than lambda_max, and the
Hessian-direction grids of F5 show no saddle at their scale. Early in training lambda_min / lambda_max is not small.
Whether random projections then hide the saddle depends on the spectrum: a random 2D projection shows a saddle with
a probability set by tr(H) against the spread sqrt(tr(H^2)) and the outliers (the paper's prediction). So from a
sweep's trajectory table (every run; snapshots after the initialization and before the end) this step takes two
cases: ``most negative``, the snapshot with the most negative lambda_min / lambda_max, and ``trace-dominated``, the
most negative among the snapshots where that prediction says most random projections show a minimum or a maximum
(the paper's regime; the same snapshot when the first already is). For each, in float64:

- computes the loss on 2D grids L(theta + a eta + b delta) in the Hessian directions (eta, delta) = (v_max, v_min)
  and in a pair of random filter-normalized directions (the paper's), each rescaled like the surfaces step's, on a
  display range (figure F12) and on a small range for the curvature rows;
- compares the Hessian grid's principal curvatures at the centre with the exact projected Hessian (two products):
  the grid shows the saddle (kappa+ kappa- < 0) as the exact values say, and kappa+- agree within the grid's own
  truncation (|kappa(h) - kappa(2h)|) plus rounding (:mod:`lossgeom.checks.surface_curvature`);
- draws ``projections`` random Gaussian 2D projections (two products each): the share that shows a saddle against
  its prediction from the spectrum (the computed extreme eigenvalues exact, the bulk from tr(H) and tr(H^2);
  :func:`lossgeom.theory.projections.saddle_fraction_spiked`), and whether most show a minimum or a maximum.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from ..checks.rows import SIGMAS, CheckRow, rows_to_frame
from ..checks.surface_curvature import curvature_rows, saddle_rows
from ..device import deterministic_torch, pick_device
from ..engine.hessian import HessianOperator
from ..errors import InputMismatch
from ..geometry.curvature import exact_projection, grid_centre, principal_curvatures, random_projections
from ..geometry.directions import orthogonalize, random_direction
from ..geometry.surfaces import compute_surface
from ..io.atomic import atomic_path, write_csv, write_json
from ..io.provenance import input_record, provenance
from ..problems.losses import loss_function
from ..settings import settings_help
from ..settings.saddle import SaddleSettings
from ..theory.projections import saddle_fraction_spiked
from ..training.checkpoints import load_model
from .hessian import loss_examples
from .surfaces import load_eigenvectors

CHECK = "early_saddle"


def early_snapshots(trajectory: pd.DataFrame) -> pd.DataFrame:
    """The rows of the trajectory table strictly after the initialization and before each run's last snapshot,
    with both extreme eigenvalues, and their ``ratio`` lambda_min / lambda_max."""
    last = trajectory.groupby("run")["step"].transform("max")
    early = trajectory[(trajectory["step"] > 0) & (trajectory["step"] < last)].dropna(subset=["lambda_min", "lambda_max"])
    if early.empty:
        raise InputMismatch("the trajectory has no snapshot after step 0 and before the end with lambda_min and "
                            "lambda_max; give the sweep snapshots in between and hessian k_bottom >= 1")
    return early.assign(ratio=early["lambda_min"] / early["lambda_max"])


def predicted_saddle_share(hessian_summary: Mapping[str, Any], seed: int = 0) -> float:
    """The share of random Gaussian 2D projections predicted to show a saddle: the computed extreme eigenvalues
    exact, the bulk from tr(H) and tr(H^2) (:func:`saddle_fraction_spiked`); NaN without tr(H^2)."""
    eig = hessian_summary["eigen"]
    trace_sq = hessian_summary.get("density_moments", {}).get("trace_h2")
    if not trace_sq:
        return float("nan")
    outliers = list(eig["top"]["values"]) + list(eig["bottom"]["values"])
    return saddle_fraction_spiked(outliers, hessian_summary["trace"]["hutchinson"], trace_sq, 200_000, seed)


def choose_cases(early: pd.DataFrame, predicted: pd.Series) -> dict[str, pd.Series]:
    """{case: row}: ``most negative`` lambda_min / lambda_max, and ``trace-dominated``, the most negative among the
    rows whose ``predicted`` saddle share (aligned with ``early``) is below 1/2 (left out when there is none, or
    when it is the same row)."""
    cases = {"most negative": early.loc[early["ratio"].idxmin()]}
    dominated = early[predicted.reindex(early.index) < 0.5]
    if not dominated.empty:
        row = dominated.loc[dominated["ratio"].idxmin()]
        if row.name != cases["most negative"].name:
            cases["trace-dominated"] = row
    return cases


def compute(model, dataset, hessian_summary: Mapping[str, Any], eigen: Mapping[str, Any], settings: SaddleSettings,
            case: str, tiles_dir: Path, log=print) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, Any]]:
    """Rows, grids and a record (module docstring) for ``model`` (in float64 from here on) and its hessian step's
    outputs; the grids' tiles go to ``tiles_dir`` (a rerun reuses them)."""
    model = copy.deepcopy(model).to(torch.float64)  # the caller's model stays as it is
    recorded = hessian_summary.get("settings", {})
    x, y = loss_examples(dataset, recorded.get("split", "train"), recorded.get("examples", 0), recorded.get("seed", 0))
    device = next(model.parameters()).device
    x, y = x.to(device, torch.float64), y.to(device)
    loss_fn = loss_function(dataset.task)
    make_operator = lambda: HessianOperator(model, loss_fn, x, y, batch_size=settings.batch_size)  # noqa: E731

    eta = random_direction(model, "filter", settings.seed)
    delta = orthogonalize(random_direction(model, "filter", settings.seed + 1), eta)
    v_max, v_min = (eigen[k][0].to(eta) for k in ("top_vectors", "bottom_vectors"))
    pairs = {"hessian": (v_max * (eta.norm() / v_max.norm()), v_min * (delta.norm() / v_min.norm())),
             "random": (eta, delta)}
    grids: dict[str, np.ndarray] = {}
    rows: list[CheckRow] = []
    # the display range: `range`, or less where the loss along v_max rises by more than ~L itself within it
    # (1/2 kappa+ r^2 = 4.5 L at r = 3 sqrt(L / kappa+)), so that the saddle is not lost under the steep direction
    top = max(abs(v) for v in principal_curvatures(exact_projection(model, make_operator, *pairs["hessian"], 0.0, 0.0)[0]))
    shown = min(settings.range, 3.0 * math.sqrt(abs(make_operator().loss()) / top)) if top > 0 else settings.range
    grids["display_range"] = np.array(shown)
    for pair, (first, second) in pairs.items():
        for label, r, points in (("display", shown, settings.points), ("check", settings.check_range, 5)):
            axis = np.linspace(-r, r, points)
            values, _ = compute_surface(model, {"train": (x, y)}, dataset.task, first, second, axis, axis,
                                        tiles_dir=tiles_dir / f"{pair}_{label}", key=f"{pair}_{label}", progress=False)
            grids[f"{pair}_{label}_a"], grids[f"{pair}_{label}_b"] = axis, axis
            grids[f"{pair}_{label}_loss"] = values["train_loss"]
        M, g = exact_projection(model, make_operator, first, second, 0.0, 0.0)
        grids[f"{pair}_exact_M"] = M
        values, axis = grids[f"{pair}_check_loss"], grids[f"{pair}_check_a"]
        label = f"{case} {pair} directions"
        if pair == "hessian":
            rows += saddle_rows(label, values, axis, axis, M)
            rows += curvature_rows(label, values, axis, axis, grid_centre(axis, axis), M, g,
                                   float(torch.finfo(torch.float64).eps), kinds=("kappa_fd",))
        log(f"{pair} directions: exact kappa+- {principal_curvatures(M)}")
    for row in rows:
        row.check = CHECK

    # the sign question at this snapshot: random Gaussian 2D projections against the prediction from the spectrum
    # seed + 2: seed and seed + 1 drew the grid's random directions; the same stream would repeat one of them here
    M = random_projections(make_operator(), settings.projections, seed=settings.seed + 2)
    det = M[:, 0] * M[:, 2] - M[:, 1] ** 2
    saddle = float(np.mean(det < 0))
    eig = hessian_summary["eigen"]
    trace = hessian_summary["trace"]["hutchinson"]
    trace_sq = hessian_summary.get("density_moments", {}).get("trace_h2")
    predicted = predicted_saddle_share(hessian_summary, settings.seed)
    P = settings.projections
    p = min(max(predicted if math.isfinite(predicted) else saddle, 1 / P), 1 - 1 / P)
    se = math.sqrt(p * (1 - p) / P)
    detail = (f"{P} Gaussian projections: minimum {float(np.mean((det > 0) & (M[:, 0] > 0))):.3f}, maximum "
              f"{float(np.mean((det > 0) & (M[:, 0] < 0))):.3f}, saddle {saddle:.3f}; tr(H) = {trace:.4g}, "
              f"tr(H^2) = {trace_sq if trace_sq is None else f'{trace_sq:.4g}'}; SE binomial only (the inputs' "
              "own errors not propagated)")
    rows.append(CheckRow.compare(CHECK, f"{case} random projections", "fraction of random 2D projections showing a "
                                 "saddle vs predicted from the spectrum (extreme eigenvalues exact, bulk from tr(H), "
                                 "tr(H^2))", predicted, saddle, se, detail))
    rows.append(CheckRow.exceeds(CHECK, f"{case} random projections", "fraction showing a minimum or a maximum > 1/2 "
                                 "(random directions hide the saddle)", 0.5, 1 - saddle, SIGMAS * se,
                                 detail=f"predicted {1 - predicted:.3f}; " + detail))
    record = {"lambda_max": eig["top"]["values"][0], "lambda_min": eig["bottom"]["values"][0], "trace": trace,
              "trace_h2": trace_sq, "fraction_saddle": saddle, "predicted_saddle": predicted, "projections": P,
              "exact_M": {pair: grids[f"{pair}_exact_M"].tolist() for pair in pairs}}
    return rows_to_frame(rows), grids, record


def run(trajectory_path, sweep_dir, sweep: str, settings: SaddleSettings, rows_out, grids_out, record_out,
        log=print) -> pd.DataFrame:
    """Choose the cases from the trajectory table, load each snapshot and its hessian step's outputs, compute, write
    the rows (CSV), the grids (npz, keys prefixed by the case: ``most_negative_hessian_display_loss``, ...) and the
    record (JSON, last)."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    early = early_snapshots(pd.read_csv(trajectory_path))
    point = lambda row: Path(sweep_dir) / str(row["run"]) / "trajectory" / f"step={int(row['step'])}" / "hessian"  # noqa: E731
    predicted = pd.Series({i: predicted_saddle_share(json.loads((point(row) / "summary.json").read_text()), settings.seed)
                           for i, row in early.iterrows()})
    frames, grids, cases = [], {}, []
    for label, row in choose_cases(early, predicted).items():
        run_id, step = str(row["run"]), int(row["step"])
        model_path = Path(sweep_dir) / run_id / "snapshots" / f"step={step}.pt"
        model, dataset, _ = load_model(model_path, pick_device(settings.device))
        hessian_summary = json.loads((point(row) / "summary.json").read_text())
        eigen = load_eigenvectors(point(row) / "eigenvectors.pt", model_path, model, need_bottom=True)
        log(f"{label}: {run_id}, step {step}: lambda_min / lambda_max = {row['ratio']:.3g}, predicted share of random "
            f"projections showing a saddle {predicted[row.name]:.3f}")
        case = f"{sweep} ({label}): {run_id} step {step} (lambda_min/lambda_max = {row['ratio']:.2g})"
        key = label.replace(" ", "_").replace("-", "_")
        rows, case_grids, record = compute(model, dataset, hessian_summary, eigen, settings, case,
                                           Path(grids_out).parent / "tiles" / key, log=log)
        frames.append(rows)
        grids.update({f"{key}_{name}": value for name, value in case_grids.items()})
        cases.append({"case": label, "key": key, "run": run_id, "step": step, "ratio": float(row["ratio"]), **record,
                      "inputs": input_record(model=model_path, hessian=point(row) / "summary.json",
                                             eigenvectors=point(row) / "eigenvectors.pt")})
    table = pd.concat(frames, ignore_index=True)
    write_csv(table, rows_out)
    with atomic_path(grids_out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **grids)
    candidates = early.assign(predicted_saddle_share=predicted)[["run", "step", "lambda_max", "lambda_min", "ratio",
                                                                 "predicted_saddle_share"]]
    write_json({"sweep": sweep, "cases": cases, "candidates": candidates.to_dict("records"),
                "inputs": input_record(trajectory=trajectory_path), "settings": dataclasses.asdict(settings),
                "provenance": provenance(seed=settings.seed)}, record_out)
    return table


def add_commands(steps) -> None:
    """CLI: ``lossgeom early-saddle``."""
    command = steps.add_parser("early-saddle", help="the saddle in Hessian vs random directions at an early snapshot "
                               "of a sweep", **settings_help(SaddleSettings, "saddle"))
    command.add_argument("--sweep", required=True, help="the sweep's name (the rows' case)")
    command.add_argument("--trajectory", required=True, type=Path, help="results/sweeps/<sweep>/trajectory.csv")
    command.add_argument("--sweep-dir", required=True, type=Path, help="results/sweeps/<sweep> (the runs' folders)")
    command.add_argument("--settings", default="{}", help="the saddle config block as JSON")
    command.add_argument("--rows", required=True, type=Path, help="CSV of check rows")
    command.add_argument("--grids", required=True, type=Path, help="npz of the loss grids")
    command.add_argument("--record", required=True, type=Path, help="JSON: the chosen snapshot and the measurements")
    command.set_defaults(func=lambda args: run(args.trajectory, args.sweep_dir, args.sweep,
                                               SaddleSettings.from_mapping(json.loads(args.settings)), args.rows,
                                               args.grids, args.record, log=logging.getLogger(__name__).info))
