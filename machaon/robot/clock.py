"""Clocks for the control loop: the hardware ``MonotonicClock`` and the test ``FakeClock``.

Both implement ``machaon.robot.backend.Clock``: ``now()`` in seconds and ``wait_until(t)``.
"""

from __future__ import annotations

import math
import time


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
