"""Drive a chain of Dynamixel servos: here three emulated XM430s behind a real pseudo-terminal.

    python examples/servo_chain_on_emulator.py [--speed 0.5]
    python examples/servo_chain_on_emulator.py --port /dev/ttyUSB0 --baud 1000000   # real servos, ids 1-3

The emulator answers Protocol 2.0 on a pty exactly as a servo chain on a USB adapter would, so
``ActuatorBackend`` opens it with pyserial like ``/dev/ttyUSB0``. A small controller (anything
with ``update(state, t) -> JointCommand``) streams a minimum-jerk joint trajectory as position
goals; the servos close the loop. The supervisor watches limits, faults and timing.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

from machaon.control import SafetyConfig, Supervisor
from machaon.control.trajectory import JointTrajectory
from machaon.hardware.backend import ActuatorBackend, ActuatorConfig, JointConfig
from machaon.hardware.emulator import ChainEmulator
from machaon.robot import ControlLoop
from machaon.types import CommandMode, JointCommand, JointState


class FollowTrajectory:
    """A ``machaon.control.Controller``: position goals along ``trajectory`` from its first cycle."""

    def __init__(self, trajectory: JointTrajectory) -> None:
        self.trajectory = trajectory
        self.t0 = 0.0

    def on_activate(self, state: JointState, t: float) -> None:
        self.t0 = t

    def update(self, state: JointState, t: float) -> JointCommand:
        q, dq, _ = self.trajectory.sample(t - self.t0)
        return JointCommand.position(q, dq)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", help="a real servo bus (default: start the emulator on a pty)")
    ap.add_argument("--baud", type=int, default=4_000_000)
    ap.add_argument("--speed", type=float, default=0.5, help="peak joint speed of the move (rad/s)")
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        port = args.port
        if port is None:
            emulator = stack.enter_context(ChainEmulator([1, 2, 3], baudrate=args.baud))
            port = emulator.port
            print(f"emulated servos 1-3 on {port}")
        joints = (JointConfig("shoulder", 1), JointConfig("elbow", 2, direction=-1), JointConfig("wrist", 3))
        config = ActuatorConfig(port=port, joints=joints, baudrate=args.baud, mode="position", latency_s=0.1)
        backend = stack.enter_context(ActuatorBackend(config))  # torque on, position mode

        start = backend.read()
        goal = start.q + np.radians([30.0, -20.0, 45.0])
        trajectory = JointTrajectory(start.q, goal, v_max=args.speed, a_max=4.0 * args.speed)
        supervisor = Supervisor(SafetyConfig(hold_mode=CommandMode.POSITION, dq_max=4.0))
        loop = ControlLoop(backend, FollowTrajectory(trajectory), supervisor, rate_hz=100.0)
        stats = loop.run_for(trajectory.duration + 0.5)

        end = backend.read()
        print("goal (deg)   ", np.round(np.degrees(goal), 2))
        print("reached (deg)", np.round(np.degrees(end.q), 2))
        print(f"supervisor {supervisor.state.value}; {stats.cycles} cycles at 100 Hz, "
              f"{stats.overruns} overruns; faults {list(end.faults) or 'none'}")


if __name__ == "__main__":
    main()
