"""Name -> factory registries with keyword checking, shared by datasets and models.

A spec is a plain mapping ``{"name": ..., **params}`` as written in the config. :func:`resolve` checks
the name and the parameter keys against the factory's signature and returns the full spec with every
default filled in, so result files record exactly what was built.

A registry may also declare *options*: keys every entry accepts (e.g. a dataset's ``label_noise`` or a
model's ``init_scale``) that the caller applies to what the factory built, so one implementation serves
every dataset or model. :meth:`Registry.build` passes the factory only its own keys; :meth:`Registry.options_of`
gives the caller the options.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from ..errors import ConfigError


class Registry:
    """Factories registered by name; ``kind`` ("dataset", "model") is used in error messages."""

    def __init__(self, kind: str, options: Mapping[str, Any] | None = None) -> None:
        self.kind = kind
        self.options = dict(options or {})  # key -> default, accepted by every entry
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
        unknown = sorted(set(spec) - {"name"} - set(params) - set(self.options))
        if unknown:
            allowed = list(params) + list(self.options)
            raise ConfigError(
                f"{self.kind} {name!r}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(allowed) or '(none)'}"
            )
        resolved: dict[str, Any] = {"name": name}
        for key, param in params.items():
            if key in spec:
                resolved[key] = spec[key]
            elif param.default is inspect.Parameter.empty:
                raise ConfigError(f"{self.kind} {name!r}: missing required key {key!r}")
            else:
                resolved[key] = param.default
        for key, default in self.options.items():
            resolved[key] = spec.get(key, default)
        return resolved

    def options_of(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The registry-wide options of ``spec``, defaults filled in."""
        resolved = self.resolve(spec)
        return {key: resolved[key] for key in self.options}

    def build(self, spec: Mapping[str, Any], *args: Any) -> Any:
        """Resolve ``spec`` and call its factory with positional ``args`` and the factory's own keywords."""
        resolved = self.resolve(spec)
        kwargs = {k: _plain(v) for k, v in resolved.items() if k != "name" and k not in self.options}
        return self._factories[resolved["name"]](*args, **kwargs)


def _plain(value: Any) -> Any:
    """Lists from YAML become tuples so factories can treat them as immutable shapes."""
    return tuple(value) if isinstance(value, list) else value
