"""The ``Backend`` protocol: the one interface the control loop drives, in sim and on hardware.

A backend owns its clock. The loop does ``state = backend.read()``, computes a command,
``backend.write(cmd)``, then ``backend.clock.wait_until(t_next)``. In simulation, waiting steps
the physics up to ``t_next``; on hardware it sleeps on the monotonic clock.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from machaon.types import JointCommand, JointState


@runtime_checkable
class Clock(Protocol):
    """Time source of a backend, in seconds."""

    def now(self) -> float:
        """Current time of this backend's clock (s)."""
        ...

    def wait_until(self, t: float) -> None:
        """Return once ``now() >= t``. A simulator steps its physics here."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A robot the control loop can drive: the PyBullet arm, a serial actuator chain, or a fake.

    ``read`` and ``write`` never raise for device trouble: faults come back inside
    ``JointState.faults`` (house rule 6). They raise ``ValueError`` only for a malformed
    command (wrong length, NaN), which is a programming error of the caller.
    """

    @property
    def dof(self) -> int: ...

    @property
    def joint_names(self) -> tuple[str, ...]: ...

    @property
    def clock(self) -> Clock: ...

    def read(self) -> JointState: ...

    def write(self, cmd: JointCommand) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


def clear_latched_fault(backend: object, wait_s: float = 0.0, settle_s: float = 0.0, poll_s: float = 0.002) -> bool:
    """Ask a backend latched in a device fault (a tripped Bus Watchdog, a lost bus) to set its
    devices up again, as an operator's reset does; True when it is not latched (any more).

    Backends with a latch expose ``latched_fault`` and ``request_fault_reset()`` (the reset is served
    on the control loop's thread, at its next ``read``); others are never latched. ``wait_s``: how
    long to wait for that read; a fault whose cause remains stays latched. ``settle_s``: once a
    latch has cleared, how long more to wait, so that the loop's supervisor has checked the state
    that read returned before the caller resets it (a couple of loop periods).
    """
    request = getattr(backend, "request_fault_reset", None)
    if request is None or getattr(backend, "latched_fault", None) is None:
        return True
    request()
    deadline = time.monotonic() + wait_s
    while backend.latched_fault is not None and time.monotonic() < deadline:
        time.sleep(poll_s)
    if backend.latched_fault is not None:
        return False
    time.sleep(settle_s)
    return True
