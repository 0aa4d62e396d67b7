"""What a long engine loop needs to be resumable: somewhere to load and save its state.

The engine knows no files: a caller that wants a loop to survive a kill passes an object with these two
methods (the stages pass a :class:`lossgeom.io.partial.Slot`). Each loop saves, at points where it can
continue exactly, a dict of tensors and numbers, and ``final=True`` once it is done.
"""

from __future__ import annotations

from typing import Any, Protocol


class ResumeSlot(Protocol):
    def load(self) -> dict[str, Any] | None:
        """The state a killed run saved, or None."""
        ...

    def save(self, state: dict[str, Any], *, final: bool = False) -> None:
        """Keep ``state`` (the slot may skip saves that come too soon after the last one, never a final one)."""
        ...
