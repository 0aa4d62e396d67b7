"""One module per workflow step. A torch stage has compute (in memory, returns results), write (owns every
path) and run (both, what the CLI calls); the small table and figure-data steps have run only.

A stage module also declares its command line (``add_commands(steps)``, found by :mod:`lossgeom.cli`), so
adding a stage means adding its module, not editing a registry. The config blocks a stage reads are settings
dataclasses of the torch-free :mod:`lossgeom.settings` (its ``CONFIG_BLOCKS``: key path -> dataclass), which
the stage imports and re-exports under its own name.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def modules() -> list[ModuleType]:
    """Every stage module (those that declare ``add_commands``), imported, in name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_commands"):
            found.append(module)
    return found
