"""The control loop's thread runs with the minimal timer slack (Linux), and gives it back afterwards."""

from __future__ import annotations

import sys
import time

import pytest

from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.robot.clock import set_timer_slack_ns, timer_slack_ns
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_TIMERSLACK is Linux's")


class SlackProbe(JointImpedance):
    """Records the timer slack of the thread that runs its cycles."""

    def __init__(self) -> None:
        super().__init__(1, 1.0)
        self.seen: list[int | None] = []

    def update(self, state, t):
        self.seen.append(timer_slack_ns())
        return super().update(state, t)


def _loop(ctrl):
    return ControlLoop(FakeBackend(1), ctrl, Supervisor(SafetyConfig(target_timeout_s=None)))


@linux
def test_run_for_cycles_with_1ns_slack_and_restores_the_callers():
    before = timer_slack_ns()
    assert before is not None and before >= 1
    ctrl = SlackProbe()
    _loop(ctrl).run_for(0.005)
    assert ctrl.seen and set(ctrl.seen) == {1}
    assert timer_slack_ns() == before


@linux
def test_the_loop_thread_has_1ns_slack():
    ctrl = SlackProbe()
    loop = _loop(ctrl)
    loop.start()
    try:
        time.sleep(0.05)
    finally:
        loop.stop()
    assert ctrl.seen and set(ctrl.seen) == {1}


@linux
def test_set_timer_slack_returns_the_previous_value_and_rejects_zero():
    before = timer_slack_ns()
    assert set_timer_slack_ns(12345) == before
    assert timer_slack_ns() == 12345
    assert set_timer_slack_ns(before) == 12345
    with pytest.raises(ValueError, match="ns"):
        set_timer_slack_ns(0)


def test_libc_is_looked_up_once_not_at_every_call(monkeypatch):
    import ctypes.util

    from machaon.robot import clock

    calls = []
    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: calls.append(name) or real(name))
    clock._prctl.cache_clear()
    for _ in range(5):
        old = set_timer_slack_ns(1)
        if old is not None:
            set_timer_slack_ns(max(old, 1))
    assert len(calls) <= 1
