"""Admittance control for actuators that take positions (most serial servos).

A virtual mass-spring-damper in task space turns the wrench on the tool into motion of a
compliant reference pose ``T_c``::

    M_a dv + D_a v = w_ext + K_a e,   e = [p_d - p_c; log3(R_d R_c^T)]   (base frame)

with the same stiffness description as the impedance controller (``CartesianGains``: per-axis
stiffness and damping ratios in a task frame that can turn with the target), ``mass`` the virtual
mass/inertia per task axis (kg, kg m^2), ``D_a = 2 zeta sqrt(k m)`` per task axis. The reference is
integrated semi-implicitly every cycle and turned into joint positions by one damped
least-squares step per cycle from the previous joint command (the command follows the reference
within a few cycles at 1 kHz). Output: ``JointCommand.position(q, dq)``, clamped to the chain's
joint limits.

The wrench comes from ``state.wrench_tool`` ([f; m], base frame, at the tool origin) unless a
``wrench_source(state) -> (6,)`` is given; a missing or non-finite wrench counts as zero (the
reference then returns to the target) and is logged once. ``deadband`` (N, N m) zeroes small
wrenches (sensor noise); ``v_max``/``w_max`` cap the reference speed; ``fixtures`` project the
reference into their allowed set each cycle (e.g. a drill axis and a depth stop).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np

from machaon._validate import finite_array, transform
from machaon.control import _impedance as _k
from machaon.control.controller import DynamicsModel
from machaon.control.fixtures import Fixture
from machaon.control.impedance import CartesianGains
from machaon.kinematics import Chain
from machaon.kinematics.so3 import exp3
from machaon.types import CommandMode, JointCommand, JointState

_log = logging.getLogger(__name__)


class TorqueWrenchEstimator:
    """Tool wrench estimated from joint torques, for robots without a force/torque sensor.

    In quasi-static conditions the actuators balance gravity and the external wrench ``w`` (the
    environment acting on the tool, base frame, at the tool origin): ``tau = g(q) - J^T w``, so
    ``w = -(J^T)^+ (tau - g(q))`` (damped least squares, ``damping`` in the units of J). A
    first-order low-pass with corner ``cutoff_hz`` (None: off) smooths the result; call it as
    ``wrench_source`` of ``Admittance``. Inertial and friction torques are not modelled, so use
    it for slow interaction, and give ``Admittance`` a deadband above the residuals.
    """

    def __init__(self, chain: Chain, dynamics: DynamicsModel, cutoff_hz: float | None = 20.0,
                 damping: float = 1e-3) -> None:
        self.chain = chain
        self.dynamics = dynamics
        if cutoff_hz is not None and not (math.isfinite(cutoff_hz) and cutoff_hz > 0):
            raise ValueError(f"cutoff_hz: must be > 0 or None, got {cutoff_hz!r}")
        self.cutoff_hz = cutoff_hz
        self.damping = float(damping)
        self._w: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, state: JointState) -> np.ndarray:
        q = np.asarray(state.q, dtype=np.float64)
        J = self.chain.jacobian(q)
        r = np.asarray(state.tau, dtype=np.float64) - np.asarray(self.dynamics.gravity(q), dtype=np.float64)
        w = -np.linalg.solve(J @ J.T + (self.damping**2) * np.eye(6), J @ r)
        if self.cutoff_hz is None or self._w is None or self._t is None:
            self._w = w
        else:
            dt = max(state.t - self._t, 0.0)
            a = 1.0 - math.exp(-2.0 * math.pi * self.cutoff_hz * dt)
            self._w = self._w + a * (w - self._w)
        self._t = state.t
        return self._w.copy()


class Admittance:
    """Admittance controller of ``chain``'s tool (module docstring). Position-mode output."""

    def __init__(
        self,
        chain: Chain,
        gains: CartesianGains,
        mass: np.ndarray | float = (2.0, 2.0, 2.0, 0.05, 0.05, 0.05),
        *,
        wrench_source: Callable[[JointState], np.ndarray | None] | None = None,
        deadband: tuple[float, float] = (0.0, 0.0),
        v_max: float = 0.25,
        w_max: float = 1.0,
        ik_damping: float = 1e-3,
        fixtures: Fixture | None = None,
    ) -> None:
        self.chain = chain
        self.dof = chain.dof
        m = np.broadcast_to(finite_array("mass", mass), (6,)).copy()
        if (m <= 0).any():
            raise ValueError("mass: must be > 0")
        self.mass = m
        self.gains = gains
        self.wrench_source = wrench_source
        self.deadband = (float(deadband[0]), float(deadband[1]))
        self.v_max, self.w_max = float(v_max), float(w_max)
        if not (self.v_max > 0 and self.w_max > 0):
            raise ValueError("v_max/w_max: must be > 0")
        self.ik_damping = float(ik_damping)
        self.fixtures = fixtures
        self._lock = threading.Lock()
        self._target: np.ndarray | None = None
        self._Tc: np.ndarray | None = None
        self._v = np.zeros(6)
        self._q_cmd: np.ndarray | None = None
        self._t_prev: float | None = None
        self._warned = False

    def set_target(self, T_base_target: np.ndarray, v_d: np.ndarray | None = None) -> None:
        """Equilibrium pose of the virtual spring (4x4, base frame); bad input raises ValueError.

        ``v_d`` is accepted for interface compatibility with trajectory tracking and ignored
        (the reference follows the spring).
        """
        self._target = transform("T_base_target", T_base_target).copy()

    def set_gains(self, gains: CartesianGains) -> None:
        """New stiffness/damping (applies from the next cycle; the reference pose does not jump)."""
        self.gains = gains

    @property
    def reference(self) -> np.ndarray | None:
        """The compliant reference pose T_c (base frame)."""
        return None if self._Tc is None else self._Tc.copy()

    def on_activate(self, state: JointState, t: float) -> None:
        q = np.array(state.q, dtype=np.float64)
        self._q_cmd = q
        self._Tc = self.chain.fk(q)
        if self._target is None:
            self._target = self._Tc.copy()
        self._v = np.zeros(6)
        self._t_prev = t

    def _wrench(self, state: JointState) -> np.ndarray:
        w = self.wrench_source(state) if self.wrench_source is not None else state.wrench_tool
        if w is None:
            return np.zeros(6)
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (6,) or not np.isfinite(w).all():
            if not self._warned:
                _log.warning("admittance: ignoring a malformed or non-finite wrench %r", w)
                self._warned = True
            return np.zeros(6)
        w = w.copy()
        f_db, m_db = self.deadband
        for sl, db in ((slice(0, 3), f_db), (slice(3, 6), m_db)):
            norm = float(np.linalg.norm(w[sl]))
            w[sl] = 0.0 if norm <= db else w[sl] * (1.0 - db / norm)
        return w

    def update(self, state: JointState, t: float) -> JointCommand:
        if self._Tc is None or self._q_cmd is None:
            self.on_activate(state, t)
        dt = 0.0 if self._t_prev is None else max(t - self._t_prev, 0.0)
        self._t_prev = t
        g = self.gains
        Td = self._target
        R = Td[:3, :3] @ g.R_frame_task if g.frame == "target" else g.R_frame_task
        B = np.zeros((6, 6))
        B[:3, :3] = R
        B[3:, 3:] = R
        k, z, m = g.stiffness, g.damping_ratio, self.mass
        K = (B * k) @ B.T
        D = (B * (2.0 * z * np.sqrt(k * m))) @ B.T
        Minv = (B / m) @ B.T
        e = np.empty(6)
        _k.pose_error(self._Tc, Td, e)
        if dt > 0:
            acc = Minv @ (self._wrench(state) + K @ e - D @ self._v)
            v = self._v + acc * dt
            sp, sw = float(np.linalg.norm(v[:3])), float(np.linalg.norm(v[3:]))
            if sp > self.v_max:
                v[:3] *= self.v_max / sp
            if sw > self.w_max:
                v[3:] *= self.w_max / sw
            self._v = v
            Tc = self._Tc.copy()
            Tc[:3, 3] += v[:3] * dt
            Tc[:3, :3] = exp3(v[3:] * dt) @ Tc[:3, :3]
            if self.fixtures is not None:
                Tc = self.fixtures.constrain(Tc)
            self._Tc = Tc
        # One damped least-squares step of the joint command toward the reference.
        T_cmd, J = self.chain.fk_jacobian(self._q_cmd)
        err = np.empty(6)
        _k.pose_error(T_cmd, self._Tc, err)
        A = J @ J.T + (self.ik_damping**2) * np.eye(6)
        dq_step = J.T @ np.linalg.solve(A, err)
        dq_ff = J.T @ np.linalg.solve(A, self._v)
        q_new = np.clip(self._q_cmd + dq_step, self.chain.lower, self.chain.upper)
        self._q_cmd = q_new
        return JointCommand(CommandMode.POSITION, q=q_new.copy(), dq=dq_ff,
                            info={"x_d": Td[:3, 3], "x": self._Tc[:3, 3].copy(), "error": e})
