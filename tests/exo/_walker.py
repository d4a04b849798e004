"""A synthetic sensor source for controller tests: EMG noise + IMUs of a reference-gait walk.

Each leg follows the reference gait with its own phase lag; thigh and shank IMUs see the pure
sagittal rotation (gravity only, no translation), EMG is band-limited noise whose amplitude
follows a known activation. Faults can be switched on per poll.
"""

from __future__ import annotations

import math

import numpy as np

from machaon.exo.imu import GRAVITY
from machaon.exo.reference import load_reference_gait
from machaon.exo.sensors import SensorBatch


class SyntheticWalker:
    def __init__(self, stride_s: float = 1.1, lag: tuple[float, float] = (0.0, 0.0), seed: int = 0,
                 emg_rate: float = 2000.0, imu_rate: float = 200.0) -> None:
        self.ref = load_reference_gait()
        self.stride_s = stride_s
        self.lag = lag
        self.rng = np.random.default_rng(seed)
        self.emg_rate, self.imu_rate = emg_rate, imu_rate
        self.t = 0.0
        self._i_emg = 0
        self._i_imu = 0
        self.dropout = False
        self.nan_next = False
        self.saturate_next = False
        self.connected = True
        self.emg_amp_v = 3e-4

    def phase(self, t: float, side: int) -> float:
        return (t / self.stride_s + 0.5 * side - self.lag[side]) % 1.0

    def joint_q(self, t: float) -> np.ndarray:
        q = []
        for s in range(2):
            a = self.ref.angles(self.phase(t, s))
            q += [a[0], a[1]]
        return np.array(q)

    def joint_dq(self, t: float, h: float = 1e-4) -> np.ndarray:
        return (self.joint_q(t + h) - self.joint_q(t - h)) / (2 * h)

    def _segments(self, t: float) -> np.ndarray:
        """Sagittal inclinations (thigh_l, shank_l, thigh_r, shank_r), rad."""
        out = []
        for s in range(2):
            a = self.ref.angles(self.phase(t, s))
            out += [a[0], a[0] - a[1]]
        return np.array(out)

    def advance(self, t: float) -> None:
        self.t = t

    def poll(self) -> SensorBatch:
        j = int(math.floor(self.t * self.emg_rate + 1e-9)) + 1
        k = int(math.floor(self.t * self.imu_rate + 1e-9)) + 1
        if self.dropout:
            self._i_emg, self._i_imu = j, k
            return SensorBatch.empty(8, 4, dropped=1)
        t_emg = np.arange(self._i_emg, j) / self.emg_rate
        emg = self.emg_amp_v * self.rng.standard_normal((t_emg.size, 8))
        if self.nan_next and emg.shape[0]:
            emg[-1, 3] = np.nan
            self.nan_next = False
        if self.saturate_next and emg.shape[0]:
            emg[-1, 5] = 5e-3
            self.saturate_next = False
        t_imu = np.arange(self._i_imu, k) / self.imu_rate
        imu = np.zeros((t_imu.size, 4, 6))
        for n, ti in enumerate(t_imu):
            h = 1e-3
            alpha = self._segments(ti)
            dalpha = (self._segments(ti + h) - self._segments(ti - h)) / (2 * h)
            imu[n, :, 1] = -dalpha
            imu[n, :, 3] = GRAVITY * np.sin(alpha)
            imu[n, :, 5] = GRAVITY * np.cos(alpha)
        self._i_emg, self._i_imu = j, k
        return SensorBatch(t_emg, emg, t_imu, imu)
