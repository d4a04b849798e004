"""ControlLoop: same controller on every backend, threads, swaps, faults, statistics."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.robot.clock import MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import DeviceFault, JointCommand


def relaxed(**kw):
    kw.setdefault("target_timeout_s", None)
    return Supervisor(SafetyConfig(**kw))


def test_run_for_is_deterministic_and_exactly_paced():
    results = []
    for _ in range(2):
        b = FakeBackend(2)
        ctrl = JointImpedance(2, 100.0, 0.7)
        ctrl.set_target([0.3, -0.2])
        loop = ControlLoop(b, ctrl, relaxed(), rate_hz=500)
        stats = loop.run_for(1.0)
        results.append(b.read().q)
        assert stats.cycles == 500 and stats.overruns == 0
        assert stats.period_median == pytest.approx(0.002)
        assert stats.error_p99 < 1e-12
        assert b.clock.now() == pytest.approx(1.0)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], [0.3, -0.2], atol=1e-3)


def test_threaded_loop_on_the_monotonic_clock_and_controller_swap():
    b = FakeBackend(2, clock=MonotonicClock())
    first = JointImpedance(2, 100.0, 1.0)
    first.set_target([0.1, 0.1])
    second = JointImpedance(2, 100.0, 1.0)
    second.set_target([-0.1, 0.2])
    activated = threading.Event()
    orig = second.on_activate

    def hook(state, t):
        activated.set()
        orig(state, t)

    second.on_activate = hook
    # Real time on a shared machine: a long scheduling hiccup must not fail the test.
    with ControlLoop(b, first, relaxed(period_max_s=5.0), rate_hz=1000) as loop:
        time.sleep(0.15)
        assert loop.running
        loop.set_controller(second)
        assert activated.wait(1.0)
        time.sleep(0.5)
    assert not loop.running
    stats = loop.stats()
    assert stats.cycles > 100
    assert loop.controller is second
    np.testing.assert_allclose(b.read().q, [-0.1, 0.2], atol=0.02)
    # stop() leaves the robot in a supervised hold, recorded as an event
    assert loop.supervisor.state is SupervisorState.HOLD
    assert loop.supervisor.events[-1].reason == "control loop stopped"


def test_controller_exception_becomes_a_protective_stop(caplog):
    caplog.set_level(logging.INFO)

    class Broken:
        def __init__(self):
            self.n = 0

        def update(self, state, t):
            self.n += 1
            if self.n > 10:
                raise RuntimeError("division by zero in the planner")
            return JointCommand.torque(np.zeros(2))

    loop = ControlLoop(FakeBackend(2), Broken(), relaxed())
    loop.run_for(0.05)
    assert loop.cycles == 50  # the loop kept running, safely
    assert loop.supervisor.state is SupervisorState.PROTECTIVE_STOP
    assert "division by zero" in loop.supervisor.events[-1].reason
    assert "division by zero" in caplog.text


def test_persistent_device_fault_stops_the_robot():
    b = FakeBackend(2)
    loop = ControlLoop(b, JointImpedance(2, 10.0), relaxed())
    loop.run_for(0.01)
    b.inject_fault(DeviceFault("dxl:1", "comm_lost", "no status packet", joint=0, persistent=True))
    loop.run_for(0.01)
    assert loop.supervisor.state is SupervisorState.PROTECTIVE_STOP
    assert loop.supervisor.events[-1].code == "device"


def test_backend_exception_ends_the_loop_with_an_error():
    class Exploding(FakeBackend):
        def read(self):
            if self.clock.now() > 0.005:
                raise OSError("USB adapter unplugged")
            return super().read()

    loop = ControlLoop(Exploding(2), JointImpedance(2, 10.0), relaxed())
    with pytest.raises(RuntimeError, match="USB adapter"):
        loop.run_for(1.0)
    assert loop.cycles < 10
    assert loop.supervisor.state is SupervisorState.PROTECTIVE_STOP


def test_argument_checks():
    with pytest.raises(ValueError, match="rate_hz"):
        ControlLoop(FakeBackend(1), JointImpedance(1, 1.0), rate_hz=0)
    with pytest.raises(ValueError, match="controller"):
        ControlLoop(FakeBackend(1), object())
    loop = ControlLoop(FakeBackend(1), JointImpedance(1, 1.0))
    with pytest.raises(ValueError, match="seconds"):
        loop.run_for(float("nan"))
    with pytest.raises(ValueError, match="controller"):
        loop.set_controller(42)


def test_realtime_priority_is_restored_after_run_for(caplog):
    import os

    with pytest.raises(ValueError, match="realtime_priority"):
        ControlLoop(FakeBackend(1), JointImpedance(1, 1.0), realtime_priority=100)
    before = os.sched_getscheduler(0)
    loop = ControlLoop(FakeBackend(1), JointImpedance(1, 1.0), relaxed(), realtime_priority=10)
    loop.run_for(0.01)  # at SCHED_FIFO 10 where permitted, else a logged warning
    assert os.sched_getscheduler(0) == before
    assert loop.cycles == 10


def test_on_activate_once_across_run_for_calls_and_again_after_a_swap():
    calls = []

    class Ctrl(JointImpedance):
        def on_activate(self, state, t):
            calls.append(t)
            super().on_activate(state, t)

    a, b = Ctrl(1, 1.0), Ctrl(1, 1.0)
    loop = ControlLoop(FakeBackend(1), a, relaxed())
    loop.run_for(0.005)
    loop.run_for(0.005)
    assert calls == [0.0]
    loop.set_controller(b)
    loop.run_for(0.002)
    assert calls == [0.0, pytest.approx(0.01)]
