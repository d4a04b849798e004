"""ArmSim's armature (reflected rotor inertia) and persistent external forces, against pinocchio's
forward dynamics with the same armature: exact for the joint it belongs to, and no spill-over onto
joints upstream with parallel axes (what adding it to link inertias would do)."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from machaon.robot.description import load_description
from machaon.sim import ArmSim
from machaon.types import JointCommand


@pytest.fixture(scope="module")
def desk():
    return load_description("desk")


def _pin(desc, armature):
    m = pin.buildModelFromUrdf(str(desc.urdf_path))
    m.armature[:] = armature
    return m, m.createData()


def _one_step_ddq(sim, tau):
    dq0 = sim.read().dq.copy()
    sim.write(JointCommand.torque(tau))
    sim.step(1)
    return (sim.read().dq - dq0) / sim.dt


def test_armature_matches_pinocchio_forward_dynamics(desk):
    m, d = _pin(desk, desk.armature)
    m0, d0 = _pin(desk, np.zeros(6))
    tau = np.array([0.3, 0.5, -0.2, 0.05, 0.04, 0.02])
    with ArmSim(desk, joint_damping=np.zeros(6), joint_friction=np.zeros(6)) as sim:
        q = sim.read().q.copy()
        ddq = _one_step_ddq(sim, tau)
    np.testing.assert_allclose(ddq, pin.aba(m, d, q, np.zeros(6), tau), rtol=1e-4, atol=1e-6)
    # the wrist is a thousand times heavier with its servo's rotor than without
    assert abs(pin.aba(m0, d0, q, np.zeros(6), tau)[5]) > 100 * abs(ddq[5])
    # and the shoulder pan is not loaded by the wrist roll's rotor (parallel axes at home)
    M = pin.crba(m, d, q)
    assert M[0, 0] == pytest.approx(pin.crba(m0, d0, q)[0, 0] + desk.armature[0], rel=1e-9)


def test_external_force_is_exact_with_armature_and_gravity(desk):
    m, d = _pin(desk, desk.armature)
    f = np.array([0.0, 0.0, -5.0])
    with ArmSim(desk, joint_damping=np.zeros(6), joint_friction=np.zeros(6)) as sim:
        q = sim.read().q.copy()
        g = pin.computeGeneralizedGravity(m, d, q)
        sim.set_external_force(sim.tcp_link, f)
        ddq = _one_step_ddq(sim, g)  # gravity compensated: only the push accelerates the arm
        J = pin.computeFrameJacobian(m, d, q, m.getFrameId("flange"), pin.LOCAL_WORLD_ALIGNED)[:3]
        np.testing.assert_allclose(ddq, pin.aba(m, d, q, np.zeros(6), g + J.T @ f), rtol=1e-3, atol=1e-5)
        sim.set_external_force(sim.tcp_link, None)
        assert np.allclose(_one_step_ddq(sim, pin.computeGeneralizedGravity(m, d, sim.read().q)), 0.0, atol=1e-3)
        with pytest.raises(ValueError, match="link"):
            sim.set_external_force("no_such_link", f)
        with pytest.raises(ValueError):
            sim.set_external_force(sim.tcp_link, [np.nan, 0.0, 0.0])
