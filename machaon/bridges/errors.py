"""Errors of the bridges (``machaon.bridges``), under the layer's base ``machaon.errors.BridgeError``."""

from __future__ import annotations

from machaon.errors import BridgeError

__all__ = ["BridgeError", "BridgeSetupError"]


class BridgeSetupError(BridgeError, ValueError):
    """A bridge cannot start with what it was given: its port is taken, its address is malformed, the
    run log to export is missing or unreadable, the bag directory exists. The message says what to
    fix (the CLI exits 2); the control loop is never affected."""
