"""The sensor data the exo controller consumes: a batch of EMG and IMU samples.

Any sensor source (the serial board, a replayed recording, the leg simulation) hands out objects
with these fields from ``poll()``; the controller reads only the fields, so the simulation
(layer 4, which cannot import this module) returns its own dataclass of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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


class SensorSource(Protocol):
    """Anything with ``poll()`` returning a SensorBatch-shaped object."""

    def poll(self) -> SensorBatch: ...
