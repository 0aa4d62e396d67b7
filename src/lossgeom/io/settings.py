"""The settings helpers under their former name: they live in :mod:`lossgeom.settings` (torch-free, with every
settings block of the config); this module re-exports them for code that still imports them from here."""

from __future__ import annotations

from ..settings.base import defaults, require, settings_from_mapping, settings_help

__all__ = ["defaults", "require", "settings_from_mapping", "settings_help"]
