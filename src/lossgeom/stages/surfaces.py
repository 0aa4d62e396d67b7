"""The ``surface`` step: loss and accuracy grids around a trained model, random vs Hessian directions.

For each direction pair and each range r, a 2D grid of ``points`` x ``points`` on [-r, r]^2 and, along
each of the two directions, a 1D slice of ``points_1d`` points, on the train and test splits.
Direction pairs:
  random   two seeded Gaussian directions, normalized as ``normalization`` says (filter by default,
           Li et al. 2018), the second orthogonalized against the first;
  hessian  the eigenvectors of lambda_max and lambda_min from the hessian step, each rescaled to the
           norm of the matching random direction so that the same ranges mean comparable distances.
Tiles are kept under ``<out>/tiles`` and reused on rerun when weights, directions, grid and splits are
unchanged (see :mod:`lossgeom.geometry.surfaces`).
Writes ``surfaces.npz`` (axes and grids, keys "<pair>_r<range>_<2d|1d_eta|1d_delta>_<split>_<metric>")
and ``surfaces.json`` (what each key is, directions' norms, timings, provenance).

Spread over jobs (``parts`` P > 1): the tiles of all of a model's surfaces are dealt out to P part jobs
(:func:`tile_assignment`, balanced by grid points); each computes its tiles into the shared ``tiles`` folder
and writes ``parts/part<p>.json`` (its tiles and the key they carry); :func:`merge` then reads every tile back
into ``surfaces.npz``, bitwise what one job computes, and fails naming any tile that is missing or was computed
from other inputs. On a cluster each part is its own job: a paper-scale grid spreads over many GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..device import DTYPES, deterministic_torch, pick_device
from ..errors import ConfigError, InputMismatch
from ..geometry.directions import orthogonalize, random_direction
from ..geometry.surfaces import assemble_surface, compute_surface, tile_count, tile_key
from ..io.atomic import write_json, write_npz
from ..io.provenance import input_record, provenance, require_same_input
from ..problems.data import Dataset
from ..problems.models import trainable_parameters
from ..settings import settings_help
from ..settings.surfaces import SurfaceSettings
from ..training.checkpoints import load_file, load_model
from .hessian import EIGENVECTORS_FORMAT


def load_eigenvectors(path: str | Path, model_path: str | Path, model, need_bottom: bool = True) -> dict[str, Any]:
    """The hessian step's eigenvectors.pt, checked to hold both ends (Hessian surfaces need v_max and v_min; the top
    end alone with ``need_bottom=False``) and to belong to ``model``: computed from the file ``model_path`` (by its
    SHA-256), with the model's parameter names and shapes in the same order (directions are flat vectors applied by
    position)."""
    vectors = load_file(path, EIGENVECTORS_FORMAT)
    if len(vectors["top_vectors"]) == 0 or (need_bottom and len(vectors["bottom_vectors"]) == 0):
        raise ConfigError(f"{path}: needs hessian.k_top >= 1 and hessian.k_bottom >= 1 for Hessian surfaces")
    require_same_input(vectors.get("inputs"), "model", model_path, path)
    layout = [(name, list(p.shape)) for name, p in trainable_parameters(model)]
    stored = list(zip(vectors["parameter_names"], [list(s) for s in vectors["parameter_shapes"]]))
    if stored != layout:
        raise InputMismatch(f"{path}: its parameter names and shapes differ from those of {model_path}; "
                            "rerun the hessian step for this model")
    return vectors


def direction_pair(model, settings: SurfaceSettings, eigenvectors: Mapping[str, Any] | None, pair: str):
    """(eta, delta) for a pair kind; Hessian eigenvectors (from :func:`load_eigenvectors`) rescaled to the random
    directions' norms, so that the same ranges mean comparable distances."""
    eta = random_direction(model, settings.normalization, settings.seed, settings.biasbn)
    delta = orthogonalize(random_direction(model, settings.normalization, settings.seed + 1, settings.biasbn), eta)
    if pair == "random":
        return eta, delta
    v_max = eigenvectors["top_vectors"][0].to(eta)
    v_min = eigenvectors["bottom_vectors"][0].to(eta)
    return v_max * (eta.norm() / v_max.norm()), v_min * (delta.norm() / v_min.norm())


SHAPES = ("2d", "1d_eta", "1d_delta")  # the grid and the two 1D slices of every pair and range


def surface_grids(settings: SurfaceSettings) -> list[tuple[str, str, str, np.ndarray, np.ndarray]]:
    """(name, pair, shape, a, b) of every surface, in the order they are computed: the axes of the grid a x b
    ("<pair>_r<range>_<shape>"; a 1D slice has b = [0])."""
    out = []
    for pair in settings.pairs:
        for r in settings.ranges:
            grid, line = np.linspace(-r, r, settings.points), np.linspace(-r, r, settings.points_1d)
            axes = {"2d": (grid, grid), "1d_eta": (line, np.array([0.0])), "1d_delta": (line, np.array([0.0]))}
            out += [(f"{pair}_r{r:g}_{shape}", pair, shape, *axes[shape]) for shape in SHAPES]
    return out


def _tile_points(settings: SurfaceSettings) -> dict[tuple[str, int], int]:
    """{(surface name, tile): grid points}, for every tile of every surface, in the order they are computed."""
    points = {}
    for name, _, _, a, b in surface_grids(settings):
        for t in range(tile_count(len(a), settings.tile_rows)):
            points[name, t] = min(settings.tile_rows, len(a) - t * settings.tile_rows) * len(b)
    return points


def tile_assignment(settings: SurfaceSettings) -> list[dict[str, list[int]]]:
    """For each of the ``parts`` jobs, {surface name: its tiles}. Every tile of every surface goes to exactly one
    part: tiles are dealt out largest first (by grid points) to the part with the fewest points so far (ties: the
    lowest part), so that the parts' work differs by at most one tile; the same settings give the same deal."""
    parts: list[dict[str, list[int]]] = [{} for _ in range(settings.parts)]
    load = [0] * settings.parts
    for (name, t), points in sorted(_tile_points(settings).items(), key=lambda tile: -tile[1]):  # stable sort
        p = load.index(min(load))
        parts[p].setdefault(name, []).append(t)
        load[p] += points
    return [{name: sorted(ts) for name, ts in part.items()} for part in parts]


def part_points(settings: SurfaceSettings) -> list[int]:
    """Grid points each part job evaluates (on each split), from :func:`tile_assignment`."""
    points = _tile_points(settings)
    return [sum(points[name, t] for name, tiles in part.items() for t in tiles) for part in tile_assignment(settings)]


def compute(model, dataset: Dataset, settings: SurfaceSettings, eigenvectors: Mapping[str, Any] | None,
            tiles_dir: str | Path, log=print, part: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta): every grid and slice of ``settings`` around ``model`` (already on its device and dtype).

    Finished tiles go to ``tiles_dir/<surface>/`` and are reused by a rerun with the same inputs. With ``part``,
    only that part's tiles (:func:`tile_assignment`) are computed: ``arrays`` is then empty and ``meta`` says
    which tiles were made and the key they carry (what :func:`merge` checks).
    """
    device = next(model.parameters()).device
    dtype = DTYPES[settings.dtype]
    cast = lambda t: t.to(device, dtype) if t.is_floating_point() else t.to(device)  # noqa: E731
    data = {"train": (dataset.x_train, dataset.y_train), "test": (dataset.x_test, dataset.y_test)}
    splits = {s: (cast(data[s][0]), cast(data[s][1])) for s in settings.splits}
    mine = None if part is None else tile_assignment(settings)[part]
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"surfaces": {}, "timings": {}}
    if mine is not None:
        meta.update({"part": part, "tiles": mine, "keys": {}})
    pairs = {}
    for name, pair, shape, a, b in surface_grids(settings):
        if pair not in pairs:
            eta, delta = pairs[pair] = direction_pair(model, settings, eigenvectors, pair)
            meta["surfaces"][pair] = {"eta_norm": float(eta.norm()), "delta_norm": float(delta.norm()),
                                      "cos_eta_delta": float(eta @ delta / (eta.norm() * delta.norm()))}
        eta, delta = pairs[pair]
        d1, d2 = {"2d": (eta, delta), "1d_eta": (eta, None), "1d_delta": (delta, None)}[shape]
        if mine is not None and name not in mine:
            continue
        tick = time.perf_counter()
        values, evaluated = compute_surface(model, splits, dataset.task, d1, d2, a, b,
                                            tiles_dir=Path(tiles_dir) / name, key=name, tile_rows=settings.tile_rows,
                                            batch_size=settings.batch_size, progress=True,
                                            tiles=None if mine is None else mine[name])
        seconds = time.perf_counter() - tick
        meta["timings"][name] = {"seconds": seconds, "points_evaluated": evaluated,
                                 "points_per_second": evaluated / seconds if evaluated else None}
        if mine is not None:
            meta["keys"][name] = tile_key(Path(tiles_dir) / name, mine[name][0])
        else:
            arrays[f"{name}_a"], arrays[f"{name}_b"] = a, b
            for metric, grid_values in values.items():
                arrays[f"{name}_{metric}"] = grid_values
        log(f"{name}: {len(a)}x{len(b)} points, {evaluated} evaluated now, {seconds:.1f} s")
    meta.update({"task": dataset.task, "settings": dataclasses.asdict(settings), "device": str(device),
                 "provenance": provenance(seed=settings.seed)})
    return arrays, meta


def write(arrays: dict[str, np.ndarray], meta: dict[str, Any], out_dir: str | Path) -> None:
    """surfaces.npz, then surfaces.json."""
    write_npz(arrays, Path(out_dir) / "surfaces.npz")
    write_json(meta, Path(out_dir) / "surfaces.json")


def load(model_path, settings: SurfaceSettings):
    """The trained model on the configured device, in the surfaces' dtype, and its dataset."""
    model, dataset, _ = load_model(model_path, pick_device(settings.device))
    return model.to(DTYPES[settings.dtype]), dataset


def part_path(out_dir: str | Path, part: int) -> Path:
    return Path(out_dir) / "parts" / f"part{part}.json"


def run(model_path, eigenvectors_path, settings: SurfaceSettings, out_dir, log=print, part: int | None = None) -> dict[str, Any]:
    """Every surface into ``out_dir``; with ``part``, only that part's tiles and its record ``parts/part<p>.json``."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    if part is not None and not 0 <= part < settings.parts:
        raise ConfigError(f"surface part {part} does not exist: surfaces.parts is {settings.parts} "
                          f"(parts 0..{settings.parts - 1})")
    model, dataset = load(model_path, settings)
    hessian = "hessian" in settings.pairs
    eigenvectors = load_eigenvectors(eigenvectors_path, model_path, model) if hessian else None
    arrays, meta = compute(model, dataset, settings, eigenvectors, Path(out_dir) / "tiles", log=log, part=part)
    meta["experiment"] = Path(model_path).parent.name
    meta["inputs"] = input_record(model=model_path, eigenvectors=eigenvectors_path if hessian else None)
    if part is None:
        write(arrays, meta, out_dir)
    else:
        write_json(meta, part_path(out_dir, part))
    return meta


def merge(record_paths, out_dir, log=print) -> dict[str, Any]:
    """surfaces.npz and surfaces.json from the tiles the part jobs wrote under ``out_dir/tiles``.

    The records must be those of every part 0..P-1 of one deal (the same settings) on the same inputs (the
    model file's and eigenvectors' fingerprints); each surface's tiles must carry the key its part recorded.
    Computes nothing: a light job."""
    records = [json.loads(Path(path).read_text()) for path in record_paths]
    first = records[0]
    settings = SurfaceSettings.from_mapping(first["settings"])
    for path, record in zip(record_paths, records):
        if record["settings"] != first["settings"] or record["inputs"] != first["inputs"]:
            raise InputMismatch(f"{path}: computed with other settings or inputs than {record_paths[0]}; "
                                "rerun its surface part job")
    if sorted(r["part"] for r in records) != list(range(settings.parts)):
        raise ConfigError(f"merging surfaces needs the records of parts 0..{settings.parts - 1}, got parts "
                          f"{sorted(r['part'] for r in records)}")
    arrays: dict[str, np.ndarray] = {}
    timings: dict[str, dict[str, float]] = {}
    for name, _, _, a, b in surface_grids(settings):
        keys = {r["keys"][name] for r in records if name in r["keys"]}
        if len(keys) != 1:
            raise InputMismatch(f"the parts' tiles of surface {name} carry {len(keys)} different keys; rerun the part jobs")
        arrays[f"{name}_a"], arrays[f"{name}_b"] = a, b
        for metric, grid_values in assemble_surface(Path(out_dir) / "tiles" / name, len(a), len(b), settings.tile_rows,
                                                    keys.pop()).items():
            arrays[f"{name}_{metric}"] = grid_values
        parts = [r["timings"][name] for r in records if name in r["timings"]]
        timings[name] = {"seconds": sum(t["seconds"] for t in parts),  # job-seconds over the parts
                         "points_evaluated": sum(t["points_evaluated"] for t in parts)}
    meta = {key: first[key] for key in ("surfaces", "task", "settings", "device", "experiment", "inputs")}
    meta.update({"timings": timings, "parts": settings.parts, "provenance": provenance(seed=settings.seed),
                 "part_provenance": [r["provenance"] for r in records]})
    write(arrays, meta, out_dir)
    log(f"merged {len(timings)} surfaces from {settings.parts} parts")
    return meta


def add_commands(steps) -> None:
    """CLI: ``lossgeom surfaces``."""
    command = steps.add_parser("surfaces", help="loss/accuracy grids along random and Hessian directions",
                              **settings_help(SurfaceSettings, "surfaces"))
    command.add_argument("--model", required=True, type=Path)
    command.add_argument("--eigenvectors", type=Path, help="hessian/eigenvectors.pt (needed for Hessian directions)")
    command.add_argument("--settings", default="{}", help="the surfaces config block as JSON")
    command.add_argument("--out-dir", required=True, type=Path, help="writes surfaces.npz, surfaces.json, tiles/")
    command.add_argument("--part", type=int, help="compute only this part's tiles (0..surfaces.parts-1) and its "
                                                    "record parts/part<p>.json; merge-surfaces assembles them")
    command.set_defaults(func=lambda args: run(args.model, args.eigenvectors,
                                               SurfaceSettings.from_mapping(json.loads(args.settings)), args.out_dir,
                                               log=logging.getLogger(__name__).info, part=args.part))
    merging = steps.add_parser("merge-surfaces", help="surfaces.npz from the tiles of every surface part job")
    merging.add_argument("records", nargs="+", type=Path, help="parts/part<p>.json of every part")
    merging.add_argument("--out-dir", required=True, type=Path, help="the parts' --out-dir: reads tiles/, writes surfaces.npz")
    merging.set_defaults(func=lambda args: merge(args.records, args.out_dir, log=logging.getLogger(__name__).info))
