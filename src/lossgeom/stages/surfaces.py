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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..device import DTYPES, pick_device
from ..errors import ConfigError, InputMismatch
from ..geometry.directions import KINDS, orthogonalize, random_direction
from ..geometry.surfaces import compute_surface
from ..io.atomic import write_json, write_npz
from ..io.provenance import input_record, provenance, require_same_input
from ..io.settings import require, settings_from_mapping, settings_help
from ..problems.data import Dataset
from ..problems.models import trainable_parameters
from ..training.checkpoints import load_file, load_model
from .hessian import EIGENVECTORS_FORMAT


@dataclasses.dataclass(frozen=True)
class SurfaceSettings:
    """The ``surfaces`` block of the config."""

    pairs: tuple[str, ...] = ("random", "hessian")
    ranges: tuple[float, ...] = (1.0, 0.1, 0.05)
    points: int = 51
    points_1d: int = 101
    splits: tuple[str, ...] = ("train", "test")
    normalization: str = "filter"
    biasbn: str = "ignore"
    seed: int = 0
    tile_rows: int = 4
    batch_size: int = 4096
    curvature_batch_size: int | None = None  # examples per batch of the curvature check's float64 products; None: batch_size
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self) -> None:
        for key, least in (("points", 9), ("points_1d", 3)):
            value = getattr(self, key)
            require(isinstance(value, int) and value >= least and value % 2 == 1, "surfaces", key, value,
                    f"an odd integer >= {least} (the trained point is the centre of the grid)")
        for key in ("tile_rows", "batch_size"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, "surfaces", key, getattr(self, key),
                    "an integer >= 1")
        require(self.curvature_batch_size is None or (isinstance(self.curvature_batch_size, int) and self.curvature_batch_size >= 1),
                "surfaces", "curvature_batch_size", self.curvature_batch_size, "an integer >= 1 or null (batch_size)")
        require(all(r > 0 for r in self.ranges) and len(self.ranges) > 0, "surfaces", "ranges", self.ranges,
                "a non-empty list of positive half-widths")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SurfaceSettings":
        return settings_from_mapping(cls, values, "surfaces", {
            "normalization": KINDS, "biasbn": ("ignore", "include"), "dtype": DTYPES,
            "pairs": ("random", "hessian"), "splits": ("train", "test")})


def load_eigenvectors(path: str | Path, model_path: str | Path, model) -> dict[str, Any]:
    """The hessian step's eigenvectors.pt, checked to hold both ends (Hessian surfaces need v_max and v_min) and to
    belong to ``model``: computed from the file ``model_path`` (by its SHA-256), with the model's parameter names
    and shapes in the same order (directions are flat vectors applied by position)."""
    vectors = load_file(path, EIGENVECTORS_FORMAT)
    if len(vectors["top_vectors"]) == 0 or len(vectors["bottom_vectors"]) == 0:
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


def compute(model, dataset: Dataset, settings: SurfaceSettings, eigenvectors: Mapping[str, Any] | None,
            tiles_dir: str | Path, log=print) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta): every grid and slice of ``settings`` around ``model`` (already on its device and dtype).

    Finished tiles go to ``tiles_dir/<surface>/`` and are reused by a rerun with the same inputs.
    """
    device = next(model.parameters()).device
    dtype = DTYPES[settings.dtype]
    cast = lambda t: t.to(device, dtype) if t.is_floating_point() else t.to(device)  # noqa: E731
    data = {"train": (dataset.x_train, dataset.y_train), "test": (dataset.x_test, dataset.y_test)}
    splits = {s: (cast(data[s][0]), cast(data[s][1])) for s in settings.splits}
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"surfaces": {}, "timings": {}}
    for pair in settings.pairs:
        eta, delta = direction_pair(model, settings, eigenvectors, pair)
        meta["surfaces"][pair] = {"eta_norm": float(eta.norm()), "delta_norm": float(delta.norm()),
                                  "cos_eta_delta": float(eta @ delta / (eta.norm() * delta.norm()))}
        for r in settings.ranges:
            grid = np.linspace(-r, r, settings.points)
            line = np.linspace(-r, r, settings.points_1d)
            jobs = {"2d": (eta, delta, grid, grid), "1d_eta": (eta, None, line, np.array([0.0])),
                    "1d_delta": (delta, None, line, np.array([0.0]))}
            for shape, (d1, d2, a, b) in jobs.items():
                name = f"{pair}_r{r:g}_{shape}"
                tick = time.perf_counter()
                values, evaluated = compute_surface(model, splits, dataset.task, d1, d2, a, b,
                                                    tiles_dir=Path(tiles_dir) / name, key=name, tile_rows=settings.tile_rows,
                                                    batch_size=settings.batch_size, progress=True)
                seconds = time.perf_counter() - tick
                meta["timings"][name] = {"seconds": seconds, "points_evaluated": evaluated,
                                         "points_per_second": evaluated / seconds if evaluated else None}
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


def run(model_path, eigenvectors_path, settings: SurfaceSettings, out_dir, log=print) -> dict[str, Any]:
    model, dataset = load(model_path, settings)
    hessian = "hessian" in settings.pairs
    eigenvectors = load_eigenvectors(eigenvectors_path, model_path, model) if hessian else None
    arrays, meta = compute(model, dataset, settings, eigenvectors, Path(out_dir) / "tiles", log=log)
    meta["experiment"] = Path(model_path).parent.name
    meta["inputs"] = input_record(model=model_path, eigenvectors=eigenvectors_path if hessian else None)
    write(arrays, meta, out_dir)
    return meta


CONFIG_BLOCKS = {"surfaces": SurfaceSettings}


def add_commands(steps) -> None:
    """CLI: ``lossgeom surfaces``."""
    command = steps.add_parser("surfaces", help="loss/accuracy grids along random and Hessian directions",
                              **settings_help(SurfaceSettings, "surfaces"))
    command.add_argument("--model", required=True, type=Path)
    command.add_argument("--eigenvectors", type=Path, help="hessian/eigenvectors.pt (needed for Hessian directions)")
    command.add_argument("--settings", default="{}", help="the surfaces config block as JSON")
    command.add_argument("--out-dir", required=True, type=Path, help="writes surfaces.npz, surfaces.json, tiles/")
    command.set_defaults(func=lambda args: run(args.model, args.eigenvectors,
                                               SurfaceSettings.from_mapping(json.loads(args.settings)), args.out_dir,
                                               log=logging.getLogger(__name__).info))
