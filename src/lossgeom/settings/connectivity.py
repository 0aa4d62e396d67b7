"""The ``connectivity`` block of the config (mode connectivity, simplices and CKA over a sweep's seeds)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .base import require, settings_from_mapping


@dataclasses.dataclass(frozen=True)
class ConnectivitySettings:
    """The ``connectivity`` block of the config."""

    path_points: int = 21  # t = 0, 1/(n-1), ..., 1 on every path; n - 1 divisible by 4 (Yang et al.'s five points)
    bend_epochs: int = 20  # passes over the training set to fit a Bezier bend (one t per minibatch)
    bend_lr: float = 0.05  # SGD, momentum 0.9, cosine decay to 0 over the fit
    connector_epochs: int = 40  # passes to fit the connectors (one simplex and one point per minibatch)
    connector_lr: float = 0.05
    connectors: int = 2  # trained points shared by every seed's simplex (w_i, c_1, ..., c_m)
    # the connectors' fit minimizes loss - volume_weight x log volume: without it they ended 1.3 apart (seeds: 19) on
    # the default sweep, the triangles flattened into segments; at 0.1, 13 apart, with the same mean loss
    volume_weight: float = 0.1
    batch_size: int = 32  # minibatch of the bend and connector fits
    simplex_samples: int = 200  # uniform points of the simplex at which the training loss is measured
    slice_points: int = 21  # the loss slice through the first triangle's plane: slice_points^2 points
    continue_epochs: int = 10  # small-batch training continued from each large-batch solution
    simplices: bool = True  # the simplicial complex per condition with three seeds or more (off: pairs and CKA only)
    continuation: bool = True  # large -> small batch continuation when the grid varies train.batch_size
    parts: int = 1  # jobs the workflow splits the conditions over (whole conditions each), merged by one more job
    cka_examples: int = 768  # mixup inputs on which the seeds' softmax outputs are compared
    mixup_concentration: float = 16.0
    eval_batch_size: int = 4096
    seed: int = 0
    device: str = "auto"
    save_every_s: float = 60.0

    def __post_init__(self) -> None:
        require(isinstance(self.path_points, int) and self.path_points >= 5 and (self.path_points - 1) % 4 == 0,
                "connectivity", "path_points", self.path_points,
                "an integer >= 5 with path_points - 1 divisible by 4 (so that t = 0, 1/4, 1/2, 3/4, 1 are on the path)")
        for key in ("bend_epochs", "connector_epochs", "continue_epochs", "batch_size", "slice_points",
                    "eval_batch_size", "connectors"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, "connectivity", key,
                    getattr(self, key), "an integer >= 1")
        for key in ("simplex_samples", "cka_examples"):  # a standard error, a centred matrix: two at least
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 2, "connectivity", key,
                    getattr(self, key), "an integer >= 2")
        require(isinstance(self.volume_weight, (int, float)) and self.volume_weight >= 0, "connectivity",
                "volume_weight", self.volume_weight, "a number >= 0")
        for key in ("simplices", "continuation"):
            require(isinstance(getattr(self, key), bool), "connectivity", key, getattr(self, key), "true or false")
        require(isinstance(self.parts, int) and self.parts >= 1, "connectivity", "parts", self.parts, "an integer >= 1")
        require(self.parts == 1 or not self.continuation, "connectivity", "parts", self.parts,
                "1 while continuation is on (a continuation crosses conditions; set continuation: false to split)")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ConnectivitySettings":
        return settings_from_mapping(cls, values, "connectivity")
