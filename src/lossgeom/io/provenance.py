"""Provenance: what produced a result file (versions, host, device, precision policy, seed, config, time)."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import lossgeom

from ..device import precision_record


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
