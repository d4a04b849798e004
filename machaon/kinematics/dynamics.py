"""Rigid-body dynamics terms of a chain through pinocchio: gravity, mass matrix, nonlinear effects.

The model is the URDF's, reduced to the chain's joints (every other joint locked at its neutral
value). Gravity is pinocchio's default, -9.81 m/s^2 along the root frame's z; for the usual arm
whose base link is the URDF root that is the base frame. Units: N m (revolute), N (prismatic).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pinocchio as pin

from machaon._validate import finite_array, transform
from machaon.kinematics.chain import Chain


class Dynamics:
    """Dynamics of ``chain`` with an optional payload (mass in kg, centre of mass in the tool frame).

    ``armature`` (kg m^2, per chain joint, default none): reflected rotor inertia of each joint's
    drive, added to the mass matrix diagonal and to the inertial torques (pinocchio's armature);
    gearmotor arms need it, since it can exceed the link inertia. Bad input (NaN, Inf, wrong
    shape) raises ``ValueError`` naming the argument.
    """

    def __init__(self, chain: Chain, payload_mass: float = 0.0, payload_com: np.ndarray = (0.0, 0.0, 0.0),
                 armature: np.ndarray | None = None):
        if not np.isfinite(payload_mass) or payload_mass < 0:
            raise ValueError("payload_mass: must be a finite mass >= 0 kg")
        com = finite_array("payload_com", payload_com, (3,))
        arm = None if armature is None else finite_array("armature", armature, (chain.dof,))
        if arm is not None and (arm < 0).any():
            raise ValueError("armature: must be >= 0 kg m^2")
        full = pin.buildModelFromUrdf(str(chain.urdf_path))
        keep = {full.getJointId(name) for name in chain.joint_names}
        lock = [j for j in range(1, full.njoints) if j not in keep]
        self.model = pin.buildReducedModel(full, lock, pin.neutral(full)) if lock else full
        self.chain = chain
        self.payload_mass = float(payload_mass)
        if payload_mass > 0:
            tip = self.model.frames[self.model.getFrameId(chain.tip_link, pin.FrameType.BODY)]
            # Payload as a point mass at its centre of mass, expressed in the tool frame.
            T_joint_tool = tip.placement.homogeneous @ chain.T_flange_tool
            p_joint = T_joint_tool[:3, :3] @ com + T_joint_tool[:3, 3]
            inertia = pin.Inertia(float(payload_mass), p_joint, np.zeros((3, 3)))
            self.model.inertias[tip.parentJoint] = self.model.inertias[tip.parentJoint] + inertia
        self._idx_v = np.array([self.model.joints[self.model.getJointId(n)].idx_v for n in chain.joint_names])
        if arm is not None:
            self.model.armature[self._idx_v] = arm
        self.data = self.model.createData()
        # Where each chain angle goes in pinocchio's configuration vector, resolved once (the
        # lookups cost more than the dynamics): plain joints take q, continuous ones (cos, sin).
        idx_q = np.array([self.model.joints[self.model.getJointId(n)].idx_q for n in chain.joint_names])
        self._plain = ~chain.continuous
        self._iq_plain = idx_q[self._plain]
        self._iq_cont = idx_q[chain.continuous]
        self._q_neutral = pin.neutral(self.model)
        n = chain.dof
        # Fast path (the usual arm: every joint plain, pinocchio's order = the chain's): q goes to
        # pinocchio as is and its outputs need no reordering. Checked once here, not per call.
        self._identity = (
            not chain.continuous.any() and self.model.nq == n and self.model.nv == n
            and np.array_equal(idx_q, np.arange(n)) and np.array_equal(self._idx_v, np.arange(n))
        )
        self._tril = np.tril_indices(self.model.nv, -1)

    @classmethod
    def from_urdf(
        cls,
        path: str | Path,
        base_link: str,
        tip_link: str,
        payload_mass: float = 0.0,
        payload_com: np.ndarray = (0.0, 0.0, 0.0),
        T_flange_tool: np.ndarray | None = None,
        armature: np.ndarray | None = None,
    ) -> Dynamics:
        """Dynamics of the chain ``base_link`` -> ``tip_link`` of a URDF (see ``Chain.from_urdf``)."""
        chain = Chain.from_urdf(path, base_link, tip_link)
        if T_flange_tool is not None:
            chain = chain.with_tool(transform("T_flange_tool", T_flange_tool))
        return cls(chain, payload_mass, payload_com, armature)

    def _checked(self, q: np.ndarray) -> np.ndarray:
        """``q`` as a checked C-contiguous float64 (dof,) array (``finite_array`` semantics, cheaper when valid).

        The per-cycle callers pass float64 vectors of the right shape; for those one dot product
        proves every element finite (a NaN/Inf or an overflow makes it non-finite; overflow falls
        back to the full check, which accepts it). Anything else takes ``finite_array``.
        """
        if (type(q) is np.ndarray and q.dtype == np.float64 and q.shape == (self.chain.dof,)
                and q.flags.c_contiguous and math.isfinite(sum(q.tolist()))):
            return q
        return finite_array("q", q, (self.chain.dof,))

    def _q(self, q: np.ndarray) -> np.ndarray:
        q = self._checked(q)
        if self._identity:
            return q
        qp = self._q_neutral.copy()
        qp[self._iq_plain] = q[self._plain]
        if self._iq_cont.size:
            qc = q[~self._plain]
            qp[self._iq_cont] = np.cos(qc)
            qp[self._iq_cont + 1] = np.sin(qc)
        return qp

    def _reorder(self, v: np.ndarray) -> np.ndarray:
        if self._identity:
            return v  # pinocchio returns a new array (a copy of its data), already in chain order
        return np.ascontiguousarray(v[self._idx_v])

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Generalised gravity torques g(q) (dof,)."""
        return self._reorder(pin.computeGeneralizedGravity(self.model, self.data, self._q(q)))

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        """Joint-space inertia M(q) (dof x dof), symmetric positive definite."""
        M = pin.crba(self.model, self.data, self._q(q))  # a new array; only its upper triangle is set
        low = self._tril
        M[low] = M.T[low]
        if self._identity:
            return M
        return np.ascontiguousarray(M[np.ix_(self._idx_v, self._idx_v)])

    def nonlinear(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Coriolis, centrifugal and gravity torques C(q, dq) dq + g(q) (dof,)."""
        v = np.zeros(self.model.nv)
        v[self._idx_v] = finite_array("dq", dq, (self.chain.dof,))
        return self._reorder(pin.nonLinearEffects(self.model, self.data, self._q(q), v))
