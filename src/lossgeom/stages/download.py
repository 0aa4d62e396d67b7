"""The ``download`` step: fetch one on-disk dataset (MNIST, CIFAR-10) once, before any job reads it.

The workflow runs this once per dataset and data folder and makes every job that loads the dataset wait
for it, so that two jobs never download the same files at the same time (half-written files, one job
reading what another is still writing). Writes a record of the loaded dataset (sizes, shapes, classes).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from ..device import deterministic_torch
from ..errors import ConfigError
from ..io.atomic import write_json
from ..io.provenance import provenance
from ..problems.data import load_dataset


def run(dataset: Mapping[str, Any], out: str | Path, log=print) -> dict[str, Any]:
    """Load ``dataset`` (a config's dataset block) with ``download: true`` and record what was loaded."""
    deterministic_torch()  # before any torch work: see lossgeom.device
    if "name" not in dataset:
        raise ConfigError(f"download: the dataset block {dict(dataset)} has no 'name'")
    spec = {**dataset, "download": True}
    loaded = load_dataset(spec)
    record = {"dataset": spec, **loaded.summary(), "provenance": provenance()}
    log(f"{spec['name']} under {spec.get('root', 'data')}: {record}")
    write_json(record, out)
    return record


def add_commands(steps) -> None:
    """CLI: ``lossgeom download``."""
    command = steps.add_parser("download", help="download a dataset once (MNIST, CIFAR-10) and record it")
    command.add_argument("--dataset", required=True,
                         help="the dataset block as JSON, e.g. {\"name\": \"cifar10\", \"root\": \"data\"}")
    command.add_argument("--out", required=True, type=Path, help="JSON record to write")
    command.set_defaults(func=lambda args: run(json.loads(args.dataset), args.out, log=logging.getLogger(__name__).info))
