"""Validate a configuration against a JSON schema, fill defaults, and fail with ONE readable message.

Depends only on ``jsonschema`` and ``pyyaml`` (not torch), so the Snakefile can call it before any job
runs, even from a Snakemake installation that does not have the library's dependencies.

The message names the config file(s), the key path and the allowed values, e.g.::

    invalid configuration (config.yaml): experiments.digits_mlp.model.name: 'mpl' is not allowed;
    allowed values: densenet121, lenet, mlp, resnet
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema
import yaml
from jsonschema import validators

from ..errors import ConfigError


def _with_defaults(base: type) -> type:
    """A validator class that also writes each property's ``default`` into the instance."""
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(base, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def load_schema(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _allowed_keys(schema: Mapping[str, Any]) -> list[str]:
    return sorted(schema.get("properties", {}))


def describe(error: jsonschema.ValidationError) -> str:
    """One line naming the key, what is wrong and what is allowed."""
    where, kind, value = _key_path(error), error.validator, error.validator_value
    if kind == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(_allowed_keys(error.schema)) or "(none)"
        return f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed keys: {allowed}"
    if kind in ("enum", "const"):
        allowed = value if kind == "enum" else [value]
        return f"{where}: {error.instance!r} is not allowed; allowed values: {', '.join(map(str, allowed))}"
    if kind == "type":
        expected = value if isinstance(value, str) else " or ".join(value)
        return f"{where}: {error.instance!r} is a {type(error.instance).__name__}, expected {expected}"
    if kind == "required":
        return f"{where}: {error.message}"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"{where}: {error.instance!r} is out of range; must be {op} {value}"
    if kind == "not" and value == {"multipleOf": 2}:
        return f"{where}: {error.instance!r} is even; it must be odd"
    if kind == "contains":
        return f"{where}: {error.instance!r} must contain {value.get('const', value)!r}"
    if kind == "pattern":
        return f"{where}: {error.instance!r} does not match the pattern {value}"
    return f"{where}: {error.message}"


def _relevance(error: jsonschema.ValidationError):
    # Prefer deep errors (they name the exact key) and concrete ones over combinators.
    weak = error.validator in ("anyOf", "oneOf", "allOf", "if", "then")
    return (not weak, len(error.absolute_path))


def validate_config(config: dict[str, Any], schema: Mapping[str, Any], sources: Iterable[str] = ()) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; raise ConfigError on the first problem."""
    errors = list(_Validator(schema).iter_errors(config))
    if errors:
        error = max(errors, key=_relevance)
        while error.context:  # descend into the most relevant sub-error of a combinator
            error = max(error.context, key=_relevance)
        origin = f" ({', '.join(map(str, sources))})" if sources else ""
        raise ConfigError(f"invalid configuration{origin}: {describe(error)}")
    return config


def validate_experiment(spec: dict[str, Any], schema: Mapping[str, Any], where: str,
                        sources: Iterable[str] = ()) -> dict[str, Any]:
    """Validate one experiment spec (e.g. a generated run of a sweep) against the schema's experiment definition."""
    try:
        return validate_config(spec, {"$ref": "#/$defs/experiment", "$defs": schema["$defs"]})
    except ConfigError as err:
        origin = f" ({', '.join(map(str, sources))})" if sources else ""
        detail = str(err).removeprefix("invalid configuration: ")
        raise ConfigError(f"invalid configuration{origin}: {where}: {detail}") from None


def read_config_files(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Read YAML config files as Snakemake does (later files update earlier ones, block by block), failing with
    ONE message that names the file, and for a syntax error the line and column, instead of Snakemake's
    "Config file is not valid JSON or YAML" or a FileNotFoundError traceback."""
    config: dict[str, Any] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file (the shipped sets are config.yaml and configs/*.yaml)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML: {err.problem or err.context}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys (experiments:, hessian:, ...), "
                              f"found a {type(data).__name__}")
        _update(config, data)
    return config


def _update(config: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """Nested update, as Snakemake merges several --configfile."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            _update(config[key], value)
        else:
            config[key] = copy.deepcopy(value)


def check_config_files(paths: Iterable[str | Path], schema_path: str | Path) -> dict[str, Any]:
    """Read and validate config files as the workflow will (syntax, then keys, types and ranges)."""
    paths = list(paths)
    return validate_config(read_config_files(paths), load_schema(schema_path), sources=map(str, paths))


REGRESSION_DATASETS = frozenset({"sines"})  # every other dataset is a classification task (tested against data.py)


def experiment_task(experiment: Mapping[str, Any]) -> str:
    """"classification" or "regression" from an experiment's config, without loading its data (for the Snakefile)."""
    return "regression" if experiment["dataset"]["name"] in REGRESSION_DATASETS else "classification"
