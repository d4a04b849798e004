"""Layer 1: serial-chain kinematics (Cython core) and dynamics (pinocchio).

``Chain`` (FK, Jacobian, batch and fused kernels, IK, axis IK), ``IKResult``, ``Dynamics``,
and the SO(3) maps ``log3`` / ``exp3``.
"""

from machaon.kinematics.chain import Chain, IKResult
from machaon.kinematics.dynamics import Dynamics
from machaon.kinematics.so3 import exp3, log3

__all__ = ["Chain", "Dynamics", "IKResult", "exp3", "log3"]
