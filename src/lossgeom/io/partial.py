"""Work in progress of a long job, saved atomically so that a job killed at any moment resumes where it was.

A paper-scale Hessian job (Lanczos, then Hutchinson, then SLQ) or model check runs for hours; a SIGKILL
(a scheduler's time limit, a lost node) must not cost all of it. :class:`PartialFile` keeps one file with a
state per loop ("lanczos", "hutchinson", ...); each loop gets a :class:`Slot` and saves its state at points
where it can continue exactly (Lanczos at a thick restart, the stochastic estimators after a probe, with
their random generator's state), at most every ``interval_s`` seconds and always when the loop finishes.
The file records a fingerprint of everything the work depends on (the model file, the settings); a file
written for other inputs is ignored. The stage deletes it once its results are written.

Resuming replays nothing random: the saved generator state continues the same stream, so on the same
machine and thread count a resumed job ends with results bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .atomic import save_torch

log = logging.getLogger(__name__)

PARTIAL_FORMAT = "lossgeom-partial-v1"


class Slot:
    """One loop's saved state: :meth:`load` what a killed run left, :meth:`save` now and then."""

    def __init__(self, owner: "PartialFile", key: str) -> None:
        self.owner, self.key = owner, key
        self.last = owner.clock()

    def load(self) -> dict[str, Any] | None:
        return self.owner.states.get(self.key)

    def save(self, state: dict[str, Any], *, final: bool = False) -> None:
        """Save ``state`` if ``interval_s`` has passed since the last save (or when ``final``)."""
        now = self.owner.clock()
        if final or now - self.last >= self.owner.interval_s:
            self.owner.states[self.key] = state
            self.owner.write()
            self.last = now


class PartialFile:
    """The saved states of a job's loops, for the inputs named by ``fingerprint``."""

    def __init__(self, path: str | os.PathLike, fingerprint: str, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.fingerprint, self.interval_s, self.clock = Path(path), fingerprint, interval_s, clock
        self.states: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                saved = torch.load(self.path, map_location="cpu", weights_only=True)
            except Exception as err:  # a file cut off by a full disk: start afresh, say so
                log.warning("%s: unreadable (%s); starting afresh", self.path, type(err).__name__)
                saved = None
            if isinstance(saved, dict) and saved.get("format") == PARTIAL_FORMAT:
                if saved.get("fingerprint") == fingerprint:
                    self.states = saved["states"]
                    log.info("%s: resuming (%s saved)", self.path, ", ".join(self.states) or "nothing")
                else:
                    log.warning("%s: written for other inputs or settings; starting afresh", self.path)

    @classmethod
    def for_job(cls, path: str | os.PathLike, inputs: Mapping[str, Mapping[str, str]], settings: Any) -> "PartialFile":
        """The partial file of a job whose results depend on ``inputs`` (an :func:`~lossgeom.io.provenance.input_record`)
        and ``settings`` (a settings dataclass; its ``save_every_s``, how often to save, changes no result and is
        left out of the fingerprint but sets the interval)."""
        relevant = {k: v for k, v in dataclasses.asdict(settings).items() if k != "save_every_s"}
        fingerprint = json.dumps({"inputs": {k: v["sha256"] for k, v in inputs.items()}, "settings": relevant},
                                 sort_keys=True, default=str)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return cls(path, fingerprint, settings.save_every_s)

    def slot(self, key: str) -> Slot:
        return Slot(self, key)

    def write(self) -> None:
        save_torch({"format": PARTIAL_FORMAT, "fingerprint": self.fingerprint, "states": self.states}, self.path)

    def remove(self) -> None:
        """Delete the file (the job's results are written)."""
        self.path.unlink(missing_ok=True)
