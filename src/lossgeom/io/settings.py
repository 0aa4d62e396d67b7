"""Settings blocks of the config (``train``, ``hessian``) as frozen dataclasses, checked on the way in."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, TypeVar

import torch

from .errors import ConfigError

S = TypeVar("S")

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # config names of the floating-point types


def settings_from_mapping(cls: type[S], values: Mapping[str, Any], section: str, choices: Mapping[str, Iterable[str]]) -> S:
    """Build ``cls`` from a config block; unknown keys and values outside ``choices`` raise ConfigError."""
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: {', '.join(allowed)}")
    settings = cls(**values)
    for key, options in choices.items():
        options = list(options)
        if getattr(settings, key) not in options:
            raise ConfigError(f"{section}.{key} {getattr(settings, key)!r} is unknown; allowed values: {', '.join(options)}")
    return settings
