"""Errors of the bridges: a server that cannot start, a bad bridge address, an unreadable run log."""

from __future__ import annotations

from machaon.errors import MachaonError


class BridgeError(MachaonError, RuntimeError):
    """A bridge cannot do what was asked: its port is taken, its address is malformed, its input is
    not what it expects. The message says what to fix; the control loop is never affected."""
