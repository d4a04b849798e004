"""Build the robot-side pieces of a teleoperation server from a robot description.

Chooses the inner Cartesian controller by the backend's command mode: ``CartesianImpedance``
(with gravity compensation) for torque backends, ``Admittance`` for position backends. The
backend itself is chosen by name only in the CLI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from machaon.control import Admittance, CartesianGains, CartesianImpedance
from machaon.errors import TeleopError
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import RobotDescription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RobotModel:
    """Chain (tip = the tool frame the operator drives), dynamics, and the description."""

    desc: RobotDescription
    chain: Chain
    dynamics: Dynamics


def robot_model(desc: RobotDescription, tool: str | None = None) -> RobotModel:
    """Chain and dynamics of ``desc``; with ``tool``, the chain's tip is that tool's TCP and the
    dynamics carry its mass. The dynamics carry the description's armature (reflected rotor inertia)."""
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    if tool is None:
        dyn = Dynamics.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link, armature=desc.armature)
    else:
        td = desc.tool(tool)
        chain = chain.with_tool(desc.T_flange_tool(tool))
        dyn = Dynamics.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link, payload_mass=td.mass,
                                 payload_com=tuple(np.asarray(td.com_flange, dtype=float)), armature=desc.armature)
    return RobotModel(desc, chain, dyn)


def inner_controller(model: RobotModel, position_mode: bool, fixtures: object | None = None) -> object:
    """The inner Cartesian controller: impedance with the description's gains (torque backends)
    or admittance toward the target (position backends). ``fixtures`` (``machaon.control.fixtures``)
    act as restoring wrenches (impedance) or projections of the reference (admittance)."""
    d = model.desc
    k = np.asarray(d.cartesian_stiffness, dtype=float)
    gains = CartesianGains(stiffness=k, damping_ratio=np.full(6, d.cartesian_damping_ratio))
    if position_mode:
        return Admittance(model.chain, gains, fixtures=fixtures)
    return CartesianImpedance(model.chain, gains, dynamics=model.dynamics, tau_max=d.effort_limit, fixtures=fixtures)


def safety_settings(model: RobotModel) -> dict:
    """``SafetyConfig`` fields for this arm: the supervisor's HOLD uses the description's joint
    stiffness with damping ``2 zeta sqrt(K M_ii)`` from the mass matrix at the home pose (the
    generic defaults can be too stiffly damped for light wrist joints at low loop rates), commanded
    torques are saturated at the effort limits, and the tool stays in the description's workspace."""
    d = model.desc
    k = np.asarray(d.joint_stiffness, dtype=float)
    m_diag = np.diag(model.dynamics.mass_matrix(np.asarray(d.q_home, dtype=float)))
    return {
        "hold_stiffness": k,
        "hold_damping": 2.0 * d.joint_damping_ratio * np.sqrt(k * m_diag),
        "tau_max": np.asarray(d.effort_limit, dtype=float),
        "workspace_min": np.asarray(d.workspace_min, dtype=float),
        "workspace_max": np.asarray(d.workspace_max, dtype=float),
    }


class HomingError(TeleopError, RuntimeError):
    """The arm could not be brought to (or was not found at) a pose the teleop server can start from."""


def outside_workspace(model: RobotModel, q: np.ndarray) -> str | None:
    """Why the tool (``model.chain`` tip at joint angles ``q``, rad) is outside the description's
    workspace box, or None when it is inside. The supervisor stops the arm at once when its tool
    starts outside the box, so the server checks this before it starts (and offers ``--home``)."""
    p = model.chain.fk(np.asarray(q, dtype=float))[:3, 3]
    lo, hi = np.asarray(model.desc.workspace_min, dtype=float), np.asarray(model.desc.workspace_max, dtype=float)
    bad = [f"{'xyz'[i]}={p[i]:.3f} m not in [{lo[i]:.3f}, {hi[i]:.3f}]" for i in range(3) if not lo[i] <= p[i] <= hi[i]]
    if not bad:
        return None
    return f"tool at [{p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}] m is outside the workspace box ({'; '.join(bad)})"


class _JointPositionTarget:
    """Streams a joint position target (with velocity feed-forward) to a position-mode backend; the
    servos close the loop. ``set_target(q, dq)`` as ``JointImpedance``."""

    def __init__(self, dof: int) -> None:
        self._q: np.ndarray | None = None
        self._dq = np.zeros(dof)

    def set_target(self, q_d: np.ndarray, dq_d: np.ndarray | None = None) -> None:
        self._q = np.array(q_d, dtype=float)
        self._dq = np.zeros_like(self._q) if dq_d is None else np.array(dq_d, dtype=float)

    def update(self, state: object, t: float) -> object:
        from machaon.types import JointCommand

        q = np.asarray(state.q, dtype=float) if self._q is None else self._q
        return JointCommand.position(q, self._dq)


def move_home(
    backend: object,
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
    from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
    from machaon.control.trajectory import JointTrajectory, TrajectoryTracker
    from machaon.robot.loop import ControlLoop
    from machaon.types import CommandMode

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
    safety = safety_settings(model)
    safety.pop("workspace_min")
    safety.pop("workspace_max")
    safety.update(dq_max=np.asarray(d.velocity_limit, dtype=float), tool_speed_max=None, fault_cycles=fault_cycles)
    if position_mode:
        safety["hold_mode"] = CommandMode.POSITION
        inner = _JointPositionTarget(model.chain.dof)
    else:
        inner = JointImpedance(model.chain.dof, np.asarray(d.joint_stiffness, dtype=float), d.joint_damping_ratio,
                               dynamics=model.dynamics, tau_max=np.asarray(d.effort_limit, dtype=float))
    sup = Supervisor(SafetyConfig.from_chain(model.chain, **safety), chain=model.chain,
                     dynamics=None if position_mode else model.dynamics)
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
    err = np.abs(q - q_home)
    if not (err <= tol).all():
        raise HomingError(f"homing ended {np.round(err, 3).tolist()} rad from home (tolerance {tol} rad)")
    return q
