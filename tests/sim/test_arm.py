"""ArmSim as a Backend: torque/position/velocity modes, F/T sensor, contacts, clock, save/restore."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from machaon.robot.backend import Backend
from machaon.sim import ArmSim, SimError
from machaon.types import DeviceFault, JointCommand
from tests.sim.helpers import chain_and_dynamics


def _run_gravity_comp(sim, dyn, steps, extra=None):
    for _ in range(steps):
        st = sim.read()
        tau = dyn.gravity(st.q)
        if extra is not None:
            tau = tau + extra(st)
        sim.write(JointCommand.torque(tau))
        sim.clock.wait_until(sim.clock.now() + sim.dt)
    return sim.read()


def test_is_a_backend_with_own_client(arm_desc):
    with ArmSim(arm_desc) as a, ArmSim(arm_desc, tool="drill") as b:
        assert isinstance(a, Backend)
        assert a.client != b.client
        assert a.dof == 6 and a.joint_names == arm_desc.joint_names
        st = a.read()
        np.testing.assert_allclose(st.q, arm_desc.q_home, atol=1e-12)
        # Stepping one simulation leaves the other alone.
        a.write(JointCommand.torque(np.zeros(6)))
        a.step(200)
        assert np.abs(a.read().q - arm_desc.q_home).max() > 1e-3  # unpowered: it sags
        np.testing.assert_array_equal(b.read().q, st.q)
        assert b.t == 0.0 and a.t == pytest.approx(0.2)
    with pytest.raises(SimError):
        a.read()


def test_gravity_compensated_hold_drift_below_0p1mm_over_10s(arm_desc):
    chain, dyn = chain_and_dynamics(arm_desc, "drill_guide")
    with ArmSim(arm_desc, tool="drill_guide") as sim:
        p0 = sim.T_base_tcp()[:3, 3].copy()
        st = _run_gravity_comp(sim, dyn, 10_000)
        assert sim.t == pytest.approx(10.0)
        drift = np.linalg.norm(sim.T_base_tcp()[:3, 3] - p0)
        assert drift < 1e-4, f"TCP drifted {drift * 1e3:.4f} mm"
        np.testing.assert_allclose(chain.fk(st.q), sim.T_base_tcp(), atol=1e-7)


def test_unpowered_arm_falls_and_friction_holds_it(arm_desc):
    with ArmSim(arm_desc) as sim:
        sim.step(300)
        assert np.abs(sim.read().q - arm_desc.q_home).max() > 0.01
    # Coulomb friction above the gravity torques: the arm stays put (to solver tolerance).
    with ArmSim(arm_desc, joint_friction=[200, 200, 100, 40, 40, 20]) as sim:
        sim.step(300)
        assert np.abs(sim.read().q - arm_desc.q_home).max() < 1e-3


def test_deterministic_in_direct_mode(arm_desc):
    rng = np.random.default_rng(7)
    taus = rng.normal(0, 3.0, size=(300, 6))
    finals = []
    for _ in range(2):
        with ArmSim(arm_desc, tool="drill") as sim:
            for tau in taus:
                sim.write(JointCommand.torque(tau))
                sim.step()
            st = sim.read()
            finals.append(np.concatenate([st.q, st.dq, st.wrench_tool]))
    np.testing.assert_array_equal(finals[0], finals[1])


def test_save_restore_replays_exactly(arm_desc):
    with ArmSim(arm_desc) as sim:
        sim.write(JointCommand.torque(np.full(6, 2.0)))
        sim.step(50)
        snap = sim.save()
        sim.step(100)
        a = sim.read()
        sim.write(JointCommand.torque(np.zeros(6)))
        sim.step(30)
        sim.restore(snap)
        assert sim.t == pytest.approx(0.05)
        sim.step(100)  # the held command is restored too
        b = sim.read()
        np.testing.assert_array_equal(a.q, b.q)
        np.testing.assert_array_equal(a.dq, b.dq)
        sim.release(snap)
        with pytest.raises(ValueError):
            sim.restore(snap)


def test_clock_steps_physics_one_step_per_period(arm_desc):
    with ArmSim(arm_desc) as sim:
        clk = sim.clock
        for k in range(1, 6):
            clk.wait_until(k * 1e-3)
            assert sim.steps == k
        clk.wait_until(0.001)  # the past: nothing happens
        assert sim.steps == 5
        clk.wait_until(0.0105)
        assert sim.steps == 11 and clk.now() >= 0.0105
        with pytest.raises(ValueError):
            clk.wait_until(float("nan"))


def test_realtime_pacing_follows_the_wall_clock(arm_desc):
    with ArmSim(arm_desc, realtime=True) as sim:
        sim.clock.wait_until(0.0)  # anchors the pacing
        t0 = time.monotonic()
        sim.clock.wait_until(0.2)
        assert time.monotonic() - t0 >= 0.19


def test_bad_commands_raise_value_error(arm_desc):
    with ArmSim(arm_desc) as sim:
        with pytest.raises(ValueError, match="cmd.tau"):
            sim.write(JointCommand.torque(np.array([0, 0, np.nan, 0, 0, 0])))
        with pytest.raises(ValueError, match="cmd.tau"):
            sim.write(JointCommand.torque(np.zeros(5)))
        with pytest.raises(ValueError, match="cmd.q"):
            sim.write(JointCommand.position(np.full(6, np.inf)))
        with pytest.raises(ValueError):
            ArmSim(arm_desc, dt=0.0)


def test_torque_saturates_at_effort_limits(arm_desc):
    with ArmSim(arm_desc) as sim:
        sim.write(JointCommand.torque(np.full(6, 1e4)))
        np.testing.assert_allclose(sim.read().tau, arm_desc.effort_limit)


def test_position_and_velocity_modes(arm_desc):
    with ArmSim(arm_desc, tool="drill_guide") as sim:
        target = arm_desc.q_home + np.radians([10, -5, 8, 15, -10, 20])
        sim.write(JointCommand.position(target))
        sim.step(1500)
        np.testing.assert_allclose(sim.read().q, target, atol=2e-3)
        dq = np.radians([5, 0, 0, 0, 0, -10])
        sim.write(JointCommand.velocity(dq))
        sim.step(300)
        np.testing.assert_allclose(sim.read().dq, dq, atol=2e-3)
        # back to torque mode: the motors let go, so with zero torque gravity wins
        sim.write(JointCommand.torque(np.zeros(6)))
        q0 = sim.read().q
        sim.step(200)
        assert np.abs(sim.read().q - q0).max() > 1e-3


def test_ft_sensor_reads_external_wrench_in_base_frame_at_tcp(arm_desc):
    """A wrench applied at the TCP, balanced by J^T w, reads back exactly (weight compensated)."""
    q0 = np.radians([30, 10, 80, 40, 60, 20])
    T_wb = np.eye(4)
    T_wb[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # base yawed 90 deg
    T_wb[:3, 3] = (0.3, -0.2, 0.1)
    chain, dyn = chain_and_dynamics(arm_desc, "drill")
    f_b, m_b = np.array([10.0, -5.0, 3.0]), np.array([0.5, 0.2, -0.3])
    with ArmSim(arm_desc, tool="drill", q0=q0, T_world_base=T_wb) as sim:
        tcp = sim.link_index(sim.tcp_link)
        R = T_wb[:3, :3]

        def push():
            pos = sim.T_world_link(sim.tcp_link)[:3, 3].tolist()
            p.applyExternalForce(sim.body, tcp, (R @ f_b).tolist(), pos, p.WORLD_FRAME, physicsClientId=sim.client)
            p.applyExternalTorque(sim.body, tcp, (R @ m_b).tolist(), p.WORLD_FRAME, physicsClientId=sim.client)

        sim.add_step_hook(push)
        st = _run_gravity_comp(sim, dyn, 300, extra=lambda s: -chain.jacobian(s.q).T @ np.r_[f_b, m_b])
        assert np.abs(st.q - q0).max() < 1e-5
        np.testing.assert_allclose(st.wrench_tool, np.r_[f_b, m_b], atol=1e-4)
        np.testing.assert_allclose(sim.T_base_tcp(), chain.fk(st.q), atol=1e-7)


def test_contact_with_a_wall_shows_in_contacts_and_sensor(arm_desc):
    chain, dyn = chain_and_dynamics(arm_desc, "drill_guide")
    with ArmSim(arm_desc, tool="drill_guide") as sim:
        T_tcp = sim.T_base_tcp()
        wall = np.eye(4)
        wall[:3, 3] = T_tcp[:3, 3] + (0.0, 0.0, -0.05)  # a block 5 cm below the guide tip
        sim.scene.add_box("block", (0.2, 0.2, 0.1 - 2e-3), wall, rgba=(0.4, 0.4, 0.8, 1))
        push = np.array([0.0, 0.0, -20.0])  # press down with 20 N beyond gravity compensation
        st = _run_gravity_comp(sim, dyn, 1500, extra=lambda s: chain.jacobian(s.q)[:3].T @ push)
        contacts = sim.contacts()
        assert contacts and {c.arm_link for c in contacts} == {"drill_guide_mount"}
        assert all(c.normal_world[2] > 0.99 for c in contacts)
        # The block pushes back up with 20 N: the F/T sensor and the contact forces agree.
        assert st.wrench_tool[2] == pytest.approx(20.0, rel=0.02)
        assert sim.contact_wrench()[2] == pytest.approx(20.0, rel=0.02)
        assert sum(c.normal_force for c in contacts) == pytest.approx(20.0, rel=0.02)


def test_injected_fault_is_reported_once(arm_desc):
    with ArmSim(arm_desc) as sim:
        sim.inject_fault(DeviceFault("sim", "overload", "test", joint=2))
        assert sim.read().faults[0].code == "overload"
        assert sim.read().faults == ()


def test_any_urdf_arm_runs_the_same_way():
    """KUKA iiwa from pybullet_data: loads by path, gravity compensation holds it."""
    from machaon.kinematics import Chain, Dynamics

    urdf = Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf"
    q0 = np.radians([10, 30, -10, -60, 20, 40, 0])
    with ArmSim(urdf, q0=q0, ft_sensor=False) as sim:
        assert sim.dof == 7
        d = sim.desc
        dyn = Dynamics(Chain.from_urdf(d.urdf_path, d.base_link, d.tip_link))
        st = _run_gravity_comp(sim, dyn, 1000)
        assert np.abs(st.q - q0).max() < 1e-4
        assert st.wrench_tool is None
