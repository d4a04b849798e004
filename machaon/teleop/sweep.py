"""``machaon teleop sweep``: one scripted operator task through every link profile, in simulation.

Everything runs in simulated time and is deterministic for a seed: the simulated backend (the
CLI gives an ``ArmSim`` in PyBullet DIRECT mode), the ``ControlLoop`` at ``rate_hz``, the real
protocol (handshake, AEAD, replay window) over an in-process ``SimLink`` that applies the
profile in both directions, the ``TeleopController`` and the supervisor. The scripted operator
behaves like a person would after a safety hold: when the robot reports HOLD for a command gap
while the script holds the clutch, it releases the clutch for 0.1 s and presses it again.

Metrics per profile (tool position in the base frame, compared with the ideal path = the
script's master motion divided by the motion scale, applied at once with no latency):

- tracking error: RMS and maximum distance from the ideal path while the task runs (mm);
- overshoot: how far the tool went beyond the ideal path's bounding box (mm);
- completion time: when the tool entered and stayed within 1 mm of the final ideal point (s
  after the task start; None if never);
- holds: number of HOLD transitions for a command gap, and the time spent not in RUN;
- path deviation: RMS and maximum distance from the ideal *path* (nearest point, any time), and
  the time lag that best aligns the tool's trajectory with the ideal one
  (``machaon.teleop.path_metrics``): the same-instant error above mixes the two.

The sweep over profiles (``machaon teleop sweep``) runs as a study on Ray
(``machaon.trials.teleop``); this module is one run of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.control.supervisor import SupervisorState
from machaon.robot.backend import Backend
from machaon.robot.description import load_description
from machaon.robot.loop import ControlLoop
from machaon.robot.model import RobotModel, robot_model, safety_settings
from machaon.teleop.channel import SimLink
from machaon.teleop.controller import TeleopController
from machaon.teleop.endpoint import ClientEndpoint, ServerEndpoint
from machaon.teleop.mapping import TeleopConfig
from machaon.teleop.messages import CmdFlag, CommandKind, HoldReason, SupervisorCode
from machaon.teleop.path_metrics import path_deviation, time_lag
from machaon.teleop.profiles import LinkProfile
from machaon.teleop.robot_setup import inner_controller
from machaon.teleop.script import OperatorScript, hold_point, trace_square
from machaon.teleop.server import build_supervisor, state_message
from machaon.types import JointCommand, JointState

_PSK = bytes(32)  # simulation only: both ends are in this process


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    rtt_p50_ms: float
    rms_error_mm: float
    max_error_mm: float
    overshoot_mm: float
    completion_s: float | None
    holds: int
    time_not_run_s: float
    commands_dropped: int
    packets_lost: int
    path_dev_rms_mm: float
    path_dev_max_mm: float
    lag_ms: float


@dataclass(frozen=True)
class SweepTrace:
    t: np.ndarray
    p_actual: np.ndarray
    p_ideal: np.ndarray


class _Pump:
    """Wraps the TeleopController: each control cycle it first moves packets in simulated time."""

    def __init__(self, tc: TeleopController, link: SimLink, script: OperatorScript, cfg: TeleopConfig,
                 cmd_rate_hz: float = 100.0) -> None:
        self.tc, self.link, self.script, self.cfg = tc, link, script, cfg
        self.srv, self.cli = ServerEndpoint(_PSK), ClientEndpoint(_PSK)
        self.cmd_period = 1.0 / cmd_rate_hz
        self.state_period = 1.0 / cfg.state_rate_hz
        self.t_cmd = 0.0
        self.t_state = 0.0
        self.t_hello = 0.0
        self.t_start: float | None = None
        self.t_prev_sample = -math.inf
        self.reclutch_until = -math.inf
        self.p0: np.ndarray | None = None
        self.rows: list[tuple[float, np.ndarray, np.ndarray, bool]] = []

    def on_activate(self, state: JointState, t: float) -> None:
        self.tc.on_activate(state, t)
        self.p0 = self.tc.chain.fk(state.q)[:3, 3].copy()

    def _operator(self, t: float) -> None:
        if not self.cli.connected:
            if t >= self.t_hello:
                self.link.up.send(t, self.cli.hello(t))
                self.t_hello = t + 1.0
            return
        if self.t_start is None:
            self.t_start = t
        if t < self.t_cmd:
            return
        self.t_cmd += self.cmd_period
        s = self.script.sample(t - self.t_start, self.t_prev_sample)
        self.t_prev_sample = t - self.t_start
        latest = self.cli.latest
        clutch = s.clutch
        if (clutch and latest is not None and latest.supervisor == SupervisorCode.HOLD
                and latest.hold_reason == HoldReason.COMMAND_GAP and t >= self.reclutch_until + 0.5):
            self.reclutch_until = t + 0.1  # the operator notices the hold: release, press again
        if t < self.reclutch_until:
            clutch = False
        flags = CmdFlag.CLUTCH if clutch else CmdFlag.NONE
        pkt = self.cli.command(t, CommandKind.MASTER_POSE, mode=s.mode, flags=flags, speed_scale=s.speed_scale,
                               motion_scale=s.motion_scale, p_op=s.p, quat_op=s.quat)
        self.link.up.send(t, pkt)

    def update(self, state: JointState, t: float) -> JointCommand:
        self._operator(t)
        for pkt in self.link.up.receive(t):
            cmd, replies = self.srv.handle(pkt, "operator", t)
            for r in replies:
                self.link.down.send(t, r)
            if cmd is not None:
                self.tc.submit(cmd)
        if t >= self.t_state:
            self.t_state += self.state_period
            snap = self.tc.snapshot()
            if snap is not None:
                pkt = self.srv.state_packet(state_message(snap, self.srv.last_seq, self.srv.drops.total), t)
                if pkt is not None:
                    self.link.down.send(t, pkt)
        for pkt in self.link.down.receive(t):
            self.cli.handle(pkt, t)
        out = self.tc.update(state, t)
        snap = self.tc.snapshot()
        if self.t_start is not None and snap is not None:
            s = self.script.sample(t - self.t_start)
            ideal = self.p0 + self.cfg.R_base_op @ np.asarray(s.p) / s.motion_scale
            self.rows.append((t - self.t_start, snap.T_base_tool[:3, 3].copy(), ideal,
                              snap.supervisor is SupervisorState.RUN))
        return out


def run_profile(profile: LinkProfile, script: OperatorScript, make_backend: Callable[[object], Backend], *,
                model: RobotModel | None = None, seed: int = 0, rate_hz: float = 1000.0, settle_s: float = 1.5,
                config: TeleopConfig | None = None) -> tuple[ProfileResult, SweepTrace]:
    """Run ``script`` through ``profile``; see the module docstring for the metrics.

    ``make_backend(description)`` builds the simulated robot (the CLI passes an ``ArmSim`` in
    DIRECT mode, not paced to the wall clock); it must be a backend whose clock is simulated.
    """
    model = model or robot_model(load_description("machaon_arm"))
    d = model.desc
    cfg = config or TeleopConfig(workspace_min=d.workspace_min, workspace_max=d.workspace_max)
    with make_backend(d) as sim:
        sup = build_supervisor(model.chain, cfg, model.dynamics, **safety_settings(model))
        tc = TeleopController(model.chain, inner_controller(model, position_mode=False), sup, cfg, rate_hz)
        pump = _Pump(tc, SimLink(profile, seed), script, cfg)
        loop = ControlLoop(sim, pump, sup, rate_hz)
        loop.run_for(script.duration + settle_s + 0.5)
        if loop.error is not None:
            raise RuntimeError(f"control loop failed: {loop.error}")
        holds = sum(1 for e in sup.events if e.code == "stale_target")
    rows = pump.rows
    t = np.array([r[0] for r in rows])
    pa = np.array([r[1] for r in rows])
    pi = np.array([r[2] for r in rows])
    run = np.array([r[3] for r in rows])
    task = t <= script.duration
    err = np.linalg.norm(pa - pi, axis=1)
    lo, hi = pi.min(axis=0), pi.max(axis=0)
    over = float(np.max(np.maximum(pa - hi, 0.0).max(axis=1).clip(min=0).tolist()
                        + np.maximum(lo - pa, 0.0).max(axis=1).tolist()))
    near = np.linalg.norm(pa - pi[-1], axis=1) < 1e-3
    completion = None
    if near[-1]:
        idx = len(near) - int(np.argmin(near[::-1])) if not near.all() else 0
        completion = float(t[min(idx, len(t) - 1)])
    dt = 1.0 / rate_hz
    rtt = pump.cli.meter.health(0.0).rtt_p50_s
    lc = pump.link.up.counters
    dev = path_deviation(pa, pi)
    res = ProfileResult(
        profile.name, rtt * 1e3, float(np.sqrt(np.mean(err[task] ** 2)) * 1e3), float(err[task].max() * 1e3),
        over * 1e3, completion, holds, float((~run).sum() * dt), pump.srv.drops.total, lc.lost,
        float(np.sqrt(np.mean(dev**2)) * 1e3), float(dev.max() * 1e3), time_lag(t, pa, pi) * 1e3,
    )
    return res, SweepTrace(t, pa, pi)


@dataclass(frozen=True)
class SweepReport:
    task: str
    results: tuple[ProfileResult, ...]
    out_dir: Path

    def table(self) -> str:
        head = (f"{'profile':18s} {'rtt ms':>7s} {'rms mm':>7s} {'max mm':>7s} {'path mm':>8s} {'lag ms':>7s} "
                f"{'over mm':>8s} {'done s':>7s} {'holds':>5s} {'held s':>6s} {'lost':>5s}")
        lines = [f"task: {self.task}", head, "-" * len(head)]
        for r in self.results:
            done = "-" if r.completion_s is None else f"{r.completion_s:7.2f}"
            lines.append(f"{r.profile:18s} {r.rtt_p50_ms:7.1f} {r.rms_error_mm:7.2f} {r.max_error_mm:7.2f} "
                         f"{r.path_dev_rms_mm:8.3f} {r.lag_ms:7.1f} {r.overshoot_mm:8.2f} {done:>7s} {r.holds:5d} "
                         f"{r.time_not_run_s:6.2f} {r.packets_lost:5d}")
        return "\n".join(lines)


def task_script(task: str, speed: float = 1.0) -> OperatorScript:
    """The sweep's operator tasks; ``speed`` scales how fast the operator moves (1 = nominal)."""
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"operator speed must be > 0, got {speed}")
    if task == "square":
        return trace_square(side_m=0.04, period_s=4.0 / speed, motion_scale=2.0)
    if task == "hold":
        return hold_point(offset_m=0.03, hold_s=2.0, step_s=0.5 / speed)
    raise ValueError(f"unknown task {task!r} (square or hold)")
