"""Datasets: shapes, deterministic splits, closed-form targets, and the on-disk formats of MNIST/CIFAR-10."""

from __future__ import annotations

import pickle
import re
import struct

import numpy as np
import pytest
import torch

from lossgeom.problems import data
from lossgeom.problems.data import _stratified_split, example_subset, load_dataset, sum_of_sines
from lossgeom.errors import ConfigError, DataError

EMBEDDED = [
    ({"name": "digits"}, (1, 8, 8), 10, 1797),
    ({"name": "mnist1d", "num_samples": 500}, (1, 40), 10, 500),
    ({"name": "sines", "n_train": 100, "n_test": 50}, (1,), 1, 150),
    ({"name": "gaussian_mixture", "clusters": 6, "classes": 3, "dim": 5, "n_train": 120, "n_test": 60}, (5,), 3, 180),
]


@pytest.mark.parametrize("spec, shape, outputs, total", EMBEDDED, ids=lambda v: v["name"] if isinstance(v, dict) else "")
def test_embedded_datasets(spec, shape, outputs, total):
    ds = load_dataset(spec)
    assert ds.input_shape == shape and ds.output_dim == outputs
    assert len(ds.x_train) + len(ds.x_test) == total
    assert ds.x_train.dtype == torch.float32 and torch.isfinite(ds.x_train).all()
    if ds.task == "classification":
        assert ds.y_train.dtype == torch.int64
        assert set(ds.y_train.unique().tolist()) == set(range(outputs))
    again = load_dataset(spec)
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test), "same seed, same data"


@pytest.mark.parametrize("spec", [e[0] for e in EMBEDDED], ids=lambda s: s["name"])
def test_seed_changes_the_data(spec):
    a = load_dataset(spec)
    b = load_dataset({**spec, "seed": 12345})
    assert not torch.equal(a.x_train, b.x_train)


def test_stratified_split_is_disjoint_complete_and_stratified():
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    train, test = _stratified_split(y, 0.2, seed=3)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    assert np.bincount(y[test]).tolist() == [2, 4, 6, 8, 10]
    assert np.array_equal(test, _stratified_split(y, 0.2, seed=3)[1])
    assert not np.array_equal(test, _stratified_split(y, 0.2, seed=4)[1])


def test_digits_standardized_with_train_statistics():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = load_dataset({"name": "digits", "test_fraction": 0.25, "seed": 3})
    train, test = _stratified_split(raw.target, 0.25, seed=3)
    pixels = raw.images[train] / 16.0
    expected = (raw.images[test] / 16.0 - pixels.mean()) / pixels.std()
    np.testing.assert_allclose(ds.x_test[:, 0].numpy(), expected, atol=1e-5)
    assert ds.y_test.tolist() == raw.target[test].tolist()


def test_digits_read_without_scikit_learn_equal_load_digits():
    from sklearn.datasets import load_digits

    from lossgeom.problems.data import digits_arrays

    raw = load_digits()
    images, target = digits_arrays()
    assert np.array_equal(images, raw.images) and np.array_equal(target, raw.target)
    assert images.shape == (1797, 8, 8) and target.dtype.kind == "i"


def test_sines_targets_are_the_closed_form():
    spec = {"name": "sines", "n_train": 64, "n_test": 32, "frequencies": [2.0, 5.0], "amplitudes": [1.0, -0.3]}
    ds = load_dataset(spec)
    lo, hi = -np.pi, np.pi
    x = (ds.x_test.double().numpy() + 1) / 2 * (hi - lo) + lo  # back from [-1, 1]
    assert ds.x_test.abs().max() <= 1
    np.testing.assert_allclose(ds.y_test.numpy(), np.sin(2 * x) - 0.3 * np.sin(5 * x), atol=2e-6)
    assert sum_of_sines(np.array([np.pi / 2]), [1, 3], [1, 1]) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_mixture_labels_are_clusters_mod_classes():
    ds = load_dataset({"name": "gaussian_mixture", "clusters": 4, "classes": 2, "separation": 50.0, "dim": 3})
    # well separated: a nearest-center rule over 4 centers recovers the labels modulo 2
    x, y = ds.x_train.numpy(), ds.y_train.numpy()
    from sklearn.cluster import KMeans

    cluster = KMeans(4, n_init=5, random_state=0).fit_predict(x)
    for c in range(4):
        assert len(set(y[cluster == c])) == 1


def test_mnist1d_leaves_numpy_global_rng_alone(monkeypatch):
    monkeypatch.setenv("LOSSGEOM_CACHE", "off")
    data._mnist1d_arrays.cache_clear()  # generate here, not from a cache
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    load_dataset({"name": "mnist1d", "num_samples": 100})
    assert np.random.rand() == expected


def test_bad_dataset_parameters():
    with pytest.raises(ConfigError, match="dataset name 'imagenet' is unknown; allowed values: cifar10, digits"):
        load_dataset({"name": "imagenet"})
    with pytest.raises(ConfigError, match="unknown key.*'n_samples'.*allowed keys: test_fraction, seed"):
        load_dataset({"name": "digits", "n_samples": 10})
    with pytest.raises(DataError, match="frequencies .2. and amplitudes .1. differ"):
        load_dataset({"name": "sines", "frequencies": [1, 2], "amplitudes": [1]})


# --- the real on-disk formats, written small -----------------------------------------------------


def write_idx(path, array: np.ndarray) -> None:
    """IDX ("Pascal Vincent") file as MNIST ships it: magic 0x0000 08 <ndim>, big-endian sizes, uint8 data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root, n_train=30, n_test=12, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        data[prefix] = (images, labels)
    return data


def test_mnist_reads_idx_files(tmp_path):
    written = make_mnist(tmp_path)
    ds = load_dataset({"name": "mnist", "root": str(tmp_path)})
    assert ds.input_shape == (1, 28, 28) and len(ds.x_train) == 30 and len(ds.x_test) == 12
    assert torch.equal(ds.y_test, torch.as_tensor(written["t10k"][1]))
    images = written["train"][0] / 255.0
    expected = (images - images.mean()) / images.std()
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), expected, atol=1e-5)
    limited = load_dataset({"name": "mnist", "root": str(tmp_path), "limit_train": 10, "limit_test": 5})
    assert len(limited.x_train) == 10 and len(limited.x_test) == 5


def test_mnist_missing_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"MNIST not found under .*MNIST/raw.*download: true"):
        load_dataset({"name": "mnist", "root": str(tmp_path)})


def write_cifar(root, per_batch=8, seed=0):
    """CIFAR-10 python batches: pickled dicts with b'data' (N x 3072 uint8, channel-major) and b'labels'."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar10_reads_python_batches(tmp_path):
    batches = write_cifar(tmp_path)
    ds = load_dataset({"name": "cifar10", "root": str(tmp_path)})
    assert ds.input_shape == (3, 32, 32) and len(ds.x_train) == 40 and len(ds.x_test) == 8
    assert ds.y_test.tolist() == batches["test_batch"][1]
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32) / 255.0
    # channel 1 (green) of image 9 (second image of batch 2), standardized with the green channel's train statistics
    g = train[:, 1]
    np.testing.assert_allclose(ds.x_train[9, 1].numpy(), (g[9] - g.mean()) / g.std(), atol=1e-5)


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match=r"CIFAR-10 not found under .*cifar-10-batches-py.*download: true"):
        load_dataset({"name": "cifar10", "root": str(tmp_path)})
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=r"data_batch_3: not a readable CIFAR-10 batch"):
        load_dataset({"name": "cifar10", "root": str(tmp_path)})


# ---- options every dataset accepts: data quantity (train_fraction) and quality (label_noise) ----

def test_train_fraction_keeps_a_stratified_subset_of_the_same_examples():
    full = load_dataset({"name": "digits"})
    part = load_dataset({"name": "digits", "train_fraction": 0.25})
    per_class_full, per_class_part = full.y_train.bincount(), part.y_train.bincount()
    assert torch.all((per_class_part - 0.25 * per_class_full).abs() <= 0.5)  # round() per class
    rows_full = {tuple(r) for r in full.x_train.reshape(len(full.x_train), -1).tolist()}
    assert all(tuple(r) in rows_full for r in part.x_train.reshape(len(part.x_train), -1).tolist()), "a subset, same scale"
    assert torch.equal(part.x_test, full.x_test) and torch.equal(part.y_test, full.y_test), "test split untouched"
    other = load_dataset({"name": "digits", "train_fraction": 0.25, "selection_seed": 1})
    assert not torch.equal(other.x_train, part.x_train), "the selection seed chooses the subset"


def test_label_noise_makes_exactly_that_fraction_of_training_labels_wrong():
    clean = load_dataset({"name": "gaussian_mixture", "clusters": 4, "n_train": 400})
    noisy = load_dataset({"name": "gaussian_mixture", "clusters": 4, "n_train": 400, "label_noise": 0.3})
    wrong = noisy.y_train != clean.y_train
    assert int(wrong.sum()) == 120
    assert torch.equal(noisy.x_train, clean.x_train) and torch.equal(noisy.y_test, clean.y_test)
    # the new classes are spread over the other classes, not shifted to one
    moved = (noisy.y_train[wrong] - clean.y_train[wrong]) % 4
    assert set(moved.tolist()) == {1, 2, 3}


def test_label_noise_applies_to_the_kept_subset():
    noisy = load_dataset({"name": "digits", "train_fraction": 0.5, "label_noise": 0.2})
    subset = load_dataset({"name": "digits", "train_fraction": 0.5})
    assert torch.equal(noisy.x_train, subset.x_train)
    assert int((noisy.y_train != subset.y_train).sum()) == round(0.2 * len(subset.y_train))


@pytest.mark.parametrize("spec, message", [
    ({"name": "digits", "train_fraction": 0.0}, "train_fraction must lie in (0, 1], got 0.0"),
    ({"name": "digits", "label_noise": 1.0}, "label_noise must lie in [0, 1), got 1.0"),
    ({"name": "sines", "label_noise": 0.1}, "label_noise needs a classification task"),
])
def test_bad_options_are_named(spec, message):
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset(spec)


def test_example_subset_is_exact_fixed_by_its_seed_and_keeps_rows_whole():
    x = torch.arange(100.0)[:, None].repeat(1, 3)
    y = torch.arange(100)
    xs, ys = example_subset(x, y, 30, seed=4)
    assert len(ys) == 30 and len(set(ys.tolist())) == 30 and (xs[:, 2] == ys).all()  # rows stay paired
    assert torch.equal(example_subset(x, y, 30, seed=4)[1], ys)  # the same examples every time
    assert not torch.equal(example_subset(x, y, 30, seed=5)[1], ys)
    assert example_subset(x, y, 0)[1] is y and example_subset(x, y, 500)[1] is y  # 0 or more: every example
    with pytest.raises(DataError, match="examples must be >= 0"):
        example_subset(x, y, -1)


def test_the_download_step_records_the_dataset_it_loaded(tmp_path):
    """With the files in place nothing is fetched (no network here); the record says what every job will read."""
    from lossgeom.stages import download

    write_cifar(tmp_path)
    record = download.run({"name": "cifar10", "root": str(tmp_path)}, tmp_path / "cifar10.json", log=lambda *_: None)
    assert record["dataset"]["download"] is True and record["n_train"] == 40 and record["n_test"] == 8
    assert (tmp_path / "cifar10.json").exists()


def test_mnist1d_is_generated_once_per_machine_and_the_cached_copy_is_the_same(monkeypatch, tmp_path):
    spec = {"name": "mnist1d", "num_samples": 200}
    monkeypatch.setenv("LOSSGEOM_CACHE", "off")
    data._mnist1d_arrays.cache_clear()
    fresh = load_dataset(spec)
    monkeypatch.setenv("LOSSGEOM_CACHE", str(tmp_path))
    data._mnist1d_arrays.cache_clear()
    load_dataset(spec)  # generates and writes the cache file
    (written,) = tmp_path.glob("mnist1d-*-200-0.8-42.npz")
    data._mnist1d_arrays.cache_clear()
    cached = load_dataset(spec)  # reads it
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(fresh, key), getattr(cached, key)), key
    cached.y_train[:] = 0  # a caller changing its copy leaves the process's arrays alone
    assert torch.equal(load_dataset(spec).y_train, fresh.y_train)
    good = written.read_bytes()
    for damage in (b"not an npz", b"", good[: len(good) // 2]):  # a damaged cache file: generated afresh, not an error
        written.write_bytes(damage)
        data._mnist1d_arrays.cache_clear()
        assert torch.equal(load_dataset(spec).x_test, fresh.x_test)
        assert written.read_bytes() == good  # and written again
