"""The ``surfaces`` block of the config (the surface step, its parts and the curvature check)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import DTYPE_NAMES, require, settings_from_mapping

DIRECTION_KINDS = ("gaussian", "unit", "filter")  # normalizations of a random direction (geometry.directions.KINDS)


@dataclasses.dataclass(frozen=True)
class SurfaceSettings:
    """The ``surfaces`` block of the config."""

    pairs: tuple[str, ...] = ("random", "hessian")
    ranges: tuple[float, ...] = (1.0, 0.1, 0.05)
    points: int = 51
    points_1d: int = 101
    splits: tuple[str, ...] = ("train", "test")
    normalization: str = "filter"
    biasbn: str = "ignore"
    seed: int = 0
    tile_rows: int = 4
    parts: int = 1  # jobs the tiles are dealt out to (then merged); 1: one job computes every surface
    batch_size: int = 4096
    curvature_batch_size: int | None = None  # examples per batch of the curvature check's float64 products; None: batch_size
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self) -> None:
        for key, least in (("points", 9), ("points_1d", 3)):
            value = getattr(self, key)
            require(isinstance(value, int) and value >= least and value % 2 == 1, "surfaces", key, value,
                    f"an odd integer >= {least} (the trained point is the centre of the grid)")
        for key in ("tile_rows", "batch_size", "parts"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, "surfaces", key, getattr(self, key),
                    "an integer >= 1")
        curvature = self.curvature_batch_size
        require(curvature is None or (isinstance(curvature, int) and curvature >= 1),
                "surfaces", "curvature_batch_size", curvature, "an integer >= 1 or null (batch_size)")
        require(all(r > 0 for r in self.ranges) and len(self.ranges) > 0, "surfaces", "ranges", self.ranges,
                "a non-empty list of positive half-widths")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SurfaceSettings":
        return settings_from_mapping(cls, values, "surfaces", {
            "normalization": DIRECTION_KINDS, "biasbn": ("ignore", "include"), "dtype": DTYPE_NAMES,
            "pairs": ("random", "hessian"), "splits": ("train", "test")})
