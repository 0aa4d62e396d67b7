"""Data of the synthetic-saddle figures: surfaces of confined saddles (F1) and P(saddle) vs N and tr(H)/N (F3).

Two small steps, computed in numpy from closed forms (:mod:`lossgeom.theory.landscapes`):
``synthetic_landscapes`` writes an npz of grids (and a JSON of its settings beside it), ``saddle_probability``
a CSV of Monte Carlo and central-limit values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..io.atomic import write_csv, write_json, write_npz
from ..io.provenance import provenance
from ..io.settings import settings_from_mapping, settings_help
from ..theory.landscapes import saddle_probability_sweep, synthetic_landscapes


@dataclass(frozen=True)
class LandscapeSettings:
    """Config block ``figures.landscapes``."""

    dimension: int = 1000
    mean_curvatures: tuple[float, ...] = (0.5, -0.5, 0.0)
    quartic: float = 1.0
    ranges: tuple[float, ...] = (2.0, 0.2)
    points: int = 51
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LandscapeSettings":
        return settings_from_mapping(cls, values, "figures.landscapes")


@dataclass(frozen=True)
class SaddleProbabilitySettings:
    """Config block ``figures.saddle_probability``: tr(H)/N on ``steps`` points of [-1, 1] for each N."""

    dimensions: tuple[int, ...] = (10, 100, 1000, 10_000)
    steps: int = 21
    samples: int = 2000
    clt_samples: int = 200_000
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "SaddleProbabilitySettings":
        return settings_from_mapping(cls, values, "figures.saddle_probability")


def run_landscapes(settings: LandscapeSettings, out: str | Path) -> None:
    """The grids as npz at ``out`` and the settings with provenance as JSON beside it."""
    write_npz(synthetic_landscapes(**dataclasses.asdict(settings)), out)
    write_json({"settings": dataclasses.asdict(settings), "provenance": provenance(seed=settings.seed)},
               Path(out).with_suffix(".json"))


def run_saddle_probability(settings: SaddleProbabilitySettings, out: str | Path, log=None) -> None:
    write_csv(saddle_probability_sweep(**dataclasses.asdict(settings), log=log), out)


CONFIG_BLOCKS = {"figures.landscapes": LandscapeSettings, "figures.saddle_probability": SaddleProbabilitySettings}


def add_commands(steps) -> None:
    """CLI: ``lossgeom synthetic-landscapes`` and ``lossgeom saddle-probability``."""
    landscapes = steps.add_parser("synthetic-landscapes", help="surfaces of confined saddles, random vs Hessian directions",
                                   **settings_help(LandscapeSettings, "figures.landscapes"))
    landscapes.add_argument("--settings", default="{}", help="the figures.landscapes config block as JSON")
    landscapes.add_argument("--out", required=True, type=Path, help="npz of grids (and a .json of settings beside it)")
    landscapes.set_defaults(func=lambda args: run_landscapes(LandscapeSettings.from_mapping(json.loads(args.settings)),
                                                             args.out))
    probability = steps.add_parser("saddle-probability", help="P(random projection shows a saddle) vs N and tr(H)/N",
                                    **settings_help(SaddleProbabilitySettings, "figures.saddle_probability"))
    probability.add_argument("--settings", default="{}", help="the figures.saddle_probability config block as JSON")
    probability.add_argument("--out", required=True, type=Path, help="CSV: Monte Carlo and central-limit values")
    probability.set_defaults(func=lambda args: run_saddle_probability(
        SaddleProbabilitySettings.from_mapping(json.loads(args.settings)), args.out, log=logging.getLogger(__name__).info))
