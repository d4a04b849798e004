"""Helpers for the hardware tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def eventually(cond: Callable[[], bool], timeout: float = 3.0, poll_s: float = 0.002) -> bool:
    """Poll ``cond`` every ``poll_s`` until it holds or ``timeout`` s pass (writes without a status
    packet, e.g. sync writes, land in the emulator thread a little later, later still on a loaded
    machine; a robot server's state arrives over the link)."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


def stop_process(proc: subprocess.Popen) -> None:
    """Terminate a server or emulator started by a test; kill it if it does not stop within 5 s."""
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
