"""FakeBackend: exact integration of ideal rigid joints, position/velocity tracking, faults, bad commands."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.robot.backend import Backend, Clock
from machaon.robot.clock import FakeClock, MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.types import DeviceFault, JointCommand


def test_protocols():
    b = FakeBackend(2)
    assert isinstance(b, Backend)
    assert isinstance(b.clock, Clock) and isinstance(MonotonicClock(), Clock)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 30))
def test_torque_mode_is_integrated_exactly(seed, steps):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3))
    M = A @ A.T + 3 * np.eye(3)
    q0, dq0 = rng.normal(size=3), rng.normal(size=3)
    b = FakeBackend(3, mass_matrix=M, q0=q0, dq0=dq0)
    q, dq, t = q0.copy(), dq0.copy(), 0.0
    for _ in range(steps):
        tau = rng.normal(size=3)
        h = float(rng.uniform(1e-4, 1e-2))
        b.write(JointCommand.torque(tau))
        b.clock.wait_until(t + h)
        a = np.linalg.solve(M, tau)
        q, dq, t = q + dq * h + 0.5 * a * h * h, dq + a * h, t + h
    s = b.read()
    assert s.t == pytest.approx(t)
    np.testing.assert_allclose(s.q, q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.dq, dq, rtol=1e-10, atol=1e-12)


def test_lazy_integration_and_external_torque():
    b = FakeBackend(1)
    b.set_external_torque([2.0])
    b.clock.wait_until(1.0)
    np.testing.assert_allclose(b.read().q, [1.0])  # 0.5 * 2 * 1^2


def test_position_and_velocity_modes_track_exactly():
    b = FakeBackend(2)
    b.write(JointCommand.position([0.1, 0.2]))
    b.clock.wait_until(0.001)
    b.write(JointCommand.position([0.2, 0.2]))
    s = b.read()
    np.testing.assert_allclose(s.q, [0.2, 0.2])
    np.testing.assert_allclose(s.dq, [100.0, 0.0])  # 0.1 rad in 1 ms
    b.write(JointCommand.position([0.3, 0.3], dq=[1.0, 2.0]))
    np.testing.assert_allclose(b.read().dq, [1.0, 2.0])
    b.write(JointCommand.velocity([1.0, -1.0]))
    b.clock.wait_until(0.501)
    s = b.read()
    np.testing.assert_allclose(s.q, [0.8, -0.2])
    np.testing.assert_allclose(s.dq, [1.0, -1.0])


def test_faults_and_untrusted_readings():
    b = FakeBackend(2)
    fault = DeviceFault("fake", "overload", "test fault", joint=1)
    b.inject_fault(fault)
    s = b.read()
    assert s.faults == (fault,) and s.ok
    assert b.read().faults == ()
    b.write(JointCommand.velocity([1.0, 0.0]))
    b.set_ok(False)
    b.clock.wait_until(1.0)
    s = b.read()
    assert not s.ok
    np.testing.assert_allclose(s.q, [0.0, 0.0])  # last good values
    b.set_ok(True)
    np.testing.assert_allclose(b.read().q, [1.0, 0.0])
    b.close()
    s = b.read()
    assert not s.ok and s.faults[0].persistent


def test_malformed_commands_raise():
    b = FakeBackend(2)
    with pytest.raises(ValueError, match="cmd.tau"):
        b.write(JointCommand.torque([np.nan, 0.0]))
    with pytest.raises(ValueError, match="cmd.q"):
        b.write(JointCommand.position([0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="mass_matrix"):
        FakeBackend(2, mass_matrix=np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="dof"):
        FakeBackend(0)


def test_command_arrays_are_copied():
    b = FakeBackend(1)
    tau = np.array([1.0])
    b.write(JointCommand.torque(tau))
    tau[0] = 100.0  # a controller reusing its buffer must not change what was sent
    b.clock.wait_until(1.0)
    np.testing.assert_allclose(b.read().q, [0.5])


def test_clocks():
    c = FakeClock(1.0)
    c.wait_until(0.5)
    assert c.now() == 1.0
    c.wait_until(2.0)
    c.advance(0.5)
    assert c.now() == 2.5
    with pytest.raises(ValueError):
        c.wait_until(float("nan"))
    m = MonotonicClock(spin_s=1e-4)
    t0 = m.now()
    m.wait_until(t0 + 0.002)
    assert m.now() >= t0 + 0.002
    with pytest.raises(ValueError, match="spin_s"):
        MonotonicClock(spin_s=-1.0)
