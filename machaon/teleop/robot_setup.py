"""Build the robot-side pieces of a teleoperation server from a robot description.

Chooses the inner Cartesian controller by the backend's command mode: ``CartesianImpedance``
(with gravity compensation) for torque backends, ``Admittance`` for position backends. The
backend itself is chosen by name only in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from machaon.control import Admittance, CartesianGains, CartesianImpedance
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import RobotDescription


@dataclass(frozen=True)
class RobotModel:
    """Chain (tip = the tool frame the operator drives), dynamics, and the description."""

    desc: RobotDescription
    chain: Chain
    dynamics: Dynamics


def robot_model(desc: RobotDescription, tool: str | None = None) -> RobotModel:
    """Chain and dynamics of ``desc``; with ``tool``, the chain's tip is that tool's TCP and the
    dynamics carry its mass."""
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    if tool is None:
        dyn = Dynamics.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    else:
        td = desc.tool(tool)
        chain = chain.with_tool(desc.T_flange_tool(tool))
        dyn = Dynamics.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link, payload_mass=td.mass,
                                 payload_com=tuple(np.asarray(td.com_flange, dtype=float)))
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
