"""Drive the robot from a 3D mouse or a gamepad: a thread that reads the device and streams its
Cartesian velocity to a ``TeleopClient`` as jog increments.

Every ``1 / rate_hz`` seconds the thread sets the client's clutch from the device's dead man's
button and, while it is held, sends one INCREMENT of ``twist * dt * speed_scale`` (base frame, or
the tool frame when ``client.input.tool_frame``; each within the protocol's ``MAX_STEP_M`` /
``MAX_STEP_RAD``). Between ticks it waits on the device's file descriptor, so events are taken as
they come.

Device loss (unplugged, end of file, a read error) releases the clutch and puts the operator
input in HOLD mode, so the robot holds where it is; ``lost`` says why, the log says it once, and
the thread ends (plug the device in and start a new driver; the console's ``m`` key resumes
FOLLOW). Use as a context manager, or ``start()``/``stop()``.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time

import numpy as np

from machaon.teleop.device_mapping import DeviceMapper, DeviceProfile
from machaon.teleop.input_device import DeviceLost
from machaon.teleop.messages import MAX_STEP_M, MAX_STEP_RAD, OperatorMode

log = logging.getLogger(__name__)

__all__ = ["DeviceTeleop"]


class DeviceTeleop:
    """The device-to-client thread (module docstring). ``source``: an ``EvdevSource`` (or anything
    with ``fileno()`` and ``read_events()``); ``profile``: its ``DeviceProfile``."""

    def __init__(self, client: object, source: object, profile: DeviceProfile, *, rate_hz: float = 100.0) -> None:
        if not (math.isfinite(rate_hz) and 1.0 <= rate_hz <= 1000.0):
            raise ValueError(f"rate_hz: must be in [1, 1000], got {rate_hz!r}")
        self.client = client
        self.source = source
        self.mapper = DeviceMapper(profile)
        self.period = 1.0 / rate_hz
        self.lost: str | None = None
        self.increments = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> str:
        """One line for a UI: device, clutch, or why it was lost."""
        name = getattr(self.source, "name", "input device")
        if self.lost:
            return f"{name}: LOST ({self.lost})"
        return f"{name}: clutch {'HELD' if self.mapper.clutch else 'released'}"

    def start(self) -> DeviceTeleop:
        self.client.input.master = False  # heartbeats plus increments, as for the keyboard
        self._thread = threading.Thread(target=self._run, name="teleop-input-device", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> DeviceTeleop:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        t_next = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                ready, _, _ = select.select([self.source], [], [], max(0.0, t_next - now))
                if ready:
                    self.mapper.feed(self.source.read_events(), time.monotonic())
            except (DeviceLost, OSError, ValueError) as exc:  # ValueError: select on a closed fd
                self._lose(str(exc))
                return
            now = time.monotonic()
            if now >= t_next:
                self._tick(now)
                t_next += self.period
                if t_next < now:  # fell behind (a stalled thread): no burst of catch-up increments
                    t_next = now + self.period

    def _tick(self, now: float) -> None:
        u = self.client.input
        clutch = self.mapper.clutch
        u.clutch = clutch
        if not clutch:
            return
        inc = self.mapper.twist(now) * self.period * u.speed_scale
        if not inc.any():
            return
        for sl, cap in ((slice(0, 3), MAX_STEP_M), (slice(3, 6), MAX_STEP_RAD)):
            n = float(np.linalg.norm(inc[sl]))
            if n > cap:
                inc[sl] *= cap / n
        self.client.jog(inc)
        self.increments += 1

    def _lose(self, why: str) -> None:
        u = self.client.input
        u.clutch = False
        u.mode = OperatorMode.HOLD
        self.lost = why
        log.error("%s; the robot is put in HOLD (plug the device in again and restart the console, "
                  "or drive on with the keyboard)", why)
