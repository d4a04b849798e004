"""Helpers for the hardware tests."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` s pass (writes without a status packet, e.g. sync
    writes, land in the emulator thread a little later, later still on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
