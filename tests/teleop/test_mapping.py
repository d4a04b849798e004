"""TeleopMapper (scaling, tremor filter, clutch/indexing, fixture, speed limit) and the
TeleopController's command-gap HOLD timing, deterministically on FakeBackend/FakeClock."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from machaon.control import CartesianGains, CartesianImpedance
from machaon.control.supervisor import SupervisorState
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.teleop.controller import TeleopController
from machaon.teleop.mapping import TeleopConfig, TeleopMapper
from machaon.teleop.messages import CmdFlag, Command, CommandKind, HoldReason, OperatorMode, Timing
from machaon.teleop.robot_setup import robot_model

RATE = 1000.0


def _cmd(p=(0.0, 0.0, 0.0), clutch=True, kind=CommandKind.MASTER_POSE, **kw) -> Command:
    return Command(Timing(0.0), kind, OperatorMode.FOLLOW, CmdFlag.CLUTCH if clutch else CmdFlag.NONE,
                   p_op=tuple(p), **kw)


def _mapper(**cfg) -> TeleopMapper:
    m = TeleopMapper(TeleopConfig(**cfg), RATE)
    T = np.eye(4)
    T[:3, 3] = (0.5, 0.0, 0.5)
    m.reset(T)
    return m


def _run(m: TeleopMapper, seconds: float) -> np.ndarray:
    for _ in range(int(seconds * RATE)):
        T = m.step()
    return T


def test_motion_scaling_and_clutch_indexing():
    m = _mapper(tremor_cutoff_hz=0.0, v_max=10.0)
    m.on_command(_cmd((0.0, 0.0, 0.0), motion_scale=4.0))
    m.on_command(_cmd((0.04, 0.0, 0.0), motion_scale=4.0))
    assert _run(m, 0.1)[:3, 3] == pytest.approx([0.51, 0.0, 0.5])  # 40 mm / 4
    # release, move the hand back (indexing): the robot stays
    m.on_command(_cmd((0.04, 0.0, 0.0), clutch=False, motion_scale=4.0))
    m.on_command(_cmd((0.0, 0.0, 0.0), clutch=False, motion_scale=4.0))
    assert _run(m, 0.1)[:3, 3] == pytest.approx([0.51, 0.0, 0.5])
    # engage again and move: continues from where the robot is
    m.on_command(_cmd((0.0, 0.0, 0.0), motion_scale=4.0))
    m.on_command(_cmd((0.0, 0.02, 0.0), motion_scale=4.0))
    assert _run(m, 0.1)[:3, 3] == pytest.approx([0.51, 0.005, 0.5])


def test_speed_limit_and_workspace_fixture():
    m = _mapper(tremor_cutoff_hz=0.0, v_max=0.1, workspace_min=(0.3, -0.2, 0.4), workspace_max=(0.55, 0.2, 0.8))
    m.on_command(_cmd((0.0, 0.0, 0.0)))
    m.on_command(_cmd((0.2, 0.0, 0.0)))
    p = _run(m, 0.1)[:3, 3]
    assert p[0] - 0.5 == pytest.approx(0.01, abs=1e-9)  # 0.1 m/s for 0.1 s
    assert m.speed_limited
    p = _run(m, 2.0)[:3, 3]
    assert p[0] == pytest.approx(0.55) and m.fixture_active  # stopped at the workspace wall
    m.on_command(Command(Timing(0.0), CommandKind.MASTER_POSE, OperatorMode.FOLLOW, CmdFlag.CLUTCH,
                         speed_scale=0.5, p_op=(0.0, 0.0, 0.0)))
    p0 = m.T_target[:3, 3].copy()
    p = _run(m, 0.1)[:3, 3]
    assert np.linalg.norm(p - p0) == pytest.approx(0.005, abs=1e-9)  # half speed


def test_tremor_filter_removes_10hz_and_passes_slow_motion():
    m = _mapper(v_max=10.0)  # default filter
    m.on_command(_cmd((0.0, 0.0, 0.0)))
    t = np.arange(0, 2.0, 1 / RATE)
    xs = []
    for ti in t:  # 1 mm tremor at 10 Hz on top of a 20 mm, 0.5 Hz intended motion
        x = 0.02 * np.sin(2 * np.pi * 0.5 * ti) + 0.001 * np.sin(2 * np.pi * 10 * ti)
        m.on_command(_cmd((x, 0.0, 0.0)))
        xs.append(m.step()[0, 3] - 0.5)
    xs = np.array(xs)[500:]
    tt = t[500:]
    basis = np.column_stack([np.sin(2 * np.pi * f * tt + ph) for f in (0.5, 10) for ph in (0, np.pi / 2)])
    coef, *_ = np.linalg.lstsq(basis, xs, rcond=None)
    a_slow, a_tremor = np.hypot(*coef[:2]), np.hypot(*coef[2:])
    assert a_slow == pytest.approx(0.02, rel=0.02)
    # the 10 Hz component is attenuated exactly as the Butterworth design says (-16 dB)
    _, h = signal.sosfreqz(m._sos, worN=[10.0], fs=RATE)
    assert abs(h[0]) < 0.2
    assert a_tremor == pytest.approx(0.001 * abs(h[0]), rel=0.05)


def test_jog_increments_base_and_tool_frame():
    m = _mapper(tremor_cutoff_hz=0.0, v_max=10.0)
    R = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1.0]])  # tool z down
    T = m.T_target.copy()
    T[:3, :3] = R
    m.reset(T)
    m.on_command(_cmd(kind=CommandKind.HEARTBEAT))
    m.on_command(_cmd(kind=CommandKind.INCREMENT, increment=(0.0, 0.0, 0.01, 0, 0, 0)))
    assert _run(m, 0.05)[:3, 3] == pytest.approx([0.5, 0.0, 0.51])  # base +z
    m.on_command(Command(Timing(0.0), CommandKind.INCREMENT, OperatorMode.FOLLOW, CmdFlag.CLUTCH | CmdFlag.TOOL_FRAME,
                         increment=(0.0, 0.0, 0.01, 0, 0, 0)))
    assert _run(m, 0.05)[:3, 3] == pytest.approx([0.5, 0.0, 0.50])  # tool +z = base -z
    m.on_command(_cmd(kind=CommandKind.INCREMENT, clutch=False, increment=(0.01, 0, 0, 0, 0, 0)))
    assert _run(m, 0.05)[:3, 3] == pytest.approx([0.5, 0.0, 0.50])  # no clutch: ignored


class _Feeder:
    """Delivers a command every 10 ms until ``t_stop``, then nothing (the link is cut)."""

    def __init__(self, tc: TeleopController, t_stop: float) -> None:
        self.tc, self.t_stop = tc, t_stop
        self.t_next = 0.0
        self.t_last = None

    def on_activate(self, state, t):
        self.tc.on_activate(state, t)

    def update(self, state, t):
        if t < self.t_stop and t >= self.t_next - 1e-9:
            self.t_next += 0.01
            self.tc.submit(_cmd((0.02 * min(t, 0.3), 0.0, 0.0)))
            self.t_last = t
        return self.tc.update(state, t)


def test_command_gap_holds_within_one_cycle_and_stays_still():
    model = robot_model(load_description("machaon_arm"))
    d = model.desc
    cfg = TeleopConfig(command_timeout_s=0.1)
    from machaon.teleop.server import build_supervisor

    sup = build_supervisor(model.chain, cfg, dq_max=None)
    inner = CartesianImpedance(model.chain, CartesianGains.isotropic(1500.0, 60.0, 1.0), inertia_damping=False)
    tc = TeleopController(model.chain, inner, sup, cfg, RATE)
    feeder = _Feeder(tc, t_stop=0.5)
    with FakeBackend(6, q0=d.q_home) as be:
        loop = ControlLoop(be, feeder, sup, RATE)
        loop.run_for(0.55)
        assert sup.state is SupervisorState.RUN
        p_run = tc.snapshot().T_base_tool[:3, 3].copy()
        assert p_run[0] - model.chain.fk(d.q_home)[0, 3] > 0.004  # it followed the master
        loop.run_for(0.3)
    ev = [e for e in sup.events if e.code == "stale_target"]
    assert len(ev) == 1 and ev[0].to_state is SupervisorState.HOLD
    gap = ev[0].t - feeder.t_last
    period = 1.0 / RATE
    assert cfg.command_timeout_s < gap <= cfg.command_timeout_s + period + 1e-9, gap
    snap = tc.snapshot()
    assert snap.hold_reason == HoldReason.COMMAND_GAP
    # after the hold the arm stays where it was when the hold began
    q_hold = be.read().q
    assert np.allclose(q_hold, loop.last_state.q, atol=1e-9)


def test_forbidden_region_fixture_keeps_the_target_out():
    from machaon.control.fixtures import ForbiddenSphere

    sphere = ForbiddenSphere(np.array([0.55, 0.0, 0.5]), 0.02, k=1000.0)
    m = _mapper(tremor_cutoff_hz=0.0, v_max=10.0, fixtures=sphere)
    m.on_command(_cmd((0.0, 0.0, 0.0)))
    dists = []
    for i in range(200):  # the operator drives straight through the protected sphere
        m.on_command(_cmd((0.0005 * i, 0.001, 0.0)))
        dists.append(np.linalg.norm(m.step()[:3, 3] - [0.55, 0.0, 0.5]))
    assert min(dists) >= 0.02 - 1e-9
    assert m.T_target[0, 3] > 0.56  # it went around/past, never inside


def test_per_sample_butterworth_equals_scipy_sosfilt():
    from machaon.teleop.mapping import _Butterworth

    f = _Butterworth(4, 5.0, 1000.0, 6)
    x = np.random.default_rng(0).standard_normal((500, 6))
    ours = np.array([f.step(xi.copy()) for xi in x])
    assert np.allclose(ours, signal.sosfilt(f.sos, x, axis=0), atol=1e-12)
