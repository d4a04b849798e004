"""What a servo joint's torque is, seen from the host: the torque-current curve and the gear friction.

A current-controlled Dynamixel X servo makes an output torque that follows its motor current along
the curve of its datasheet (the e-Manual's performance graph: nearly a line, slope = stall torque /
stall current) or along the curve the bench identified; the gears take part of it as friction
(Coulomb plus viscous). :class:`JointMotor` holds both for one joint and converts, in SI:

- ``current_a(tau_nm, dq)``: the motor current that makes joint torque ``tau_nm`` at joint speed
  ``dq`` (friction compensation adds ``compensation`` times the friction model first);
- ``joint_torque_nm(i_a, dq)``: the estimated joint torque (torque from the current, minus the
  friction model), what ``JointState.tau`` reports.

Friction model: ``tau_f = coulomb * tanh(dq / v_smooth) + viscous * dq`` (N m; ``dq`` rad/s); the
tanh keeps compensation continuous through zero speed (a sign function chatters there).

Curves are odd (negative currents mirror positive ones), piecewise linear through the origin
and the given points, and extend with the last segment's slope beyond the last point. Bad input
(non-increasing points, negative friction, non-finite numbers) raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["JointMotor", "TorqueCurve", "friction_torque"]


@dataclass(frozen=True)
class TorqueCurve:
    """Output torque (N m) against motor current (A) for positive currents, mirrored for negative.

    ``current_a`` and ``torque_nm`` list points after the origin, both strictly increasing.
    """

    current_a: tuple[float, ...]
    torque_nm: tuple[float, ...]

    def __post_init__(self) -> None:
        i = np.asarray(self.current_a, dtype=np.float64)
        t = np.asarray(self.torque_nm, dtype=np.float64)
        if i.ndim != 1 or i.shape != t.shape or i.size == 0:
            raise ValueError("torque curve: current_a and torque_nm need the same, non-zero number of points")
        if not (np.isfinite(i).all() and np.isfinite(t).all()):
            raise ValueError("torque curve: points must be finite")
        if (np.diff(np.concatenate([[0.0], i])) <= 0).any() or (np.diff(np.concatenate([[0.0], t])) <= 0).any():
            raise ValueError("torque curve: currents and torques must be positive and strictly increasing")
        object.__setattr__(self, "current_a", tuple(float(x) for x in i))
        object.__setattr__(self, "torque_nm", tuple(float(x) for x in t))

    @classmethod
    def linear(cls, kt_nm_per_a: float, current_a: float = 1.0) -> TorqueCurve:
        """The line ``tau = kt i`` (kt in N m/A, > 0)."""
        if not (math.isfinite(kt_nm_per_a) and kt_nm_per_a > 0):
            raise ValueError(f"kt_nm_per_a: must be a positive number, got {kt_nm_per_a!r}")
        return cls((float(current_a),), (float(kt_nm_per_a) * current_a,))

    @property
    def is_linear(self) -> bool:
        """One segment from the origin: a constant torque constant."""
        return len(self.current_a) == 1

    @property
    def kt_nm_per_a(self) -> float:
        """Slope of the first segment (N m/A): the torque constant at small currents."""
        return self.torque_nm[0] / self.current_a[0]

    def _xy(self, forward: bool) -> tuple[np.ndarray, np.ndarray]:
        i = np.concatenate([[0.0], self.current_a])
        t = np.concatenate([[0.0], self.torque_nm])
        return (i, t) if forward else (t, i)

    def _map(self, x: np.ndarray | float, forward: bool) -> np.ndarray:
        xs, ys = self._xy(forward)
        a = np.abs(np.asarray(x, dtype=np.float64))
        y = np.interp(a, xs, ys)
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        y = np.where(a > xs[-1], ys[-1] + (a - xs[-1]) * slope, y)
        return np.copysign(y, x)

    def torque(self, current_a: np.ndarray | float) -> np.ndarray:
        """Output torque (N m) for motor current ``current_a`` (A)."""
        return self._map(current_a, True)

    def current(self, torque_nm: np.ndarray | float) -> np.ndarray:
        """Motor current (A) for output torque ``torque_nm`` (N m)."""
        return self._map(torque_nm, False)


def friction_torque(dq_rad_s: np.ndarray | float, coulomb_nm: np.ndarray | float, viscous_nms_rad: np.ndarray | float,
                    v_smooth_rad_s: float = 0.02) -> np.ndarray:
    """``coulomb * tanh(dq / v_smooth) + viscous * dq`` (N m), element-wise."""
    dq = np.asarray(dq_rad_s, dtype=np.float64)
    return np.asarray(coulomb_nm) * np.tanh(dq / v_smooth_rad_s) + np.asarray(viscous_nms_rad) * dq


@dataclass(frozen=True)
class JointMotor:
    """The torque model of one servo joint (module docstring).

    ``curve``: torque-current curve; ``coulomb_nm`` / ``viscous_nms_rad``: gear friction at the
    joint; ``compensation``: fraction of the friction model added to commanded torques (0 = none,
    1 = all of it); ``v_smooth_rad_s``: speed scale of the Coulomb term's tanh.
    """

    curve: TorqueCurve
    coulomb_nm: float = 0.0
    viscous_nms_rad: float = 0.0
    compensation: float = 1.0
    v_smooth_rad_s: float = 0.02

    def __post_init__(self) -> None:
        for name in ("coulomb_nm", "viscous_nms_rad", "compensation"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: must be a finite number >= 0, got {v!r}")
        if not (math.isfinite(self.v_smooth_rad_s) and self.v_smooth_rad_s > 0):
            raise ValueError("v_smooth_rad_s: must be > 0")

    def friction_nm(self, dq_rad_s: float) -> float:
        return float(friction_torque(dq_rad_s, self.coulomb_nm, self.viscous_nms_rad, self.v_smooth_rad_s))

    def current_a(self, tau_nm: float, dq_rad_s: float = 0.0) -> float:
        """Motor current (A) for joint torque ``tau_nm`` at joint speed ``dq_rad_s`` (friction compensated)."""
        return float(self.curve.current(tau_nm + self.compensation * self.friction_nm(dq_rad_s)))

    def joint_torque_nm(self, current_a: float, dq_rad_s: float = 0.0) -> float:
        """Estimated joint torque (N m) from the motor current and the joint speed."""
        return float(self.curve.torque(current_a)) - self.friction_nm(dq_rad_s)


def curves_are_linear(motors: Sequence[JointMotor]) -> bool:
    """True when every motor's curve is a single line (the per-cycle conversions can be vectorised)."""
    return all(m.curve.is_linear for m in motors)
