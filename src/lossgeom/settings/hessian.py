"""The ``hessian`` block of the config (read by the hessian step, the sweeps' Hessians and the run trajectories)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import DTYPE_NAMES, require, settings_from_mapping

METHODS = ("auto", "forward-over-reverse", "double-backward")  # ways of a Hessian-vector product (engine.hessian)


@dataclasses.dataclass(frozen=True)
class HessianSettings:
    """The ``hessian`` block of the config."""

    k_top: int = 10
    k_bottom: int = 3
    tol: float = 1e-5  # residual tolerance relative to |lambda_max|
    max_basis: int = 120
    max_hvps: int = 2000
    hutchinson_samples: int = 100
    slq_probes: int = 8
    slq_steps: int = 64
    dtype: str = "float64"
    batch_size: int = 1024
    split: str = "train"
    examples: int = 0  # products on this many examples of the split (a seeded subset, the same in the checks); 0: all
    seed: int = 0
    device: str = "auto"
    method: str = "auto"  # auto (the fastest by timing, with blocks) | forward-over-reverse | double-backward
    compile: bool = False
    # each returned pair's residual ||H y - lambda y||, formed from the products the run kept (H y = W^T s, no extra
    # product); False: the free Lanczos estimate only
    explicit_residuals: bool = True
    save_every_s: float = 60.0  # seconds between saves of the work in progress (partial.pt), for resuming

    def __post_init__(self) -> None:
        for key in ("k_top", "k_bottom"):  # one end alone is allowed here; the workflow's stages need both
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 0, "hessian", key, getattr(self, key),
                    "an integer >= 0")
        require(self.k_top + self.k_bottom >= 1, "hessian", "k_top", self.k_top,
                ">= 1 when k_bottom is 0 (at least one eigenpair must be asked for)")
        for key in ("max_basis", "max_hvps", "hutchinson_samples", "slq_probes", "slq_steps", "batch_size"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, "hessian", key, getattr(self, key),
                    "an integer >= 1")
        require(isinstance(self.examples, int) and self.examples >= 0, "hessian", "examples", self.examples,
                "an integer >= 0 (0: every example of the split)")
        require(self.tol > 0, "hessian", "tol", self.tol, "> 0")
        require(self.save_every_s >= 0, "hessian", "save_every_s", self.save_every_s, ">= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "HessianSettings":
        choices = {"dtype": DTYPE_NAMES, "method": METHODS, "split": ("train", "test")}
        return settings_from_mapping(cls, values, "hessian", choices)
