"""The safety supervisor: the last word on every command the control loop sends.

``Supervisor.check(state, cmd, t) -> JointCommand`` runs once per cycle after the controller. In
state RUN it passes the controller's command through (torques saturated to ``tau_max``, positions
clamped to the joint limits); in any other state it replaces it with a safe command.

States (``SupervisorState``):

- ``RUN``: the controller drives.
- ``HOLD``: impedance hold at the last safe pose (joint impedance with gravity compensation when a
  ``Dynamics`` is given, for torque-mode backends; the last safe ``q`` for position mode; zero
  velocity for velocity mode). Entered on a stale target or on request; left with ``resume()``.
- ``PROTECTIVE_STOP``: brake (torque: gravity minus ``brake_damping * dq``; position: freeze at the
  measured ``q``; velocity: zero) until every joint is slower than ``brake_speed``, then hold there
  (``stop_action="hold"``) or switch torque off (``"torque_off"``: zero torque; position/velocity
  backends keep the frozen pose). Entered on any fault; left with ``resume()``.
- ``ESTOP``: like PROTECTIVE_STOP but latched: only ``reset()`` (to HOLD) leaves it.

With a ``Dynamics`` and a loop period (``bind_period``; the ``ControlLoop`` binds it), the hold
stiffness, hold damping and brake damping are bounded per joint to values that are stable in
discrete time for that joint's inertia: ``d <= 0.5 m / dt`` and ``k <= 0.25 m / dt^2`` (``m``
the joint's inertia with the others free, ``1 / (M^-1)_ii``). A light wrist joint cannot take
the generic defaults (10 N m s/rad at 1 kHz spins it up); clipping is logged once at INFO.

Faults checked every cycle, each with the state it leads to:

=====================================================  ==================  ===================
condition                                              code                state
=====================================================  ==================  ===================
NaN/Inf in the measured state or the command           ``nan``             PROTECTIVE_STOP
controller raised, returned None or a malformed cmd    ``bad_command``     PROTECTIVE_STOP
persistent device fault, or ``ok=False`` for           ``device``          PROTECTIVE_STOP
``fault_cycles`` consecutive readings
joint position outside ``[q_min, q_max]``              ``joint_limit``     PROTECTIVE_STOP
joint speed above ``dq_max``                           ``joint_speed``     PROTECTIVE_STOP
measured torque above ``tau_measured_max``             ``torque``          PROTECTIVE_STOP
tool origin outside the workspace box (needs a chain)  ``workspace``       PROTECTIVE_STOP
tool linear speed above ``tool_speed_max`` (chain)     ``tool_speed``      PROTECTIVE_STOP
loop period above ``period_max_s`` (watchdog)          ``overrun``         PROTECTIVE_STOP
no ``target_updated`` for ``target_timeout_s``         ``stale_target``    HOLD
limits in the config do not fit the robot's joints     ``config``          PROTECTIVE_STOP
=====================================================  ==================  ===================

``check`` is compiled (``_safety.SupervisorCore``, the base class): a clean RUN cycle runs there
entirely; every other cycle (a fault, a transition, a safe command, a command to saturate) takes
the full check written below in Python, with the same results.

Every transition is logged (``logging`` at WARNING, or INFO for requested ones) and appended to
``events`` as a ``SupervisorEvent(t, from_state, to_state, code, reason)``; ``drain_events()``
returns the events not yet drained (the run log records them), and listeners added with
``add_listener`` are called synchronously on each transition.

Methods for other modules (thread-safe; any thread may call them, e.g. a teleop receiver or a UI):

- ``target_updated(t=None)``: the target feeder (planner, teleop link, exo intent) calls this
  whenever it delivers a fresh target. The freshness watchdog arms on the first call and, in
  RUN, goes to HOLD when ``target_timeout_s`` passes without another call. ``t`` is the backend
  clock's time; ``None`` uses the clock given to ``bind_clock`` (the ``ControlLoop`` binds the
  backend's clock) or, without one, the time of the latest ``check``.
- ``hold(reason)``, ``resume() -> bool``, ``protective_stop(reason)``, ``estop(reason)``,
  ``reset() -> bool``. ``resume`` refuses (returns False, logs why) in ESTOP or while the last
  check saw an active fault; ``reset`` leaves ESTOP or PROTECTIVE_STOP to HOLD at the current pose.
- ``state``, ``events``, ``last_fault``.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from machaon._validate import finite_array
from machaon._validate import optional_vector as _opt_vec
from machaon.control import _safety
from machaon.control.controller import DynamicsModel
from machaon.control.ratelog import RateLimitedLog
from machaon.kinematics import Chain
from machaon.types import CommandMode, JointCommand, JointState

_log = logging.getLogger(__name__)

_CODE = _safety.CODES

# Discrete-time stability margins of the safe commands (see ``Supervisor._stable_bounds``).
STABLE_D = 0.5  # bound on d dt / m (instability at 2)
STABLE_K = 0.25  # bound on k dt^2 / m
_INERTIA_REFRESH_RAD = 0.05  # re-evaluate the joint inertias after this much motion (rad or m)
_REQUIRED = {CommandMode.TORQUE: "tau", CommandMode.POSITION: "q", CommandMode.VELOCITY: "dq"}


class _Clock(Protocol):
    """The time source ``bind_clock`` takes (``machaon.robot.Clock``): ``now()`` in s."""

    def now(self) -> float: ...


@dataclass(frozen=True)
class _Limits:
    """SafetyConfig broadcast to n joints (+-inf where a limit is off) and its state-check kernel."""

    n: int
    qmin: np.ndarray
    qmax: np.ndarray
    dqmax: np.ndarray
    taumax: np.ndarray
    taumin: np.ndarray
    dqmin: np.ndarray
    check: _safety.StateCheck


class SupervisorState(enum.Enum):
    RUN = "run"
    HOLD = "hold"
    PROTECTIVE_STOP = "protective_stop"
    ESTOP = "estop"


@dataclass(frozen=True)
class SupervisorEvent:
    """One state transition: time ``t`` (backend clock, s), from/to state, fault code, reason."""

    t: float
    from_state: SupervisorState
    to_state: SupervisorState
    code: str
    reason: str


@dataclass(frozen=True)
class SafetyConfig:
    """Limits and watchdog settings (SI units; vectors per joint or a scalar for all joints).

    ``None`` disables a check. ``q_min``/``q_max`` may hold +-inf (continuous joints).
    ``tau_max`` saturates commanded torques; ``tau_measured_max`` stops on measured torque.
    ``workspace_min``/``workspace_max`` bound the tool origin in the base frame (m) and, like
    ``tool_speed_max`` (m/s, default 0.25), need the supervisor to have a chain (without one the
    tool-speed check is skipped; a workspace box without a chain is an error).
    ``period_max_s`` bounds the time between two checks; None lets ``bind_period`` set it to
    ``period_factor`` times the loop period. ``hold_mode`` forces the command mode of the safe
    commands (None: the mode of the controller's last valid command, torque before any).
    ``hold_stiffness``/``hold_damping``/``brake_damping`` are upper values: a supervisor with a
    ``Dynamics`` lowers them per joint to what the joint's inertia keeps stable at the loop period.
    """

    q_min: np.ndarray | float | None = None
    q_max: np.ndarray | float | None = None
    dq_max: np.ndarray | float | None = None
    tau_max: np.ndarray | float | None = None
    tau_measured_max: np.ndarray | float | None = None
    workspace_min: np.ndarray | None = None
    workspace_max: np.ndarray | None = None
    tool_speed_max: float | None = 0.25
    period_max_s: float | None = None
    period_factor: float = 10.0
    target_timeout_s: float | None = 0.25
    fault_cycles: int = 3
    stop_action: str = "hold"
    brake_damping: np.ndarray | float = 5.0
    brake_speed: float = 0.02
    hold_stiffness: np.ndarray | float = 100.0
    hold_damping: np.ndarray | float = 10.0
    hold_mode: CommandMode | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ("q_min", "q_max"):
            object.__setattr__(self, name, _opt_vec(name, getattr(self, name), allow_inf=True))
        for name in ("dq_max", "tau_max", "tau_measured_max", "brake_damping", "hold_stiffness", "hold_damping"):
            v = _opt_vec(name, getattr(self, name))
            if v is not None and (v < 0).any():
                raise ValueError(f"{name}: must be >= 0")
            object.__setattr__(self, name, v)
        for name in ("workspace_min", "workspace_max"):
            v = getattr(self, name)
            object.__setattr__(self, name, None if v is None else finite_array(name, v, (3,)).copy())
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise ValueError("workspace_min/workspace_max: give both or neither")
        if self.workspace_min is not None and (self.workspace_min > self.workspace_max).any():
            raise ValueError("workspace_min: must be <= workspace_max")
        for name in ("tool_speed_max", "period_max_s", "target_timeout_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite number or None, got {v!r}")
        if not (math.isfinite(self.period_factor) and self.period_factor > 1.0):
            raise ValueError("period_factor: must be > 1")
        if self.stop_action not in ("hold", "torque_off"):
            raise ValueError(f"stop_action: 'hold' or 'torque_off', got {self.stop_action!r}")
        if not (isinstance(self.fault_cycles, int) and self.fault_cycles >= 1):
            raise ValueError("fault_cycles: must be an int >= 1")
        if not (math.isfinite(self.brake_speed) and self.brake_speed > 0):
            raise ValueError("brake_speed: must be > 0")

    @classmethod
    def from_chain(cls, chain: Chain, **kwargs: object) -> SafetyConfig:
        """Config with the joint position limits of ``chain`` (``chain.lower``/``chain.upper``)."""
        kwargs.setdefault("q_min", np.asarray(chain.lower, dtype=np.float64))
        kwargs.setdefault("q_max", np.asarray(chain.upper, dtype=np.float64))
        return cls(**kwargs)


class Supervisor(_safety.SupervisorCore):
    """Checks every cycle and owns the RUN/HOLD/PROTECTIVE_STOP/ESTOP state (module docstring).

    ``chain`` (a ``machaon.kinematics.Chain`` whose tip is the tool) enables the workspace and
    tool-speed checks; ``dynamics`` (``machaon.kinematics.Dynamics``) adds gravity compensation
    to the torque-mode hold and brake and bounds their gains to discrete-time-stable values for
    the loop period (module docstring). Starts in RUN (``initial_state`` to change).
    """

    def __init__(
        self,
        config: SafetyConfig | None = None,
        chain: Chain | None = None,
        dynamics: DynamicsModel | None = None,
        *,
        initial_state: SupervisorState = SupervisorState.RUN,
    ) -> None:
        self.config = config if config is not None else SafetyConfig()
        c = self.config
        if c.workspace_min is not None and chain is None:
            raise ValueError("chain: the workspace check needs a chain")
        self.chain = chain
        self.dynamics = dynamics
        self._lock = threading.RLock()
        self._run_state = SupervisorState.RUN
        self._state = initial_state
        self.events: list[SupervisorEvent] = []
        self._drained = 0
        self._listeners: list[Callable[[SupervisorEvent], None]] = []
        self._clock: _Clock | None = None
        self._period_max = c.period_max_s
        self._t_prev: float | None = None
        self._t_last = 0.0
        self._t_target: float | None = None
        self._bad_reads = 0
        self._fault_log = RateLimitedLog(_log, interval_s=1.0)  # transient device faults, summarised
        self._mode = c.hold_mode or CommandMode.TORQUE
        self._q_safe: np.ndarray | None = None
        self._q_hold: np.ndarray | None = None
        self._braking = False
        self._last_q: np.ndarray | None = None
        self.last_fault: tuple[str, str] | None = None
        self._active_fault: tuple[str, str] | None = None
        self.cycles = 0
        self.saturated_cycles = 0
        self._limits: _Limits | None = None
        self._period: float | None = None
        self._inertia_cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._clip_logged: set[str] = set()

    # -- wiring -----------------------------------------------------------------------------------

    def bind_clock(self, clock: _Clock) -> None:
        """Clock used by ``target_updated()`` without a time (the loop binds the backend clock)."""
        self._clock = clock

    def bind_period(self, period_s: float) -> None:
        """Nominal loop period: sets the overrun limit to ``period_factor * period_s`` unless configured,
        and the period the hold/brake gains are bounded for (with a ``dynamics``)."""
        self._period = float(period_s)
        self._inertia_cache = None
        if self.config.period_max_s is None:
            self._period_max = self.config.period_factor * float(period_s)

    def restart_timing(self) -> None:
        """Forget the previous check time (a loop (re)starting is not an overrun)."""
        with self._lock:
            self._t_prev = None

    def add_listener(self, fn: Callable[[SupervisorEvent], None]) -> None:
        self._listeners.append(fn)

    # -- public requests ----------------------------------------------------------------------------

    @property
    def state(self) -> SupervisorState:
        return self._state

    def target_updated(self, t: float | None = None) -> None:
        """A fresh target was delivered at time ``t`` (backend clock; see module docstring)."""
        if t is None:
            t = self._clock.now() if self._clock is not None else self._t_last
        if not math.isfinite(t):
            raise ValueError(f"t: must be finite, got {t!r}")
        with self._lock:
            self._t_target = float(t)

    def hold(self, reason: str = "requested") -> None:
        """RUN -> HOLD at the last safe pose (no effect in the stop states)."""
        with self._lock:
            if self._state is SupervisorState.RUN:
                self._transition(SupervisorState.HOLD, "request", reason, logging.INFO)

    def resume(self) -> bool:
        """HOLD or PROTECTIVE_STOP -> RUN, unless in ESTOP or a fault is still active."""
        with self._lock:
            if self._state is SupervisorState.RUN:
                return True
            if self._state is SupervisorState.ESTOP:
                _log.warning("resume refused: ESTOP is latched, call reset() first")
                return False
            if self._active_fault is not None:
                _log.warning("resume refused: fault still active (%s: %s)", *self._active_fault)
                return False
            if self._t_target is not None and self.config.target_timeout_s is not None:
                if self._t_last - self._t_target > self.config.target_timeout_s:
                    _log.warning("resume refused: target is stale")
                    return False
            self._transition(SupervisorState.RUN, "request", "resume", logging.INFO)
            return True

    def protective_stop(self, reason: str, code: str = "request") -> None:
        """Any state but ESTOP -> PROTECTIVE_STOP."""
        with self._lock:
            if self._state not in (SupervisorState.PROTECTIVE_STOP, SupervisorState.ESTOP):
                self._enter_stop(SupervisorState.PROTECTIVE_STOP, code, reason)

    def estop(self, reason: str) -> None:
        """Any state -> ESTOP (latched until ``reset``)."""
        with self._lock:
            if self._state is not SupervisorState.ESTOP:
                self._enter_stop(SupervisorState.ESTOP, "estop", reason)

    def reset(self) -> bool:
        """ESTOP or PROTECTIVE_STOP -> HOLD at the current pose; refused while a fault is active."""
        with self._lock:
            if self._state not in (SupervisorState.ESTOP, SupervisorState.PROTECTIVE_STOP):
                return True
            if self._active_fault is not None:
                _log.warning("reset refused: fault still active (%s: %s)", *self._active_fault)
                return False
            if self._last_q is not None:
                self._q_hold = self._last_q.copy()
                self._q_safe = self._last_q.copy()
            self._braking = False
            self._transition(SupervisorState.HOLD, "request", "reset", logging.INFO)
            return True

    def drain_events(self) -> list[SupervisorEvent]:
        """Events since the previous drain (for the run log)."""
        with self._lock:
            new = self.events[self._drained :]
            self._drained = len(self.events)
            return new

    # -- the per-cycle check ---------------------------------------------------------------------------
    # ``check`` (compiled, in ``SupervisorCore``) runs a clean RUN cycle itself and hands every other
    # cycle to ``_check_python`` below, unchanged, with the lock held.

    def _check_python(self, state: JointState, cmd: JointCommand | None, t: float) -> JointCommand:
        """The full check (see ``check``): every case, in Python."""
        with self._lock:
            self.cycles += 1
            self._t_last = t
            fault = self._check_timing(t)
            asc, f64 = np.ascontiguousarray, np.float64
            q, dq, tau = asc(state.q, dtype=f64), asc(state.dq, dtype=f64), asc(state.tau, dtype=f64)
            n = q.shape[0] if q.ndim == 1 else -1
            state_finite = n > 0 and dq.shape == q.shape == tau.shape and _safety.all_finite(q) \
                and _safety.all_finite(dq) and _safety.all_finite(tau)
            if state_finite:
                self._last_q = q
                if self._q_safe is None:
                    self._q_safe = q.copy()
            fault = fault or self._check_device(state)
            if not state_finite:
                fault = fault or ("nan", "NaN/Inf or wrong shape in the measured joint state")
            elif state.ok:
                fault = fault or self._check_limits(q, dq, tau)
            self._active_fault = fault
            if fault is not None:
                self.last_fault = fault
                if self._state in (SupervisorState.RUN, SupervisorState.HOLD):
                    self._enter_stop(SupervisorState.PROTECTIVE_STOP, *fault)
            if self._state is SupervisorState.RUN:
                stale = self._stale(t)
                if stale:
                    self._transition(SupervisorState.HOLD, "stale_target", stale, logging.WARNING)
            if self._state is SupervisorState.RUN:
                bad = self._check_command(cmd, n)
                if bad is not None:
                    self.last_fault = bad
                    self._enter_stop(SupervisorState.PROTECTIVE_STOP, *bad)
                else:
                    self._q_safe = q.copy()  # the backend may reuse its arrays
                    return self._limit_command(cmd, n)
            if not state_finite:
                if self._q_safe is None:
                    return self._blind_command(n)
                q = self._q_safe
                dq = np.zeros_like(q)
            return self._safe_command(q, dq)

    # -- internals -------------------------------------------------------------------------------------

    def _check_timing(self, t: float) -> tuple[str, str] | None:
        fault = None
        if self._t_prev is not None and self._period_max is not None:
            period = t - self._t_prev
            if period > self._period_max:
                fault = ("overrun", f"loop period {period * 1e3:.3f} ms > {self._period_max * 1e3:.3f} ms")
        self._t_prev = t
        return fault

    def _check_device(self, state: JointState) -> tuple[str, str] | None:
        for f in state.faults:
            if f.persistent:
                return ("device", f"persistent device fault {f.source}/{f.code}: {f.message}")
            # every cycle while it lasts: the first at once, then one summary per second per code
            self._fault_log.log(f"device fault {f.code}", f.source,
                                f"device fault {f.source}/{f.code} (joint {f.joint}): {f.message}")
        if not state.ok:
            self._bad_reads += 1
            if self._bad_reads >= self.config.fault_cycles:
                return ("device", f"joint state not trustworthy for {self._bad_reads} consecutive readings")
        else:
            self._bad_reads = 0
        return None

    def _limits_for(self, n: int) -> _Limits | str:
        """Per-joint limit vectors and the state-check kernel for n joints (built once), or an error text."""
        lim = self._limits
        if lim is not None and lim.n == n:
            return lim
        c = self.config

        def vec(name: str, v: np.ndarray | None, fill: float) -> np.ndarray:
            if v is None:
                return np.full(n, fill)
            if v.size not in (1, n):
                raise ValueError(f"SafetyConfig.{name} has {v.size} values for {n} joints")
            return np.ascontiguousarray(np.broadcast_to(v, (n,)), dtype=np.float64)

        try:
            qmin, qmax = vec("q_min", c.q_min, -np.inf), vec("q_max", c.q_max, np.inf)
            dqmax, taumeas = vec("dq_max", c.dq_max, np.inf), vec("tau_measured_max", c.tau_measured_max, np.inf)
            taumax = vec("tau_max", c.tau_max, np.inf)
            kernel = None
            if self.chain is not None and (c.workspace_min is not None or c.tool_speed_max is not None):
                if self.chain.dof != n:
                    raise ValueError(f"chain has {self.chain.dof} joints, the state {n}")
                kernel = self.chain.kernel
            check = _safety.StateCheck(qmin, qmax, dqmax, taumeas, kernel, c.workspace_min, c.workspace_max,
                                       np.inf if c.tool_speed_max is None else c.tool_speed_max)
        except ValueError as exc:
            return str(exc)
        self._limits = _Limits(n, qmin, qmax, dqmax, taumax, -taumax, -dqmax, check)
        self._bind_limits(n, check, -taumax, taumax, qmin, qmax, -dqmax, dqmax)
        return self._limits

    def _check_limits(self, q: np.ndarray, dq: np.ndarray, tau: np.ndarray) -> tuple[str, str] | None:
        lim = self._limits_for(q.shape[0])
        if isinstance(lim, str):
            return ("config", lim)
        chk = lim.check
        code = chk.check(q, dq, tau)
        if code == 0:
            return None
        j, v = chk.joint, chk.value
        if code == _CODE["below_limit"]:
            return ("joint_limit", f"joint {j} at {v:.4f} below its limit {lim.qmin[j]:.4f}")
        if code == _CODE["above_limit"]:
            return ("joint_limit", f"joint {j} at {v:.4f} above its limit {lim.qmax[j]:.4f}")
        if code == _CODE["joint_speed"]:
            return ("joint_speed", f"joint {j} speed {abs(v):.4f} /s above its limit {lim.dqmax[j]:.4f}")
        if code == _CODE["torque"]:
            return ("torque", f"joint {j} measured torque {v:.3f} above its limit")
        if code == _CODE["workspace"]:
            p = np.round(chk.tool_position(), 4).tolist()
            return ("workspace", f"tool at {p} m outside the workspace box (axis {'xyz'[j]})")
        if code == _CODE["tool_speed"]:
            return ("tool_speed", f"tool speed {v:.3f} m/s above {self.config.tool_speed_max:.3f} m/s")
        return ("nan", "NaN/Inf in the measured joint state")

    def _stale(self, t: float) -> str | None:
        timeout = self.config.target_timeout_s
        if timeout is None or self._t_target is None:
            return None
        age = t - self._t_target
        if age > timeout:
            return f"target is {age * 1e3:.1f} ms old (limit {timeout * 1e3:.1f} ms)"
        return None

    def _check_command(self, cmd: JointCommand | None, n: int) -> tuple[str, str] | None:
        if type(cmd) is JointCommand and cmd.mode is CommandMode.TORQUE and cmd.q is None and cmd.dq is None:
            # The per-cycle case (a torque controller's own fresh array): same checks, fewer steps.
            v = cmd.tau
            if type(v) is np.ndarray and v.dtype == np.float64 and v.flags.c_contiguous and v.shape == (n,):
                if not _safety.all_finite(v):
                    return ("nan", "NaN/Inf in the commanded tau")
                if self.config.hold_mode is None:
                    self._mode = CommandMode.TORQUE
                return None
        if cmd is None:
            return ("bad_command", "controller produced no command")
        if not isinstance(cmd, JointCommand):
            return ("bad_command", f"controller returned {type(cmd).__name__}, not JointCommand")
        required = _REQUIRED[cmd.mode]
        for name in ("tau", "q", "dq"):
            v = getattr(cmd, name)
            if v is None:
                if name == required:
                    return ("bad_command", f"{cmd.mode.value} command without {name}")
                continue
            if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and v.flags.c_contiguous):
                v = np.ascontiguousarray(v, dtype=np.float64)
            if v.shape != (n,):
                return ("bad_command", f"command {name} has shape {v.shape}, expected ({n},)")
            if not _safety.all_finite(v):
                return ("nan", f"NaN/Inf in the commanded {name}")
        if self.config.hold_mode is None:
            self._mode = cmd.mode
        return None

    def _limit_command(self, cmd: JointCommand, n: int) -> JointCommand:
        """``cmd`` (already checked by ``_check_command`` to have n values) within the limits."""
        lim = self._limits_for(n)
        if isinstance(lim, str):
            return cmd
        if cmd.mode is CommandMode.TORQUE:
            tau = np.ascontiguousarray(cmd.tau, dtype=np.float64)
            if not _safety.within(tau, lim.taumin, lim.taumax):
                self.saturated_cycles += 1
                return JointCommand(cmd.mode, tau=np.clip(tau, lim.taumin, lim.taumax), q=cmd.q, dq=cmd.dq,
                                    info=cmd.info)
        elif cmd.mode is CommandMode.POSITION:
            q = np.ascontiguousarray(cmd.q, dtype=np.float64)
            if not _safety.within(q, lim.qmin, lim.qmax):
                self.saturated_cycles += 1
                return JointCommand(cmd.mode, tau=cmd.tau, q=np.clip(q, lim.qmin, lim.qmax), dq=cmd.dq, info=cmd.info)
        elif cmd.mode is CommandMode.VELOCITY:
            dq = np.ascontiguousarray(cmd.dq, dtype=np.float64)
            if not _safety.within(dq, lim.dqmin, lim.dqmax):
                self.saturated_cycles += 1
                return JointCommand(cmd.mode, tau=cmd.tau, q=cmd.q, dq=np.clip(dq, lim.dqmin, lim.dqmax),
                                    info=cmd.info)
        return cmd

    def _gravity(self, q: np.ndarray) -> np.ndarray:
        if self.dynamics is None:
            return np.zeros_like(q)
        try:
            return np.asarray(self.dynamics.gravity(q), dtype=np.float64)
        except ValueError:
            return np.zeros_like(q)

    def _safe_command(self, q: np.ndarray, dq: np.ndarray) -> JointCommand:
        c = self.config
        n = q.shape[0]
        info = {"supervisor": self._state.value}
        mode = self._mode
        if self._state is SupervisorState.HOLD:
            if self._q_hold is None or self._q_hold.shape != (n,):
                # Started in HOLD (or the pose was unknown at the transition): hold where it is now.
                self._q_hold = q.copy()
            return self._hold_command(mode, self._q_hold, q, dq, info)
        # Protective stop / estop: brake, then hold or torque off.
        if self._braking and float(np.max(np.abs(dq), initial=0.0)) < c.brake_speed:
            self._braking = False
            self._q_hold = q.copy()
            _log.info("braking finished, %s", "holding" if c.stop_action == "hold" else "torque off")
        if self._q_hold is None or self._q_hold.shape != (n,):
            self._q_hold = q.copy()
        if self._braking:
            if mode is CommandMode.TORQUE:
                _, _, d_brake = self._safe_gains(q)
                tau = self._gravity(q) - d_brake * dq
                return JointCommand(CommandMode.TORQUE, tau=self._sat(tau), info=info)
            if mode is CommandMode.POSITION:
                return JointCommand(CommandMode.POSITION, q=self._q_hold.copy(), info=info)
            return JointCommand(CommandMode.VELOCITY, dq=np.zeros(n), info=info)
        if c.stop_action == "torque_off" and mode is CommandMode.TORQUE:
            return JointCommand(CommandMode.TORQUE, tau=np.zeros(n), info=info)
        return self._hold_command(mode, self._q_hold, q, dq, info)

    def _blind_command(self, n: int) -> JointCommand:
        """No trustworthy pose was ever seen (e.g. NaN in the very first reading): torque off, or zero velocity."""
        n = max(n, 0)
        info = {"supervisor": self._state.value}
        if self._mode is CommandMode.TORQUE:
            return JointCommand(CommandMode.TORQUE, tau=np.zeros(n), info=info)
        return JointCommand(CommandMode.VELOCITY, dq=np.zeros(n), info=info)

    def _hold_command(self, mode: CommandMode, q_hold, q, dq, info) -> JointCommand:
        if mode is CommandMode.TORQUE:
            k_hold, d_hold, _ = self._safe_gains(q)
            tau = k_hold * (q_hold - q) - d_hold * dq + self._gravity(q)
            return JointCommand(CommandMode.TORQUE, tau=self._sat(tau), info=info)
        if mode is CommandMode.POSITION:
            return JointCommand(CommandMode.POSITION, q=q_hold.copy(), info=info)
        return JointCommand(CommandMode.VELOCITY, dq=np.zeros(q.shape[0]), info=info)

    def _safe_gains(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hold stiffness, hold damping and brake damping for the joints at ``q``.

        The configured values (the defaults if they do not fit n joints), each bounded per joint
        to stay stable at the loop period when the joint inertias are known (``_stable_bounds``).
        """
        c = self.config
        n = q.shape[0]
        out = []
        for name, default in (("hold_stiffness", 100.0), ("hold_damping", 10.0), ("brake_damping", 5.0)):
            v = getattr(c, name)
            out.append(v if v.size in (1, n) else np.full(n, default))
        bounds = self._stable_bounds(q)
        if bounds is None:
            return out[0], out[1], out[2]
        k_cap, d_cap = bounds
        k = self._bounded("hold_stiffness", out[0], k_cap, "N m/rad")
        d = self._bounded("hold_damping", out[1], d_cap, "N m s/rad")
        b = self._bounded("brake_damping", out[2], d_cap, "N m s/rad")
        return k, d, b

    def _bounded(self, name: str, value: np.ndarray, cap: np.ndarray, unit: str) -> np.ndarray:
        """``min(value, cap)`` per joint, logging (once per setting) the joints where it clips."""
        if (value <= cap).all():
            return value
        clipped = np.minimum(value, cap)
        if name not in self._clip_logged:
            self._clip_logged.add(name)
            v = np.broadcast_to(value, cap.shape)
            joints = np.flatnonzero(v > cap)
            _log.info(
                "supervisor: %s clipped to the discrete-time stable bound for a %.3g ms period at joint(s) %s: "
                "%s -> %s %s", name, self._period * 1e3, joints.tolist(),
                np.round(v[joints], 4).tolist(), np.round(cap[joints], 4).tolist(), unit,
            )
        return clipped

    def _stable_bounds(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-joint ``(k_max, d_max)`` for the safe commands, or None without dynamics or a loop period.

        A joint of inertia m under ``tau = -k x - d v`` sampled every dt is stable (for a
        zero-order-hold or a semi-implicit Euler plant) when ``d dt / m < 2`` and ``k dt^2 / m``
        stays below a few units; the bounds keep good margins: ``d <= STABLE_D m / dt`` and
        ``k <= STABLE_K m / dt^2``. m is the joint's inertia with the other joints free,
        ``1 / (M^-1)_ii`` (at most ``M_ii``), recomputed when the arm has moved by more than
        ``_INERTIA_REFRESH_RAD`` since the last evaluation.
        """
        dyn, dt = self.dynamics, self._period
        if dyn is None or dt is None or not np.isfinite(q).all():
            return None
        cache = self._inertia_cache
        if cache is None or cache[0].shape != q.shape or np.max(np.abs(cache[0] - q)) > _INERTIA_REFRESH_RAD:
            try:
                M = np.asarray(dyn.mass_matrix(q), dtype=np.float64)
                with np.errstate(all="ignore"):
                    m = 1.0 / np.diag(np.linalg.inv(M))
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:  # the safety path never raises
                if "inertia" not in self._clip_logged:
                    self._clip_logged.add("inertia")
                    _log.warning("supervisor: joint inertias unavailable (%r); hold/brake gains not bounded", exc)
                return None
            if m.shape != q.shape or not (np.isfinite(m).all() and (m > 0).all()):
                return None
            cache = self._inertia_cache = (q.copy(), STABLE_K * m / (dt * dt), STABLE_D * m / dt)
        return cache[1], cache[2]

    def _sat(self, tau: np.ndarray) -> np.ndarray:
        lim = self._limits_for(tau.shape[0])
        if isinstance(lim, str):
            return tau
        return np.clip(tau, lim.taumin, lim.taumax)

    def _enter_stop(self, to: SupervisorState, code: str, reason: str) -> None:
        self._braking = True
        self._q_hold = None
        self._transition(to, code, reason, logging.WARNING if code != "request" else logging.INFO)

    def _transition(self, to: SupervisorState, code: str, reason: str, level: int) -> None:
        frm = self._state
        if to is SupervisorState.HOLD:
            self._q_hold = (self._q_safe if self._q_safe is not None else self._last_q)
            self._q_hold = None if self._q_hold is None else self._q_hold.copy()
        self._state = to
        ev = SupervisorEvent(self._t_last, frm, to, code, reason)
        self.events.append(ev)
        _log.log(level, "supervisor %s -> %s at t=%.4f s [%s]: %s", frm.value, to.value, ev.t, code, reason)
        for fn in list(self._listeners):
            try:
                fn(ev)
            except Exception:  # a listener must not break the safety path
                _log.exception("supervisor listener failed")
