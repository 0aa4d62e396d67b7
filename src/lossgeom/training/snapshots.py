"""Model snapshots along training: the weights at chosen optimizer steps, each a loadable model file.

Step 0 is the initialization, step k the weights after k optimizer updates. Each snapshot is written
as ``<directory>/step=<k>.pt`` in the same format as a trained model (so every stage that reads a model,
e.g. the Hessian, reads a snapshot), with its step, epoch and train/test metrics in the file's ``info``.
Writes are atomic, and training is deterministic, so a snapshot rewritten by a resumed run is the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..errors import ConfigError
from .checkpoints import MODEL_FORMAT, load_file, save_model


@dataclass(frozen=True)
class Snapshots:
    """Where the snapshots of one run go, and at which steps."""

    directory: Path
    steps: tuple[int, ...]

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if not isinstance(s, int) or s < 0]
        if bad:
            raise ConfigError(f"train.snapshots: steps must be integers >= 0, got {bad}")
        object.__setattr__(self, "steps", tuple(sorted(set(self.steps))))
        object.__setattr__(self, "directory", Path(self.directory))

    def path(self, step: int) -> Path:
        return self.directory / f"step={step}.pt"

    def check_reachable(self, total_steps: int, where: str) -> None:
        """Raise if a requested step lies beyond the end of training."""
        beyond = [s for s in self.steps if s > total_steps]
        if beyond:
            raise ConfigError(f"{where}: train.snapshots {beyond} lie beyond the last step of training ({total_steps} = "
                              "epochs x ceil(training examples / batch_size)); drop them or train longer")

    def missing_through(self, step: int) -> list[int]:
        """Requested steps up to ``step`` whose file is absent (a resumed run must not skip past them)."""
        return [s for s in self.steps if s <= step and not self.path(s).exists()]

    def save(self, step: int, model: nn.Module, experiment: dict[str, Any], info: dict[str, Any]) -> None:
        save_model(self.path(step), model, experiment, {"step": step, **info})

    def table(self) -> pd.DataFrame:
        """One row per snapshot file present: step, epoch, metrics and path, in step order."""
        rows = [{**load_file(self.path(s), MODEL_FORMAT)["info"], "file": self.path(s).name}
                for s in self.steps if self.path(s).exists()]
        return pd.DataFrame(rows)

