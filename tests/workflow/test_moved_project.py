"""A project moved (or copied with its results) to another folder reruns nothing: no absolute path is an input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.conftest import REPO

PROJECT = ["Snakefile", "config.yaml", "configs", "workflow", "profiles", "envs", "notebooks", "src"]


def snakemake(project, *args):
    env = {**os.environ, "PYTHONPATH": str(project / "src"),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=project, capture_output=True, text=True,
                          env=env, timeout=900)


def test_a_moved_project_has_nothing_to_do(tmp_path):
    """Built in a folder whose path holds a space (every job's shell prefix names the library's path), then moved."""
    first = tmp_path / "first project"
    first.mkdir()
    for name in PROJECT:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, first / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}))
    target = ["results/figures/F1.pdf", "--configfile", "configs/tiny.yaml"]  # --configfile takes several files
    built = snakemake(first, "--cores", "2", *target)
    assert built.returncode == 0, (built.stdout + built.stderr)[-3000:]

    moved = tmp_path / "moved"
    shutil.move(first, moved)  # a rename keeps every file's time stamp
    plan = snakemake(moved, "-n", *target)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "Nothing to be done" in plan.stdout + plan.stderr, (plan.stdout + plan.stderr)[-3000:]
