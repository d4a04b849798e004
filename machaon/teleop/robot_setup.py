"""Build the robot-side pieces of a teleoperation server from a robot description.

Chooses the inner Cartesian controller by the backend's command mode: ``CartesianImpedance``
(with gravity compensation) for torque backends, ``Admittance`` for position backends. The
backend itself is chosen by name only in the CLI. The robot's model (``RobotModel``,
``robot_model``, ``safety_settings``, ``outside_workspace``) lives in ``machaon.robot.model`` and
homing (``move_home``, ``HomingError``) in ``machaon.robot.homing``; both are re-exported here.
"""

from __future__ import annotations

import logging

import numpy as np

from machaon.control import Admittance, CartesianGains, CartesianImpedance
from machaon.control.fixtures import Fixture
from machaon.robot.homing import HomingError, move_home
from machaon.robot.model import RobotModel, outside_workspace, robot_model, safety_settings

__all__ = [
    "HomingError",
    "RobotModel",
    "inner_controller",
    "move_home",
    "outside_workspace",
    "robot_model",
    "safety_settings",
]

log = logging.getLogger(__name__)


def inner_controller(
    model: RobotModel, position_mode: bool, fixtures: Fixture | None = None
) -> CartesianImpedance | Admittance:
    """The inner Cartesian controller: impedance with the description's gains (torque backends)
    or admittance toward the target (position backends). ``fixtures`` (``machaon.control.fixtures``)
    act as restoring wrenches (impedance) or projections of the reference (admittance)."""
    d = model.desc
    k = np.asarray(d.cartesian_stiffness, dtype=float)
    gains = CartesianGains(stiffness=k, damping_ratio=np.full(6, d.cartesian_damping_ratio))
    if position_mode:
        return Admittance(model.chain, gains, fixtures=fixtures)
    return CartesianImpedance(model.chain, gains, dynamics=model.dynamics, tau_max=d.effort_limit, fixtures=fixtures)
