"""Loss surfaces: values against an independent evaluation, in-place moves restored, tiles resumed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import vector_to_parameters

from lossgeom.problems.data import load_dataset
from lossgeom.geometry.directions import random_direction
from lossgeom.problems.models import build_model
from lossgeom.geometry.parameters import ParameterShifter
from lossgeom.geometry.surfaces import compute_surface

A = np.linspace(-0.5, 0.5, 5)
B = np.linspace(-0.5, 0.5, 3)


@pytest.fixture
def setup():
    ds = load_dataset({"name": "digits"})
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [16]}, ds.input_shape, ds.output_dim)
    eta = random_direction(model, "filter", seed=1)
    delta = random_direction(model, "filter", seed=2)
    splits = {"train": (ds.x_train[:300], ds.y_train[:300]), "test": (ds.x_test[:100], ds.y_test[:100])}
    return model, splits, eta, delta


def reference_loss(model, eta, delta, a, b, x, y):
    """Independent path: a deep copy with theta + a eta + b delta written by torch's vector_to_parameters."""
    clone = copy.deepcopy(model).eval()
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    vector_to_parameters(theta + a * eta + b * delta, clone.parameters())
    with torch.no_grad():
        out = clone(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).float().mean().item()


def test_values_match_an_independent_evaluation(setup, tmp_path):
    model, splits, eta, delta = setup
    theta = [p.detach().clone() for p in model.parameters()]
    values, evaluated = compute_surface(model, splits, "classification", eta, delta, A, B,
                                        tiles_dir=tmp_path, key="k", tile_rows=2, progress=False)
    assert evaluated == len(A) * len(B)
    for i, j in [(0, 0), (2, 1), (4, 2), (1, 2)]:
        loss, acc = reference_loss(model, eta, delta, A[i], B[j], *splits["test"])
        assert values["test_loss"][i, j] == pytest.approx(loss, rel=1e-5)
        assert values["test_accuracy"][i, j] == pytest.approx(acc)
    for p, t in zip(model.parameters(), theta):
        assert torch.equal(p, t), "parameters restored bitwise"


def test_the_model_keeps_its_train_or_eval_mode(setup, tmp_path):
    model, splits, eta, delta = setup
    for training in (True, False):
        model.train(training)
        compute_surface(model, splits, "classification", eta, delta, A[:3], B, tiles_dir=tmp_path / str(training),
                        key="k", progress=False)
        assert all(m.training == training for m in model.modules())


def test_interrupted_run_resumes_without_recomputing_finished_tiles(setup, tmp_path):
    model, splits, eta, delta = setup
    full, _ = compute_surface(model, splits, "classification", eta, delta, A, B,
                              tiles_dir=tmp_path / "full", key="k", tile_rows=2, progress=False)

    def stop_after_two(tile):
        if tile == 1:
            raise KeyboardInterrupt

    theta = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(KeyboardInterrupt):
        compute_surface(model, splits, "classification", eta, delta, A, B, tiles_dir=tmp_path / "run", key="k",
                        tile_rows=2, progress=False, on_tile=stop_after_two)
    for p, t in zip(model.parameters(), theta):
        assert torch.equal(p, t), "restored after the interruption too"
    resumed, evaluated = compute_surface(model, splits, "classification", eta, delta, A, B,
                                         tiles_dir=tmp_path / "run", key="k", tile_rows=2, progress=False)
    assert evaluated == (len(A) - 4) * len(B), "only the last tile (one row) was computed"
    for name in full:
        np.testing.assert_array_equal(resumed[name], full[name])
    _, evaluated = compute_surface(model, splits, "classification", eta, delta, A, B,
                                   tiles_dir=tmp_path / "run", key="other", tile_rows=2, progress=False)
    assert evaluated == len(A) * len(B), "tiles of another surface are not reused"


def test_one_dimensional_slice_and_shifter(setup, tmp_path):
    model, splits, eta, _ = setup
    values, _ = compute_surface(model, splits, "classification", eta, None, A, np.array([0.0]),
                                tiles_dir=tmp_path, key="1d", progress=False)
    assert values["train_loss"].shape == (len(A), 1)
    shifter = ParameterShifter(model, eta)
    shifter.move(0.25)
    moved = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(moved, shifter.theta + 0.25 * eta)
    shifter.restore()
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), shifter.theta)


def test_same_label_but_other_inputs_is_recomputed(setup, tmp_path):
    """Tiles are keyed by their inputs too: other directions or other splits under one label are not reused."""
    model, splits, eta, delta = setup
    args = dict(tiles_dir=tmp_path, key="same", tile_rows=2, progress=False)
    compute_surface(model, splits, "classification", eta, delta, A, B, **args)
    _, evaluated = compute_surface(model, splits, "classification", eta, delta, A, B, **args)
    assert evaluated == 0, "identical inputs reuse every tile"
    other = random_direction(model, "filter", seed=7)
    _, evaluated = compute_surface(model, splits, "classification", other, delta, A, B, **args)
    assert evaluated == len(A) * len(B)
    values, evaluated = compute_surface(model, {"train": splits["train"]}, "classification", eta, delta, A, B, **args)
    assert evaluated == len(A) * len(B) and "test_loss" not in values


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_tile_is_named_and_computed_again(setup, tmp_path, caplog, damage):
    """A tile cut off mid-write by a full disk (zip header intact) or overwritten is recomputed, not fatal."""
    model, splits, eta, delta = setup
    args = dict(tiles_dir=tmp_path, key="k", tile_rows=2, progress=False)
    full, _ = compute_surface(model, splits, "classification", eta, delta, A, B, **args)
    tile = tmp_path / "tile_00001.npz"
    data = tile.read_bytes()
    tile.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"PK\x03\x04" + b"\x00" * 64)
    with caplog.at_level("WARNING"):
        again, evaluated = compute_surface(model, splits, "classification", eta, delta, A, B, **args)
    assert evaluated == 2 * len(B), "only the damaged tile (two rows) is computed again"
    assert str(tile) in caplog.text and "computing it again" in caplog.text
    for name in full:
        np.testing.assert_array_equal(again[name], full[name])
