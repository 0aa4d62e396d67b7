"""The ``local`` block of the config (local geometry: Gauss-Newton distance, outliers, logit gradients)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import DTYPE_NAMES, require, settings_from_mapping


@dataclasses.dataclass(frozen=True)
class LocalSettings:
    """The ``local`` block of the config."""

    ggn_probes: int = 20  # shared probes for ||H - G||_F / ||H||_F (each costs one H and one G product)
    exact_max_parameters: int = 1500  # dense float64 H and G (exact distance, whole spectrum) up to this many parameters
    near_zero: float = 1e-3  # an eigenvalue with |lambda| < near_zero * max |lambda| counts as near zero (the bulk)
    logit_examples: int = 200  # examples whose per-example logit gradients are compared (a seeded subset)
    dtype: str = "float64"
    batch_size: int = 4096
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        require(isinstance(self.ggn_probes, int) and self.ggn_probes >= 2, "local", "ggn_probes", self.ggn_probes,
                "an integer >= 2 (a standard error needs two probes)")
        require(isinstance(self.near_zero, (int, float)) and 0 < self.near_zero < 1, "local", "near_zero",
                self.near_zero, "a number in (0, 1)")
        for key in ("exact_max_parameters", "logit_examples", "batch_size"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 0, "local", key, getattr(self, key),
                    "an integer >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LocalSettings":
        return settings_from_mapping(cls, values, "local", {"dtype": DTYPE_NAMES})
