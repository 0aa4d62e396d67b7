"""The ``figures`` blocks of the config: ``figures.landscapes`` (F1's synthetic surfaces) and
``figures.saddle_probability`` (F3's P(saddle))."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import settings_from_mapping


@dataclasses.dataclass(frozen=True)
class LandscapeSettings:
    """Config block ``figures.landscapes``."""

    dimension: int = 1000
    mean_curvatures: tuple[float, ...] = (0.5, -0.5, 0.0)
    quartic: float = 1.0
    ranges: tuple[float, ...] = (2.0, 0.2)
    points: int = 51
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LandscapeSettings":
        return settings_from_mapping(cls, values, "figures.landscapes")


@dataclasses.dataclass(frozen=True)
class SaddleProbabilitySettings:
    """Config block ``figures.saddle_probability``: tr(H)/N on ``steps`` points of [-1, 1] for each N."""

    dimensions: tuple[int, ...] = (10, 100, 1000, 10_000)
    steps: int = 21
    samples: int = 2000
    clt_samples: int = 200_000
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SaddleProbabilitySettings":
        return settings_from_mapping(cls, values, "figures.saddle_probability")
