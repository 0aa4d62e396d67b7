"""Atomic file writes: a reader (or a rerun after a kill) never sees a half-written file.

Every result file goes through :func:`atomic_path`: the content is written to a temporary file in the
same directory and moved over the target with ``os.replace``, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give results the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Strict JSON: a NaN or infinity (which json.dumps would write as an invalid literal) becomes null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")


def _finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite_or_null(obj.item())
    return obj


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_npz(arrays: dict[str, Any], path: str | os.PathLike) -> None:
    """``np.savez_compressed`` atomically (the arrays load without pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically; keep ``obj`` to tensors and plain containers so it loads with weights_only."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
