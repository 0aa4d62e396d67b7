"""Dataset registry: embedded data (no network) and the paper-scale image sets read from disk.

Every loader returns a :class:`Dataset` of in-memory tensors with a deterministic train/test split
fixed by its ``seed``. Inputs are float32 and standardized with statistics of the training split only;
classification targets are int64 class indices, regression targets float32 of shape (n, 1).

Embedded: ``digits`` (scikit-learn's 8x8 digits), ``mnist1d`` (procedural, package ``mnist1d``),
``sines`` (1D regression on a sum of sines), ``gaussian_mixture`` (k clusters). On disk:
``mnist`` (torchvision's raw IDX files) and ``cifar10`` (the python pickle batches); both download
only when ``download: true``.

Every dataset also accepts three options, applied to the training split after it is built (so every stage
that loads the experiment sees the same examples and labels; the test split is never changed):
``train_fraction`` keeps a seeded, class-stratified subset of the training examples (data quantity);
``label_noise`` gives that fraction of the kept training labels a different class, drawn uniformly (data
quality); ``selection_seed`` seeds both choices. Inputs keep the standardization of the full training split,
so every fraction sees inputs on the same scale.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import DataError
from .registry import Registry

DATASETS = Registry("dataset", options={"train_fraction": 1.0, "label_noise": 0.0, "selection_seed": 0})


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors plus what a model needs to know about them."""

    name: str
    task: str  # "classification" or "regression"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    output_dim: int  # number of classes, or regression outputs

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "n_train": len(self.x_train),
            "n_test": len(self.x_test),
            "input_shape": list(self.input_shape),
            "output_dim": self.output_dim,
        }


ON_DISK_SHAPES = {"mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10)}  # (input shape, classes), fixed


def dataset_shapes(spec: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    """(input shape, output dimension) of a dataset spec; the on-disk datasets' are known without reading (or
    downloading) them, the generated ones are built (they take a moment)."""
    name = spec["name"]
    if name in ON_DISK_SHAPES:
        return ON_DISK_SHAPES[name]
    dataset = load_dataset(spec)
    return dataset.input_shape, dataset.output_dim


def load_dataset(spec: Mapping[str, Any]) -> Dataset:
    """Build the dataset described by ``spec`` (``{"name": ..., **params}``), with its options applied."""
    options = DATASETS.options_of(spec)
    dataset = DATASETS.build(spec)
    dataset = keep_fraction(dataset, options["train_fraction"], options["selection_seed"])
    return corrupt_labels(dataset, options["label_noise"], options["selection_seed"])


def _selection_rng(seed: int, purpose: int) -> np.random.Generator:
    """Independent streams from one seed: the training subset (purpose 0), the noisy labels (1), the example
    subset of the Hessian's loss (2)."""
    return np.random.default_rng([seed, purpose])


def keep_fraction(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """The dataset with round(fraction * n) training examples, drawn per class in proportion (stratified).

    Regression data are drawn without strata. ``fraction = 1`` returns ``dataset`` itself.

    >>> import torch
    >>> toy = Dataset("toy", "classification", torch.zeros(10, 1), torch.tensor([0] * 6 + [1] * 4),
    ...               torch.zeros(2, 1), torch.tensor([0, 1]), 2)
    >>> half = keep_fraction(toy, 0.5)
    >>> half.y_train.bincount().tolist(), len(half.x_test)
    ([3, 2], 2)
    """
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"dataset train_fraction must lie in (0, 1], got {fraction}")
    if fraction == 1.0:
        return dataset
    rng = _selection_rng(seed, 0)
    y = dataset.y_train.numpy()
    strata = np.unique(y) if dataset.task == "classification" else [None]
    keep = []
    for label in strata:
        idx = np.flatnonzero(y == label) if label is not None else np.arange(len(y))
        keep.append(rng.permutation(idx)[: max(1, int(round(fraction * len(idx))))])
    keep = torch.from_numpy(np.sort(np.concatenate(keep)))
    return dataclasses.replace(dataset, x_train=dataset.x_train[keep], y_train=dataset.y_train[keep])


def example_subset(x: torch.Tensor, y: torch.Tensor, examples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``examples`` of a seeded permutation of the rows of (x, y), in their original order.

    The loss on which a paper-scale model's Hessian-vector products are taken (``hessian.examples``): the
    mean over this fixed subset, so that the eigenpairs, traces and checks all describe one function.
    ``examples = 0`` (or at least the number of rows) keeps every row. Not stratified: the subset is exactly
    ``examples`` rows, and at thousands of rows the class counts differ from proportion by a few percent.

    >>> import torch
    >>> xs, ys = example_subset(torch.arange(10.0)[:, None], torch.arange(10), 4, seed=1)
    >>> len(ys), bool((xs[:, 0] == ys).all()), bool((ys.diff() > 0).all())
    (4, True, True)
    """
    if examples < 0:
        raise DataError(f"the number of examples must be >= 0 (0: all), got {examples}")
    if examples == 0 or examples >= len(y):
        return x, y
    keep = torch.from_numpy(np.sort(_selection_rng(seed, 2).permutation(len(y))[:examples]))
    return x[keep], y[keep]


def corrupt_labels(dataset: Dataset, noise: float, seed: int = 0) -> Dataset:
    """The dataset with round(noise * n) training labels, chosen at random, moved to a different random class.

    Exactly that fraction of training labels is wrong afterwards (each new class is uniform over the other
    C - 1); the test labels stay clean, so test accuracy measures generalization from noisy data.

    >>> import torch
    >>> toy = Dataset("toy", "classification", torch.zeros(10, 1), torch.arange(10) % 3,
    ...               torch.zeros(3, 1), torch.arange(3), 3)
    >>> noisy = corrupt_labels(toy, 0.3, seed=1)
    >>> int((noisy.y_train != toy.y_train).sum()), noisy.y_test.tolist()
    (3, [0, 1, 2])
    """
    if not 0.0 <= noise < 1.0:
        raise DataError(f"dataset label_noise must lie in [0, 1), got {noise}")
    if noise == 0.0:
        return dataset
    if dataset.task != "classification":
        raise DataError(f"dataset {dataset.name!r}: label_noise needs a classification task; {dataset.name} is "
                        f"{dataset.task} (its own noise option, if any, adds noise to the targets)")
    rng = _selection_rng(seed, 1)
    y = dataset.y_train.clone()
    flip = torch.from_numpy(rng.permutation(len(y))[: int(round(noise * len(y)))])
    shift = torch.from_numpy(rng.integers(1, dataset.output_dim, size=len(flip)))  # never 0: a different class
    y[flip] = (y[flip] + shift) % dataset.output_dim
    return dataclasses.replace(dataset, y_train=y)


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel standardization (axis 1 is the channel) with training-split statistics."""
    axes = (0,) + tuple(range(2, x_train.ndim))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True)
    std[std == 0] = 1.0
    as_tensor = lambda a: torch.from_numpy(((a - mean) / std).astype(np.float32))  # noqa: E731
    return as_tensor(x_train), as_tensor(x_test)


def _classification(name: str, x_tr, y_tr, x_te, y_te, classes: int) -> Dataset:
    x_train, x_test = _standardize(np.asarray(x_tr, np.float64), np.asarray(x_te, np.float64))
    return Dataset(
        name=name,
        task="classification",
        x_train=x_train,
        y_train=torch.as_tensor(np.asarray(y_tr), dtype=torch.int64),
        x_test=x_test,
        y_test=torch.as_tensor(np.asarray(y_te), dtype=torch.int64),
        output_dim=classes,
    )


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-stratified split; the same ``seed`` gives the same split on every machine."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits: images (1797, 8, 8) with values 0..16, and labels.

    Read from the data file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``: 64 pixels and the label per
    line, what its ``load_digits`` reads) without importing scikit-learn, which costs about 1 s in every process
    that trains or measures a digits model; ``load_digits`` itself where the file is not found."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.exists():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


@DATASETS.register("digits")
def digits(*, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 1797 handwritten 8x8 digits (shipped with the package), shape (1, 8, 8)."""
    images, target = digits_arrays()
    x = images[:, None, :, :] / 16.0
    train, test = _stratified_split(target, test_fraction, seed)
    return _classification("digits", x[train], target[train], x[test], target[test], 10)


CACHE_ENV = "LOSSGEOM_CACHE"
MNIST1D_KEYS = ("x", "y", "x_test", "y_test")


def cache_dir() -> Path | None:
    """Where generated datasets are kept between processes: ``$LOSSGEOM_CACHE``, else ``~/.cache/lossgeom``; the
    variable set to ``off`` (or empty) keeps none."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip() in ("", "off") else Path(value)
    return Path.home() / ".cache" / "lossgeom"


def _arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of the arrays of :data:`MNIST1D_KEYS`: each one's key, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for key in MNIST1D_KEYS:
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _mnist1d_shapes(args) -> dict[str, tuple[int, ...]]:
    """The shapes make_dataset gives for ``args``: num_samples // 10 signals per class, split at int(n * train_split)."""
    total = args.num_samples // 10 * 10
    train = int(total * args.train_split)
    length = args.final_seq_length
    return {"x": (train, length), "y": (train,), "x_test": (total - train, length), "y_test": (total - train,)}


def _read_mnist1d_cache(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is damaged, has other shapes or its content is not what was
    generated (the digest stored at generation differs): then the caller generates afresh and rewrites it."""
    try:
        with np.load(path) as cached:
            arrays = {key: cached[key] for key in MNIST1D_KEYS}
            stored = str(cached["sha256"]) if "sha256" in cached.files else None
    except Exception:  # noqa: BLE001 -- any damage (empty, truncated zip, another format): generate afresh
        return None
    if any(arrays[key].shape != shape for key, shape in shapes.items()) or stored != _arrays_digest(arrays):
        return None
    return arrays


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, train_split: float, seed: int) -> dict[str, np.ndarray]:
    """The generated arrays, once per process and (with :func:`cache_dir`) once per machine: generating the 5,000
    signals takes about 5 s (20,000 scipy interpolations), more than training a small model on them. The cache file is
    named by the generator's version and arguments, so another version or argument generates afresh; it holds the
    arrays' SHA-256 taken at generation, and a file whose arrays have other shapes or another digest (or none) is
    generated afresh and rewritten."""
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, seed
    folder = cache_dir()
    path = None if folder is None else folder / f"mnist1d-{version('mnist1d')}-{num_samples}-{train_split!r}-{seed}.npz"
    if path is not None and path.exists():
        cached = _read_mnist1d_cache(path, _mnist1d_shapes(args))
        if cached is not None:
            return cached
    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; leave it as we found it
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(state)
    arrays = {key: np.asarray(raw[key]) for key in MNIST1D_KEYS}
    if path is not None:
        try:
            from ..io.atomic import write_npz  # atomic: a process reading it meanwhile sees all of it or nothing

            path.parent.mkdir(parents=True, exist_ok=True)
            write_npz({**arrays, "sha256": np.array(_arrays_digest(arrays))}, path)
        except OSError:  # a read-only home: generate in every process, as without a cache
            pass
    return arrays


@DATASETS.register("mnist1d")
def mnist1d(*, num_samples: int = 5000, train_split: float = 0.8, seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated procedurally: 10 classes of length-40 signals, shape (1, 40)."""
    raw = {key: value.copy() for key, value in _mnist1d_arrays(num_samples, train_split, seed).items()}
    return _classification("mnist1d", raw["x"][:, None, :], raw["y"], raw["x_test"][:, None, :], raw["y_test"], 10)


def sum_of_sines(x: np.ndarray, frequencies, amplitudes) -> np.ndarray:
    """Target of the function approximator: sum_k a_k sin(w_k x)."""
    return sum(a * np.sin(w * x) for w, a in zip(frequencies, amplitudes, strict=True))


@DATASETS.register("sines")
def sines(
    *,
    n_train: int = 1024,
    n_test: int = 512,
    frequencies: tuple[float, ...] = (1.0, 3.0, 7.0),
    amplitudes: tuple[float, ...] = (1.0, 0.5, 0.25),
    x_range: tuple[float, float] = (-3.141592653589793, 3.141592653589793),
    noise_std: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """1D regression of a sum of sines with several frequencies: needs a real network to fit (MSE loss).

    Inputs are drawn uniformly on ``x_range`` and then scaled to [-1, 1]; the test targets are noiseless.
    """
    if len(frequencies) != len(amplitudes):
        raise DataError(f"sines: frequencies ({len(frequencies)}) and amplitudes ({len(amplitudes)}) differ in length")
    rng = np.random.default_rng(seed)
    lo, hi = x_range
    x_train = rng.uniform(lo, hi, size=(n_train, 1))
    x_test = rng.uniform(lo, hi, size=(n_test, 1))
    y_train = sum_of_sines(x_train, frequencies, amplitudes) + noise_std * rng.standard_normal((n_train, 1))
    y_test = sum_of_sines(x_test, frequencies, amplitudes)
    scale = lambda x: torch.from_numpy((2 * (x - lo) / (hi - lo) - 1).astype(np.float32))  # noqa: E731
    as_f32 = lambda y: torch.from_numpy(y.astype(np.float32))  # noqa: E731
    return Dataset("sines", "regression", scale(x_train), as_f32(y_train), scale(x_test), as_f32(y_test), 1)


@DATASETS.register("gaussian_mixture")
def gaussian_mixture(
    *,
    clusters: int = 4,
    classes: int | None = None,
    dim: int = 2,
    separation: float = 3.0,
    n_train: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
) -> Dataset:
    """k Gaussian clusters (unit covariance, centers ~ N(0, separation^2 I)); label = cluster mod ``classes``.

    With ``classes`` < ``clusters`` several clusters share a label, as in the k-cluster models of
    Fort & Ganguli (2019); by default every cluster is its own class.
    """
    classes = clusters if classes is None else classes
    if not 1 < classes <= clusters:
        raise DataError(f"gaussian_mixture: need 1 < classes <= clusters, got classes={classes}, clusters={clusters}")
    rng = np.random.default_rng(seed)
    centers = separation * rng.standard_normal((clusters, dim))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, clusters, size=n)
        return centers[cluster] + rng.standard_normal((n, dim)), cluster % classes

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return Dataset(
        "gaussian_mixture",
        "classification",
        torch.from_numpy(x_tr.astype(np.float32)),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_te.astype(np.float32)),
        torch.from_numpy(y_te.astype(np.int64)),
        classes,
    )


def _limit(n: int | None, *arrays):
    return arrays if n is None else tuple(a[:n] for a in arrays)


@DATASETS.register("mnist")
def mnist(*, root: str = "data", download: bool = False, limit_train: int | None = None,
          limit_test: int | None = None) -> Dataset:
    """MNIST from torchvision's raw IDX files under ``root/MNIST/raw``, shape (1, 28, 28)."""
    from torchvision.datasets import MNIST

    raw = Path(root) / "MNIST" / "raw"
    try:
        train = MNIST(root, train=True, download=download)
        test = MNIST(root, train=False, download=download)
    except RuntimeError as err:
        raise DataError(
            f"MNIST not found under {raw} ({err}). Place the four *-ubyte files there, or set "
            "'download: true' in the dataset's config on a machine with network access."
        ) from err
    x_tr, y_tr = _limit(limit_train, train.data.numpy()[:, None] / 255.0, train.targets.numpy())
    x_te, y_te = _limit(limit_test, test.data.numpy()[:, None] / 255.0, test.targets.numpy())
    return _classification("mnist", x_tr, y_tr, x_te, y_te, 10)


CIFAR10_DIR = "cifar-10-batches-py"


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError) as err:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({err}); delete it and download again") from err
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


@DATASETS.register("cifar10")
def cifar10(*, root: str = "data", download: bool = False, limit_train: int | None = None,
            limit_test: int | None = None) -> Dataset:
    """CIFAR-10 from the python pickle batches under ``root/cifar-10-batches-py``, shape (3, 32, 32).

    The batches are read directly (torchvision is used only to download and verify them), so any
    file in the official format loads, including the small ones the tests write.
    """
    folder = Path(root) / CIFAR10_DIR
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all((folder / n).exists() for n in names):
        if not download:
            raise DataError(
                f"CIFAR-10 not found under {folder} (needs {', '.join(names)}). Place the batches there, or "
                "set 'download: true' in the dataset's config on a machine with network access."
            )
        from torchvision.datasets import CIFAR10

        CIFAR10(root, train=True, download=True)
    parts = [_read_cifar_batch(folder / n) for n in names[:5]]
    x_tr, y_tr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    x_tr, y_tr = _limit(limit_train, x_tr, y_tr)
    x_te, y_te = _limit(limit_test, x_te, y_te)
    return _classification("cifar10", x_tr / 255.0, y_tr, x_te / 255.0, y_te, 10)
