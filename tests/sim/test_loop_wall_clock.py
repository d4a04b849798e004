"""Defect 4: a real-time sim run that falls behind the wall clock. On the simulated clock it looks
perfect (0 overruns, 0 jitter); the loop's wall-clock timing, the run log and ``machaon log
summary`` must show the slowdown."""

from __future__ import annotations

import json
import time

import numpy as np
from mcap.reader import make_reader

from machaon.cli.main import main
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.robot.clock import FakeClock, MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.robot.runlog import TOPIC_STATS, RunLogRecorder, read_run_log
from machaon.sim import ArmSim
from machaon.types import JointCommand


class _Slow:
    """Holds the arm with gravity torques... of zero: the point is the 3 ms it takes per cycle."""

    def __init__(self, dof: int) -> None:
        self.dof = dof

    def update(self, state, t):
        time.sleep(0.003)  # a cycle can never take less than this: at 1 kHz the loop falls behind
        return JointCommand.position(np.asarray(state.q))


def test_a_slow_realtime_sim_run_shows_its_wall_clock_overruns(arm_desc, tmp_path, capsys):
    log = tmp_path / "run.mcap"
    with ArmSim(arm_desc, realtime=True) as sim, RunLogRecorder(log, joint_names=sim.joint_names) as rec:
        loop = ControlLoop(sim, _Slow(sim.dof), Supervisor(SafetyConfig(period_max_s=10.0)), 1000.0, rec)
        stats = loop.run_for(0.3)
    assert stats.overruns == 0 and stats.error_p99 < 1e-9  # what the simulated clock alone said
    assert stats.realtime == 1.0
    assert stats.wall_overruns >= 0.9 * stats.cycles  # every cycle took >= 3 ms of a 1 ms slot
    assert stats.wall_period_median >= 0.003
    assert stats.realtime_factor < 0.34 and stats.wall_elapsed_s >= 0.9
    run = read_run_log(log)
    assert run.stats["wall_overruns"] == stats.wall_overruns
    assert main(["log", "summary", str(log)]) == 0
    out = capsys.readouterr().out
    assert "wall clock" in out
    factor = float(out.split("real-time factor ")[1].split(";")[0])
    assert factor < 0.34
    assert f"{stats.wall_overruns} overruns (cycles more than one period late)" in out


def test_wall_clock_timing_only_when_meant_to_be_real_time():
    fast = ControlLoop(FakeBackend(2), _Slow(2), Supervisor(SafetyConfig(period_max_s=10.0)), 1000.0)
    s = fast.run_for(0.01)
    assert s.realtime == 0.0 and s.wall_overruns == 0 and np.isnan(s.realtime_factor)
    assert isinstance(fast.backend.clock, FakeClock)
    paced = ControlLoop(FakeBackend(2, clock=MonotonicClock()), _Slow(2),
                        Supervisor(SafetyConfig(period_max_s=10.0)), 1000.0)
    s = paced.run_for(0.05)
    assert s.realtime == 1.0 and s.overruns > 0 and s.wall_overruns > 0  # on a monotonic clock both see it
    forced = ControlLoop(FakeBackend(2), _Slow(2), Supervisor(SafetyConfig(period_max_s=10.0)), 1000.0,
                         wall_clock=True)
    assert forced.run_for(0.01).wall_overruns > 0


def test_a_running_record_is_written_every_few_seconds_of_loop_time(tmp_path):
    log = tmp_path / "run.mcap"
    with RunLogRecorder(log, joint_names=["a", "b"]) as rec:
        loop = ControlLoop(FakeBackend(2), _Fast(), Supervisor(SafetyConfig()), 1000.0, rec, stats_every_s=1.0)
        loop.run_for(3.5)
    with open(log, "rb") as f:
        records = [json.loads(m.data) for _, ch, m in make_reader(f).iter_messages() if ch.topic == TOPIC_STATS]
    assert len(records) == 4 and all(abs(r["window_s"] - 1.0) < 2e-3 for r in records[:-1])  # one a second ...
    assert [r["cycles"] // 1000 for r in records[:-1]] == [1, 2, 3]
    run = read_run_log(log)
    assert run.stats["window_s"] == 0.0 and run.stats["cycles"] == 3500  # ... and the final record wins


class _Fast:
    def update(self, state, t):
        return JointCommand.position(np.asarray(state.q))
