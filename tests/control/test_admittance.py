"""Admittance control on a position-mode robot: deflection = wrench / stiffness, in the task frame."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.control import Admittance, CartesianGains, pose_error
from machaon.control.fixtures import LineGuide
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import CommandMode

Q0 = np.array([0.1, -0.4, 1.1, 0.1, 0.8, 0.0])


def run(arm, ctrl, wrench, seconds=2.0):
    backend = FakeBackend(6, q0=Q0)
    backend.set_wrench_tool(wrench)
    loop = ControlLoop(backend, ctrl, Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None)))
    loop.run_for(seconds)
    assert loop.last_command.mode is CommandMode.POSITION
    return arm.fk(backend.read().q)


def test_constant_force_gives_the_spring_deflection(arm):
    T0 = arm.fk(Q0)
    ctrl = Admittance(arm, CartesianGains(np.array([1000.0, 1000.0, 1000.0, 20.0, 20.0, 20.0]), 1.0, frame="base"))
    T = run(arm, ctrl, np.array([5.0, 0.0, -2.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(T[:3, 3] - T0[:3, 3], [0.005, 0.0, -0.002], atol=2e-5)
    np.testing.assert_allclose(T[:3, :3], T0[:3, :3], atol=1e-4)


def test_no_wrench_holds_and_moment_turns(arm):
    T0 = arm.fk(Q0)
    ctrl = Admittance(arm, CartesianGains(np.array([1000.0] * 3 + [10.0] * 3), 1.0, frame="base"))
    T = run(arm, ctrl, None, seconds=0.5)
    np.testing.assert_allclose(T, T0, atol=1e-9)
    ctrl = Admittance(arm, CartesianGains(np.array([1000.0] * 3 + [10.0] * 3), 1.0, frame="base"))
    T = run(arm, ctrl, np.array([0, 0, 0, 0, 0, 0.5]))
    rot = -pose_error(T, T0)[3:]  # rotation from T0 to T, base frame
    np.testing.assert_allclose(rot, [0, 0, 0.05], atol=5e-4)


def test_axial_gains_in_the_target_frame(arm):
    """Soft along the target z (a drill axis), stiff across it."""
    T0 = arm.fk(Q0)
    z = T0[:3, 2]
    gains = CartesianGains.axial(k_across=5000.0, k_along=200.0, k_rot_across=50.0, k_rot_about=50.0,
                                 damping_ratio=1.0)
    f = 2.0 * z + 2.0 * T0[:3, 0]  # 2 N along the axis, 2 N across
    T = run(arm, Admittance(arm, gains), np.concatenate([f, np.zeros(3)]))
    d = T[:3, 3] - T0[:3, 3]
    assert d @ z == pytest.approx(2.0 / 200.0, rel=0.01)
    assert d @ T0[:3, 0] == pytest.approx(2.0 / 5000.0, rel=0.02)


def test_fixture_constrains_the_reference(arm):
    T0 = arm.fk(Q0)
    guide = LineGuide(T0[:3, 3], [0, 0, 1], k=0.0)
    ctrl = Admittance(arm, CartesianGains(np.array([500.0] * 3 + [20.0] * 3), 1.0, frame="base"), fixtures=guide)
    T = run(arm, ctrl, np.array([3.0, 0.0, 1.0, 0, 0, 0]))
    d = T[:3, 3] - T0[:3, 3]
    np.testing.assert_allclose(d[:2], 0.0, atol=2e-5)  # only motion along the line
    assert d[2] == pytest.approx(1.0 / 500.0, rel=0.01)


def test_bad_wrench_is_ignored_and_bad_target_rejected(arm, caplog):
    T0 = arm.fk(Q0)
    ctrl = Admittance(arm, CartesianGains.isotropic(1000.0, 20.0, 1.0))
    T = run(arm, ctrl, None, seconds=0.01)
    ctrl2 = Admittance(arm, CartesianGains.isotropic(1000.0, 20.0, 1.0),
                       wrench_source=lambda s: np.array([np.nan] * 6))
    T = run(arm, ctrl2, None, seconds=0.2)
    np.testing.assert_allclose(T, T0, atol=1e-9)
    assert "non-finite wrench" in caplog.text
    bad = T0.copy()
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match="T_base_target"):
        ctrl2.set_target(bad)


def test_torque_wrench_estimator_inverts_the_static_balance(arm, arm_dyn):
    from machaon.control import TorqueWrenchEstimator
    from machaon.types import JointState

    w = np.array([3.0, -2.0, 5.0, 0.2, 0.1, -0.3])
    est = TorqueWrenchEstimator(arm, arm_dyn, cutoff_hz=None, damping=0.0)
    tau = arm_dyn.gravity(Q0) - arm.jacobian(Q0).T @ w
    np.testing.assert_allclose(est(JointState(0.0, Q0, np.zeros(6), tau)), w, atol=1e-9)
    smooth = TorqueWrenchEstimator(arm, arm_dyn, cutoff_hz=10.0, damping=0.0)
    smooth(JointState(0.0, Q0, np.zeros(6), arm_dyn.gravity(Q0)))  # starts at zero wrench
    out = [smooth(JointState(1e-3 * i, Q0, np.zeros(6), tau)) for i in range(1, 200)]
    assert np.linalg.norm(out[0]) < 0.1 * np.linalg.norm(w)  # low-passed...
    np.testing.assert_allclose(out[-1], w, rtol=1e-4)  # ...and converged after 20 time constants
