"""pinocchio as the reference for the chain's kinematics and dynamics (test support, not a test).

``pin_q`` maps chain angles to pinocchio's configuration of the full URDF model; ``ReducedModel``
is pinocchio's model reduced to the chain's joints (as ``Chain.from_urdf`` reads the inertias),
with gravity set to the chain's, expressed in pinocchio's root frame.
"""

from __future__ import annotations

import math

import numpy as np
import pinocchio as pin

from machaon.kinematics import Chain


def pin_q(model: pin.Model, chain: Chain, q: np.ndarray) -> np.ndarray:
    """Chain angles -> pinocchio's configuration vector of ``model`` (other joints neutral).

    Continuous joints are stored by pinocchio as (cos, sin).
    """
    qp = pin.neutral(model)
    for name, qi in zip(chain.joint_names, q, strict=True):
        jm = model.joints[model.getJointId(name)]
        if jm.nq == 2:
            qp[jm.idx_q] = math.cos(qi)
            qp[jm.idx_q + 1] = math.sin(qi)
        else:
            qp[jm.idx_q] = qi
    return qp


class ReducedModel:
    """pinocchio's model of ``chain``'s URDF reduced to the chain's joints, evaluated like the chain.

    ``payload``: (mass, com, inertia) in the chain's tool frame, added to the last joint's body.
    """

    def __init__(self, chain: Chain, payload: tuple[float, np.ndarray, np.ndarray] | None = None) -> None:
        full = pin.buildModelFromUrdf(str(chain.urdf_path))
        keep = {full.getJointId(n) for n in chain.joint_names}
        lock = [j for j in range(1, full.njoints) if j not in keep]
        self.model = pin.buildReducedModel(full, lock, pin.neutral(full)) if lock else full
        self.data = self.model.createData()
        self.chain = chain
        self.iv = [self.model.joints[self.model.getJointId(n)].idx_v for n in chain.joint_names]
        # The base link is upstream of every chain joint, so its pose in the root frame is fixed.
        fb = self.model.getFrameId(chain.base_link, pin.FrameType.BODY)
        pin.framesForwardKinematics(self.model, self.data, pin.neutral(self.model))
        self.R_root_base = self.data.oMf[fb].rotation.copy()
        if payload is not None:
            mass, com, inertia = payload
            last = self.model.getJointId(chain.joint_names[-1])
            ft = self.model.getFrameId(chain.tip_link, pin.FrameType.BODY)
            T_joint_tool = self.model.frames[ft].placement.homogeneous @ chain.T_flange_tool
            Y = pin.Inertia(float(mass), np.asarray(com, dtype=float), np.asarray(inertia, dtype=float))
            self.model.inertias[last] = self.model.inertias[last] + pin.SE3(T_joint_tool).act(Y)
            self.data = self.model.createData()

    def _set_gravity(self) -> None:
        self.model.gravity.linear = self.R_root_base @ self.chain.gravity

    def q(self, q: np.ndarray) -> np.ndarray:
        return pin_q(self.model, self.chain, q)

    def v(self, dq: np.ndarray) -> np.ndarray:
        v = np.zeros(self.model.nv)
        v[self.iv] = dq
        return v

    def rnea(self, q, dq, ddq) -> np.ndarray:
        self._set_gravity()
        return pin.rnea(self.model, self.data, self.q(q), self.v(dq), self.v(ddq))[self.iv]

    def gravity(self, q) -> np.ndarray:
        self._set_gravity()
        return pin.computeGeneralizedGravity(self.model, self.data, self.q(q))[self.iv]

    def mass_matrix(self, q) -> np.ndarray:
        M = pin.crba(self.model, self.data, self.q(q))
        M = np.triu(M) + np.triu(M, 1).T
        return M[np.ix_(self.iv, self.iv)]

    def coriolis(self, q, dq) -> np.ndarray:
        self._set_gravity()
        qp, v = self.q(q), self.v(dq)
        return (pin.nonLinearEffects(self.model, self.data, qp, v)
                - pin.computeGeneralizedGravity(self.model, self.data, qp))[self.iv]
