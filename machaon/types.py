"""Data types shared by every layer: joint states, joint commands, device faults.

They sit below layer 1 (with ``machaon._validate``) because the control layer (2) produces
commands and checks states while the Backend protocol that carries them is layer 3; DESIGN.md
puts them in ``machaon.robot``, which re-exports them from here.

Units are SI: joint positions in rad (revolute) or m (prismatic), velocities per second,
efforts in N m or N. Time ``t`` is the backend clock in seconds (``time.monotonic()`` on
hardware, simulation time in a simulator).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class CommandMode(enum.Enum):
    """What a ``JointCommand`` asks the actuators to track."""

    TORQUE = "torque"
    POSITION = "position"
    VELOCITY = "velocity"


@dataclass(frozen=True)
class DeviceFault:
    """A fault reported by a device, seen by the loop as data, never as an exception.

    ``source`` names the device (e.g. ``"dxl:3"``), ``code`` is a stable machine-readable name
    (e.g. ``"overload"``, ``"comm_lost"``), ``joint`` the joint index it affects, if any.
    ``persistent`` is True when the backend gave up on recovering within the cycle.
    """

    source: str
    code: str
    message: str
    joint: int | None = None
    persistent: bool = False


@dataclass(frozen=True)
class JointState:
    """One reading of the joints.

    ``tau`` is the measured (hardware) or applied (simulation) joint effort. ``wrench_tool`` is
    the tool force/torque ``[f; m]`` in the base frame (N, N m) where a sensor provides it.
    ``faults`` lists what the devices reported during this read; ``ok`` is False when the
    reading itself is not trustworthy (e.g. communication lost), in which case q/dq hold the
    last good values.
    """

    t: float
    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    wrench_tool: np.ndarray | None = None
    faults: tuple[DeviceFault, ...] = ()
    ok: bool = True


@dataclass(frozen=True)
class JointCommand:
    """A command for every joint in one mode.

    TORQUE uses ``tau``; POSITION uses ``q`` (and ``dq`` as a velocity feed-forward if given,
    ``tau`` as a current/torque feed-forward if given); VELOCITY uses ``dq``.
    """

    mode: CommandMode
    tau: np.ndarray | None = None
    q: np.ndarray | None = None
    dq: np.ndarray | None = None
    info: dict = field(default_factory=dict, compare=False)

    @staticmethod
    def torque(tau_nm: np.ndarray) -> JointCommand:
        return JointCommand(CommandMode.TORQUE, tau=np.asarray(tau_nm, dtype=np.float64))

    @staticmethod
    def position(q_rad: np.ndarray, dq: np.ndarray | None = None) -> JointCommand:
        return JointCommand(
            CommandMode.POSITION,
            q=np.asarray(q_rad, dtype=np.float64),
            dq=None if dq is None else np.asarray(dq, dtype=np.float64),
        )

    @staticmethod
    def velocity(dq_rad_s: np.ndarray) -> JointCommand:
        return JointCommand(CommandMode.VELOCITY, dq=np.asarray(dq_rad_s, dtype=np.float64))


@dataclass(frozen=True)
class SensorBatch:
    """EMG and IMU samples received since the previous poll.

    ``t_emg`` (n,) s and ``emg_v`` (n, C) volts; ``t_imu`` (m,) s and ``imu`` (m, M, 6) with
    per sensor [gyro x, y, z rad/s, accel x, y, z m/s^2] in the sensor frame (mounting in
    ``machaon.exo.imu``). ``dropped`` / ``corrupt`` count frames lost on the link since the last
    poll.
    """

    t_emg: np.ndarray
    emg_v: np.ndarray
    t_imu: np.ndarray
    imu: np.ndarray
    dropped: int = 0
    corrupt: int = 0

    @staticmethod
    def empty(n_emg: int, n_imu: int, dropped: int = 0, corrupt: int = 0) -> SensorBatch:
        return SensorBatch(np.zeros(0), np.zeros((0, n_emg)), np.zeros(0), np.zeros((0, n_imu, 6)), dropped, corrupt)
