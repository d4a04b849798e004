"""The CRTK facade: one motion suite, run on the FakeBackend (position mode, as a servo arm is driven)
and on the PyBullet arm (torque mode: joint and Cartesian impedance, gravity compensation)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.kinematics import Chain, Dynamics
from machaon.robot.clock import MonotonicClock
from machaon.robot.crtk import DISABLED, ENABLED, FAULT, PAUSED, Crtk, CrtkError, operating_state_of
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from tests.robot.latching import LatchingBackend


@pytest.fixture(scope="module")
def model():
    desc = load_description("machaon_arm")
    tool = desc.tool("drill_guide")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(tool.T_flange_tcp)
    dyn = Dynamics(chain, payload_mass=tool.mass, payload_com=tool.com_tcp)
    return desc, chain, dyn


def _fake(desc, chain):
    backend = FakeBackend(desc.dof, q0=np.array(desc.q_home), joint_names=desc.joint_names)
    backend.set_wrench_tool(np.array([0.0, 0.0, -2.0, 0.0, 0.0, 0.0]))
    return backend, Crtk(backend, chain, threaded=False, rate_hz=500, position_mode=True)


def _sim(desc, chain, dyn):
    from machaon.sim import ArmSim

    sim = ArmSim(desc, tool="drill_guide", realtime=False, q0=np.array(desc.q_home))
    return sim, Crtk(sim, chain, dynamics=dyn, threaded=False, rate_hz=500,
                     joint_stiffness=np.array(desc.joint_stiffness), damping_ratio=desc.joint_damping_ratio,
                     cartesian_gains=None, tau_max=np.array(desc.effort_limit))


@pytest.fixture(params=["fake", "sim"])
def arm(request, model):
    desc, chain, dyn = model
    backend, crtk = _fake(desc, chain) if request.param == "fake" else _sim(desc, chain, dyn)
    yield crtk, backend, chain, desc
    crtk.close()
    backend.close()


def test_enable_and_measure(arm):
    crtk, backend, chain, desc = arm
    assert crtk.operating_state() == DISABLED
    with pytest.raises(CrtkError, match="DISABLED"):
        crtk.servo_jp(np.array(desc.q_home))
    assert crtk.enable()
    assert crtk.operating_state() == ENABLED
    crtk.run_for(0.1)
    q, dq, tau = crtk.measured_js()
    assert q.shape == dq.shape == tau.shape == (6,)
    assert np.allclose(q, desc.q_home, atol=0.01)
    assert np.allclose(crtk.measured_cp(), chain.fk(q))
    assert crtk.measured_cf().shape == (6,)


def test_move_jp_reaches_the_goal(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    goal = np.array(desc.q_home) + np.array([0.15, -0.1, 0.1, 0.2, -0.15, 0.3])
    handle = crtk.move_jp(goal)
    assert handle.is_busy() and crtk.is_busy()
    assert handle.wait()
    crtk.run_for(0.5)
    assert not crtk.is_busy()
    assert np.abs(crtk.measured_jp() - goal).max() < 0.01
    assert np.allclose(crtk.setpoint_js()[0], goal)


def test_servo_jp_tracks_a_stream(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    q0 = np.array(desc.q_home)
    for k in range(500):  # streamed every cycle (500 Hz) for 1 s: 0.2 rad on joint 1
        q = q0 + np.array([0.2 * (k + 1) / 500, 0, 0, 0, 0, 0])
        crtk.servo_jp(q)
        crtk.run_for(0.002)
    crtk.run_for(0.3)  # settle, within the stream's watchdog (target_timeout_s 0.5 s)
    assert np.abs(crtk.measured_jp() - q).max() < 0.01
    assert crtk.operating_state() == ENABLED


def test_move_cp_goes_straight_to_the_pose(arm):
    crtk, _backend, chain, desc = arm
    crtk.enable()
    T0 = chain.fk(np.array(desc.q_home))
    goal = T0.copy()
    goal[:3, 3] += [0.03, -0.02, 0.04]
    assert crtk.move_cp(goal).wait()
    crtk.run_for(0.5)
    err = np.linalg.norm(crtk.measured_cp()[:3, 3] - goal[:3, 3])
    assert err < 2e-3
    assert np.allclose(crtk.setpoint_cp(), goal)


def test_hold_keeps_the_pose(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    crtk.move_jp(np.array(desc.q_home) + 0.1).wait()
    crtk.hold()
    q_held = crtk.measured_jp()
    crtk.run_for(1.0)
    assert np.abs(crtk.measured_jp() - q_held).max() < 0.01
    assert crtk.operating_state() == ENABLED


def test_stale_stream_pauses_and_enable_resumes(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    crtk.servo_jp(np.array(desc.q_home))
    crtk.run_for(1.0)  # no further servo_jp: the stream is stale after target_timeout_s
    assert crtk.operating_state() == PAUSED
    assert crtk.enable() and crtk.operating_state() == ENABLED
    crtk.run_for(0.1)
    assert crtk.operating_state() == ENABLED


def test_fault_and_recovery(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    crtk.supervisor.protective_stop("test fault")
    crtk.run_for(0.05)
    assert crtk.operating_state() == FAULT
    with pytest.raises(CrtkError, match="FAULT"):
        crtk.move_jp(np.array(desc.q_home))
    crtk.run_for(0.5)  # brake to rest
    assert crtk.enable() and crtk.operating_state() == ENABLED


def test_bad_commands_change_nothing(arm):
    crtk, _backend, _chain, desc = arm
    crtk.enable()
    crtk.hold()
    before = crtk.setpoint_js()[0]
    with pytest.raises(ValueError):
        crtk.servo_jp(np.full(6, np.nan))
    with pytest.raises(ValueError):
        crtk.servo_jp(np.zeros(5))
    with pytest.raises(ValueError):
        crtk.servo_cp(np.eye(3))
    with pytest.raises(ValueError):
        crtk.move_jp(np.full(6, 50.0))  # outside the joint limits
    assert np.array_equal(crtk.setpoint_js()[0], before) and crtk.operating_state() == ENABLED


def test_free_floats_on_the_sim_and_servo_cf_pushes(model):
    desc, chain, dyn = model
    sim, crtk = _sim(desc, chain, dyn)
    with sim, crtk:
        crtk.enable()
        crtk.free()
        q0 = crtk.measured_jp()
        crtk.run_for(0.4)  # gravity compensated: the arm does not fall
        assert np.abs(crtk.measured_jp() - q0).max() < 0.05
        crtk.hold()
        crtk.run_for(0.2)
        z0 = crtk.measured_cp()[2, 3]
        for _ in range(5):  # push the tool up with 3 N for 0.1 s (nothing resists but inertia)
            crtk.servo_cf(np.array([0.0, 0.0, 3.0, 0.0, 0.0, 0.0]))
            crtk.run_for(0.02)
        assert crtk.measured_cp()[2, 3] > z0 + 0.001
        assert crtk.operating_state() == ENABLED


def test_position_backend_refuses_torque_only_commands(model):
    desc, chain, _dyn = model
    backend, crtk = _fake(desc, chain)
    with backend, crtk:
        crtk.enable()
        with pytest.raises(CrtkError, match="torque"):
            crtk.free()
        with pytest.raises(CrtkError, match="torque"):
            crtk.servo_cf(np.zeros(6))


def test_threaded_on_a_real_time_clock(model):
    desc, chain, _dyn = model
    backend = FakeBackend(desc.dof, q0=np.array(desc.q_home), clock=MonotonicClock(spin_s=0.0))
    sup = Supervisor(SafetyConfig.from_chain(chain, period_max_s=2.0, target_timeout_s=1.0))
    with Crtk(backend, chain, supervisor=sup, rate_hz=250, joint_stiffness=400.0) as crtk:
        assert crtk.enable() and crtk.operating_state() == ENABLED
        goal = np.array(desc.q_home) + 0.05
        assert crtk.move_jp(goal).wait(timeout=10)
        time.sleep(0.3)
        assert np.abs(crtk.measured_jp() - goal).max() < 0.01
        crtk.disable()
        assert crtk.operating_state() == DISABLED and not crtk.loop.running


def test_state_mapping():
    from machaon.control.supervisor import SupervisorState as S

    assert [operating_state_of(s) for s in (S.RUN, S.HOLD, S.PROTECTIVE_STOP, S.ESTOP)] == \
        [ENABLED, PAUSED, FAULT, FAULT]
    assert operating_state_of(S.RUN, enabled=False) == DISABLED


@pytest.mark.parametrize("threaded", [False, True])
def test_enable_clears_a_latched_device_fault(model, threaded):
    """``enable`` leaves a stop caused by a latched backend: the backend is set up again first, so
    the supervisor's reset is not undone by the next read."""
    desc, chain, _dyn = model
    backend = LatchingBackend(desc.dof, q0=np.array(desc.q_home), joint_names=desc.joint_names,
                              clock=MonotonicClock(spin_s=0.0) if threaded else None)
    crtk = Crtk(backend, chain, threaded=threaded, rate_hz=500, position_mode=True)
    try:
        assert crtk.enable()
        backend.trip()
        if threaded:
            deadline = time.monotonic() + 2.0
            while crtk.operating_state() != FAULT and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            crtk.run_for(0.02)
        assert crtk.operating_state() == FAULT
        assert crtk.enable()
        if threaded:
            time.sleep(0.1)
        else:
            crtk.run_for(0.1)
        assert crtk.operating_state() == ENABLED
        assert backend.resets_served == 1 and backend.latched_fault is None
    finally:
        crtk.close()
        backend.close()
