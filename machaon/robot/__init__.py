"""Layer 3: the Backend protocol and its data types, the control loop, robot descriptions."""

from machaon.robot.backend import Backend, Clock
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

__all__ = ["Backend", "Clock", "CommandMode", "DeviceFault", "JointCommand", "JointState"]
