"""Gear-motor armature in PyBullet: the exact joint torques that make PyBullet move as an arm whose
drives have reflected rotor inertia would.

A servo's rotor turns ``ratio`` times faster than its joint, so its inertia counts ``ratio^2``
times, and for its own joint only: the "armature" ``A`` on the mass matrix's diagonal (a 350:1
wrist servo's is a thousand times its link's inertia). PyBullet has no such term, and adding it to
a link's inertia would also load every joint upstream whose axis is parallel. So each physics step
:meth:`ArmatureDynamics.torque` solves ``(M + A) ddq = tau - b dq - f_c tanh(dq / v) - h + J^T f``
(M and the bias h of gravity and Coriolis terms from pinocchio on the very URDF PyBullet loaded,
because PyBullet's own inverse dynamics drops rotated inertia frames; b the joint damping, f_c the
Coulomb friction, smoothed over ``v`` = 0.01 rad/s as the servo emulator's; f the external forces
given to ``ArmSim.set_external_force``, which PyBullet also applies) and returns the torque that
gives PyBullet's own ``M ddq = tau' - b dq - h + J^T f`` the same acceleration. Exact for the
commanded torques, gravity, Coriolis terms and the given forces; contacts act without the
armature (their equilibria are exact).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pinocchio as pin

__all__ = ["ArmatureDynamics"]

COULOMB_SMOOTHING_RAD_S = 0.01


class ArmatureDynamics:
    """The armature solve for one loaded arm (module docstring).

    ``urdf_text``: the URDF PyBullet loaded (tool included); ``joint_names``: the arm's joints, which
    must be the URDF's only movable joints, in order (``ValueError`` otherwise); ``R_world_base``:
    the base's orientation in the world; ``gravity_m_s2``: PyBullet's gravity magnitude (world -z).
    """

    def __init__(self, urdf_text: str, joint_names: Sequence[str], R_world_base: np.ndarray,
                 gravity_m_s2: float) -> None:
        model = pin.buildModelFromXML(urdf_text)
        model.gravity.linear = np.asarray(R_world_base).T @ np.array([0.0, 0.0, -gravity_m_s2])
        n = len(joint_names)
        idx = [model.joints[model.getJointId(name)].idx_v for name in joint_names]
        if model.nq != n or model.nv != n or idx != list(range(n)):
            raise ValueError("armature: needs an arm whose only movable joints are its chain's, in order")
        self.model, self.data, self.n = model, model.createData(), n
        self._R_base_world = np.asarray(R_world_base).T.copy()

    def torque(self, q: np.ndarray, dq: np.ndarray, tau: np.ndarray, armature: np.ndarray, damping: np.ndarray,
               coulomb: np.ndarray, forces_world: Mapping[str, np.ndarray]) -> list[float]:
        """The joint torques (N m) to apply this step (module docstring); ``forces_world``: link
        name -> force (N, world frame) at the link's frame origin."""
        model, data = self.model, self.data
        M = pin.crba(model, data, q)
        M = np.triu(M) + np.triu(M, 1).T
        h = pin.rnea(model, data, q, dq, np.zeros(self.n))
        if forces_world:
            h = h - self.external_torque(q, forces_world)
        bdq = damping * dq
        friction = coulomb * np.tanh(dq / COULOMB_SMOOTHING_RAD_S)
        ddq = np.linalg.solve(M + np.diag(armature), tau - bdq - friction - h)
        return (M @ ddq + bdq + h).tolist()

    def external_torque(self, q: np.ndarray, forces_world: Mapping[str, np.ndarray]) -> np.ndarray:
        """Joint torques (N m) of forces on links (J^T f at each link's frame origin)."""
        model, data = self.model, self.data
        pin.computeJointJacobians(model, data, q)
        pin.updateFramePlacements(model, data)
        tau = np.zeros(self.n)
        for name, f in forces_world.items():
            J = pin.getFrameJacobian(model, data, model.getFrameId(name), pin.LOCAL_WORLD_ALIGNED)[:3]
            tau += J.T @ (self._R_base_world @ np.asarray(f, dtype=np.float64))
        return tau
