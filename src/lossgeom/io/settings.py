"""Settings blocks of the config as frozen dataclasses, checked on the way in.

The dataclasses are the one source of the blocks' defaults: the config schema checks types and ranges
before any job runs but fills in no value of these blocks, and ``python -m lossgeom defaults`` prints
them all. Every result file records the resolved settings it was computed with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, TypeVar

from ..errors import ConfigError

S = TypeVar("S")


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


def defaults(cls: type) -> dict[str, Any]:
    """The default value of every key of a settings dataclass (tuples as lists, as a config would write them)."""
    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in dataclasses.fields(cls)}
