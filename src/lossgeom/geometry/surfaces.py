"""Loss and accuracy on a grid around the trained point: L(a, b) = L(theta + a eta + b delta).

Fast: the model's parameters are overwritten in place for each point (one saved copy of theta, no model
copy per point) and the data stay on the model's device. Tiled and resumable: the grid is computed in
blocks of rows; each finished block is written atomically to ``tiles_dir``, and a rerun (after a kill, say)
loads the blocks that exist for the same ``key`` instead of recomputing them. The model is restored to
theta afterwards, also when an error interrupts the run.

Spread over processes: a tile depends only on theta, the directions, its rows of the grid and the data, so
several jobs can each compute a subset of the tiles (``tiles=``) into one folder, and
:func:`assemble_surface` then reads them all back into the grid, bitwise what one job would have computed
(each point is evaluated by the same code on the same inputs, whichever process does it).
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path
from typing import Callable, Collection

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io.atomic import atomic_path
from ..training.evaluation import evaluate
from ..engine.model_operator import model_mode
from .parameters import ParameterShifter

log = logging.getLogger(__name__)


def compute_surface(
    model: nn.Module,
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]],
    task: str,
    eta: torch.Tensor,
    delta: torch.Tensor | None,
    a: np.ndarray,
    b: np.ndarray,
    *,
    tiles_dir: str | Path,
    key: str,
    tile_rows: int = 4,
    batch_size: int = 4096,
    progress: bool = True,
    on_tile: Callable[[int], None] | None = None,
    tiles: Collection[int] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Metrics on the grid a x b for each split (e.g. {"train": (x, y), "test": (x, y)}).

    Returns ({"<split>_<metric>": array of shape (len(a), len(b))}, number of points evaluated now).
    ``delta`` may be None for a 1D slice (then ``b`` must be [0.0]). Tiles are reused only when they were
    written for the same ``key`` (a label from the caller) and the same inputs: the fingerprint of theta,
    the directions, the grid, the split names and the task is folded into the key here. ``tiles``: compute
    (or reuse) only these tiles (row blocks 0, 1, ... of ``tile_rows`` rows); the other rows stay NaN.
    The points are evaluated in eval mode; the model's parameters and its train/eval mode are given back.
    """
    tiles_dir = Path(tiles_dir)
    device = next(model.parameters()).device
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}
    shifter = ParameterShifter(model, eta, delta)
    key = f"{key}|{_fingerprint(shifter, a, b, sorted(splits), task)}"
    wanted = range(tile_count(len(a), tile_rows)) if tiles is None else sorted(tiles)
    results: dict[str, np.ndarray] = {}
    evaluated = 0
    bar = tqdm(total=len(a) * len(b), desc="surface", unit="pt", disable=not progress, mininterval=5.0)
    with model_mode(model, "eval"), shifter.shifted():  # eval mode while it runs; the model's own mode given back
        for t in wanted:
            rows = range(t * tile_rows, min((t + 1) * tile_rows, len(a)))
            path = tile_path(tiles_dir, t)
            tile = _load_tile(path, key)
            if tile is None:
                tile = {}
                for i in rows:
                    for j, bj in enumerate(b):
                        shifter.move(float(a[i]), float(bj))
                        for name, (x, y) in splits.items():
                            for metric, value in evaluate(model, x, y, task, batch_size).items():
                                if f"{name}_{metric}" not in tile:
                                    tile[f"{name}_{metric}"] = np.full((len(rows), len(b)), np.nan)
                                tile[f"{name}_{metric}"][i - rows[0], j] = value
                        evaluated += 1
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, __key__=np.array(key), **tile)
            for name, block in tile.items():
                results.setdefault(name, np.full((len(a), len(b)), np.nan))[rows[0] : rows[-1] + 1] = block
            bar.update(len(rows) * len(b))
            if on_tile is not None:
                on_tile(t)
    bar.close()
    return results, evaluated


def tile_count(rows: int, tile_rows: int) -> int:
    """How many tiles (blocks of ``tile_rows`` rows) a grid of ``rows`` rows has."""
    return (rows + tile_rows - 1) // tile_rows


def tile_path(tiles_dir: str | Path, tile: int) -> Path:
    return Path(tiles_dir) / f"tile_{tile:05d}.npz"


def tile_key(tiles_dir: str | Path, tile: int) -> str | None:
    """The key a tile was written for, or None when it is missing or damaged."""
    path = tile_path(tiles_dir, tile)
    try:
        with np.load(path) as data:
            return str(data["__key__"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def assemble_surface(tiles_dir: str | Path, rows: int, columns: int, tile_rows: int, key: str) -> dict[str, np.ndarray]:
    """The whole grid from its tiles, each of which must exist and carry ``key`` (the key the jobs that wrote
    them recorded: same theta, directions, grid, splits and task). Raises FileNotFoundError naming the first
    tile that is missing or was written for other inputs."""
    results: dict[str, np.ndarray] = {}
    for t in range(tile_count(rows, tile_rows)):
        tile = _load_tile(tile_path(tiles_dir, t), key)
        if tile is None:
            raise FileNotFoundError(f"{tile_path(tiles_dir, t)}: missing, damaged or written for other inputs "
                                    f"(expected key {key}); rerun the surface part job that computes it")
        first = t * tile_rows
        for name, block in tile.items():
            results.setdefault(name, np.full((rows, columns), np.nan))[first : first + len(block)] = block
    return results


def _fingerprint(shifter: ParameterShifter, a: np.ndarray, b: np.ndarray, split_names, task: str) -> str:
    digest = hashlib.sha256()
    for t in (shifter.theta, shifter.eta, shifter.delta):
        if t is not None:
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    for axis in (a, b):
        digest.update(np.ascontiguousarray(axis, dtype=np.float64).tobytes())
    digest.update(f"{split_names}|{task}|{shifter.theta.dtype}".encode())
    return digest.hexdigest()[:16]


def _load_tile(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            if str(data["__key__"]) != key:
                return None
            return {k: data[k] for k in data.files if k != "__key__"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # cut off mid-write, overwritten
        log.warning("%s: damaged tile (%s: %s); computing it again", path, type(err).__name__, err)
        return None
