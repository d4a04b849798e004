"""``TeleopController``: the controller the ``ControlLoop`` runs on the robot side.

Each cycle it takes the operator commands that arrived since the last cycle, tells the
supervisor that the link is alive (``target_updated``: a gap longer than the supervisor's
``target_timeout_s`` puts the arm in HOLD in the first cycle after the timeout), handles
E-stop / reset / operator HOLD / resume, advances the ``TeleopMapper`` and hands the resulting
tool target to an inner Cartesian controller (``CartesianImpedance`` for torque backends,
``Admittance`` for position backends: anything with ``set_target``, ``on_activate``, ``update``).

Resuming after any HOLD or stop needs a fresh clutch press (a rising edge of the CLUTCH flag):
an operator who kept the clutch pressed through a link outage does not get motion back by
surprise when the link returns. While not in RUN, the target follows the measured pose so that
resuming never jumps.

Thread safety: ``submit`` may be called from the network thread; ``snapshot`` from any thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass

import numpy as np

from machaon.control.controller import TargetController
from machaon.control.supervisor import Supervisor, SupervisorEvent, SupervisorState
from machaon.kinematics import Chain
from machaon.teleop.mapping import TeleopConfig, TeleopMapper
from machaon.teleop.messages import CmdFlag, Command, HoldReason, OperatorMode, SupervisorCode
from machaon.types import JointCommand, JointState

log = logging.getLogger(__name__)

_SUP_CODE = {
    SupervisorState.RUN: SupervisorCode.OK,
    SupervisorState.HOLD: SupervisorCode.HOLD,
    SupervisorState.PROTECTIVE_STOP: SupervisorCode.FAULT,
    SupervisorState.ESTOP: SupervisorCode.ESTOP,
}


@dataclass(frozen=True)
class TeleopSnapshot:
    """Robot-side state after one cycle (base frame, SI)."""

    t: float
    T_base_tool: np.ndarray
    T_base_target: np.ndarray
    wrench: np.ndarray
    supervisor: SupervisorState
    hold_reason: HoldReason
    mode: OperatorMode
    clutch: bool
    fixture_active: bool
    speed_limited: bool
    commands: int


class TeleopController:
    """See the module docstring. ``chain``: tool chain (``fk``); ``inner``: Cartesian controller."""

    def __init__(
        self, chain: Chain, inner: TargetController, supervisor: Supervisor, config: TeleopConfig, rate_hz: float
    ) -> None:
        for m in ("set_target", "update"):
            if not callable(getattr(inner, m, None)):
                raise ValueError(f"inner: needs a {m} method")
        self.chain = chain
        self.inner = inner
        self.supervisor = supervisor
        self.mapper = TeleopMapper(config, rate_hz)
        self._inbox: collections.deque[Command] = collections.deque(maxlen=1000)
        self._lock = threading.Lock()
        self._snapshot: TeleopSnapshot | None = None
        self._clutch_prev = False
        self._hold_reason = HoldReason.OPERATOR if supervisor.state is not SupervisorState.RUN else HoldReason.NONE
        self.commands = 0
        supervisor.add_listener(self._on_event)

    # -- from the network thread ----------------------------------------------------------------------
    def submit(self, cmd: Command) -> None:
        """Queue an authenticated, decoded command. An E-stop latches at once, not next cycle."""
        if cmd.flags & CmdFlag.ESTOP:
            self.supervisor.estop("operator E-stop")
        self._inbox.append(cmd)

    def snapshot(self) -> TeleopSnapshot | None:
        with self._lock:
            return self._snapshot

    # -- supervisor events -----------------------------------------------------------------------------
    def _on_event(self, ev: SupervisorEvent) -> None:
        if ev.to_state is SupervisorState.RUN:
            self._hold_reason = HoldReason.NONE
        elif ev.to_state is SupervisorState.ESTOP:
            self._hold_reason = HoldReason.ESTOP
        elif ev.code == "stale_target":
            self._hold_reason = HoldReason.COMMAND_GAP
        elif ev.code == "request" and (ev.reason.startswith("operator") or ev.reason == "reset"):
            self._hold_reason = HoldReason.OPERATOR  # held until the operator presses the clutch
        elif ev.code != "request" or ev.to_state is SupervisorState.PROTECTIVE_STOP:
            self._hold_reason = HoldReason.SUPERVISOR

    # -- the loop's controller interface ------------------------------------------------------------
    def on_activate(self, state: JointState, t: float) -> None:
        T = self.chain.fk(state.q)
        self.mapper.reset(T)
        self.inner.set_target(T)
        if callable(getattr(self.inner, "on_activate", None)):
            self.inner.on_activate(state, t)

    def update(self, state: JointState, t: float) -> JointCommand:
        sup = self.supervisor
        while self._inbox:
            cmd = self._inbox.popleft()
            self.commands += 1
            sup.target_updated(t)
            self._apply(cmd, t)
        T_meas = self.chain.fk(state.q)
        if sup.state is not SupervisorState.RUN:
            self.mapper.reset(T_meas)  # hold: the target waits at the measured pose
            T_target = T_meas
        else:
            T_target = self.mapper.step()
        w = state.wrench_tool if state.wrench_tool is not None else np.zeros(6)
        snap = TeleopSnapshot(
            t, T_meas, T_target, np.asarray(w, dtype=np.float64), sup.state, self._hold_reason,
            self.mapper.mode, self.mapper.clutch and sup.state is SupervisorState.RUN,
            self.mapper.fixture_active, self.mapper.speed_limited, self.commands,
        )
        with self._lock:  # published before the inner controller runs: if it fails, the operator still sees why
            self._snapshot = snap
        self.inner.set_target(T_target)
        return self.inner.update(state, t)

    def _apply(self, cmd: Command, t: float) -> None:
        sup = self.supervisor
        if cmd.flags & CmdFlag.ESTOP:
            sup.estop("operator E-stop")
        elif cmd.flags & CmdFlag.RESET:
            if sup.state in (SupervisorState.ESTOP, SupervisorState.PROTECTIVE_STOP):
                if sup.reset():
                    log.info("teleop: E-stop reset by the operator at t=%.3f", t)
        clutch = bool(cmd.flags & CmdFlag.CLUTCH) and cmd.mode == OperatorMode.FOLLOW
        rising = clutch and not self._clutch_prev
        self._clutch_prev = clutch
        if cmd.mode == OperatorMode.HOLD and sup.state is SupervisorState.RUN:
            sup.hold("operator hold")
        elif rising and sup.state is SupervisorState.HOLD:
            if sup.resume():
                log.info("teleop: resumed by clutch at t=%.3f", t)
        self.mapper.on_command(cmd)
