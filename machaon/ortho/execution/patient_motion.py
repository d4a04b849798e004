"""The true motion of the patient in the world: a rest pose, breathing and sudden bumps.

The simulation moves the bone and the reference plate along it (``machaon.sim.operating_room``).
Positions in metres, world frame; times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array, transform, unit_vector


@dataclass(frozen=True)
class Bump:
    """A sudden shift of the patient: ``displacement`` (m, world) reached over ``duration_s`` from ``t_start``."""

    t_start: float
    displacement: np.ndarray
    duration_s: float = 0.06

    def offset(self, t: float) -> np.ndarray:
        u = min(max((t - self.t_start) / self.duration_s, 0.0), 1.0)
        s = 10 * u**3 - 15 * u**4 + 6 * u**5  # minimum-jerk step
        return s * np.asarray(self.displacement, dtype=np.float64)


class PatientMotion:
    """True pose of the patient (bone + reference plate) in the world: rest pose, breathing, bumps.

    Breathing is ``amplitude_m * sin(2 pi f t)`` along ``direction`` (world); bumps are added with
    :meth:`add_bump` (the procedure schedules them while drilling).
    """

    def __init__(
        self,
        T_world_patient0: np.ndarray,
        amplitude_m: float = 0.003,
        frequency_hz: float = 0.25,
        direction: np.ndarray = (0.0, 0.25, 1.0),
    ) -> None:
        self.T0 = transform("T_world_patient0", T_world_patient0).copy()
        if not (math.isfinite(amplitude_m) and amplitude_m >= 0 and math.isfinite(frequency_hz) and frequency_hz >= 0):
            raise ValueError("breathing: amplitude and frequency must be finite and >= 0")
        self.amplitude_m = float(amplitude_m)
        self.frequency_hz = float(frequency_hz)
        self.direction = unit_vector("direction", direction)
        self.bumps: list[Bump] = []

    def add_bump(self, t_start: float, displacement: np.ndarray, duration_s: float = 0.06) -> Bump:
        b = Bump(float(t_start), finite_array("displacement", displacement, (3,)).copy(), float(duration_s))
        self.bumps.append(b)
        return b

    def offset(self, t: float) -> np.ndarray:
        off = self.amplitude_m * math.sin(2 * math.pi * self.frequency_hz * t) * self.direction
        for b in self.bumps:
            off = off + b.offset(t)
        return off

    def T_world_patient(self, t: float) -> np.ndarray:
        T = self.T0.copy()
        T[:3, 3] += self.offset(t)
        return T
