"""Provenance: what produced a result file (versions, host, device, precision policy, seed, config, time)."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lossgeom

from ..device import precision_record
from ..errors import InputMismatch


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits): which exact file a result was computed from.

    A stage checks and records the same model file more than once; the digest is remembered for as long as
    the file's path, size and modification time stay the same, so the file is read once."""
    stat = os.stat(path)
    return _sha256_prefix(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def input_record(**paths: str | os.PathLike | None) -> dict[str, dict[str, str]]:
    """{name: {"path", "sha256"}} of a result's input files (None entries are left out), for its provenance."""
    return {name: {"path": str(path), "sha256": file_fingerprint(path)} for name, path in paths.items() if path is not None}


def provenance(**extra: Any) -> dict[str, Any]:
    """A JSON-ready record of the software and machine, merged with ``extra`` (config, seed, timings)."""
    record: dict[str, Any] = {
        "lossgeom": lossgeom.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "precision": precision_record(),
    }
    record.update(extra)
    return record


def require_same_input(record: Any, name: str, path: str | os.PathLike, result_path: str | os.PathLike) -> None:
    """Raise InputMismatch unless ``record`` (a result's ``inputs``) says it was computed from the file at ``path``.

    The check is by content (SHA-256), not by name: a file moved or copied still matches, while eigenvectors of
    another model of the same size (which the norms alone cannot tell apart) do not.
    """
    stored = (record or {}).get(name, {}).get("sha256") if isinstance(record, dict) else None
    actual = file_fingerprint(path)
    if stored is None:
        raise InputMismatch(f"{result_path} does not record which {name} file it was computed from (written by an "
                            f"older version?); rerun the step that writes it for {path}")
    if stored != actual:
        source = record[name].get("path", "?")
        raise InputMismatch(f"{result_path} was computed from the {name} {source} (sha256 {stored}), not from {path} "
                            f"(sha256 {actual}); rerun the step that writes it for {path}, or pass the matching files")
