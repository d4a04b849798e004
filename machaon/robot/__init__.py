"""Layer 3: the Backend protocol and its data types, the control loop, robot descriptions."""

from machaon.robot.backend import Backend, Clock
from machaon.robot.clock import FakeClock, MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

__all__ = [
    "Backend",
    "Clock",
    "CommandMode",
    "ControlLoop",
    "DeviceFault",
    "FakeBackend",
    "FakeClock",
    "JointCommand",
    "JointState",
    "MonotonicClock",
]
