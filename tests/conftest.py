"""Shared test helpers: repository paths, a Snakemake runner, the test tiers, the shared tiny run, cached dry-runs.

Tiers: tests under tests/workflow and tests/cluster are marked ``slow`` (they run Snakemake, minutes), and so
are all but one case of each family of unit tests against dense references (``one_fast`` in
tests/unit/curvature_cases.py); ``pytest -m "not slow"`` is the fast inner loop (unit tests, one dense case
per family, and the library's doctests). The README's test command runs every tier.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs/tiny.yaml"
SLOW_FOLDERS = ("workflow", "cluster")


def pytest_configure(config):
    """Torch computes on one thread in the test process, as the workflow's jobs do with the shipped configs
    (``threads: 1``). The tests' products and dense references are small: a second thread gains little on an idle
    machine, and on a shared one (2 cores, other jobs running) torch's threads wait on each other: the fast tier's
    engine tests took 257 s with torch's default threads and 31 s with one, measured back to back."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO).parts
        if parts[0] == "tests" and len(parts) > 1 and parts[1] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Generated datasets (MNIST-1D) are cached in a folder of the test session, not the user's ~/.cache; the
    Snakemake runs below inherit it."""
    folder = tmp_path_factory.mktemp("dataset_cache")
    previous = os.environ.get("LOSSGEOM_CACHE")
    os.environ["LOSSGEOM_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LOSSGEOM_CACHE", None)
    else:
        os.environ["LOSSGEOM_CACHE"] = previous


def run_snakemake(*args: str, cwd: Path = REPO, timeout: float = 900, project: Path = REPO) -> subprocess.CompletedProcess:
    """Run the workflow of ``project`` (this repository, or a copy of it) with the test interpreter; output
    captured as text."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(project / "Snakefile"), *args]
    env = {**os.environ, "PYTHONPATH": str(project / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # jobs' `python`
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run once through the whole workflow on 2 cores, shared by the end-to-end and SLURM tests."""
    work = tmp_path_factory.mktemp("tiny")
    result = run_snakemake("--cores", "2", "--configfile", str(TINY), "-d", str(work))
    assert result.returncode == 0, result.stderr[-4000:]
    return work, result


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory):
    """dry_run(configfile, *targets): a cached ``snakemake -n`` of a config file (by its content) in an empty folder."""
    cache: dict[tuple, subprocess.CompletedProcess] = {}
    root = tmp_path_factory.mktemp("dry_runs")

    def plan(configfile: str | Path, *targets: str) -> subprocess.CompletedProcess:
        key = (hashlib.sha256(Path(configfile).read_bytes()).hexdigest(), targets)
        if key not in cache:
            work = root / f"run{len(cache)}"
            work.mkdir()
            cache[key] = run_snakemake("-n", *targets, "--configfile", str(configfile), "-d", str(work))
        return cache[key]

    return plan
