"""Deterministic, checkpointed, resumable training.

Determinism: the model is initialized from ``seed``; the data order of epoch ``e`` is a permutation drawn
from a generator seeded by ``(seed, e)`` alone, so it does not depend on whether the run was resumed;
deterministic algorithms are switched on, strictly (:func:`lossgeom.device.deterministic_torch`). After every
epoch the full training state (weights, optimizer, scheduler, RNG, metric history) is written atomically to one
checkpoint file, so a run killed at any moment
(even with SIGKILL) and started again continues from the last finished epoch and ends with weights that
are bitwise identical to those of an uninterrupted run on the same machine and thread count.

Snapshots (``train.snapshots``: optimizer steps, 0 = the initialization) save the weights along the way as
model files (:mod:`lossgeom.training.snapshots`). A resumed run whose earlier snapshots are missing starts
afresh rather than skip them.

Subspace training (``train.subspace_dim`` d > 0): only d coordinates of a random affine subspace through the
initialization are trained (:mod:`lossgeom.training.subspace`); the saved model and snapshots are the plain network
at theta_0 + P c, and the result records the subspace's Hessian at the start (the Goldilocks ratio).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..device import deterministic_torch, pick_device
from ..errors import ConfigError, TrainingDiverged
from ..io.atomic import save_torch
from ..problems.data import DATASETS, Dataset, dataset_shapes, load_dataset
from ..problems.losses import loss_function
from ..problems.models import MODELS, build_model, count_parameters
from ..settings.training import TrainSettings
from .checkpoints import CHECKPOINT_FORMAT, load_file
from .evaluation import evaluate
from .snapshots import Snapshots
from .subspace import SubspaceModel, deployable, start_curvature, subspace_seed

log = logging.getLogger(__name__)


DIVERGENCE_FACTOR = 1e3  # a training loss this many times its initial value means divergence, not learning

OPTIMIZERS = {
    "sgd": lambda p, s: torch.optim.SGD(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
    "adam": lambda p, s: torch.optim.Adam(p, lr=s.lr, weight_decay=s.weight_decay),
    "adamw": lambda p, s: torch.optim.AdamW(p, lr=s.lr, weight_decay=s.weight_decay),
}


def resolve_experiment(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Check an experiment spec ``{dataset, model, train}`` and fill every default."""
    missing = [k for k in ("dataset", "model") if k not in spec]
    if missing:
        raise ConfigError(f"experiment needs key(s) {', '.join(missing)}")
    unknown = sorted(set(spec) - {"dataset", "model", "train"})
    if unknown:
        raise ConfigError(f"experiment: unknown key(s) {', '.join(unknown)}; allowed keys: dataset, model, train")
    return {
        "dataset": DATASETS.resolve(spec["dataset"]),
        "model": MODELS.resolve(spec["model"]),
        "train": dataclasses.asdict(TrainSettings.from_mapping(spec.get("train", {}))),
    }


def model_size(spec: Mapping[str, Any]) -> int:
    """N, the number of trainable parameters of an experiment's model (MNIST and CIFAR-10 need not be on disk)."""
    experiment = resolve_experiment(spec)
    input_shape, output_dim = dataset_shapes(experiment["dataset"])
    return count_parameters(build_model(experiment["model"], input_shape, output_dim))


# train keys added after results existed: left out of the fingerprint at their default value, so that adding a key
# does not retrain every model trained before it (a run that sets the key gets a fingerprint of its own)
ADDED_AT_DEFAULT = {"target_loss": 0.0}


def spec_hash(experiment: Mapping[str, Any]) -> str:
    """Fingerprint of everything that determines the trained weights (device, evaluation and snapshots left out)."""
    relevant = dict(experiment)
    relevant["train"] = {k: v for k, v in experiment["train"].items()
                         if k not in ("device", "eval_batch_size", "snapshots")
                         and not (k in ADDED_AT_DEFAULT and v == ADDED_AT_DEFAULT[k])}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Data order of one epoch; depends on (seed, epoch) only, so resumed runs see the same order."""
    state = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.randperm(n, generator=torch.Generator().manual_seed(state))


@dataclasses.dataclass
class TrainResult:
    """A finished training run: the model (on its device), its data, the resolved spec and the per-epoch history."""

    name: str
    experiment: dict[str, Any]
    fingerprint: str
    model: nn.Module
    dataset: Dataset
    history: list[dict[str, float]]
    elapsed_s: float
    device: torch.device
    subspace: dict[str, Any] | None = None  # subspace training: d, and the restricted Hessian at the start


    @property
    def n_parameters(self) -> int:
        return count_parameters(self.model)


def _global_generator_kept(train: Callable[..., "TrainResult"]) -> Callable[..., "TrainResult"]:
    """Run ``train`` on forked global random generators: it seeds them (torch.manual_seed), the caller's stay as
    they were."""

    @functools.wraps(train)
    def forked(*args, **kwargs):
        with torch.random.fork_rng():
            return train(*args, **kwargs)

    return forked


@_global_generator_kept
def train_experiment(
    name: str,
    spec: Mapping[str, Any],
    checkpoint: str | os.PathLike,
    *,
    progress: bool = True,
    on_epoch: Callable[[list[dict[str, float]]], None] | None = None,
    snapshot_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train one experiment to completion, resuming from ``checkpoint`` when it was written for the same spec.

    After every epoch the training state goes atomically to ``checkpoint`` and ``on_epoch`` (if given) is
    called with the metric history so far (the train stage uses it to keep metrics.csv current). The
    snapshots the spec asks for are written to ``snapshot_dir``. The run seeds torch's global generators from the spec;
    the caller's generator states are given back afterwards. It switches torch to deterministic algorithms
    (:func:`lossgeom.device.deterministic_torch`), a process-wide setting that stays on.
    """
    deterministic_torch()  # before any torch work: see lossgeom.device
    checkpoint = Path(checkpoint)
    experiment = resolve_experiment(spec)
    settings = TrainSettings(**experiment["train"])
    fingerprint = spec_hash(experiment)
    device = pick_device(settings.device)

    dataset = load_dataset(experiment["dataset"])
    steps_per_epoch = settings.steps_per_epoch(len(dataset.x_train))
    snapshots = None
    if settings.snapshots:
        if snapshot_dir is None:
            raise ConfigError(f"experiment {name!r} asks for train.snapshots; pass a snapshot_dir to write them to")
        snapshots = Snapshots(Path(snapshot_dir), settings.snapshots)
        snapshots.check_reachable(settings.total_steps(len(dataset.x_train)), f"experiment {name!r}")
    torch.manual_seed(settings.seed)
    model = build_model(experiment["model"], dataset.input_shape, dataset.output_dim).to(device)
    if settings.subspace_dim:
        n_params = count_parameters(model)
        if settings.subspace_dim > n_params:
            raise ConfigError(f"experiment {name!r}: train.subspace_dim {settings.subspace_dim} exceeds the model's "
                              f"{n_params} parameters; choose 1..{n_params} (or 0 to train every parameter)")
        model = SubspaceModel(model, settings.subspace_dim, subspace_seed(settings.seed))
    optimizer = OPTIMIZERS[settings.optimizer]([p for p in model.parameters() if p.requires_grad], settings)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
        if settings.schedule == "cosine"
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    )
    history: list[dict[str, float]] = []
    start_epoch, elapsed, initial_loss = 0, 0.0, None

    if checkpoint.exists():
        state = load_file(checkpoint, CHECKPOINT_FORMAT, device)
        missing = snapshots.missing_through(state["epoch"] * steps_per_epoch) if snapshots else []
        if state["spec_hash"] != fingerprint:
            log.warning("%s: written for another configuration; starting training afresh", checkpoint)
        elif missing:
            log.warning("%s: snapshots at steps %s are missing; starting training afresh to write them",
                        checkpoint, missing)
        else:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"].cpu())
            history, start_epoch, elapsed = state["history"], state["epoch"], state["elapsed_s"]
            initial_loss = state.get("initial_train_loss")
            log.info("%s: resuming after epoch %d of %d", checkpoint, start_epoch, settings.epochs)

    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
    loss_fn = loss_function(dataset.task)
    log.info("%s: %s on %s, %d parameters, device %s", name, experiment["model"]["name"], dataset.name,
             count_parameters(deployable(model)), device)
    subspace = None
    if isinstance(model, SubspaceModel):  # the restricted Hessian at theta_0 (c = 0), whether resumed or not
        subspace = start_curvature(model, loss_fn, x_train, y_train, settings.eval_batch_size)
        log.info("%s: training %d coordinates of a random subspace; at the start tr(H_d)/||H_d||_F = %.3g (of at "
                 "most %.3g)", name, model.dim, subspace["ratio"], subspace["ratio_bound"])

    def diverged(what: str) -> None:
        last_good = (f"the state after epoch {len(history)} is kept in {checkpoint}" if history
                     else "no epoch finished, so no training state was kept")
        raise TrainingDiverged(
            f"experiment {name!r}: {what}; lower train.lr (configured {settings.lr:g}, scheduled "
            f"{optimizer.param_groups[0]['lr']:g} at that point) or check the data. Only finite states are written: "
            f"{last_good}."
        )

    def split_metrics() -> dict[str, float]:
        """train_* and test_* metrics of the model as it is now."""
        out = {f"train_{k}": v for k, v in evaluate(model, x_train, y_train, dataset.task, settings.eval_batch_size).items()}
        out.update({f"test_{k}": v for k, v in evaluate(model, x_test, y_test, dataset.task, settings.eval_batch_size).items()})
        return out

    def snapshot(step: int, epoch: int) -> dict[str, Any] | None:
        """Save the weights if ``step`` is a snapshot step; return what was recorded with them."""
        if snapshots is None or step not in snapshots.steps:
            return None
        info = {"epoch": step / steps_per_epoch, "lr": optimizer.param_groups[0]["lr"], "spec_hash": fingerprint,
                **split_metrics()}
        snapshots.save(step, deployable(model), experiment, info)
        log.info("%s: snapshot at step %d (epoch %d): train loss %.4g", name, step, epoch, info["train_loss"])
        return info

    if start_epoch == 0:  # the loss at initialization, the reference of the divergence test
        at_start = snapshot(0, 0)
        initial_loss = (at_start["train_loss"] if at_start is not None
                        else evaluate(model, x_train, y_train, dataset.task, settings.eval_batch_size)["loss"])

    if history and settings.reached_target(history[-1]["train_loss"]):  # resumed after the run reached its target
        start_epoch = settings.epochs
    bar = tqdm(
        range(start_epoch, settings.epochs),
        initial=start_epoch,
        total=settings.epochs,
        desc=f"train {name}",
        unit="epoch",
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
    )
    for epoch in bar:
        tick = time.perf_counter()
        model.train()
        order = epoch_permutation(len(x_train), settings.seed, epoch).to(device)
        for batch, start in enumerate(range(0, len(order), settings.batch_size)):
            idx = order[start : start + settings.batch_size]
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            if not torch.isfinite(loss):
                diverged(f"training loss became {loss.item()} at epoch {epoch + 1}, batch {batch + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            snapshot(epoch * steps_per_epoch + batch + 1, epoch + 1)
        scheduler.step()
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **split_metrics()}
        # The epoch's last updates are checked here (no batch loss sees them): non-finite, or blown up
        if not (math.isfinite(row["train_loss"]) and all(torch.isfinite(p).all() for p in model.parameters())):
            diverged(f"weights or training loss became non-finite by the end of epoch {epoch + 1} "
                     f"(train loss {row['train_loss']})")
        if initial_loss is not None and row["train_loss"] > DIVERGENCE_FACTOR * max(initial_loss, 1e-12):
            diverged(f"training loss grew from {initial_loss:.4g} at initialization to {row['train_loss']:.4g} by the "
                     f"end of epoch {epoch + 1} (more than {DIVERGENCE_FACTOR:g} times)")
        elapsed += time.perf_counter() - tick
        row["elapsed_s"] = elapsed
        history.append(row)
        save_torch(
            {
                "format": CHECKPOINT_FORMAT,
                "spec_hash": fingerprint,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "history": history,
                "elapsed_s": elapsed,
                "initial_train_loss": initial_loss,
            },
            checkpoint,
        )
        if on_epoch is not None:
            on_epoch(history)
        metric = "test_accuracy" if dataset.task == "classification" else "test_r2"
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", refresh=False, **{metric.removeprefix("test_"): f"{row[metric]:.4f}"})
        if settings.reached_target(row["train_loss"]):
            log.info("%s: train loss %.4g <= train.target_loss %g after epoch %d of at most %d; stopping", name,
                     row["train_loss"], settings.target_loss, epoch + 1, settings.epochs)
            break
    bar.close()

    if not history:
        raise ConfigError(f"experiment {name!r}: train.epochs must be >= 1")
    return TrainResult(name, experiment, fingerprint, deployable(model), dataset, history, elapsed, device, subspace)
