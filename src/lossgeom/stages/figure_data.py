"""Data of the synthetic-saddle figures: surfaces of confined saddles (F1) and P(saddle) vs N and tr(H)/N (F3).

Two small steps, computed in numpy from closed forms (:mod:`lossgeom.theory.landscapes`):
``synthetic_landscapes`` writes an npz of grids (and a JSON of its settings beside it), ``saddle_probability``
a CSV of Monte Carlo and central-limit values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from ..io.atomic import write_csv, write_json, write_npz
from ..io.provenance import provenance
from ..settings import settings_help
from ..settings.figures import LandscapeSettings, SaddleProbabilitySettings
from ..theory.landscapes import saddle_probability_sweep, synthetic_landscapes


def run_landscapes(settings: LandscapeSettings, out: str | Path) -> None:
    """The grids as npz at ``out`` and the settings with provenance as JSON beside it."""
    write_npz(synthetic_landscapes(**dataclasses.asdict(settings)), out)
    write_json({"settings": dataclasses.asdict(settings), "provenance": provenance(seed=settings.seed)},
               Path(out).with_suffix(".json"))


def run_saddle_probability(settings: SaddleProbabilitySettings, out: str | Path, log=None) -> None:
    write_csv(saddle_probability_sweep(**dataclasses.asdict(settings), log=log), out)


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
