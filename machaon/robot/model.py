"""A robot's model for control: its kinematic chain to the tool, its dynamics, its description.

``robot_model(desc, tool)`` builds a ``RobotModel`` from a ``machaon.robot.description``
(``Chain`` and ``Dynamics`` from the URDF, the tool's frame and mass); ``safety_settings`` gives
the ``SafetyConfig`` fields the description implies (hold gains, torque saturation, workspace);
``outside_workspace`` says why a tool pose is outside the description's workspace box. Used by
whoever drives a described robot: homing (``machaon.robot.homing``), teleoperation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import RobotDescription

__all__ = ["RobotModel", "outside_workspace", "robot_model", "safety_settings"]


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
