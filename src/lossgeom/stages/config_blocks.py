"""Which settings dataclass reads which block of the config: :data:`lossgeom.settings.CONFIG_BLOCKS`.

The dataclasses hold the blocks' defaults (the schema checks keys, types and ranges only). A block's key
path is its place in the config; ``experiments.*.train`` is the train block of every experiment. The mapping
and the dataclasses live in the torch-free :mod:`lossgeom.settings`; this module keeps the stages' former way
in to them.
"""

from __future__ import annotations

from ..settings import CONFIG_BLOCKS, all_defaults

__all__ = ["all_defaults", "blocks"]


def blocks() -> dict[str, type]:
    """{key path: settings dataclass} of every block, in the order of :data:`lossgeom.settings.CONFIG_BLOCKS`."""
    return dict(CONFIG_BLOCKS)
