"""ArmSim's per-cycle read/write paths: same checks, same numbers as the general path."""

from __future__ import annotations

import numpy as np
import pybullet as p
import pytest

from machaon.sim import ArmSim
from machaon.types import JointCommand


def test_torque_write_checks_every_cycle_and_keeps_the_last_good_command(arm_desc):
    n = arm_desc.dof
    with ArmSim(arm_desc, gravity=0.0) as sim:
        good = np.linspace(-0.5, 0.5, n)
        sim.write(JointCommand.torque(good))
        sim.write(JointCommand.torque(good))  # motors already in torque mode: the fast path
        for bad in (np.nan, np.inf, -np.inf):
            tau = good.copy()
            tau[n // 2] = bad
            with pytest.raises(ValueError, match="cmd.tau: contains NaN or Inf"):
                sim.write(JointCommand.torque(tau))
        np.testing.assert_array_equal(sim.read().tau, good)  # the bad commands changed nothing
        # Finite torques whose sum overflows are valid commands: they saturate at the effort limits.
        sim.write(JointCommand.torque(np.full(n, 1e308)))
        np.testing.assert_array_equal(sim.read().tau, arm_desc.effort_limit)
        sim.write(JointCommand.torque(list(-np.full(n, 1e308))))  # not an ndarray: the general path
        np.testing.assert_array_equal(sim.read().tau, -np.asarray(arm_desc.effort_limit))


def test_read_matches_pybullet_and_stepping_applies_the_torque(arm_desc):
    n = arm_desc.dof
    with ArmSim(arm_desc) as sim:
        tau = np.array([1.0, -2.0, 0.5, 0.1, -0.1, 0.02])[:n]
        sim.write(JointCommand.torque(tau))
        sim.step(5)
        st = sim.read()
        js = p.getJointStates(sim.body, sim.joint_indices, physicsClientId=sim.client)
        np.testing.assert_array_equal(st.q, [s[0] for s in js])
        np.testing.assert_array_equal(st.dq, [s[1] for s in js])
        np.testing.assert_array_equal(st.tau, tau + np.array([s[3] for s in js]))
        for a in (st.q, st.dq, st.tau):
            assert a.dtype == np.float64 and a.shape == (n,) and a.flags.c_contiguous
        # A zero command applies nothing (the step skips the torque call), a non-zero one moves the arm.
        with ArmSim(arm_desc, gravity=0.0) as rest:
            rest.write(JointCommand.torque(np.zeros(n)))
            rest.step(20)
            assert np.abs(rest.read().dq).max() == 0.0
            push = np.zeros(n)
            push[0] = 1.0
            rest.write(JointCommand.torque(push))
            rest.step(20)
            assert rest.read().dq[0] > 0.0


def _wrench_from_pybullet_frames(sim, raw):
    """The documented F/T model evaluated with PyBullet's own sensor-frame orientation (getLinkState)."""
    st = p.getLinkState(sim.body, sim._sensor_joint, computeForwardKinematics=True, physicsClientId=sim.client)
    R = np.asarray(p.getMatrixFromQuaternion(st[1])).reshape(3, 3)
    mass, com = sim.payload
    w = np.array([0.0, 0.0, -mass * sim.gravity])
    f = -R @ np.asarray(raw[:3]) - w
    m = -R @ np.asarray(raw[3:]) - np.cross(R @ com, w)
    m -= np.cross(R @ sim._p_tcp_sensor, f)
    R_bw = sim.T_world_base[:3, :3].T
    return np.concatenate([R_bw @ f, R_bw @ m])


def test_tool_wrench_from_compiled_kinematics_equals_pybullets_sensor_frame(arm_desc):
    """The sensor frame's orientation comes from the chain's FK: same wrench as with PyBullet's frame."""
    n = arm_desc.dof
    T_wb = np.eye(4)
    T_wb[:3, :3] = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # a wall-mounted base
    rng = np.random.default_rng(4)
    with ArmSim(arm_desc, tool="drill_guide", T_world_base=T_wb) as sim:
        lo, hi = np.asarray(arm_desc.lower), np.asarray(arm_desc.upper)
        for _ in range(5):
            sim.reset(rng.uniform(0.8 * lo, 0.8 * hi), rng.normal(scale=0.5, size=n))
            sim.write(JointCommand.torque(rng.normal(scale=2.0, size=n)))
            sim.step(3)
            st = sim.read()
            raw = sim.sensor_wrench_raw()
            np.testing.assert_allclose(st.wrench_tool, _wrench_from_pybullet_frames(sim, raw), rtol=1e-9, atol=1e-9)
    with ArmSim(arm_desc, ft_sensor=False) as sim:
        assert sim.read().wrench_tool is None
        assert sim._read_idx == sim.joint_indices  # no F/T joint in the per-cycle reading


def test_compiled_step_moves_the_arm_exactly_as_pybullets_keyword_calls_do(arm_desc):
    """``ArmSim.step`` calls PyBullet positionally (TORQUE_CONTROL ignores the target and gain
    sequences it must pass): the same physics, bit for bit, as the documented keyword calls."""
    n = arm_desc.dof
    rng = np.random.default_rng(7)
    taus = [rng.normal(scale=3.0, size=n) for _ in range(40)]
    with ArmSim(arm_desc, tool="drill_guide") as compiled, ArmSim(arm_desc, tool="drill_guide") as keyword:
        for k, tau in enumerate(taus):
            for sim in (compiled, keyword):
                sim.write(JointCommand.torque(tau if k % 7 else np.zeros(n)))  # zero: no torque call
            compiled.step(3)
            applied = keyword._tau_applied.tolist()
            for _ in range(3):
                if any(applied):
                    p.setJointMotorControlArray(keyword.body, keyword.joint_indices, p.TORQUE_CONTROL,
                                                forces=applied, physicsClientId=keyword.client)
                p.stepSimulation(physicsClientId=keyword.client)
            keyword._steps += 3
            keyword._t = keyword._steps * keyword.dt
            a, b = compiled.read(), keyword.read()
            assert a.t == b.t
            for x, y in ((a.q, b.q), (a.dq, b.dq), (a.tau, b.tau), (a.wrench_tool, b.wrench_tool)):
                np.testing.assert_array_equal(x, y)
        assert np.abs(compiled.read().dq).max() > 0.01  # the torques did move the arm


def test_step_hooks_run_around_every_physics_step(arm_desc):
    calls = []
    with ArmSim(arm_desc) as sim:
        sim.add_step_hook(lambda: calls.append(("pre", sim.steps)))
        sim.add_step_hook(lambda: calls.append(("post", sim.steps)), after=True)
        sim.step(2)
        sim.clock.wait_until(sim.t + 1e-3)
    assert calls == [("pre", 0), ("post", 0), ("pre", 1), ("post", 1), ("pre", 2), ("post", 2)]
