"""A backend with a device-fault latch, for the tests of what clears it."""

from __future__ import annotations

import dataclasses

from machaon.robot.fake import FakeBackend
from machaon.types import DeviceFault


class LatchingBackend(FakeBackend):
    """A FakeBackend that, once tripped, reports a persistent device fault on every read until an
    operator's reset is served by a read (as ``ActuatorBackend`` does for a tripped Bus Watchdog)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.latched_fault = None
        self._reset_requested = False
        self.resets_served = 0

    def trip(self) -> None:
        self.latched_fault = DeviceFault("bus", "watchdog", "Bus Watchdog tripped", persistent=True)

    def request_fault_reset(self) -> None:
        self._reset_requested = True

    def read(self):
        if self._reset_requested:
            self._reset_requested = False
            self.latched_fault = None
            self.resets_served += 1
        state = super().read()
        if self.latched_fault is None:
            return state
        return dataclasses.replace(state, faults=(self.latched_fault,), ok=False)
