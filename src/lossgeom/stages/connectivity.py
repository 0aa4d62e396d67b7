"""The ``connectivity`` step: how a sweep's independently trained solutions connect (Sagun et al. 2017; Garipov et
al. 2018; Fort & Jastrzebski 2019; Yang et al. 2021).

The sweep's runs are grouped into conditions (their grid values other than ``train.seed``); within a condition the
seeds are independent solutions. For each condition:

- every pair of seeds: the loss and error along the straight line and along a quadratic Bezier curve with a trained
  bend (:func:`lossgeom.geometry.paths.train_bend`, one t ~ U(0, 1) per minibatch, from the line's midpoint), at
  ``path_points`` evenly spaced t (BatchNorm statistics recomputed at each); the barrier of each path
  (max_t L(t) - the endpoints' interpolation) and Yang et al.'s mode connectivity mc from the training error (%) at
  t = 0, 1/4, 1/2, 3/4, 1;
- three seeds or more: the low-loss simplicial complex (Fort & Jastrzebski; Benton et al.'s construction): the seeds
  as fixed vertices w_i, ``connectors`` trained points c_j shared by the simplices (w_i, c_1, ..., c_m), one per
  seed (no simplex holds two seeds, so the straight segment between two, with its barrier, is not part of it),
  fitted with a reward for the simplices' log volume (``volume_weight``) that keeps the connectors apart; the
  mean and largest training loss over uniform points of them, against the vertices' mean; a 2D slice of the loss
  through the plane of the first simplex's first three corners;
- linear CKA between the seeds' softmax outputs on mixup inputs (Beta(16, 16) between training examples), the mean
  over pairs (Yang et al.).

Small batch vs large batch (Sagun et al.): when the grid varies ``train.batch_size``, every run at the largest batch
size is continued with the smallest one (plain SGD from its weights, ``continue_epochs`` epochs at the run's own lr,
its seed's data order), and the straight line from the large-batch solution to the continued one is measured like
the lines above.

Resuming: each unit of work (a pair's paths, a simplex, a continuation) is saved when done in ``partial.pt`` beside
the outputs, for these input files (by content) and settings; a killed job continues with the next unit.

Outputs: ``paths.csv`` (one row per path point), ``summary.json`` (per condition: barriers, mc, simplex, CKA; the
continuations; every input model's fingerprint), ``simplex_slice.npz`` and the check rows
(:mod:`lossgeom.checks.connectivity`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from ..checks.connectivity import connectivity_rows
from ..checks.rows import rows_to_frame
from ..device import deterministic_torch, pick_device
from ..geometry.paths import YANG_POINTS, barrier, bezier, evaluate_path, flat_loss, line, mode_connectivity, train_bend
from ..geometry.similarity import mean_pairwise_cka, mixup_inputs
from ..geometry.simplices import point_in_face, simplex_loss, star_faces, train_connectors
from ..io.atomic import write_csv, write_json, write_npz
from ..io.partial import PartialFile
from ..io.provenance import input_record, provenance
from ..io.sweeps import SEED_KEY, condition_label
from ..problems.losses import loss_function
from ..settings.connectivity import ConnectivitySettings
from ..training.checkpoints import load_model
from ..training.continuation import continue_training, minibatches

BATCH_KEY = "train.batch_size"


@dataclasses.dataclass
class Solution:
    run: str
    grid: dict[str, Any]
    model: torch.nn.Module
    weights: torch.Tensor
    path: str  # its model.pt




def _stream(seed: int, purpose: str, *indices: int) -> int:
    """A seed of its own for each random stream of the step (a bend per pair, the connectors, the samples), derived
    from the settings' seed, so that no two fits share a data order or a draw of t."""
    words = [seed, sum(ord(c) * 31**i for i, c in enumerate(purpose)) % 2**31, *indices]
    return int(np.random.SeedSequence(words).generate_state(1)[0] >> 1)


def _path_rows(model, points, ts, splits, task, settings, **labels) -> list[dict[str, Any]]:
    metrics = evaluate_path(model, points, splits, task, settings.eval_batch_size)
    return [{**labels, "t": float(t), **m} for t, m in zip(ts, metrics)]


def _path_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Barrier of the training loss and of the training error (%), and mc from the error at Yang et al.'s points."""
    ts = [r["t"] for r in rows]
    error = [100.0 * (1.0 - r["train_accuracy"]) for r in rows]
    at = [error[int(np.argmin(np.abs(np.asarray(ts) - t)))] for t in YANG_POINTS]
    return {"loss_barrier": barrier(ts, [r["train_loss"] for r in rows]), "error_barrier": barrier(ts, error),
            "mc": mode_connectivity(at), "end_losses": [rows[0]["train_loss"], rows[-1]["train_loss"]],
            "max_loss": max(r["train_loss"] for r in rows)}


def run(runs: Mapping[str, Mapping[str, Any]], settings: ConnectivitySettings, out_dir, rows_out, sweep: str,
        log: Callable = print) -> dict[str, Any]:
    """``runs``: {run id: {"model": model.pt, "grid": {key path: value}}}. Writes paths.csv, summary.json,
    simplex_slice.npz under ``out_dir`` and the check rows to ``rows_out`` (None: no rows, as for one part of a split
    sweep); returns the summary. Each finished path, simplex and continuation is kept in ``out_dir/partial.pt`` until
    the outputs are written, so a killed job resumes with the next one."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    out_dir = Path(out_dir)
    inputs = input_record(**{run_id: item["model"] for run_id, item in runs.items()})
    partial = PartialFile.for_job(out_dir / "partial.pt", inputs, settings)
    summary, paths, slices = compute(runs, settings, sweep, partial, inputs, log)
    _write(summary, paths, slices, out_dir, rows_out, log)
    partial.remove()
    return summary


def compute(runs: Mapping[str, Mapping[str, Any]], settings: ConnectivitySettings, sweep: str, partial: PartialFile,
            inputs: Mapping[str, Any], log: Callable = print) -> tuple[dict[str, Any], pd.DataFrame, dict[str, np.ndarray]]:
    """The summary, the path table and the simplices' loss slices of these runs, in memory; ``partial`` keeps (and
    gives back on a rerun) each finished unit of work."""
    tick = time.perf_counter()
    torch.set_grad_enabled(True)
    device = pick_device(settings.device)
    solutions = []
    for run_id, item in runs.items():
        model, dataset, stored = load_model(item["model"], device)
        model.eval()
        weights, _ = flat_loss(model, loss_function(dataset.task))
        solutions.append(Solution(run_id, dict(item["grid"]), model, weights.detach().clone(), str(item["model"])))
    if dataset.task != "classification":
        raise ValueError(f"connectivity: {sweep} is a regression sweep; mode connectivity and CKA compare classifiers "
                         "(training error, softmax outputs)")
    groups: dict[str, list[Solution]] = {}
    for s in solutions:
        groups.setdefault(condition_label(s.grid), []).append(s)

    ts = np.linspace(0.0, 1.0, settings.path_points)
    path_rows, conditions, slices = [], {}, {}
    for number, (condition, seeds) in enumerate(groups.items()):
        _, dataset, _ = load_model(seeds[0].path)  # the condition's data (grid keys may change it)
        x, y = dataset.x_train.to(device), dataset.y_train.to(device)
        splits = {"train": (x, y), "test": (dataset.x_test.to(device), dataset.y_test.to(device))}
        model, loss_fn = seeds[0].model, loss_function(dataset.task)
        _, loss_of = flat_loss(model, loss_fn)
        record: dict[str, Any] = {"runs": [s.run for s in seeds], "grid": {k: v for k, v in seeds[0].grid.items()
                                                                              if k != SEED_KEY}, "pairs": []}
        if len(seeds) >= 2:  # before the fits below, which run seeds[0]'s model in training mode (BatchNorm buffers)
            inputs_mixed = mixup_inputs(x, settings.cka_examples, settings.mixup_concentration, settings.seed)
            with torch.no_grad():
                outputs = [torch.softmax(s.model.eval()(inputs_mixed), dim=1) for s in seeds]
            record["cka"] = mean_pairwise_cka(outputs)
        for a, b in itertools.combinations(range(len(seeds)), 2):
            first, second = seeds[a], seeds[b]
            slot = partial.slot(f"pair/{condition}/{first.run}/{second.run}")
            done = slot.load()
            if done is None:
                log(f"{condition}: {first.run} -- {second.run}: line, then a Bezier bend ({settings.bend_epochs} epochs)")
                model.train()
                stream = _stream(settings.seed, "bend", a, b)
                bend = train_bend(loss_of, first.weights, second.weights,
                                  minibatches(x, y, settings.batch_size, settings.bend_epochs, stream),
                                  lr=settings.bend_lr, seed=stream,
                                  steps=settings.bend_epochs * -(-len(x) // settings.batch_size))
                model.eval()
                rows = []
                for kind, point in (("line", lambda t: line(first.weights, second.weights, t)),
                                    ("bezier", lambda t: bezier(first.weights, second.weights, bend, t))):
                    rows += _path_rows(model, [point(float(t)) for t in ts], ts, splits, dataset.task, settings,
                                       condition=condition, kind=kind, start=first.run, end=second.run)
                done = {"rows": rows, "distance": float(torch.linalg.vector_norm(first.weights - second.weights)),
                        "bend_offset": float(torch.linalg.vector_norm(bend - 0.5 * (first.weights + second.weights)))}
                slot.save(done, final=True)
            rows = done["rows"]
            path_rows += rows
            record["pairs"].append({"start": first.run, "end": second.run, "distance": done["distance"],
                                    "bend_offset": done["bend_offset"],
                                    **{kind: _path_summary([r for r in rows if r["kind"] == kind])
                                       for kind in ("line", "bezier")}})
        if len(seeds) >= 3 and settings.simplices:
            record["simplex"], slices[condition] = _simplex(partial, condition, seeds, model, loss_of, x, y, splits,
                                                            dataset.task, settings, log)
        conditions[condition] = record
        log(f"condition {number + 1} of {len(groups)} ({condition}) done")

    continued = _small_from_large(partial, solutions, ts, settings, device, log)
    path_rows += [r for item in continued for r in item.pop("rows")]
    summary = {"sweep": sweep, "conditions": conditions, "continued": continued,
               "settings": dataclasses.asdict(settings), "inputs": inputs,
               "wall_s": time.perf_counter() - tick, "provenance": provenance(seed=settings.seed)}
    flat_slices = {f"{k}__{name}": v for k, arrays in slices.items() for name, v in arrays.items()}
    return summary, pd.DataFrame(path_rows), flat_slices


def _write(summary, paths: pd.DataFrame, slices: Mapping[str, np.ndarray], out_dir, rows_out, log) -> None:
    """The step's outputs; the rows only when ``rows_out`` is given (not for one part of a split sweep)."""
    out_dir = Path(out_dir)
    write_csv(paths, out_dir / "paths.csv")
    write_npz(dict(slices), out_dir / "simplex_slice.npz")
    write_json(summary, out_dir / "summary.json")
    verdicts = ""
    if rows_out is not None:
        frame = rows_to_frame(connectivity_rows(summary, summary["sweep"]))
        write_csv(frame, rows_out)
        verdicts = "; rows: " + ", ".join(f"{v} {n}" for v, n in frame["verdict"].value_counts().items())
    log(f"connectivity of {summary['sweep']}: {len(summary['conditions'])} conditions, {len(summary['continued'])} "
        f"continuations, {summary['wall_s']:.1f} s" + verdicts)


def merge(parts, out_dir, rows_out, sweep: str, order=None, log: Callable = print) -> dict[str, Any]:
    """One summary, path table, slices and rows from the folders of a split sweep's parts (each a run of :func:`run` on
    whole conditions): what one job over all of them writes, the wall time the parts' sum. ``order``: the sweep's run
    ids in its grid's order, which puts the conditions (and the rows and paths) in the order one job would have."""
    summaries = [json.loads((Path(p) / "summary.json").read_text()) for p in parts]
    found: dict[str, Any] = {}
    for s in summaries:
        found.update(s["conditions"])
    position = {run: i for i, run in enumerate(order or [])}
    rank = lambda item: min(position.get(run, len(position)) for run in item[1]["runs"])  # noqa: E731
    conditions = dict(sorted(found.items(), key=rank)) if order else found
    summary = {"sweep": sweep, "conditions": conditions, "continued": [c for s in summaries for c in s["continued"]],
               "settings": summaries[0]["settings"], "inputs": {k: v for s in summaries for k, v in s["inputs"].items()},
               "wall_s": sum(s["wall_s"] for s in summaries), "parts": [str(p) for p in parts],
               "provenance": provenance(seed=summaries[0]["settings"]["seed"])}
    frames = [pd.read_csv(Path(p) / "paths.csv") for p in parts if (Path(p) / "paths.csv").stat().st_size > 1]
    paths = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(paths) and order:  # the conditions' order, each condition's rows as they were
        places = {condition: i for i, condition in enumerate(conditions)}
        paths = paths.iloc[paths["condition"].map(places).to_numpy().argsort(kind="stable")]
    slices: dict[str, np.ndarray] = {}
    for p in parts:
        with np.load(Path(p) / "simplex_slice.npz") as arrays:
            slices.update({k: arrays[k] for k in arrays.files})
    _write(summary, paths.reset_index(drop=True), slices, out_dir, rows_out, log)
    return summary


def _simplex(partial, condition, seeds, model, loss_of, x, y, splits, task, settings, log):
    """The seeds as vertices, shared trained connectors (from the vertices' mean, each moved by a seeded 1% of the
    vertices' spread so that they part); the loss over the complex and a slice through its first simplex."""
    slot = partial.slot(f"simplex/{condition}")
    done = slot.load()
    vertices = [s.weights for s in seeds]
    faces = star_faces(len(vertices), settings.connectors)
    if done is None:
        log(f"{condition}: simplices on {len(vertices)} seeds, {settings.connectors} connectors fitted for "
            f"{settings.connector_epochs} epochs")
        stacked = torch.stack(vertices)
        g = torch.Generator().manual_seed(_stream(settings.seed, "start"))
        spread = float(stacked.std(0).norm()) / stacked.shape[1] ** 0.5
        start = [stacked.mean(0) + 0.01 * spread * torch.randn(stacked.shape[1], generator=g, dtype=torch.float64)
                 .to(stacked) for _ in range(settings.connectors)]
        model.train()
        connectors = train_connectors(loss_of, vertices, start, faces,
                                        minibatches(x, y, settings.batch_size, settings.connector_epochs,
                                                    _stream(settings.seed, "connectors")),
                                        lr=settings.connector_lr, seed=_stream(settings.seed, "connectors"),
                                        steps=settings.connector_epochs * -(-len(x) // settings.batch_size),
                                        volume_weight=settings.volume_weight)
        model.eval()

        def train_loss(w):
            return evaluate_path(model, [w], {"train": splits["train"]}, task, settings.eval_batch_size)[0]["train_loss"]

        measured = simplex_loss(train_loss, vertices, connectors, faces, settings.simplex_samples,
                                _stream(settings.seed, "samples"))
        # the plane of the first simplex's first three corners (w_0, c_1, c_2 with two connectors; w_0, c_1, w_1 with
        # one): p = (1 - a - b) p_0 + a p_1 + b p_2
        plane = ([vertices[0], *connectors[:2]] if len(connectors) >= 2 else [vertices[0], connectors[0], vertices[1]])
        corners = torch.stack(plane)
        a = np.linspace(-0.25, 1.25, settings.slice_points)
        grid = np.empty((len(a), len(a)))
        for i, u in enumerate(a):
            for j, v in enumerate(a):
                grid[j, i] = train_loss(point_in_face(corners, torch.tensor([1 - u - v, u, v], dtype=torch.float64)))
        # lists, not arrays: partial.pt is read back with weights_only, which refuses numpy arrays
        done = {"measured": measured, "slice": {"coordinates": a.tolist(), "loss": grid.tolist()},
                "connector_offsets": [float(torch.linalg.vector_norm(c - stacked.mean(0))) for c in connectors],
                # how far apart the connectors ended (0: the simplices flattened into segments to one point)
                "connector_distance": (float(torch.linalg.vector_norm(connectors[0] - connectors[1]))
                                       if len(connectors) >= 2 else float("nan")),
                "plane": ["w_0", "c_1", "c_2"] if len(connectors) >= 2 else ["w_0", "c_1", "w_1"]}
        slot.save(done, final=True)
    return ({**done["measured"], "vertices": [s.run for s in seeds], "faces": [list(f) for f in faces],
             "connector_offsets": done["connector_offsets"], "connector_distance": done["connector_distance"],
             "seed_distance": float(np.mean([torch.linalg.vector_norm(u - v).item()
                                             for u, v in itertools.combinations(vertices, 2)])),
             "plane": done["plane"]},
            {k: np.asarray(v) for k, v in done["slice"].items()})


def _small_from_large(partial, solutions, ts, settings, device, log) -> list[dict[str, Any]]:
    """Each largest-batch run continued with the smallest batch size; the straight line between the two."""
    sizes = sorted({s.grid[BATCH_KEY] for s in solutions if BATCH_KEY in s.grid})
    if len(sizes) < 2 or not settings.continuation:
        return []
    out = []
    for s in (s for s in solutions if s.grid[BATCH_KEY] == sizes[-1]):
        small_condition = condition_label({**s.grid, BATCH_KEY: sizes[0]})
        slot = partial.slot(f"continued/{s.run}")
        done = slot.load()
        if done is None:
            model, dataset, stored = load_model(s.path, device)  # a fresh copy: the continuation trains it in place
            train = stored["experiment"]["train"]
            x, y = dataset.x_train.to(device), dataset.y_train.to(device)
            log(f"{s.run}: continued with batch size {sizes[0]} for {settings.continue_epochs} epochs (lr {train['lr']:g})")
            losses = continue_training(model, loss_function(dataset.task), x, y,
                                       epochs=settings.continue_epochs, batch_size=sizes[0], lr=train["lr"],
                                       momentum=train["momentum"], weight_decay=train["weight_decay"],
                                       seed=train["seed"])
            end, _ = flat_loss(model, loss_function(dataset.task))
            splits = {"train": (x, y), "test": (dataset.x_test.to(device), dataset.y_test.to(device))}
            rows = _path_rows(model, [line(s.weights, end.detach(), float(t)) for t in ts], ts, splits, dataset.task,
                              settings, condition=condition_label(s.grid), kind="large_to_small", start=s.run,
                              end=f"{s.run} continued at batch {sizes[0]}")
            done = {"rows": rows, "losses": losses, "distance": float(torch.linalg.vector_norm(end - s.weights))}
            slot.save(done, final=True)
        out.append({"run": s.run, "from_batch": sizes[-1], "to_batch": sizes[0], "small_condition": small_condition,
                    "distance": done["distance"], "epoch_losses": done["losses"], "rows": done["rows"],
                    **_path_summary(done["rows"])})
    return out


def add_commands(steps) -> None:
    """CLI: ``lossgeom connectivity``."""
    command = steps.add_parser("connectivity", help="paths, simplices and CKA between a sweep's seeds")
    command.add_argument("--sweep", required=True)
    command.add_argument("--runs", required=True, help='JSON: run id -> {"model": model.pt, "grid": {key: value}}')
    command.add_argument("--settings", default="{}", help="the connectivity config block as JSON")
    command.add_argument("--out-dir", required=True, type=Path)
    command.add_argument("--rows", type=Path, help="the check rows (CSV); omit for one part of a split sweep")
    command.set_defaults(func=lambda args: run(
        json.loads(args.runs), ConnectivitySettings.from_mapping(json.loads(args.settings)), args.out_dir, args.rows,
        args.sweep, log=logging.getLogger(__name__).info))
    command = steps.add_parser("connectivity-merge", help="one connectivity summary and its rows from a split sweep's parts")
    command.add_argument("--sweep", required=True)
    command.add_argument("--parts", required=True, nargs="+", type=Path, help="the parts' output folders")
    command.add_argument("--out-dir", required=True, type=Path)
    command.add_argument("--rows", required=True, type=Path, help="the check rows (CSV)")
    command.add_argument("--order", help="JSON list: the sweep's run ids in its grid's order")
    command.set_defaults(func=lambda args: merge(args.parts, args.out_dir, args.rows, args.sweep,
                                                 json.loads(args.order) if args.order else None,
                                                 log=logging.getLogger(__name__).info))
