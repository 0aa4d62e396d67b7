"""The helpers every settings block uses: build one from a config mapping, check a range, list the defaults.

Torch-free, like the whole :mod:`lossgeom.settings` package (the workflow's planning reads it without torch).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, TypeVar

from ..errors import ConfigError

S = TypeVar("S")

DTYPE_NAMES = ("float32", "float64")  # config names of the floating-point types (torch's: lossgeom.device.DTYPES)


def settings_from_mapping(cls: type[S], values: Mapping[str, Any], section: str,
                          choices: Mapping[str, Iterable[str]] | None = None) -> S:
    """Build ``cls`` from a config block: lists become tuples; unknown keys and values outside ``choices`` raise.

    A tuple-valued key is checked element by element against its ``choices``.
    """
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {', '.join(allowed)}")
    settings = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    for key, options in (choices or {}).items():
        options = list(options)
        value = getattr(settings, key)
        bad = [v for v in value if v not in options] if isinstance(value, tuple) else [value] if value not in options else []
        if bad:
            shown = bad if isinstance(value, tuple) else bad[0]
            raise ConfigError(f"{section}.{key} {shown!r} is unknown; allowed values: {', '.join(options)}")
    return settings


def require(condition: bool, section: str, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError ``section.key: value ...; it must be <rule>`` unless ``condition`` holds.

    The settings dataclasses check the ranges whose violation would crash or silently mislead a stage run
    from the command line (the workflow's schema checks them, and the rest, before any job starts).
    """
    if not condition:
        raise ConfigError(f"{section}.{key}: {value!r} is out of range; it must be {rule}")


def settings_help(cls: type, block: str) -> dict[str, Any]:
    """Keyword arguments for an argparse subcommand whose ``--settings`` take ``cls``: an epilog listing every key
    of the config block with its default, so ``lossgeom <step> --help`` shows what may be set."""
    import argparse

    lines = [f"keys of --settings (the config's {block} block), with their defaults:"]
    lines += [f"  {key}: {value}" for key, value in defaults(cls).items()]
    return {"epilog": "\n".join(lines), "formatter_class": argparse.RawDescriptionHelpFormatter}


def defaults(cls: type) -> dict[str, Any]:
    """The default value of every key of a settings dataclass (tuples as lists, as a config would write them)."""
    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in dataclasses.fields(cls)}
