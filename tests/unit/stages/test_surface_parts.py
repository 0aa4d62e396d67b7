"""Surfaces spread over part jobs: every tile dealt to one part, and the merge bitwise equal to one job."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lossgeom.errors import ConfigError
from lossgeom.stages import hessian, surfaces, train

SPEC = {"dataset": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [8], "activation": "relu"},
        "train": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "device": "cpu"}}
SETTINGS = surfaces.SurfaceSettings(points=9, points_1d=7, ranges=(1.0, 0.1), tile_rows=2, batch_size=100, device="cpu")
QUIET = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment")
    train.run("parts", SPEC, out, progress=False)
    hessian.run(out / "model.pt", hessian.HessianSettings(k_top=1, k_bottom=1, tol=1e-4, hutchinson_samples=2,
                                                          slq_probes=1, slq_steps=4, device="cpu"), out / "hessian", log=QUIET)
    return out / "model.pt", out / "hessian" / "eigenvectors.pt"


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_every_tile_goes_to_exactly_one_part_and_the_parts_are_balanced(parts):
    settings = dataclasses.replace(SETTINGS, parts=parts)
    deal = surfaces.tile_assignment(settings)
    assert len(deal) == parts
    grids = {name: (len(a), len(b)) for name, _, _, a, b in surfaces.surface_grids(settings)}
    for name, (rows, _) in grids.items():
        dealt = sorted(t for part in deal for t in part.get(name, []))
        assert dealt == list(range(-(-rows // settings.tile_rows))), name
    points = [sum(min(settings.tile_rows, grids[n][0] - t * settings.tile_rows) * grids[n][1]
                  for n, ts in part.items() for t in ts) for part in deal]
    largest_tile = settings.tile_rows * settings.points
    assert max(points) - min(points) <= largest_tile
    assert surfaces.tile_assignment(settings) == deal, "the same settings deal the same tiles"


def test_merged_parts_equal_one_job_bitwise(model_files, tmp_path):
    model, vectors = model_files
    surfaces.run(model, vectors, SETTINGS, tmp_path / "one", log=QUIET)
    split = dataclasses.replace(SETTINGS, parts=3)
    for part in (2, 0, 1):  # any order, as a cluster runs them
        surfaces.run(model, vectors, split, tmp_path / "three", log=QUIET, part=part)
    assert not (tmp_path / "three" / "surfaces.npz").exists()
    records = [surfaces.part_path(tmp_path / "three", p) for p in range(3)]
    meta = surfaces.merge(records, tmp_path / "three", log=QUIET)
    with np.load(tmp_path / "one" / "surfaces.npz") as one, np.load(tmp_path / "three" / "surfaces.npz") as three:
        assert sorted(one.files) == sorted(three.files)
        for key in one.files:
            assert one[key].tobytes() == three[key].tobytes(), key
            assert not np.isnan(three[key]).any(), key
    single = json.loads((tmp_path / "one" / "surfaces.json").read_text())
    assert meta["surfaces"] == single["surfaces"] and meta["inputs"] == single["inputs"] and meta["parts"] == 3
    evaluated = sum(t["points_evaluated"] for t in meta["timings"].values())
    assert evaluated == sum(t["points_evaluated"] for t in single["timings"].values())


def test_merge_names_what_is_missing_or_foreign(model_files, tmp_path):
    model, vectors = model_files
    split = dataclasses.replace(SETTINGS, parts=2)
    for part in (0, 1):
        surfaces.run(model, vectors, split, tmp_path, log=QUIET, part=part)
    records = [surfaces.part_path(tmp_path, p) for p in range(2)]
    with pytest.raises(ConfigError, match="parts 0..1"):
        surfaces.merge(records[:1], tmp_path, log=QUIET)
    name = "random_r1_2d"
    tile = tmp_path / "tiles" / name / "tile_00001.npz"
    with np.load(tile) as data:
        other = {k: data[k] for k in data.files}
    other["__key__"] = np.array("another model")
    with open(tile, "wb") as f:
        np.savez(f, **other)
    with pytest.raises(FileNotFoundError, match="tile_00001.npz: missing, damaged or written for other inputs"):
        surfaces.merge(records, tmp_path, log=QUIET)
    with pytest.raises(ConfigError, match="surface part 2 does not exist"):
        surfaces.run(model, vectors, split, tmp_path, log=QUIET, part=2)
