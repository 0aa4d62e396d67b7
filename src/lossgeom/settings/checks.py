"""The ``checks`` blocks of the config: ``checks.synthetic`` (the synthetic saddles) and ``checks.models`` (checks
(b), (c) and the sign question on each trained model)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..errors import ConfigError
from .base import DTYPE_NAMES, settings_from_mapping


@dataclasses.dataclass(frozen=True)
class SyntheticCheckSettings:
    """The ``checks.synthetic`` block: saddles with tr(H)/N + linspace(-1, 1, N) spectra for each N and tr(H)/N."""

    dimensions: tuple[int, ...] = (10, 100, 1000, 10_000, 100_000)
    mean_curvatures: tuple[float, ...] = (0.5, -0.5, 0.0)
    projections: int = 1000
    prediction_samples: int = 20_000
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SyntheticCheckSettings":
        return settings_from_mapping(cls, values, "checks.synthetic")


@dataclasses.dataclass(frozen=True)
class ModelCheckSettings:
    """The ``checks.models`` block of the config."""

    projections: int = 100
    slices: int = 1000
    hutchinson_samples: int = 1000
    relative_step: float | None = None  # r in h = r ||theta|| / ||eta||; None: DEFAULT_STEPS of slices_dtype
    bias_slices: int = 20
    exact_max_parameters: int = 5000
    dtype: str = "float64"  # of the Hessian-vector products (b, Hutchinson, exact trace)
    slices_dtype: str | None = None  # of the HVP-free slices (c); None: dtype
    batch_size: int = 4096
    seed: int = 0
    device: str = "auto"
    save_every_s: float = 60.0  # seconds between saves of the work in progress, for resuming

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ModelCheckSettings":
        settings = settings_from_mapping(cls, values, "checks.models", {"dtype": DTYPE_NAMES})
        if settings.slices_dtype not in (None, *DTYPE_NAMES):
            raise ConfigError(f"checks.models.slices_dtype {settings.slices_dtype!r} is unknown; allowed values: "
                              f"{', '.join(DTYPE_NAMES)} or null")
        return settings
