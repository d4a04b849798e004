"""Rest-to-rest trajectories in joint and Cartesian space, timed to velocity and acceleration limits.

Profiles move a path parameter ``s`` from 0 to 1:

- ``MinimumJerkProfile``: the quintic ``s = 10 u^3 - 15 u^4 + 6 u^5`` (``u = t / T``), zero velocity
  and acceleration at both ends; peak ``ds = 1.875 / T``, peak ``|dds| = 10 / sqrt(3) / T^2``.
- ``TrapezoidalProfile``: constant acceleration, cruise, constant deceleration (a triangle when the
  cruise speed is never reached).

``JointTrajectory`` moves every joint along a straight line in joint space, synchronised so that
the joint closest to its limit sets the duration. ``CartesianTrajectory`` moves the tool origin
along a straight line and the orientation by SLERP (the constant-axis geodesic
``exp(s theta) R0``), limited by linear and angular speed and acceleration. Both give
``sample(t) -> (position, velocity, acceleration)`` (clamped to the start before ``t0`` and to the
end after it finishes). ``TrajectoryTracker`` wraps an impedance controller and feeds it the
trajectory's targets each cycle. Units are SI; invalid limits or NaN endpoints raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation

from machaon._validate import finite_array, transform
from machaon._validate import positive as _positive
from machaon.control.controller import TargetController
from machaon.control.supervisor import Supervisor
from machaon.kinematics.so3 import exp3, skew
from machaon.types import JointCommand, JointState

__all__ = [
    "CartesianTrajectory",
    "JointTrajectory",
    "MinimumJerkProfile",
    "TrajectorySequence",
    "TrajectoryTracker",
    "TrapezoidalProfile",
    "make_profile",
]

_MJ_V = 1.875  # peak ds * T of the minimum-jerk quintic
_MJ_A = 10.0 / math.sqrt(3.0)  # peak |dds| * T^2


class MinimumJerkProfile:
    """Minimum-jerk (quintic) 0 -> 1 in ``duration`` seconds."""

    def __init__(self, duration: float) -> None:
        self.duration = max(float(duration), 0.0)
        if not math.isfinite(self.duration):
            raise ValueError("duration: must be finite")

    @classmethod
    def timed(cls, v_max: float, a_max: float) -> MinimumJerkProfile:
        """The shortest profile with ``ds <= v_max`` and ``|dds| <= a_max`` (per unit of s)."""
        if v_max == math.inf and a_max == math.inf:
            return cls(0.0)
        return cls(max(_MJ_V / v_max, math.sqrt(_MJ_A / a_max)))

    def __call__(self, t: float) -> tuple[float, float, float]:
        T = self.duration
        if T <= 0.0 or t >= T:
            return 1.0, 0.0, 0.0
        if t <= 0.0:
            return 0.0, 0.0, 0.0
        u = t / T
        u2 = u * u
        # Rounding can put the quintic a hair above 1 just before the end; s must stay in [0, 1].
        s = min(max(u2 * u * (10.0 + u * (-15.0 + 6.0 * u)), 0.0), 1.0)
        ds = 30.0 * u2 * (1.0 - u) ** 2 / T
        dds = 60.0 * u * (1.0 - u) * (1.0 - 2.0 * u) / (T * T)
        return s, ds, dds


class TrapezoidalProfile:
    """Trapezoidal velocity 0 -> 1 with peak speed ``v_max`` and acceleration ``a_max`` (per unit of s)."""

    def __init__(self, v_max: float, a_max: float) -> None:
        v = _positive("v_max", v_max) if v_max != math.inf else math.inf
        a = _positive("a_max", a_max) if a_max != math.inf else math.inf
        if a == math.inf:
            # Instant acceleration: constant speed (or a jump if the speed is unlimited too).
            self.t_acc, self.v_peak, self.a = 0.0, v, math.inf
            self.duration = 0.0 if v == math.inf else 1.0 / v
            self.t_cruise = self.duration
            return
        if v * v / a >= 1.0:  # triangle: never reaches v_max
            t_acc = math.sqrt(1.0 / a)
            self.v_peak = a * t_acc
            self.t_acc = t_acc
            self.t_cruise = 0.0
        else:
            self.v_peak = v
            self.t_acc = v / a
            self.t_cruise = 1.0 / v - v / a
        self.a = a
        self.duration = 2.0 * self.t_acc + self.t_cruise

    @classmethod
    def timed(cls, v_max: float, a_max: float) -> TrapezoidalProfile:
        return cls(v_max, a_max)

    def __call__(self, t: float) -> tuple[float, float, float]:
        T = self.duration
        if T <= 0.0 or t >= T:
            return 1.0, 0.0, 0.0
        if t <= 0.0:
            return 0.0, 0.0, 0.0
        if self.a == math.inf:
            return t * self.v_peak, self.v_peak, 0.0
        ta, tc, a, vp = self.t_acc, self.t_cruise, self.a, self.v_peak
        if t < ta:
            return 0.5 * a * t * t, a * t, a
        if t < ta + tc:
            return 0.5 * a * ta * ta + vp * (t - ta), vp, 0.0
        r = T - t
        return 1.0 - 0.5 * a * r * r, a * r, -a


def make_profile(kind: str, v_max: float, a_max: float) -> MinimumJerkProfile | TrapezoidalProfile:
    """``kind``: ``"minjerk"`` (alias ``"quintic"``) or ``"trapezoid"``."""
    if kind in ("minjerk", "quintic"):
        return MinimumJerkProfile.timed(v_max, a_max)
    if kind == "trapezoid":
        return TrapezoidalProfile.timed(v_max, a_max)
    raise ValueError(f"kind: 'minjerk', 'quintic' or 'trapezoid', got {kind!r}")


def _path_limits(delta: np.ndarray, v_max: np.ndarray, a_max: np.ndarray) -> tuple[float, float]:
    """Limits on ds and dds so that every component of delta * s respects its own limits."""
    moving = np.abs(delta) > 0
    if not moving.any():
        return math.inf, math.inf
    return float(np.min(v_max[moving] / np.abs(delta[moving]))), float(np.min(a_max[moving] / np.abs(delta[moving])))


class _ProfiledSegment:
    """A segment timed by one path profile (``self.profile``) starting at ``self.t0`` (s)."""

    profile: MinimumJerkProfile | TrapezoidalProfile
    t0: float

    @property
    def duration(self) -> float:
        return self.profile.duration

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration


class JointTrajectory(_ProfiledSegment):
    """Straight line in joint space from ``q0`` to ``q1`` (rad or m), starting at time ``t0`` (s).

    ``v_max``, ``a_max``: per joint or scalar (rad/s, rad/s^2). ``profile``: "minjerk" or "trapezoid".
    """

    def __init__(self, q0: np.ndarray, q1: np.ndarray, v_max: np.ndarray | float, a_max: np.ndarray | float,
                 *, profile: str = "minjerk", t0: float = 0.0) -> None:
        self.q0 = finite_array("q0", q0, (None,)).copy()
        n = self.q0.shape[0]
        self.q1 = finite_array("q1", q1, (n,)).copy()
        self.v_max = np.broadcast_to(finite_array("v_max", v_max), (n,)).copy()
        self.a_max = np.broadcast_to(finite_array("a_max", a_max), (n,)).copy()
        if (self.v_max <= 0).any() or (self.a_max <= 0).any():
            raise ValueError("v_max/a_max: must be > 0")
        self.t0 = float(t0)
        self.delta = self.q1 - self.q0
        self.profile = make_profile(profile, *_path_limits(self.delta, self.v_max, self.a_max))

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, dq, ddq) at time t."""
        s, ds, dds = self.profile(t - self.t0)
        return self.q0 + s * self.delta, ds * self.delta, dds * self.delta


class CartesianTrajectory(_ProfiledSegment):
    """Tool pose from ``T0`` to ``T1`` (base frame): straight line for the origin, SLERP for the rotation.

    ``v_max``/``a_max``: linear (m/s, m/s^2); ``w_max``/``alpha_max``: angular (rad/s, rad/s^2).
    """

    def __init__(self, T0: np.ndarray, T1: np.ndarray, v_max: float, a_max: float,
                 w_max: float = 1.0, alpha_max: float = 4.0, *, profile: str = "minjerk", t0: float = 0.0) -> None:
        self.T0 = transform("T0", T0).copy()
        self.T1 = transform("T1", T1).copy()
        for name, v in (("v_max", v_max), ("a_max", a_max), ("w_max", w_max), ("alpha_max", alpha_max)):
            _positive(name, v)
        self.t0 = float(t0)
        self.dp = self.T1[:3, 3] - self.T0[:3, 3]
        R0 = Rotation.from_matrix(self.T0[:3, :3])
        R1 = Rotation.from_matrix(self.T1[:3, :3])
        # Angular displacement as a base-frame rotation vector: R1 = exp(theta) R0.
        self.theta = (R1 * R0.inv()).as_rotvec()
        dist = float(np.linalg.norm(self.dp))
        ang = float(np.linalg.norm(self.theta))
        lim_v = min(v_max / dist if dist > 0 else math.inf, w_max / ang if ang > 0 else math.inf)
        lim_a = min(a_max / dist if dist > 0 else math.inf, alpha_max / ang if ang > 0 else math.inf)
        self.profile = make_profile(profile, lim_v, lim_a)
        # Per-cycle constants of sample(): [dp; theta], and Rodrigues' formula about the fixed unit
        # axis u applied to R0: exp(a u^) R0 = R0 + sin(a) (u^ R0) + (1 - cos(a)) (u^2 R0).
        self._dth = np.concatenate([self.dp, self.theta])
        self._p0 = self.T0[:3, 3].copy()
        self._eye4 = np.eye(4)
        self._ang = ang
        R0 = self.T0[:3, :3]
        if ang > 0:
            u = self.theta / ang
            U = skew(u)
            self._UR0, self._U2R0 = U @ R0, U @ (U @ R0)
        self._R_end = exp3(self.theta) @ R0  # s = 1 exactly as the general expression gives it

    def _rotation(self, s: float) -> np.ndarray:
        """``exp3(s theta) @ R0``: the orientation at path parameter s (0 and 1 give R0 and R1 exactly)."""
        R0 = self.T0[:3, :3]
        if s == 0.0 or self._ang == 0.0:  # no rotation (exp3 of a zero vector is the identity)
            return R0
        if s == 1.0:
            return self._R_end
        a = s * self._ang  # the unit axis is exact for any angle > 0, small or not
        return R0 + math.sin(a) * self._UR0 + (1.0 - math.cos(a)) * self._U2R0

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T_base_target 4x4, twist [v; w] (6,), acceleration (6,)) at time t, base frame."""
        s, ds, dds = self.profile(t - self.t0)
        T = self._eye4.copy()
        # SLERP: the constant-axis geodesic R(s) = exp(s theta) R0, by Rodrigues' formula about the
        # precomputed axis (a few 3x3 operations per cycle; scipy's Slerp object costs ~20x more).
        T[:3, :3] = self._rotation(s)
        T[:3, 3] = self._p0 + s * self.dp
        dth = self._dth
        return T, ds * dth, dds * dth


class TrajectorySequence:
    """Segments played one after the other; each segment's ``t0`` is set to the previous one's end."""

    def __init__(self, segments: Sequence[JointTrajectory | CartesianTrajectory], t0: float = 0.0) -> None:
        if not segments:
            raise ValueError("segments: at least one")
        self.segments = list(segments)
        t = float(t0)
        for seg in self.segments:
            seg.t0 = t
            t += seg.duration
        self.t0 = float(t0)

    @classmethod
    def through(cls, waypoints: Sequence[np.ndarray], v_max, a_max, *, profile: str = "minjerk",
                t0: float = 0.0) -> TrajectorySequence:
        """Joint waypoints (rest at each) joined by ``JointTrajectory`` segments."""
        if len(waypoints) < 2:
            raise ValueError("waypoints: at least two")
        pairs = zip(waypoints[:-1], waypoints[1:], strict=True)
        segs = [JointTrajectory(a, b, v_max, a_max, profile=profile) for a, b in pairs]
        return cls(segs, t0)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for seg in self.segments[:-1]:
            if t < seg.t_end:
                return seg.sample(t)
        return self.segments[-1].sample(t)


class Trajectory(Protocol):
    """What ``TrajectoryTracker`` plays: ``JointTrajectory``, ``CartesianTrajectory``,
    ``TrajectorySequence`` or any object with ``t0`` (s), ``duration`` (s) and
    ``sample(t) -> (position, velocity, acceleration)`` at trajectory time ``t`` (s; joint values in
    rad, or a 4x4 pose and base-frame twists)."""

    t0: float

    @property
    def duration(self) -> float: ...

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


class TrajectoryTracker:
    """A controller that plays a trajectory through an impedance controller.

    Each cycle it sets the inner controller's target from ``trajectory.sample(t - start)`` (joint
    trajectories: ``set_target(q, dq)``; Cartesian: ``set_target(T, twist)``) and tells the
    ``supervisor`` (optional) that the target is fresh. ``start`` is the loop time of the first
    cycle unless given. ``done(t)`` tells when the trajectory has finished.
    """

    def __init__(self, controller: TargetController, trajectory: Trajectory, supervisor: Supervisor | None = None,
                 start: float | None = None) -> None:
        self.controller = controller
        self.trajectory = trajectory
        self.supervisor = supervisor
        self.start = start

    def on_activate(self, state: JointState, t: float) -> None:
        if self.start is None:
            self.start = t
        self._feed(t)
        hook = getattr(self.controller, "on_activate", None)
        if hook is not None:
            hook(state, t)

    def _feed(self, t: float) -> None:
        pos, vel, _ = self.trajectory.sample(t - self.start + self.trajectory.t0)
        self.controller.set_target(pos, vel)
        if self.supervisor is not None:
            self.supervisor.target_updated(t)

    def done(self, t: float) -> bool:
        return self.start is not None and t - self.start >= self.trajectory.duration

    def update(self, state: JointState, t: float) -> JointCommand:
        if self.start is None:
            self.on_activate(state, t)
        else:
            self._feed(t)
        return self.controller.update(state, t)
