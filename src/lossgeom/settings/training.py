"""The ``train`` block of every experiment (``experiments.<name>.train``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import require, settings_from_mapping

OPTIMIZER_NAMES = ("sgd", "adam", "adamw")  # names of training.loop.OPTIMIZERS, in its order
SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimization settings of one experiment (the ``train`` block of the config)."""

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    seed: int = 0
    eval_batch_size: int = 1024
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    snapshots: tuple[int, ...] = ()  # optimizer steps at which to save the weights (0 = initialization)
    subspace_dim: int = 0  # > 0: train only d coordinates of a random affine subspace (training.subspace)
    target_loss: float = 0.0  # > 0: stop after the first epoch whose train loss is <= this (epochs: the most)

    def __post_init__(self) -> None:
        require(isinstance(self.subspace_dim, int) and self.subspace_dim >= 0, "train", "subspace_dim",
                self.subspace_dim, "an integer >= 0 (0: train every parameter)")
        require(isinstance(self.target_loss, (int, float)) and self.target_loss >= 0, "train", "target_loss",
                self.target_loss, "a number >= 0 (0: train all epochs)")
        require(not (self.target_loss and self.snapshots), "train", "target_loss", self.target_loss,
                "0 when train.snapshots is set (a run that stops at its target would miss the later snapshots)")

    def reached_target(self, train_loss: float) -> bool:
        """Whether a train loss ends the training early (``target_loss`` > 0 and the loss at or below it)."""
        return self.target_loss > 0 and train_loss <= self.target_loss

    def steps_per_epoch(self, examples: int) -> int:
        """Optimizer steps of one epoch over ``examples`` training examples (the last batch may be short)."""
        return -(-examples // self.batch_size)

    def total_steps(self, examples: int) -> int:
        """Optimizer steps of the whole training: epochs x ceil(examples / batch_size)."""
        return self.epochs * self.steps_per_epoch(examples)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainSettings":
        return settings_from_mapping(cls, values, "train", {"optimizer": OPTIMIZER_NAMES, "schedule": SCHEDULES})
