"""The control layer's protocols: every controller the package ships is a ``Controller``; the ones
``TrajectoryTracker`` drives are ``TargetController``s; ``Dynamics`` is a ``DynamicsModel``."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.control import (
    Admittance,
    CartesianGains,
    CartesianImpedance,
    Controller,
    JointImpedance,
    TargetController,
)
from machaon.control.controller import DynamicsModel
from machaon.control.supervisor import Supervisor
from machaon.control.trajectory import JointTrajectory, TrajectoryTracker
from machaon.robot import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import JointCommand


def _gains() -> CartesianGains:
    return CartesianGains(stiffness=np.full(6, 100.0), damping_ratio=np.full(6, 0.7))


def test_the_package_controllers_satisfy_the_protocols(arm, arm_dyn):
    targeted = [
        JointImpedance(arm.dof, 100.0),
        CartesianImpedance(arm, _gains(), dynamics=arm_dyn),
        Admittance(arm, _gains()),
    ]
    for c in targeted:
        assert isinstance(c, Controller) and isinstance(c, TargetController), type(c).__name__
    q0 = np.zeros(arm.dof)
    tracker = TrajectoryTracker(targeted[0], JointTrajectory(q0, q0 + 0.1, 1.0, 2.0), Supervisor())
    assert isinstance(tracker, Controller) and not isinstance(tracker, TargetController)
    assert isinstance(arm_dyn, DynamicsModel)
    # the compiled Chain carries its own dynamics (``gravity_torque``, ``mass_matrix``); controllers take
    # it as ``dynamics=`` too, but its ``gravity`` is the gravity vector, not the model's method
    assert callable(arm_dyn.gravity) and not callable(arm.gravity)


def test_objects_without_the_methods_are_not_controllers():
    class OnlyTarget:
        def set_target(self, target, rate=None):
            pass

    assert not isinstance(object(), Controller)
    assert not isinstance(OnlyTarget(), Controller)
    with pytest.raises(ValueError, match="update"):
        ControlLoop(FakeBackend(2), OnlyTarget())  # type: ignore[arg-type]


def test_a_structural_controller_runs_in_the_loop():
    """No inheritance needed: a class with ``update`` is a controller, and ``on_activate`` is called once."""

    class Zero:
        activations = 0

        def on_activate(self, state, t):
            self.activations += 1

        def update(self, state, t):
            return JointCommand.torque(np.zeros(2))

    c = Zero()
    assert isinstance(c, Controller)
    ControlLoop(FakeBackend(2), c, rate_hz=100.0).run_for(0.05)
    assert c.activations == 1
