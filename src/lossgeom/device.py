"""Where and in what precision torch work runs: the config's device names, floating-point types, and the
precision and determinism policy every torch stage runs under.

Precision: on Ampere and later GPUs PyTorch may run float32 matrix products and convolutions in TF32 (a
10-bit mantissa, about 1e-3 relative error). That is the size of lambda_min / lambda_max of the trained
networks, so the negative end of a spectrum and the symmetry of the Hessian operator would be noise.
:func:`apply_precision_policy` turns TF32 off for cuBLAS and cuDNN and asks for the highest float32
matmul precision; :func:`precision_record` says what was in force, for the provenance of every result.

Determinism: :func:`use_deterministic_algorithms` makes CUDA kernels deterministic (an operation without a
deterministic kernel raises instead of warning), so a resumed or repeated run on the same GPU ends bitwise
equal; CPU kernels are deterministic for a fixed thread count already.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .errors import ConfigError
from .settings.base import DTYPE_NAMES

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}  # config names of the floating-point types


def pick_device(name: str) -> torch.device:
    """The torch device for a config's ``device``: ``auto`` takes CUDA when there is one, else the CPU.

    Every stage asks for its device here, so this is also where the precision policy is applied.
    """
    apply_precision_policy()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def apply_precision_policy() -> None:
    """No TF32 anywhere: full float32 (or float64) arithmetic in matrix products and convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def use_deterministic_algorithms() -> None:
    """Deterministic CUDA kernels, strictly: an operation that has none raises rather than warns.

    cuBLAS needs a fixed workspace for reproducible products; the variable must be set before its first use.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False


def precision_record() -> dict[str, Any]:
    """The precision and determinism settings in force, with the CUDA and cuDNN versions (None without CUDA)."""
    return {
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
