"""Clocks for the control loop: the hardware ``MonotonicClock`` and the test ``FakeClock``.

Both implement ``machaon.robot.backend.Clock``: ``now()`` in seconds and ``wait_until(t)``.
``timer_slack_ns`` / ``set_timer_slack_ns`` read and set the calling thread's timer slack (Linux).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import sys
import time

_PR_SET_TIMERSLACK = 29
_PR_GET_TIMERSLACK = 30


@functools.cache
def _prctl() -> object | None:
    """libc's ``prctl`` (Linux), or None elsewhere; looked up once per process (``find_library``
    runs ``ldconfig``, a subprocess: at every ``ControlLoop.run_for`` it cost milliseconds)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    fn = libc.prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


def timer_slack_ns() -> int | None:
    """The calling thread's timer slack in ns (Linux ``PR_GET_TIMERSLACK``), or None where unsupported."""
    prctl = _prctl()
    if prctl is None:
        return None
    v = prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    return None if v < 0 else int(v)


def set_timer_slack_ns(ns: int) -> int | None:
    """Set the calling thread's timer slack to ``ns`` >= 1 and return the previous value.

    Linux rounds a normal-priority thread's sleep wake-ups up by its timer slack (50 us by
    default) so that it can batch them; a control loop wants its wake-up on time, so
    ``ControlLoop`` sets 1 ns for its cycling thread and restores the old value afterwards.
    Returns None (and does nothing) where ``prctl`` is not available; ``ValueError`` for ns < 1
    (0 would mean "reset to the default").
    """
    if not (isinstance(ns, int) and ns >= 1):
        raise ValueError(f"ns: an int >= 1, got {ns!r}")
    prctl = _prctl()
    if prctl is None:
        return None
    old = prctl(_PR_GET_TIMERSLACK, 0, 0, 0, 0)
    if old < 0 or prctl(_PR_SET_TIMERSLACK, ns, 0, 0, 0) != 0:
        return None
    return int(old)


class MonotonicClock:
    """``time.monotonic()`` with a sleep-then-spin wait, for paced loops on real hardware.

    ``wait_until(t)`` sleeps (releasing the GIL) until ``spin_s`` before ``t``, then spins on
    ``time.monotonic()`` so that the wake-up error is the spin loop's resolution rather than the
    scheduler's. Larger ``spin_s`` gives less jitter on a loaded machine at the cost of CPU time
    (``spin_s`` of one 1 ms period is a busy core). A ``t`` in the past returns at once.

    Other Python threads can delay the wake-up by up to ``sys.getswitchinterval()`` while they hold
    the GIL; keep heavy Python work out of threads that share a process with a 1 kHz loop.
    """

    realtime = True  # the loop measures itself on the wall clock too (``ControlLoop``)

    def __init__(self, spin_s: float = 2e-4) -> None:
        if not (math.isfinite(spin_s) and spin_s >= 0.0):
            raise ValueError(f"spin_s: must be finite and >= 0, got {spin_s!r}")
        self.spin_s = float(spin_s)

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, t: float) -> None:
        if not math.isfinite(t):
            raise ValueError(f"t: must be finite, got {t!r}")
        monotonic = time.monotonic
        remaining = t - monotonic()
        if remaining > self.spin_s:
            time.sleep(remaining - self.spin_s)
        while monotonic() < t:
            pass


class FakeClock:
    """A clock that only moves when waited on: ``wait_until(t)`` sets ``now()`` to ``t`` at once.

    Used with ``FakeBackend`` for deterministic, faster-than-real-time loops in tests. Waiting
    for a time in the past leaves the clock unchanged (time never goes backwards).
    """

    realtime = False

    def __init__(self, t0: float = 0.0) -> None:
        if not math.isfinite(t0):
            raise ValueError(f"t0: must be finite, got {t0!r}")
        self._t = float(t0)

    def now(self) -> float:
        return self._t

    def wait_until(self, t: float) -> None:
        if not math.isfinite(t):
            raise ValueError(f"t: must be finite, got {t!r}")
        if t > self._t:
            self._t = float(t)

    def advance(self, dt: float) -> None:
        """Move the clock forward by ``dt`` >= 0 seconds."""
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f"dt: must be finite and >= 0, got {dt!r}")
        self._t += float(dt)
