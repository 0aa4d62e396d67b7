"""Exceptions with messages meant for users: each names the offending input and the fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class LossgeomError(Exception):
    """Base class for errors caused by bad input rather than by a bug."""


class ConfigError(LossgeomError):
    """A configuration key, type or value is wrong."""


class CheckpointError(LossgeomError):
    """A checkpoint or model file cannot be read or does not match what was asked for."""


class DataError(LossgeomError):
    """A dataset is missing or malformed on disk."""


class TrainingDiverged(LossgeomError):
    """The training loss became NaN or infinite."""


class InputMismatch(LossgeomError):
    """Two input files do not belong together (e.g. eigenvectors computed from another model)."""
