"""Layer 2: impedance laws (Cython core), admittance, trajectories, virtual fixtures, the safety supervisor.

- ``Controller`` (``update(state, t) -> JointCommand``) and ``TargetController`` (plus
  ``set_target``): the protocols every controller satisfies (``machaon.control.controller``).
- ``cartesian_impedance_torque``, ``joint_impedance_torque``, ``limit_torque``, ``pose_error``:
  the laws' functional faces; ``JointImpedance``, ``CartesianImpedance``, ``Admittance``: controllers
  with ``update(state, t) -> JointCommand`` (``machaon.control.impedance`` / ``.admittance``);
  ``TorqueWrenchEstimator`` estimates the tool wrench from joint torques for admittance.
- ``machaon.control.trajectory``: minimum-jerk and trapezoidal profiles, joint/Cartesian trajectories.
- ``machaon.control.fixtures``: line guide, plane boundary, forbidden sphere/cylinder, depth stop.
- ``machaon.control.supervisor``: ``Supervisor``, ``SupervisorState``, ``SafetyConfig``.
"""

from machaon.control.admittance import Admittance, TorqueWrenchEstimator
from machaon.control.controller import Controller, TargetController
from machaon.control.impedance import (
    CartesianGains,
    CartesianImpedance,
    JointImpedance,
    cartesian_damping,
    cartesian_impedance_torque,
    cartesian_inertia,
    joint_impedance_torque,
    limit_torque,
    pose_error,
)
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorEvent, SupervisorState

__all__ = [
    "Admittance",
    "CartesianGains",
    "CartesianImpedance",
    "Controller",
    "JointImpedance",
    "SafetyConfig",
    "Supervisor",
    "SupervisorEvent",
    "SupervisorState",
    "TargetController",
    "TorqueWrenchEstimator",
    "cartesian_damping",
    "cartesian_impedance_torque",
    "cartesian_inertia",
    "joint_impedance_torque",
    "limit_torque",
    "pose_error",
]
