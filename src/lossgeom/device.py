"""Where and in what precision torch work runs: the config's device names and floating-point types."""

from __future__ import annotations

import torch

from .errors import ConfigError

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # config names of the floating-point types


def pick_device(name: str) -> torch.device:
    """The torch device for a config's ``device``: ``auto`` takes CUDA when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)
