"""Layer 1: serial-chain kinematics and rigid-body dynamics (Cython core; pinocchio parses the URDF).

``Chain`` (FK, Jacobian, batch and fused kernels, IK, axis IK; RNEA, gravity, mass matrix,
Coriolis; payloads, settable gravity), ``IKResult``, ``Dynamics`` (the controllers' face over a
chain's dynamics), and the SO(3) maps ``log3`` / ``exp3``.
"""

from machaon.kinematics.chain import Chain, IKResult
from machaon.kinematics.dynamics import Dynamics
from machaon.kinematics.so3 import exp3, log3

__all__ = ["Chain", "Dynamics", "IKResult", "exp3", "log3"]
