"""Which settings dataclass reads which block of the config, gathered from the stage modules' ``CONFIG_BLOCKS``.

The dataclasses hold the blocks' defaults (the schema checks keys, types and ranges only). A block's key
path is its place in the config; ``experiments.*.train`` is the train block of every experiment.
"""

from __future__ import annotations

from typing import Any

from ..io.settings import defaults
from . import modules


def blocks() -> dict[str, type]:
    """{key path: settings dataclass} of every stage, in config order (as the stage modules list them)."""
    found: dict[str, type] = {}
    for module in modules():
        found.update(getattr(module, "CONFIG_BLOCKS", {}))
    return found


def all_defaults() -> dict[str, Any]:
    """The defaults of every block, nested as in a config file."""
    out: dict[str, Any] = {}
    for path, cls in sorted(blocks().items()):
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = defaults(cls)
    return out
