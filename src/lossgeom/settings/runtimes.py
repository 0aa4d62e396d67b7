"""The ``runtimes`` block of the config, and the settings of every stage whose job runtimes are estimated
(the job_costs step)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import require, settings_from_mapping
from .checks import ModelCheckSettings
from .hessian import HessianSettings
from .surfaces import SurfaceSettings
from .training import TrainSettings


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    """The ``runtimes`` block of the config: whether and how cluster runtimes come from measured costs."""

    estimate: bool = False  # measure each experiment's costs first and give its jobs the runtimes estimated here
    safety: float = 2.0  # runtime = safety x estimate + startup
    startup_min: float = 5.0  # minutes every job spends outside its measured work (imports, data, queue start)
    max_min: int | None = None  # cap (a partition's time limit): a longer job is killed there and resumes on its retry
    batches: int = 2  # full batches timed per kind of pass
    repeats: int = 3  # timed repetitions (after one warm-up); the median counts

    def __post_init__(self) -> None:
        require(self.safety >= 1, "runtimes", "safety", self.safety, ">= 1 (a factor on the estimate)")
        require(self.startup_min >= 0, "runtimes", "startup_min", self.startup_min, ">= 0")
        require(self.max_min is None or (isinstance(self.max_min, int) and self.max_min >= 1), "runtimes", "max_min",
                self.max_min, "an integer >= 1 (minutes) or null")
        for key in ("batches", "repeats"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, "runtimes", key,
                    getattr(self, key), "an integer >= 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RuntimeSettings":
        return settings_from_mapping(cls, values, "runtimes")


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """The settings of every stage whose work is planned here."""

    train: TrainSettings
    hessian: HessianSettings
    surfaces: SurfaceSettings
    checks: ModelCheckSettings
    runtimes: RuntimeSettings

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], blocks: Mapping[str, Any]) -> "StageSettings":
        """``blocks``: the config's hessian, surfaces, checks.models and runtimes blocks by those names."""
        return cls(TrainSettings.from_mapping(spec.get("train", {})), HessianSettings.from_mapping(blocks.get("hessian", {})),
                   SurfaceSettings.from_mapping(blocks.get("surfaces", {})),
                   ModelCheckSettings.from_mapping(blocks.get("checks.models", {})),
                   RuntimeSettings.from_mapping(blocks.get("runtimes", {})))
