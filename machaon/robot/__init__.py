"""Layer 3: the Backend protocol and its data types, the control loop (with the Controller and
Recorder protocols it runs), robot descriptions."""

from machaon.control.controller import Controller
from machaon.robot.backend import Backend, Clock
from machaon.robot.clock import FakeClock, MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop, LoopStats, Recorder
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

__all__ = [
    "Backend",
    "Clock",
    "CommandMode",
    "ControlLoop",
    "Controller",
    "DeviceFault",
    "FakeBackend",
    "FakeClock",
    "JointCommand",
    "JointState",
    "LoopStats",
    "MonotonicClock",
    "Recorder",
]
