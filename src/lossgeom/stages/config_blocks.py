"""Which settings dataclass reads which block of the config: the one place that ties config keys to stages.

The dataclasses hold the blocks' defaults (the schema checks types and ranges only). The key path of a
block is its place in the config; ``experiments.*.train`` is the train block of every experiment.
"""

from __future__ import annotations

from typing import Any

from ..io.settings import defaults
from ..training.loop import TrainSettings
from .check_model import ModelCheckSettings
from .check_synthetic import SyntheticCheckSettings
from .figure_data import LandscapeSettings, SaddleProbabilitySettings
from .hessian import HessianSettings
from .surfaces import SurfaceSettings

BLOCKS: dict[str, type] = {
    "hessian": HessianSettings,
    "surfaces": SurfaceSettings,
    "checks.synthetic": SyntheticCheckSettings,
    "checks.models": ModelCheckSettings,
    "figures.landscapes": LandscapeSettings,
    "figures.saddle_probability": SaddleProbabilitySettings,
    "experiments.*.train": TrainSettings,
}


def all_defaults() -> dict[str, Any]:
    """The defaults of every block, nested as in a config file."""
    out: dict[str, Any] = {}
    for path, cls in BLOCKS.items():
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = defaults(cls)
    return out
