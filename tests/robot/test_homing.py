"""Homing (``machaon.robot.homing.move_home``): the arm reaches the description's home pose on a
position backend (the fake) and a torque backend (the PyBullet arm); faults and stops raise
``HomingError`` and leave the arm to the supervisor."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.errors import RobotError
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.robot.homing import HomingError, move_home
from machaon.robot.model import robot_model
from machaon.types import DeviceFault


@pytest.fixture(scope="module")
def model():
    return robot_model(load_description("machaon_arm"))


def _away(model) -> np.ndarray:
    return np.asarray(model.desc.q_home, dtype=float) + np.array([0.3, -0.2, 0.25, -0.3, 0.2, 0.4])


def test_position_backend_reaches_home(model):
    backend = FakeBackend(model.chain.dof, q0=_away(model), joint_names=model.desc.joint_names)
    q = move_home(backend, model, position_mode=True, rate_hz=250.0)
    assert np.abs(q - model.desc.q_home).max() <= 0.03
    assert np.abs(backend.read().q - model.desc.q_home).max() <= 0.03


def test_torque_backend_reaches_home():
    from machaon.sim import ArmSim

    model = robot_model(load_description("machaon_arm"))
    with ArmSim("machaon_arm", q0=_away(model)) as sim:
        q = move_home(sim, model, position_mode=False, rate_hz=1000.0)
    assert np.abs(q - model.desc.q_home).max() <= 0.03


def test_a_faulty_backend_is_not_homed(model):
    backend = FakeBackend(model.chain.dof, q0=_away(model), joint_names=model.desc.joint_names)
    backend.set_ok(False)
    with pytest.raises(HomingError, match="cannot home"):
        move_home(backend, model, position_mode=True, rate_hz=250.0)


def test_a_fault_during_the_move_stops_it(model):
    class Faulty(FakeBackend):
        def read(self):  # a persistent servo fault on every read: the supervisor stops the move
            self.inject_fault(DeviceFault("fake", "overload", "servo overload", joint=2, persistent=True))
            return super().read()

    faulty = Faulty(model.chain.dof, q0=_away(model), joint_names=model.desc.joint_names)
    with pytest.raises(HomingError, match="stopped by the supervisor") as exc:
        move_home(faulty, model, position_mode=True, rate_hz=250.0, fault_cycles=2)
    assert isinstance(exc.value, RobotError) and isinstance(exc.value, RuntimeError)
    assert np.abs(faulty.read().q - model.desc.q_home).max() > 0.03


def test_teleop_keeps_the_old_import_path():
    from machaon.teleop import robot_setup

    assert robot_setup.move_home is move_home and robot_setup.HomingError is HomingError
