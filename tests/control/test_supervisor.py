"""Safety supervisor: every fault leads to the right state with a logged reason; hold/resume; estop."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

N = 3


def st(q=None, dq=None, tau=None, t=0.0, faults=(), ok=True):
    return JointState(
        t,
        np.zeros(N) if q is None else np.asarray(q, float),
        np.zeros(N) if dq is None else np.asarray(dq, float),
        np.zeros(N) if tau is None else np.asarray(tau, float),
        None,
        tuple(faults),
        ok,
    )


def torque(*v):
    return JointCommand.torque(np.array(v if v else [0.0] * N, float))


def run_cycles(sup, states, cmd=None, t0=0.0, dt=0.001):
    out = []
    for i, s in enumerate(states):
        out.append(sup.check(s, torque() if cmd is None else cmd, t0 + i * dt))
    return out


def assert_event(sup, caplog, state, code):
    assert sup.state is state
    ev = sup.events[-1]
    assert ev.to_state is state and ev.code == code and ev.reason
    assert any(code in r.getMessage() and state.value in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("config", "state", "code"),
    [
        (SafetyConfig(q_min=-1.0, q_max=1.0), st(q=[0.0, 1.2, 0.0]), "joint_limit"),
        (SafetyConfig(q_min=[-1, -1, -0.5], q_max=1.0), st(q=[0.0, 0.0, -0.6]), "joint_limit"),
        (SafetyConfig(dq_max=2.0), st(dq=[0.0, -2.5, 0.0]), "joint_speed"),
        (SafetyConfig(tau_measured_max=10.0), st(tau=[0.0, 0.0, 11.0]), "torque"),
        (SafetyConfig(), st(q=[0.0, np.nan, 0.0]), "nan"),
        (SafetyConfig(), st(dq=[np.inf, 0.0, 0.0]), "nan"),
        (SafetyConfig(), st(faults=[DeviceFault("dxl:2", "overload", "overload error", 1, True)]), "device"),
    ],
)
def test_state_faults_lead_to_protective_stop(config, state, code, caplog):
    caplog.set_level(logging.INFO)
    sup = Supervisor(config)
    sup.check(st(), torque(), 0.0)
    assert sup.state is SupervisorState.RUN
    cmd = sup.check(state, torque(1.0, 1.0, 1.0), 0.001)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, code)
    assert np.isfinite(cmd.tau).all()  # the safe command is finite even for a NaN state
    assert sup.events[-1].t == pytest.approx(0.001)


def test_nan_command_and_controller_failure(caplog):
    caplog.set_level(logging.INFO)
    sup = Supervisor(SafetyConfig())
    sup.check(st(), torque(), 0.0)
    sup.check(st(), torque(0.0, np.nan, 0.0), 0.001)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, "nan")
    sup2 = Supervisor(SafetyConfig())
    sup2.check(st(), None, 0.0)
    assert_event(sup2, caplog, SupervisorState.PROTECTIVE_STOP, "bad_command")
    sup3 = Supervisor(SafetyConfig())
    sup3.check(st(), JointCommand.torque(np.zeros(N + 1)), 0.0)
    assert_event(sup3, caplog, SupervisorState.PROTECTIVE_STOP, "bad_command")


def test_untrusted_readings_stop_after_fault_cycles(caplog):
    caplog.set_level(logging.INFO)
    sup = Supervisor(SafetyConfig(fault_cycles=3))
    transient = DeviceFault("dxl:1", "crc", "bad checksum", 0, False)
    run_cycles(sup, [st(faults=[transient], ok=False)] * 2)
    assert sup.state is SupervisorState.RUN  # transient trouble is tolerated...
    run_cycles(sup, [st()] + [st(ok=False)] * 3, t0=0.002)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, "device")  # ...a lasting one is not


def test_tool_speed_and_workspace_need_the_chain(arm, caplog):
    caplog.set_level(logging.INFO)
    q = arm.home()
    J = arm.jacobian(q)
    dq = np.linalg.lstsq(J[:3], np.array([0.3, 0.0, 0.0]), rcond=None)[0]  # 0.3 m/s tool speed
    state = JointState(0.0, q, dq, np.zeros(6))
    sup = Supervisor(SafetyConfig(tool_speed_max=0.25), chain=arm)
    sup.check(JointState(0.0, q, np.zeros(6), np.zeros(6)), JointCommand.torque(np.zeros(6)), 0.0)
    assert sup.state is SupervisorState.RUN
    sup.check(state, JointCommand.torque(np.zeros(6)), 0.001)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, "tool_speed")

    p = arm.fk(q)[:3, 3]
    box = SafetyConfig(workspace_min=p - 0.1, workspace_max=p + [0.1, 0.1, -0.01], tool_speed_max=None)
    sup = Supervisor(box, chain=arm)
    sup.check(JointState(0.0, q, np.zeros(6), np.zeros(6)), JointCommand.torque(np.zeros(6)), 0.0)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, "workspace")
    with pytest.raises(ValueError, match="chain"):
        Supervisor(box)


def test_stale_target_holds_and_resume_needs_a_fresh_one(caplog):
    caplog.set_level(logging.INFO)
    sup = Supervisor(SafetyConfig(target_timeout_s=0.05))
    sup.target_updated(0.0)
    run_cycles(sup, [st()] * 50)
    assert sup.state is SupervisorState.RUN
    run_cycles(sup, [st()] * 2, t0=0.06)
    assert_event(sup, caplog, SupervisorState.HOLD, "stale_target")
    assert not sup.resume()  # still stale
    sup.target_updated(0.062)
    assert sup.resume()
    assert sup.state is SupervisorState.RUN


def test_overrun_watchdog(caplog):
    caplog.set_level(logging.INFO)
    sup = Supervisor(SafetyConfig())
    sup.bind_period(0.001)  # limit: 10 periods
    run_cycles(sup, [st()] * 5)
    sup.check(st(), torque(), 0.004 + 0.011)
    assert_event(sup, caplog, SupervisorState.PROTECTIVE_STOP, "overrun")


def test_overrun_in_the_loop_from_a_slow_controller(caplog):
    caplog.set_level(logging.INFO)
    backend = FakeBackend(N)

    class Slow:
        def __init__(self):
            self.n = 0

        def update(self, state, t):
            self.n += 1
            if self.n == 20:
                backend.clock.advance(0.05)  # 50 ms stuck in the controller
            return JointCommand.torque(np.zeros(N))

    loop = ControlLoop(backend, Slow(), Supervisor(SafetyConfig(period_factor=5.0)), rate_hz=1000)
    stats = loop.run_for(0.05)
    assert stats.overruns == 1
    assert_event(loop.supervisor, caplog, SupervisorState.PROTECTIVE_STOP, "overrun")


def test_hold_keeps_the_last_safe_pose_then_resume():
    sup = Supervisor(SafetyConfig(hold_stiffness=100.0, hold_damping=10.0))
    q_safe = np.array([0.1, 0.2, 0.3])
    sup.check(st(q=q_safe), torque(), 0.0)
    sup.hold("operator pressed hold")
    assert sup.state is SupervisorState.HOLD
    cmd = sup.check(st(q=q_safe + 0.01, dq=[0.1, 0.0, 0.0]), torque(5.0, 5.0, 5.0), 0.001)
    np.testing.assert_allclose(cmd.tau, 100.0 * -0.01 - 10.0 * np.array([0.1, 0.0, 0.0]))
    assert sup.resume()
    cmd = sup.check(st(q=q_safe), torque(5.0, 5.0, 5.0), 0.002)
    np.testing.assert_allclose(cmd.tau, 5.0)


def test_position_mode_hold_and_stop_command_positions():
    sup = Supervisor(SafetyConfig(dq_max=1.0))
    q0 = np.array([0.1, 0.2, 0.3])
    sup.check(st(q=q0), JointCommand.position(q0 + 0.05), 0.0)
    cmd = sup.check(st(q=q0 + 0.01, dq=[2.0, 0, 0]), JointCommand.position(q0 + 0.1), 0.001)
    assert sup.state is SupervisorState.PROTECTIVE_STOP
    assert cmd.mode is CommandMode.POSITION
    np.testing.assert_allclose(cmd.q, q0 + 0.01)  # freeze where it is


def test_estop_is_latched_until_reset():
    sup = Supervisor(SafetyConfig())
    sup.check(st(), torque(), 0.0)
    sup.estop("button")
    assert sup.state is SupervisorState.ESTOP
    assert not sup.resume()
    sup.protective_stop("something else")
    assert sup.state is SupervisorState.ESTOP
    run_cycles(sup, [st()] * 3, t0=0.001)
    assert sup.state is SupervisorState.ESTOP
    assert sup.reset()
    assert sup.state is SupervisorState.HOLD
    assert sup.resume()
    assert [e.to_state for e in sup.drain_events()] == [
        SupervisorState.ESTOP,
        SupervisorState.HOLD,
        SupervisorState.RUN,
    ]
    assert sup.drain_events() == []


def test_resume_refused_while_fault_active():
    sup = Supervisor(SafetyConfig(q_max=1.0))
    sup.check(st(q=[0, 0, 1.5]), torque(), 0.0)
    assert sup.state is SupervisorState.PROTECTIVE_STOP
    assert not sup.resume()
    sup.check(st(q=[0, 0, 0.9]), torque(), 0.001)
    assert sup.resume()


def test_brake_then_hold_or_torque_off_on_the_fake_robot():
    for action in ("hold", "torque_off"):
        backend = FakeBackend(N, dq0=np.array([1.0, -0.5, 0.2]))
        ctrl = JointImpedance(N, 0.0, damping=0.0)
        sup = Supervisor(SafetyConfig(stop_action=action, brake_damping=20.0, brake_speed=0.01))
        loop = ControlLoop(backend, ctrl, sup)
        loop.run_for(0.01)
        sup.protective_stop("test")
        loop.run_for(1.0)
        s = backend.read()
        assert np.abs(s.dq).max() < 0.011  # braked to (near) rest
        tau = loop.last_command.tau
        if action == "torque_off":
            np.testing.assert_array_equal(tau, 0.0)
        else:
            assert np.abs(tau).max() < 0.2


def test_commanded_torque_is_saturated():
    sup = Supervisor(SafetyConfig(tau_max=[1.0, 2.0, 3.0]))
    cmd = sup.check(st(), torque(5.0, -5.0, 2.0), 0.0)
    np.testing.assert_allclose(cmd.tau, [1.0, -2.0, 2.0])
    assert sup.state is SupervisorState.RUN
    assert sup.saturated_cycles == 1


def test_listeners_and_target_updated_with_the_bound_clock():
    backend = FakeBackend(N)
    sup = Supervisor(SafetyConfig(target_timeout_s=0.02))
    seen = []
    sup.add_listener(seen.append)
    ctrl = JointImpedance(N, 10.0)
    loop = ControlLoop(backend, ctrl, sup)  # binds the backend clock
    backend.clock.advance(1.0)
    sup.target_updated()
    loop.run_for(0.01)
    assert sup.state is SupervisorState.RUN
    loop.run_for(0.02)
    assert sup.state is SupervisorState.HOLD
    assert seen and seen[-1].code == "stale_target"


def test_config_validation():
    with pytest.raises(ValueError, match="stop_action"):
        SafetyConfig(stop_action="explode")
    with pytest.raises(ValueError, match="dq_max"):
        SafetyConfig(dq_max=np.nan)
    with pytest.raises(ValueError, match="workspace"):
        SafetyConfig(workspace_min=[0, 0, 0])
    with pytest.raises(ValueError, match="tool_speed_max"):
        SafetyConfig(tool_speed_max=-1.0)


def test_a_config_that_does_not_fit_the_robot_stops_safely():
    sup = Supervisor(SafetyConfig(q_max=[1.0, 2.0], tau_max=[1.0, 2.0], hold_stiffness=[1.0, 2.0]))
    cmd = None
    for i in range(3):
        cmd = sup.check(st(dq=[1.0, 1.0, 1.0]), torque(), i * 1e-3)
    assert sup.state is SupervisorState.PROTECTIVE_STOP
    assert sup.events[-1].code == "config" and "q_max" in sup.events[-1].reason
    assert np.isfinite(cmd.tau).all() and cmd.tau.shape == (N,)


def test_starting_in_hold_latches_the_first_pose():
    sup = Supervisor(SafetyConfig(hold_stiffness=100.0, hold_damping=0.0), initial_state=SupervisorState.HOLD)
    q0 = np.array([0.1, 0.2, 0.3])
    sup.check(st(q=q0), torque(), 0.0)
    cmd = sup.check(st(q=q0 + 0.01), torque(), 0.001)  # sagging away from the first pose
    np.testing.assert_allclose(cmd.tau, -1.0)  # pulled back to it


def test_nan_in_the_very_first_reading_gives_a_sized_safe_command():
    sup = Supervisor(SafetyConfig())
    cmd = sup.check(st(q=[np.nan, 0.0, 0.0]), torque(), 0.0)
    assert sup.state is SupervisorState.PROTECTIVE_STOP
    np.testing.assert_array_equal(cmd.tau, np.zeros(N))
