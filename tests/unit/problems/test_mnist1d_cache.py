"""The MNIST-1D cache file is used only when its arrays have the generated shapes and digest; else regenerated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.problems import data
from lossgeom.problems.data import load_dataset

SPEC = {"name": "mnist1d", "num_samples": 200}


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """The cache in tmp_path, written once by a first load; yields (its file, the dataset generated without it)."""
    monkeypatch.setenv("LOSSGEOM_CACHE", "off")
    data._mnist1d_arrays.cache_clear()
    fresh = load_dataset(SPEC)
    monkeypatch.setenv("LOSSGEOM_CACHE", str(tmp_path))
    data._mnist1d_arrays.cache_clear()
    load_dataset(SPEC)
    (written,) = tmp_path.glob("mnist1d-*-200-0.8-42.npz")
    yield written, fresh
    data._mnist1d_arrays.cache_clear()


def reload_equals(fresh) -> bool:
    data._mnist1d_arrays.cache_clear()
    loaded = load_dataset(SPEC)
    return all(torch.equal(getattr(fresh, k), getattr(loaded, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


def test_a_cache_file_with_the_right_keys_but_other_shapes_is_regenerated(cache):
    written, fresh = cache
    good = written.read_bytes()
    with np.load(written) as npz:
        arrays = {k: npz[k] for k in npz.files}
    small = {k: v[:10] for k, v in arrays.items() if k != "sha256"}  # another run's arrays, with a matching digest
    np.savez(written, **small, sha256=np.array(data._arrays_digest(small)))
    assert reload_equals(fresh)
    assert written.read_bytes() == good, "and written again"


def test_a_cache_file_with_altered_content_is_regenerated(cache):
    written, fresh = cache
    good = written.read_bytes()
    with np.load(written) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["y"][0] = (arrays["y"][0] + 1) % 10  # one label changed, the stored digest kept
    np.savez(written, **arrays)
    assert reload_equals(fresh)
    assert written.read_bytes() == good
    del arrays["sha256"]  # a file from before the digest (or without it): regenerated too
    np.savez(written, **arrays)
    assert reload_equals(fresh)
    assert written.read_bytes() == good


@pytest.mark.parametrize("num_samples, train_split", [(200, 0.8), (105, 0.7)])
def test_the_expected_shapes_are_those_generated(monkeypatch, num_samples, train_split):
    """Else every cache file would be refused, and MNIST-1D regenerated in every process."""
    from mnist1d.data import get_dataset_args

    monkeypatch.setenv("LOSSGEOM_CACHE", "off")
    data._mnist1d_arrays.cache_clear()
    arrays = data._mnist1d_arrays(num_samples, train_split, 42)
    args = get_dataset_args()
    args.num_samples, args.train_split = num_samples, train_split
    assert {k: v.shape for k, v in arrays.items()} == data._mnist1d_shapes(args)
    data._mnist1d_arrays.cache_clear()
