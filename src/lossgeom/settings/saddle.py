"""The ``saddle`` block of the config (the early-training saddle check)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import require, settings_from_mapping


@dataclasses.dataclass(frozen=True)
class SaddleSettings:
    """The ``saddle`` block of the config."""

    points: int = 31  # of the display grids (odd: the snapshot at the centre)
    range: float = 1.0  # display grids span at most [-range, range] in units of the (filter-normalized) directions
    # The curvature rows' 5 x 5 grid spans [-check_range, check_range] (spacing h = 0.01 in units of directions as
    # long as the filters): early in training a ReLU network's full-batch loss has kinks at every scale (measured:
    # at h = 1e-6 kappa(h) and kappa(2h) differ by 2-3x, and the extrapolated grid lost the saddle), so the rows
    # look at the scale the figures show; there the grid's kappa differs from the HVPs' by the kinks' share
    check_range: float = 0.02
    projections: int = 200  # random Gaussian 2D projections for the share that shows a saddle
    seed: int = 0
    batch_size: int = 4096
    device: str = "auto"

    def __post_init__(self) -> None:
        require(isinstance(self.points, int) and self.points >= 5 and self.points % 2 == 1, "saddle", "points",
                self.points, "an odd integer >= 5 (the snapshot is the centre of the grid)")
        for key in ("range", "check_range"):
            require(isinstance(getattr(self, key), (int, float)) and getattr(self, key) > 0, "saddle", key,
                    getattr(self, key), "a number > 0")
        require(isinstance(self.projections, int) and self.projections >= 10, "saddle", "projections",
                self.projections, "an integer >= 10")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SaddleSettings":
        return settings_from_mapping(cls, values, "saddle")
