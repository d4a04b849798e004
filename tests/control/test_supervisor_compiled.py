"""The compiled ``Supervisor.check`` gives exactly what the full Python check gives, cycle after cycle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

N = 6
_KINDS = ("ok", "ok", "ok", "ok", "nan_state", "limit", "speed", "cmd_nan", "cmd_big", "position", "velocity",
          "none", "fault", "not_ok", "list_cmd", "float32", "gap", "hold", "resume", "stale")


def _cycle(kind: str, rng: np.random.Generator, t: float):
    q = rng.uniform(-1.0, 1.0, N)
    dq = rng.uniform(-0.2, 0.2, N)
    tau = rng.uniform(-5.0, 5.0, N)
    faults, ok = (), True
    cmd = JointCommand(CommandMode.TORQUE, tau=rng.uniform(-10.0, 10.0, N))
    if kind == "nan_state":
        q[rng.integers(N)] = np.nan
    elif kind == "limit":
        q[rng.integers(N)] = 2.5
    elif kind == "speed":
        dq[rng.integers(N)] = 3.0
    elif kind == "cmd_nan":
        cmd.tau[rng.integers(N)] = np.inf
    elif kind == "cmd_big":
        cmd.tau[rng.integers(N)] = 100.0
    elif kind == "position":
        cmd = JointCommand.position(rng.uniform(-2.5, 2.5, N))
    elif kind == "velocity":
        cmd = JointCommand.velocity(rng.uniform(-1.5, 1.5, N))
    elif kind == "none":
        cmd = None
    elif kind == "fault":
        faults = (DeviceFault("dxl:1", "overload", "hot", joint=0, persistent=bool(rng.integers(2))),)
    elif kind == "not_ok":
        ok = False
    elif kind == "list_cmd":
        cmd = JointCommand(CommandMode.TORQUE, tau=list(cmd.tau))
    elif kind == "float32":
        cmd = JointCommand(CommandMode.TORQUE, tau=cmd.tau.astype(np.float32))
    return JointState(t, q, dq, tau, faults=faults, ok=ok), cmd


def _same(a: JointCommand, b: JointCommand) -> None:
    assert a.mode is b.mode
    for name in ("tau", "q", "dq"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.info.keys() == b.info.keys()


def _observable(s: Supervisor) -> tuple:
    return (s.state, s.cycles, s.saturated_cycles, s.last_fault, s._active_fault, s._bad_reads, s._mode,
            s._t_prev, s._t_last, [(e.t, e.from_state, e.to_state, e.code) for e in s.events],
            None if s._q_safe is None else tuple(s._q_safe), None if s._last_q is None else tuple(s._last_q))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(kinds=st.lists(st.sampled_from(_KINDS), min_size=5, max_size=40), seed=st.integers(0, 2**31 - 1))
def test_compiled_check_equals_the_full_check(kinds, seed):
    cfg = SafetyConfig(q_min=-2.0, q_max=2.0, dq_max=1.0, tau_max=20.0, tau_measured_max=50.0,
                       target_timeout_s=0.05, period_max_s=0.01, tool_speed_max=None)
    fast, full = Supervisor(cfg), Supervisor(cfg)
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    t = 0.0
    for kind in kinds:
        t += 0.05 if kind == "gap" else 0.001
        for sup in (fast, full):
            if kind == "hold":
                sup.hold("test")
            elif kind == "resume":
                sup.target_updated(t)
                sup.resume()
                sup.reset()
            elif kind != "stale":
                sup.target_updated(t)
        sa, ca = _cycle(kind, rng_a, t)
        sb, cb = _cycle(kind, rng_b, t)
        out_fast = fast.check(sa, ca, t)
        out_full = full._check_python(sb, cb, t)
        _same(out_fast, out_full)
        assert _observable(fast) == _observable(full)


def test_a_clean_cycle_returns_the_command_itself_and_keeps_a_private_copy_of_q():
    sup = Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None))
    q = np.zeros(N)
    cmd = JointCommand.torque(np.ones(N))
    state = JointState(0.0, q, np.zeros(N), np.zeros(N))
    for i in range(3):
        assert sup.check(state, cmd, 0.001 * (i + 1)) is cmd
    q[:] = 0.5  # the backend reuses its array: the safe pose must not move with it
    assert np.all(sup._q_safe == 0.0)
    assert sup.state is SupervisorState.RUN and sup.cycles == 3
