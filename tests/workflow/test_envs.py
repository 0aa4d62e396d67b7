"""Conda environments: every rule has one, and their pins agree with uv.lock and pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.conftest import REPO

RULE_FILES = sorted((REPO / "workflow/rules").glob("*.smk"))
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if "version" in p}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_pins(path) -> dict[str, str]:
    """name -> version of every pinned package (conda 'name=ver' and pip 'name==ver')."""
    pins = {}
    for dep in yaml.safe_load(path.read_text())["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        for entry in entries:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==?\s*([^\s=]+)", entry)
            if match:
                pins[normalize(match.group(1))] = match.group(2)
    return pins


def rules_of(path) -> list[tuple[str, str]]:
    """(name, body) of every rule, including anonymous ones defined in a loop (``rule:`` + ``name:``)."""
    text = path.read_text()
    starts = [(m.group(1) or "(named in a loop)", m.start()) for m in re.finditer(r"^\s*rule ?(\w*):", text, re.M)]
    bounds = [s for _, s in starts] + [len(text)]
    return [(name, text[start:end]) for (name, start), end in zip(starts, bounds[1:])]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_has_a_conda_env_and_a_log(path):
    for name, body in rules_of(path):
        if not re.search(r"^\s+(shell|run|script|notebook):", body, re.M):
            continue  # a target rule (only input:) runs nothing
        env = re.search(r'conda:\s*\n\s*"([^"]+)"', body)
        assert env, f"rule {name} in {path.name} has no conda: directive"
        assert (path.parent / env.group(1)).resolve().exists(), f"rule {name}: {env.group(1)} does not exist"
        assert re.search(r"^\s+log:", body, re.M), f"rule {name} in {path.name} has no log:"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_the_lock(path):
    locked = locked_versions()
    pins = env_pins(path)
    assert pins, f"{path.name} pins nothing"
    for name, version in pins.items():
        if name == "python":
            continue
        assert name in locked, f"{path.name}: {name} is not in uv.lock"
        assert version == locked[name], f"{path.name}: {name}=={version} but uv.lock has {locked[name]}"


def test_library_env_pins_every_library_dependency():
    """envs/lossgeom.yaml pins uv.lock's version of every library dependency (pyproject.toml: lower bounds)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env, locked = env_pins(REPO / "envs/lossgeom.yaml"), locked_versions()
    extras = [r for extra in ("data", "vision") for r in project["optional-dependencies"][extra]]
    for text in project["dependencies"] + extras:
        requirement = Requirement(text)
        name = normalize(requirement.name)
        assert "==" not in str(requirement.specifier), f"pyproject.toml pins {text}: exact versions belong in uv.lock"
        assert env.get(name) == locked[name], f"envs/lossgeom.yaml must pin {name}=={locked[name]} (uv.lock)"
        assert requirement.specifier.contains(locked[name]), f"uv.lock's {name} {locked[name]} is not {text}"
    python = yaml.safe_load((REPO / "envs/lossgeom.yaml").read_text())["dependencies"][0]
    assert python.startswith("python=3.1"), "the conda python must satisfy requires-python"


def test_rule_parser_sees_the_figure_rules_defined_in_a_loop():
    names = [name for name, _ in rules_of(REPO / "workflow/rules/figures.smk")]
    assert "(named in a loop)" in names and "T1" in names
