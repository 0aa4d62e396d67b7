"""Name -> factory registries with keyword checking, shared by datasets and models.

A spec is a plain mapping ``{"name": ..., **params}`` as written in the config. :func:`resolve` checks
the name and the parameter keys against the factory's signature and returns the full spec with every
default filled in, so result files record exactly what was built.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from ..errors import ConfigError


class Registry:
    """Factories registered by name; ``kind`` ("dataset", "model") is used in error messages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._factories[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """Configurable parameters of a factory (those after the bare ``*``)."""
        sig = inspect.signature(self._factories[name])
        return {k: p for k, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def resolve(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``spec`` and return it with defaults filled in; raise ConfigError naming the bad key."""
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(f"{self.kind} spec {spec!r} needs a 'name'; one of: {', '.join(self.names())}")
        name = spec["name"]
        if name not in self._factories:
            raise ConfigError(
                f"{self.kind} name {name!r} is unknown; allowed values: {', '.join(self.names())}"
            )
        params = self.parameters(name)
        unknown = sorted(set(spec) - {"name"} - set(params))
        if unknown:
            raise ConfigError(
                f"{self.kind} {name!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(params) or '(none)'}"
            )
        resolved: dict[str, Any] = {"name": name}
        for key, param in params.items():
            if key in spec:
                resolved[key] = spec[key]
            elif param.default is inspect.Parameter.empty:
                raise ConfigError(f"{self.kind} {name!r}: missing required key {key!r}")
            else:
                resolved[key] = param.default
        return resolved

    def build(self, spec: Mapping[str, Any], *args: Any) -> Any:
        """Resolve ``spec`` and call its factory with positional ``args`` and the spec's keywords."""
        resolved = self.resolve(spec)
        kwargs = {k: _plain(v) for k, v in resolved.items() if k != "name"}
        return self._factories[resolved["name"]](*args, **kwargs)


def _plain(value: Any) -> Any:
    """Lists from YAML become tuples so factories can treat them as immutable shapes."""
    return tuple(value) if isinstance(value, list) else value
