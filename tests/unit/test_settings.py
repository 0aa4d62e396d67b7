"""The settings package: torch-free, the one source of every config block's defaults, and the stages' own."""

from __future__ import annotations

import dataclasses
import inspect
import io
import pkgutil
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
import yaml

import lossgeom.settings
from lossgeom import cli, stages
from lossgeom.errors import ConfigError
from lossgeom.settings import CONFIG_BLOCKS, all_defaults, defaults


def test_importing_the_settings_imports_no_torch():
    """The workflow plans jobs and checks blocks with these alone: every module of the package, and the former
    ways in to them, load without torch (a fresh interpreter, so nothing else has loaded it)."""
    names = ["lossgeom.settings", *(f"lossgeom.settings.{m.name}" for m in pkgutil.iter_modules(lossgeom.settings.__path__)),
             "lossgeom.io.settings", "lossgeom.stages.config_blocks"]
    code = (f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
            "from lossgeom.settings import all_defaults\nall_defaults()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    assert len(names) >= 10  # the package's modules were found


def _is_block(cls) -> bool:
    """A settings dataclass of one config block: ``from_mapping(values)`` (not a bundle of blocks, as job_costs')."""
    return (inspect.isclass(cls) and dataclasses.is_dataclass(cls) and hasattr(cls, "from_mapping")
            and list(inspect.signature(cls.from_mapping).parameters) == ["values"])


def _stage_blocks() -> set[type]:
    """Every block dataclass a stage module (or the training loop) exposes, found by looking, not listed."""
    from lossgeom.training import loop

    found = set()
    for module in [*stages.modules(), loop]:
        found |= {obj for obj in vars(module).values() if _is_block(obj)}
    return found


def test_the_block_mapping_covers_every_stage_block():
    """The stage modules' settings are the package's own classes (re-exported), and each is a block of the
    mapping: what ``defaults`` printed when it gathered them from the stages."""
    blocks = _stage_blocks()
    assert len(blocks) >= 11
    assert blocks == set(CONFIG_BLOCKS.values())
    assert all(cls.__module__.startswith("lossgeom.settings.") for cls in blocks)


@pytest.mark.parametrize("path", sorted(CONFIG_BLOCKS))
def test_each_block_sits_where_its_messages_say(path):
    """A block's key path ends with the section its own errors name (``experiments.*.train``: ``train``)."""
    section = path.split(".*.")[-1]
    with pytest.raises(ConfigError, match=rf"^{section}: unknown key\(s\) 'no_such_key'"):
        CONFIG_BLOCKS[path].from_mapping({"no_such_key": 1})


def test_the_defaults_command_prints_every_block():
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["defaults"]) == 0
    printed = yaml.safe_load(out.getvalue())
    assert printed == all_defaults()
    for path, cls in CONFIG_BLOCKS.items():
        node = printed
        for key in path.split("."):
            node = node[key]
        assert node == defaults(cls) and list(node) == [f.name for f in dataclasses.fields(cls)]


def test_the_torch_side_names_are_the_settings_names():
    """The choices a block is checked against are the names the torch code accepts."""
    from lossgeom.device import DTYPES
    from lossgeom.engine.hessian import METHODS
    from lossgeom.geometry.directions import KINDS
    from lossgeom.settings import base, hessian, surfaces, training
    from lossgeom.training.loop import OPTIMIZERS

    assert tuple(DTYPES) == base.DTYPE_NAMES
    assert METHODS == hessian.METHODS
    assert KINDS == surfaces.DIRECTION_KINDS
    assert tuple(OPTIMIZERS) == training.OPTIMIZER_NAMES


def test_the_former_import_paths_still_work():
    from lossgeom.io import settings as io_settings
    from lossgeom.stages.config_blocks import blocks
    from lossgeom.stages.hessian import HessianSettings
    from lossgeom.stages.job_costs import RuntimeSettings, StageSettings
    from lossgeom.training.loop import TrainSettings

    assert HessianSettings is lossgeom.settings.HessianSettings and TrainSettings is lossgeom.settings.TrainSettings
    assert RuntimeSettings is lossgeom.settings.RuntimeSettings and StageSettings is lossgeom.settings.StageSettings
    assert blocks() == CONFIG_BLOCKS
    assert io_settings.settings_from_mapping is lossgeom.settings.settings_from_mapping
    assert io_settings.require is lossgeom.settings.require and io_settings.defaults is lossgeom.settings.defaults
