"""What a long engine loop needs to be resumable: somewhere to load and save its state.

The engine knows no files: a caller that wants a loop to survive a kill passes an object with these two
methods (the stages pass a :class:`lossgeom.io.partial.Slot`). Each loop saves, at points where it can
continue exactly, a dict of tensors and numbers, and ``final=True`` once it is done.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class ResumeSlot(Protocol):
    def load(self) -> dict[str, Any] | None:
        """The state a killed run saved, or None."""
        ...

    def save(self, state: dict[str, Any], *, final: bool = False) -> None:
        """Keep ``state`` (the slot may skip saves that come too soon after the last one, never a final one)."""
        ...


def restore_samples(slot: ResumeSlot | None, name: str, into: np.ndarray, generator: torch.Generator) -> int:
    """Copy the samples a killed run saved under ``name`` to the start of ``into``, put ``generator`` where they
    left it, and return how many there were (0 without a saved state)."""
    saved = slot.load() if slot is not None else None
    if saved is None or name not in saved or tuple(saved[name].shape[1:]) != into.shape[1:]:
        return 0  # nothing saved, or saved by a loop that kept other samples (another version's layout): start afresh
    done = len(saved[name])
    into[:done] = saved[name].numpy()
    generator.set_state(saved["generator"])
    return done


def save_samples(slot: ResumeSlot | None, name: str, samples: np.ndarray, generator: torch.Generator,
                 final: bool) -> None:
    """Save the samples so far and the generator's state (see :func:`restore_samples`)."""
    if slot is not None:
        slot.save({name: torch.from_numpy(samples.copy()), "generator": generator.get_state()}, final=final)
