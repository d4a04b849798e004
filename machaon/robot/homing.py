"""Bring a robot to its home pose before a task: ``move_home`` (any backend, torque or position mode).

The move is a minimum-jerk line in joint space run by ``ControlLoop`` under a ``Supervisor`` (see
``move_home``); it fails with ``HomingError`` and leaves the arm to the supervisor's hold.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from machaon.errors import RobotError
from machaon.robot.backend import Backend
from machaon.robot.model import RobotModel, safety_settings
from machaon.types import JointCommand, JointState

if TYPE_CHECKING:
    from machaon.control.supervisor import Supervisor

__all__ = ["HomingError", "move_home"]

log = logging.getLogger(__name__)


class HomingError(RobotError, RuntimeError):
    """The arm could not be brought to (or was not found at) a pose the teleop server can start from."""


class _JointPositionTarget:
    """Streams a joint position target (with velocity feed-forward) to a position-mode backend; the
    servos close the loop. ``set_target(q, dq)`` as ``JointImpedance``."""

    def __init__(self, dof: int) -> None:
        self._q: np.ndarray | None = None
        self._dq = np.zeros(dof)

    def set_target(self, q_d: np.ndarray, dq_d: np.ndarray | None = None) -> None:
        self._q = np.array(q_d, dtype=float)
        self._dq = np.zeros_like(self._q) if dq_d is None else np.array(dq_d, dtype=float)

    def update(self, state: JointState, t: float) -> JointCommand:
        q = np.asarray(state.q, dtype=float) if self._q is None else self._q
        return JointCommand.position(q, self._dq)


def _homing_supervisor(model: RobotModel, position_mode: bool, fault_cycles: int) -> Supervisor:
    """The supervisor of a homing move: the description's joint position and velocity limits,
    device faults and timing, no workspace box and no tool-speed limit (the arm is on its way in);
    it holds in position mode on a position backend."""
    from machaon.control.supervisor import SafetyConfig, Supervisor
    from machaon.types import CommandMode

    safety = safety_settings(model)
    safety.pop("workspace_min")
    safety.pop("workspace_max")
    safety.update(dq_max=np.asarray(model.desc.velocity_limit, dtype=float), tool_speed_max=None,
                  fault_cycles=fault_cycles)
    if position_mode:
        safety["hold_mode"] = CommandMode.POSITION
    return Supervisor(SafetyConfig.from_chain(model.chain, **safety), chain=model.chain,
                      dynamics=None if position_mode else model.dynamics)


def _check_arrived(backend: Backend, q: np.ndarray, q0: np.ndarray, q_home: np.ndarray, tol: float) -> None:
    """Raise ``HomingError`` when a joint ended farther than ``tol`` rad from ``q_home``, naming the
    joints that hardly moved from ``q0`` (an actuator too weak for its load, or ignoring goals)."""
    err = np.abs(q - q_home)
    if not (err <= tol).all():
        names = list(getattr(backend, "joint_names", None) or [f"joint {i + 1}" for i in range(len(q))])
        moved, wanted = np.abs(q - q0), np.abs(q_home - q0)
        stuck = [n for n, e, m, w in zip(names, err, moved, wanted, strict=True) if e > tol and m < 0.1 * w]
        hint = (f"; {', '.join(stuck)} hardly moved: the actuator cannot overcome its load (too weak for the arm's "
                "weight?) or does not accept goals") if stuck else ""
        raise HomingError(f"homing ended {np.round(err, 3).tolist()} rad from home (tolerance {tol} rad){hint}")


def move_home(
    backend: Backend,
    model: RobotModel,
    *,
    position_mode: bool,
    rate_hz: float,
    speed: float = 0.3,
    settle_s: float = 0.5,
    tol: float = 0.03,
    fault_cycles: int = 3,
) -> np.ndarray:
    """Bring the arm from wherever it stands to the description's home pose (``q_home``) along a
    minimum-jerk line in joint space, joint speeds at most ``speed`` rad/s (and the description's
    velocity limits), before teleoperation starts. Returns the measured joint angles at the end.

    The move runs in its own control loop at ``rate_hz`` under a supervisor that checks joint
    position and velocity limits, device faults and loop timing; the workspace box is not checked
    during the move (the arm is on its way into it). Position backends get the trajectory as
    position targets; torque backends track it with the description's joint impedance plus gravity
    compensation. ``fault_cycles``: consecutive faulty readings the supervisor tolerates. Raises
    ``HomingError`` when the supervisor stops the move, the backend fails, or the arm ends farther
    than ``tol`` rad from home on any joint; the arm is then left to the supervisor's safe state
    (hold)."""
    from machaon.control import JointImpedance
    from machaon.control.supervisor import SupervisorState
    from machaon.control.trajectory import JointTrajectory, TrajectoryTracker
    from machaon.robot.loop import ControlLoop

    if not (np.isfinite(speed) and speed > 0):
        raise ValueError(f"speed: must be a positive number of rad/s, got {speed!r}")
    d = model.desc
    state = backend.read()
    if not state.ok:
        raise HomingError(f"cannot home: the backend reports faults {list(state.faults)}")
    q0 = np.asarray(state.q, dtype=float)
    q_home = np.asarray(d.q_home, dtype=float)
    v_max = np.minimum(np.asarray(d.velocity_limit, dtype=float), speed)
    traj = JointTrajectory(q0, q_home, v_max, 2.0 * v_max)
    if position_mode:
        inner = _JointPositionTarget(model.chain.dof)
    else:
        inner = JointImpedance(model.chain.dof, np.asarray(d.joint_stiffness, dtype=float), d.joint_damping_ratio,
                               dynamics=model.dynamics, tau_max=np.asarray(d.effort_limit, dtype=float))
    sup = _homing_supervisor(model, position_mode, fault_cycles)
    tracker = TrajectoryTracker(inner, traj, sup)
    log.info("homing: %.1f s from %s to %s rad", traj.duration, np.round(q0, 3), np.round(q_home, 3))
    loop = ControlLoop(backend, tracker, sup, rate_hz)
    try:
        loop.run_for(traj.duration + settle_s)
    except RuntimeError as exc:
        raise HomingError(f"homing stopped: {exc}") from exc
    if sup.state is not SupervisorState.RUN:
        raise HomingError(f"homing stopped by the supervisor ({sup.state.value}); see the log for why")
    q = np.asarray(backend.read().q, dtype=float)
    _check_arrived(backend, q, q0, q_home, tol)
    return q
