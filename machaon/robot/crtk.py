"""CRTK names over any ``Backend``: the Collaborative Robotics Toolkit's robot API, as dVRK users know it.

``Crtk(backend, chain, dynamics=...)`` runs a ``ControlLoop`` (with a ``Supervisor``) on the
backend and offers CRTK's commands and queries with CRTK's semantics:

=====================  =========================================================================
CRTK name              here (SI units, base frame, tool = the chain's tip)
=====================  =========================================================================
``measured_js()``      ``(position, velocity, effort)`` as measured (rad or m, per s, N m or N)
``measured_cp()``      ``T_base_tool`` (4x4) from the measured joints
``measured_cf()``      tool wrench ``[f; m]`` (N, N m, base frame) from the force/torque sensor
``setpoint_js()``      ``(position, velocity, effort)`` the controller is tracking now (NaN where
                       the active mode has no joint setpoint); effort is the last command's
``setpoint_cp()``      the Cartesian setpoint (``servo_cp``/``move_cp``), else FK of the joint setpoint
``servo_jp(q[, v])``   stream a joint setpoint: tracked at once, no trajectory (impedance on torque
                       backends, position commands on position backends)
``servo_cp(T)``        stream a Cartesian setpoint (Cartesian impedance; IK on position backends)
``servo_cf(w)``        apply a tool wrench (``tau = J^T w + g(q)``; torque backends only)
``move_jp(q)``         planned move to a joint goal (minimum-jerk, ``v_max``/``a_max``); returns a
                       ``MoveHandle`` whose ``wait()`` returns when the move is done
``move_cp(T)``         planned straight-line move of the tool (Cartesian impedance along it)
``hold()``             stop and hold the measured pose
``free()``             gravity compensation only: the arm can be moved by hand (torque backends)
``enable()``           start the loop / leave a stop (``Supervisor.reset`` + ``resume``)
``disable()``          hold, then stop the loop: commands are no longer accepted
``operating_state()``  ``DISABLED``, ``ENABLED``, ``PAUSED`` or ``FAULT`` (table below)
``is_busy()``          a ``move_*`` is in progress
=====================  =========================================================================

CRTK's operating states come from the supervisor's (``machaon.control.supervisor``):

=============================  ====================
supervisor                     CRTK
=============================  ====================
loop not running (disabled)    ``DISABLED``
``RUN``                        ``ENABLED``
``HOLD``                       ``PAUSED`` (a stale servo stream, a teleop clutch release, ``hold`` by
                               the supervisor; ``enable()`` resumes)
``PROTECTIVE_STOP``, ``ESTOP``  ``FAULT``
=============================  ====================

Streaming (``servo_*``) refreshes the supervisor's target watchdog: a stream that stops for
``target_timeout_s`` puts the arm in HOLD (``PAUSED``). Commands while not ``ENABLED`` raise
``CrtkError``; malformed ones (wrong length, NaN) raise ``ValueError`` and change nothing.

``threaded=True`` (default) runs the loop in its own thread (real robots: the backend's clock is
the wall clock). ``threaded=False`` steps it in the caller: ``run_for(seconds)`` and
``MoveHandle.wait()`` advance the loop (simulation faster than real time, deterministic tests).

``CrtkReadout(loop, chain)`` is the read-only half (``measured_*``, ``operating_state``) over a loop
someone else drives, e.g. the teleoperation server.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array, transform
from machaon.control.impedance import CartesianGains, CartesianImpedance, JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.control.trajectory import CartesianTrajectory, JointTrajectory
from machaon.errors import RobotError
from machaon.robot.backend import clear_latched_fault
from machaon.robot.loop import ControlLoop
from machaon.types import CommandMode, JointCommand, JointState

DISABLED, ENABLED, PAUSED, FAULT = "DISABLED", "ENABLED", "PAUSED", "FAULT"

_CRTK_OF = {SupervisorState.RUN: ENABLED, SupervisorState.HOLD: PAUSED,
            SupervisorState.PROTECTIVE_STOP: FAULT, SupervisorState.ESTOP: FAULT}


class CrtkError(RobotError, RuntimeError):
    """A CRTK command the robot cannot take now (not enabled, no force sensor, torque-only mode)."""


def operating_state_of(state: SupervisorState, enabled: bool = True) -> str:
    """CRTK operating state for a supervisor state (module docstring's table)."""
    return _CRTK_OF[state] if enabled else DISABLED


class CrtkReadout:
    """CRTK queries over a ``ControlLoop`` driven by someone else (``loop.last_state``, ``loop.supervisor``)."""

    def __init__(self, loop: ControlLoop, chain: object) -> None:
        self.loop = loop
        self.chain = chain

    def _state(self) -> JointState:
        st = self.loop.last_state
        if st is None:
            st = self.loop.backend.read()
        return st

    def is_enabled(self) -> bool:
        return self.loop.running

    def measured_js(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) of the latest reading."""
        st = self._state()
        return np.array(st.q), np.array(st.dq), np.array(st.tau)

    def measured_jp(self) -> np.ndarray:
        return self.measured_js()[0]

    def measured_cp(self) -> np.ndarray:
        """``T_base_tool`` from the latest joint reading."""
        return self.chain.fk(np.asarray(self._state().q, dtype=np.float64)).copy()

    def measured_cf(self) -> np.ndarray:
        """Tool wrench ``[f; m]`` (N, N m, base frame); ``CrtkError`` without a force/torque sensor."""
        w = self._state().wrench_tool
        if w is None:
            raise CrtkError("measured_cf: this robot has no force/torque sensor")
        return np.array(w)

    def operating_state(self) -> str:
        return operating_state_of(self.loop.supervisor.state, self.is_enabled())


class MoveHandle:
    """What ``move_jp``/``move_cp`` return: ``wait(timeout)`` until the move is done; ``is_busy()``."""

    def __init__(self, crtk: Crtk, move_id: int) -> None:
        self._crtk, self._id = crtk, move_id

    def is_busy(self) -> bool:
        return self._crtk._move_id == self._id and self._crtk.is_busy()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the move finished (False on timeout, or if the arm left ENABLED first)."""
        c = self._crtk
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while self.is_busy():
            if c.operating_state() != ENABLED or time.monotonic() > deadline:
                return False
            if c.threaded:
                time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
            else:
                c.run_for(0.01)
        return c.operating_state() == ENABLED


@dataclass
class _Mode:
    name: str
    inner: object | None = None
    q_d: np.ndarray | None = None
    dq_d: np.ndarray | None = None
    T_d: np.ndarray | None = None
    wrench: np.ndarray | None = None
    traj: object | None = None
    t0: float | None = None


class _Controller:
    """The loop's controller: dispatches to the active CRTK mode (swapped atomically by the facade)."""

    def __init__(self, crtk: Crtk) -> None:
        self.c = crtk
        self._active: object | None = None

    def on_activate(self, state: JointState, t: float) -> None:
        self._active = None

    def update(self, state: JointState, t: float) -> JointCommand:
        c = self.c
        m = c._mode
        if m.traj is not None:
            if m.t0 is None:
                m.t0 = t
            pos, vel, _ = m.traj.sample(t - m.t0 + m.traj.t0)
            m.inner.set_target(pos, vel)
            if m.name == "move_jp":
                m.q_d, m.dq_d = pos, vel
            else:
                m.T_d = pos
            c.supervisor.target_updated(t)
            if t - m.t0 >= m.traj.duration:
                c._busy = False
        elif m.name in ("hold", "free"):
            c.supervisor.target_updated(t)  # holding still is a fresh target
        if m.name == "servo_cf":
            return c._force_command(state, m.wrench)
        if m.name == "free":
            return c._force_command(state, np.zeros(6))
        if c.position_mode:
            return JointCommand.position(m.q_d, m.dq_d)
        if m.inner is not self._active:
            m.inner.on_activate(state, t)
            self._active = m.inner
        return m.inner.update(state, t)


class Crtk(CrtkReadout):
    """CRTK facade over ``backend`` (module docstring). Use as a context manager.

    ``chain`` (tip = tool), ``dynamics`` (gravity compensation; needed for ``free``/``servo_cf`` to
    carry the arm), ``supervisor`` (default: joint limits from the chain, target watchdog
    ``target_timeout_s``), ``rate_hz``; impedance gains ``joint_stiffness`` (N m/rad) with
    ``damping_ratio`` and ``cartesian_gains``; ``tau_max`` (N m) saturates torques; ``v_max``/``a_max``
    (rad/s, rad/s^2) and ``v_max_lin``/``a_max_lin`` (m/s, m/s^2) time the moves;
    ``position_mode`` (default: guessed from nothing, i.e. False) for servo backends.
    """

    def __init__(
        self,
        backend: object,
        chain: object,
        *,
        dynamics: object | None = None,
        supervisor: Supervisor | None = None,
        rate_hz: float = 1000.0,
        joint_stiffness: float | np.ndarray = 200.0,
        damping_ratio: float = 0.8,
        cartesian_gains: CartesianGains | None = None,
        tau_max: float | np.ndarray | None = None,
        v_max: float = 0.25,
        a_max: float = 2.0,
        v_max_lin: float = 0.1,
        a_max_lin: float = 0.4,
        position_mode: bool = False,
        target_timeout_s: float = 0.5,
        threaded: bool = True,
    ) -> None:
        if supervisor is None:
            supervisor = Supervisor(SafetyConfig.from_chain(chain, target_timeout_s=target_timeout_s,
                                                            tau_max=tau_max,
                                                            hold_mode=CommandMode.POSITION if position_mode else None),
                                    chain=chain, dynamics=None if position_mode else dynamics)
        self.supervisor = supervisor
        self.dynamics = dynamics
        self.position_mode = bool(position_mode)
        self.threaded = bool(threaded)
        self.limits = (float(v_max), float(a_max), float(v_max_lin), float(a_max_lin))
        n = chain.dof
        self._joint = JointImpedance(n, np.broadcast_to(np.asarray(joint_stiffness, dtype=float), (n,)).copy(),
                                     damping_ratio, dynamics=dynamics, tau_max=tau_max)
        gains = cartesian_gains or CartesianGains.isotropic(800.0, 40.0, damping_ratio)
        self._cart = CartesianImpedance(chain, gains, dynamics=dynamics, tau_max=tau_max)
        self._lock = threading.Lock()
        self._mode = _Mode("hold", self._joint)
        self._busy = False
        self._move_id = 0
        self._enabled = False
        self._last_cmd: JointCommand | None = None
        loop = ControlLoop(backend, _Controller(self), supervisor, rate_hz)
        super().__init__(loop, chain)

    # -- lifecycle -----------------------------------------------------------------------------

    def is_enabled(self) -> bool:
        return self._enabled and (self.loop.running or not self.threaded)

    def enable(self, timeout: float = 1.0) -> bool:
        """Start the loop (holding the measured pose) or leave a stop; True once ``ENABLED``. A stop
        caused by a backend latched in a device fault (``latched_fault``, e.g. a tripped Bus
        Watchdog) is left after the backend has set its devices up again (``_serve_fault_reset``)."""
        sup = self.supervisor
        if not self.is_enabled():
            self._set_hold(np.asarray(self.loop.backend.read().q, dtype=float))
            self._enabled = True
            if self.threaded:
                self.loop.start()
        if sup.state in (SupervisorState.PROTECTIVE_STOP, SupervisorState.ESTOP):
            self._serve_fault_reset(timeout)
            self._set_hold(self.measured_jp())
            sup.reset()
        if sup.state is SupervisorState.HOLD:
            self._set_hold(self.measured_jp())
            sup.target_updated()
            sup.resume()
        deadline = time.monotonic() + timeout
        while self.operating_state() != ENABLED and time.monotonic() < deadline and self.threaded:
            time.sleep(0.005)
        return self.operating_state() == ENABLED

    def _serve_fault_reset(self, timeout: float) -> None:
        """A backend latched in a device fault is asked to set its devices up again, and the loop
        runs until its supervisor has seen a state without the fault (else ``reset`` is refused):
        a cycle or two in the loop's thread, or one cycle here in stepped mode."""
        if self.threaded:
            clear_latched_fault(self.loop.backend, wait_s=timeout, settle_s=2.0 * self.loop.period)
        elif not clear_latched_fault(self.loop.backend):
            self.loop.run_for(self.loop.period)

    def disable(self) -> None:
        """Hold, then stop the loop (``DISABLED``); the backend keeps the last (hold) command."""
        if self.threaded:
            self.loop.stop()
        self._enabled = False
        self._busy = False

    def close(self) -> None:
        self.disable()

    def __enter__(self) -> Crtk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_for(self, seconds: float) -> None:
        """Stepped mode (``threaded=False``): advance the loop by ``seconds`` of backend time."""
        if self.threaded:
            raise CrtkError("run_for: the loop runs in its own thread (threaded=True)")
        if not self._enabled:
            raise CrtkError(f"run_for: the robot is {DISABLED}; enable() it first")
        self.loop.run_for(seconds)

    def is_busy(self) -> bool:
        return self._busy

    # -- setpoints -----------------------------------------------------------------------------

    def setpoint_js(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, effort) being tracked (NaN where the mode has none; effort: last command's)."""
        m = self._mode
        n = self.chain.dof
        q = np.full(n, np.nan) if m.q_d is None else np.array(m.q_d)
        dq = np.zeros(n) if m.dq_d is None else np.array(m.dq_d)
        cmd = self.loop.last_command
        tau = np.array(cmd.tau) if cmd is not None and cmd.tau is not None else np.full(n, np.nan)
        return q, dq, tau

    def setpoint_cp(self) -> np.ndarray:
        """The Cartesian setpoint (``T_base_tool``) being tracked, or FK of the joint setpoint."""
        m = self._mode
        if m.T_d is not None:
            return np.array(m.T_d)
        if m.q_d is not None:
            return self.chain.fk(m.q_d).copy()
        return self.measured_cp()

    # -- commands ------------------------------------------------------------------------------

    def _require_enabled(self, what: str) -> None:
        state = self.operating_state()
        if state != ENABLED:
            raise CrtkError(f"{what}: the robot is {state}; enable() it first")

    def _q(self, name: str, q: object) -> np.ndarray:
        return finite_array(name, q, (self.chain.dof,)).copy()

    def _set(self, mode: _Mode, busy: bool = False) -> None:
        with self._lock:
            self._busy = busy
            self._move_id += 1
            self._mode = mode

    def _set_hold(self, q: np.ndarray) -> None:
        self._joint.set_target(q)
        self._set(_Mode("hold", self._joint, q_d=np.array(q)))

    def servo_jp(self, q: np.ndarray, v: np.ndarray | None = None) -> None:
        """Track joint setpoint ``q`` (and velocity ``v``) from the next cycle on, no trajectory."""
        q = self._q("servo_jp q", q)
        v = None if v is None else self._q("servo_jp v", v)
        self._require_enabled("servo_jp")
        self._joint.set_target(q, v)
        self._set(_Mode("servo_jp", self._joint, q_d=q, dq_d=v))
        self.supervisor.target_updated()

    def servo_cp(self, T_base_tool: np.ndarray) -> None:
        """Track the tool pose ``T_base_tool`` from the next cycle on (IK on position backends)."""
        T = transform("servo_cp T_base_tool", T_base_tool).copy()
        self._require_enabled("servo_cp")
        if self.position_mode:
            r = self.chain.ik(T, q0=self.measured_jp())
            if not r.success:
                raise CrtkError(f"servo_cp: no IK solution ({r.pos_err * 1e3:.1f} mm, {r.rot_err:.3f} rad off)")
            self._set(_Mode("servo_cp", None, q_d=r.q, T_d=T))
        else:
            self._cart.set_target(T)
            self._set(_Mode("servo_cp", self._cart, T_d=T))
        self.supervisor.target_updated()

    def servo_cf(self, wrench: np.ndarray) -> None:
        """Apply the tool wrench ``[f; m]`` (N, N m, base frame) with gravity compensation."""
        w = finite_array("servo_cf wrench", wrench, (6,)).copy()
        self._require_enabled("servo_cf")
        if self.position_mode:
            raise CrtkError("servo_cf: needs a torque-mode backend")
        self._set(_Mode("servo_cf", None, wrench=w))
        self.supervisor.target_updated()

    def move_jp(self, q_goal: np.ndarray) -> MoveHandle:
        """Planned move (minimum jerk, ``v_max``/``a_max``) from the measured joints to ``q_goal``."""
        q_goal = self._q("move_jp goal", q_goal)
        self._require_enabled("move_jp")
        lo, hi = np.asarray(self.chain.lower), np.asarray(self.chain.upper)
        if ((q_goal < lo) | (q_goal > hi)).any():
            raise ValueError(f"move_jp goal: outside the joint limits {lo.round(3).tolist()}..{hi.round(3).tolist()}")
        traj = self._joint_trajectory(self.measured_jp(), q_goal)
        self._set(_Mode("move_jp", self._joint, q_d=traj.q0, traj=traj), busy=True)
        return MoveHandle(self, self._move_id)

    def move_cp(self, T_goal: np.ndarray) -> MoveHandle:
        """Planned straight-line move of the tool from its measured pose to ``T_goal`` (base frame)."""
        T_goal = transform("move_cp goal", T_goal).copy()
        self._require_enabled("move_cp")
        _, _, v, a = self.limits
        if self.position_mode:
            r = self.chain.ik(T_goal, q0=self.measured_jp())
            if not r.success:
                raise CrtkError(f"move_cp: no IK solution ({r.pos_err * 1e3:.1f} mm off)")
            return self.move_jp(r.q)
        traj = CartesianTrajectory(self.measured_cp(), T_goal, v, a)
        self._set(_Mode("move_cp", self._cart, T_d=traj.T0, traj=traj), busy=True)
        return MoveHandle(self, self._move_id)

    def hold(self) -> None:
        """Stop any motion and hold the measured joints."""
        self._require_enabled("hold")
        self._set_hold(self.measured_jp())

    def free(self) -> None:
        """Gravity compensation only (the arm floats; ``dynamics`` needed to carry its weight)."""
        self._require_enabled("free")
        if self.position_mode:
            raise CrtkError("free: needs a torque-mode backend")
        self._set(_Mode("free"))

    def _joint_trajectory(self, q0: np.ndarray, q1: np.ndarray) -> JointTrajectory:
        """Minimum-jerk joint move within ``v_max``/``a_max``, slowed so that the tool stays under half
        the supervisor's tool-speed limit (sampled along the path)."""
        v, a, _, _ = self.limits
        traj = JointTrajectory(q0, q1, v, a)
        v_tool = self.supervisor.config.tool_speed_max
        if v_tool is None or traj.duration <= 0:
            return traj
        peak = 0.0
        for t in np.linspace(0.0, traj.duration, 41):
            q, dq, _ = traj.sample(traj.t0 + t)
            peak = max(peak, float(np.linalg.norm(self.chain.jacobian(q)[:3] @ dq)))
        if peak > 0.5 * v_tool:
            f = 0.5 * v_tool / peak
            traj = JointTrajectory(q0, q1, v * f, a * f * f)
        return traj

    # -- loop side -------------------------------------------------------------------------------

    def _force_command(self, state: JointState, wrench: np.ndarray) -> JointCommand:
        q = np.asarray(state.q, dtype=np.float64)
        tau = self.chain.jacobian(q).T @ wrench
        if self.dynamics is not None:
            tau = tau + self.dynamics.gravity(q)
        return JointCommand.torque(tau)
