"""Settings blocks of the config as frozen dataclasses, checked on the way in; torch-free.

The dataclasses are the one source of the blocks' defaults: the config schema checks types and ranges
before any job runs but fills in no value of these blocks, and ``python -m lossgeom defaults`` prints
them all. Every result file records the resolved settings it was computed with.

This package imports neither torch nor any stage, so the workflow can read the defaults and check a block
when it plans the jobs; the stages import their block from here (and still export it under their own name,
e.g. ``lossgeom.stages.hessian.HessianSettings``). Whatever needs torch (a device, a torch dtype) is done by
the stage, from the settings. :data:`CONFIG_BLOCKS` says which dataclass reads which block; a block's key path
is its place in the config, ``experiments.*.train`` the train block of every experiment::

    >>> from lossgeom.settings import CONFIG_BLOCKS, all_defaults
    >>> CONFIG_BLOCKS["hessian"].from_mapping({"k_top": 4}).k_top
    4
    >>> all_defaults()["experiments"]["*"]["train"]["optimizer"]
    'sgd'
"""

from __future__ import annotations

from typing import Any

from .base import DTYPE_NAMES, defaults, require, settings_from_mapping, settings_help
from .checks import ModelCheckSettings, SyntheticCheckSettings
from .connectivity import ConnectivitySettings
from .figures import LandscapeSettings, SaddleProbabilitySettings
from .hessian import HessianSettings
from .local import LocalSettings
from .runtimes import RuntimeSettings, StageSettings
from .saddle import SaddleSettings
from .surfaces import SurfaceSettings
from .training import TrainSettings

# {key path in the config: the dataclass that reads that block}
CONFIG_BLOCKS: dict[str, type] = {
    "checks.models": ModelCheckSettings,
    "checks.synthetic": SyntheticCheckSettings,
    "connectivity": ConnectivitySettings,
    "saddle": SaddleSettings,
    "figures.landscapes": LandscapeSettings,
    "figures.saddle_probability": SaddleProbabilitySettings,
    "hessian": HessianSettings,
    "runtimes": RuntimeSettings,
    "local": LocalSettings,
    "surfaces": SurfaceSettings,
    "experiments.*.train": TrainSettings,  # the train block of every experiment
}


def all_defaults() -> dict[str, Any]:
    """The defaults of every block, nested as in a config file."""
    out: dict[str, Any] = {}
    for path, cls in sorted(CONFIG_BLOCKS.items()):
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = defaults(cls)
    return out


__all__ = [
    "CONFIG_BLOCKS", "DTYPE_NAMES", "ConnectivitySettings", "HessianSettings", "LandscapeSettings", "LocalSettings",
    "ModelCheckSettings", "RuntimeSettings", "SaddleProbabilitySettings", "SaddleSettings", "StageSettings",
    "SurfaceSettings", "SyntheticCheckSettings", "TrainSettings", "all_defaults", "defaults", "require",
    "settings_from_mapping", "settings_help",
]
