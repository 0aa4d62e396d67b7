"""Where and in what precision torch work runs: the config's device names, floating-point types, and the
precision and determinism policy every torch stage runs under.

Precision: on Ampere and later GPUs PyTorch may run float32 matrix products and convolutions in TF32 (a
10-bit mantissa, about 1e-3 relative error). That is the size of lambda_min / lambda_max of the trained
networks, so the negative end of a spectrum and the symmetry of the Hessian operator would be noise.
:func:`apply_precision_policy` turns TF32 off for cuBLAS and cuDNN and asks for the highest float32
matmul precision; :func:`precision_record` says what was in force, for the provenance of every result.

Determinism: :func:`deterministic_torch`, called first by every torch stage's entry (and by training), makes
CUDA kernels deterministic (an operation without a deterministic kernel raises instead of warning), cuDNN's
too, with cuBLAS on a fixed workspace and no TF32, so a resumed or repeated run on the same GPU ends bitwise
equal; CPU kernels are deterministic for a fixed thread count already.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import torch

from .errors import ConfigError
from .settings.base import DTYPE_NAMES

log = logging.getLogger(__name__)

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


CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's fixed workspace for reproducible products (":16:8" is one too)


def deterministic_torch() -> None:
    """Deterministic torch for the rest of the process: what every torch stage's entry calls first.

    - ``CUBLAS_WORKSPACE_CONFIG`` (unless already set): cuBLAS needs a fixed workspace for reproducible
      products and reads the variable at its first use, so the call must come before any work on the GPU;
    - deterministic algorithms, strictly: an operation without a deterministic CUDA kernel raises rather than
      warns (no operation of the stages raises on the CPU, whose kernels are deterministic already);
    - cuDNN: deterministic convolution algorithms and no benchmarking (which picks kernels by timing);
    - no TF32 in matrix products and convolutions (:func:`apply_precision_policy`).

    Idempotent, and cheap on any machine, CUDA or not: ``torch.use_deterministic_algorithms`` imports
    Inductor's config to switch its deterministic mode too (1.5 s and some 900 modules), so unless that config is
    loaded already the switch is set directly and Inductor's mode through the variable its config reads when
    ``torch.compile`` first loads it.
    """
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_initialized():
            log.warning("CUDA was initialized before CUBLAS_WORKSPACE_CONFIG was set; cuBLAS products may not be "
                        "reproducible in this process (set CUBLAS_WORKSPACE_CONFIG=%s before starting it)",
                        CUBLAS_WORKSPACE)
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    apply_precision_policy()
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if "torch._inductor.config" in sys.modules or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=False)
    else:
        os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
        torch._C._set_deterministic_algorithms(True, warn_only=False)


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
