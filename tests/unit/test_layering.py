"""Package dependencies point one way: problems < training < geometry, problems < engine < geometry; nothing in
these imports the stages or the checks. The checks only judge numbers that the stages measured: they import no
torch and nothing that measures. Read from the source with ast (no import runs), function-level imports included;
the checks' freedom from torch also by importing them in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "lossgeom"

# package -> the lossgeom packages its modules must not import
FORBIDDEN = {
    "problems": {"training", "engine", "geometry", "stages", "checks"},
    "training": {"geometry", "stages", "checks"},
    "engine": {"training", "geometry", "stages", "checks"},
    "geometry": {"stages", "checks"},
    "checks": {"problems", "training", "engine", "stages", "io"},
}


def imported_packages(path: Path) -> dict[str, int]:
    """{lossgeom subpackage: first line} for every import in ``path`` (relative ones resolved)."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("lossgeom", "training", "subspace")
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module[: len(module) - node.level])
                names = [".".join(base + ([node.module] if node.module else []))]
                if not node.module:  # from .. import geometry
                    names = [".".join(base + [alias.name]) for alias in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "lossgeom" and len(parts) > 1:
                found.setdefault(parts[1], node.lineno)
    return found


def test_the_resolver_sees_relative_and_absolute_imports():
    found = imported_packages(PACKAGE / "training" / "loop.py")
    assert {"problems", "io", "errors"} <= set(found)
    assert "training" in imported_packages(PACKAGE / "geometry" / "paths.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line} imports lossgeom.{target}"
             for path in sorted((PACKAGE / package).rglob("*.py"))
             for target, line in imported_packages(path).items() if target in FORBIDDEN[package]]
    assert not wrong, "\n".join(wrong)


def test_the_checks_run_without_torch():
    """Importing every checks module loads no torch: the measurements reach them as numbers."""
    modules = sorted(f"lossgeom.checks.{path.stem}" for path in (PACKAGE / "checks").glob("*.py") if path.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('lossgeom.engine', 'lossgeom.training',\n"
            "                'lossgeom.problems', 'lossgeom.stages', 'lossgeom.geometry.curvature')))\n"
            "print(loaded)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert found == "[]", f"importing the checks loaded {found}"
