"""Exo benchmark: streaming EMG throughput and the assist controller's cost per cycle.

1. EMG chain, 8 channels at 2 kHz (band-pass 20-450 Hz, 50/100/150 Hz notches, rectification,
   5 Hz envelope): Machaon's ``EMGStream.process`` on 1 ms blocks (2 samples), including the
   channel-quality monitor, against SciPy offline causal filtering of the whole recording (same
   filters, ``sosfilt`` over 60 s at once), reported per 1 ms of data. The outputs are checked equal.
   The bare SciPy block chain (``sosfilt`` with ``zi``, no quality checks) is shown too.
2. ``AssistController.update`` per control cycle, replaying 6 s of sensor data and joint states
   recorded from the leg simulation (it locks on to the gait after ~3 s; assisting cycles are
   timed), against the 1 kHz budget; cycles that fold in an IMU sample (4 ``ahrs`` Madgwick
   updates + gait-phase oscillators) are shown separately, and ``ahrs`` Madgwick alone as its peer.
3. One ``LegSim`` physics step (wearer model + sensor synthesis + PyBullet) against a bare
   ``pybullet.stepSimulation`` of the same world.

Run: ``python -m benchmarks.exo``.
"""

from __future__ import annotations

import time

import numpy as np
import pybullet as p
from ahrs.filters import Madgwick
from scipy import signal

from benchmarks._common import table, time_calls, us
from machaon.exo.controller import AssistConfig, AssistController
from machaon.exo.emg import EMGConfig, EMGStream, design_filters, envelope_offline
from machaon.exo.sensors import SensorBatch
from machaon.exo.walk import calibrate_mvc
from machaon.sim.legs import LegSim
from machaon.types import JointCommand, JointState


def bench_emg(seconds: float = 60.0) -> list[list[object]]:
    cfg = EMGConfig()
    rng = np.random.default_rng(0)
    n = int(seconds * cfg.fs_hz)
    x = rng.normal(scale=3e-4, size=(n, 8))
    t0 = time.perf_counter()
    offline = envelope_offline(x, cfg)
    t_off = (time.perf_counter() - t0) / (seconds * 1000.0)

    stream = EMGStream(cfg, 8)
    blocks = x.reshape(-1, 2, 8)
    out = np.empty_like(x)
    times = np.empty(blocks.shape[0])
    clock = time.perf_counter
    for i in range(blocks.shape[0]):
        t1 = clock()
        out[2 * i : 2 * i + 2] = stream.process(blocks[i])
        times[i] = clock() - t1
    err = float(np.max(np.abs(out - offline)))
    assert err <= 1e-12 * np.abs(offline).max(), err

    f = design_filters(cfg)
    zi_pre = np.zeros((f.sos_pre.shape[0], 2, 8))
    zi_env = np.zeros((f.sos_env.shape[0], 2, 8))
    bare = np.empty(blocks.shape[0])
    for i in range(blocks.shape[0]):
        t1 = clock()
        y, zi_pre = signal.sosfilt(f.sos_pre, blocks[i], axis=0, zi=zi_pre)
        _, zi_env = signal.sosfilt(f.sos_env, np.abs(y), axis=0, zi=zi_env)
        bare[i] = clock() - t1
    med, p99 = float(np.median(times)), float(np.percentile(times, 99))
    bmed, bp99 = float(np.median(bare)), float(np.percentile(bare, 99))
    return [
        ["EMG 8 ch @ 2 kHz, per 1 ms block", "EMGStream.process (+ quality)", us(med), us(p99),
         "SciPy offline sosfilt, per 1 ms of data", us(t_off), f"{med / t_off:.1f}x"],
        ["", "bare SciPy sosfilt+zi block chain", us(bmed), us(bp99), "", "", f"{bmed / t_off:.1f}x"],
        ["", "real-time load at 1 kHz", f"{med / 1e-3 * 100:.1f} %", "", "max |stream - offline| (V)",
         f"{err:.1e}", ""],
    ]


class _Replay:
    def __init__(self, batches: list[SensorBatch]) -> None:
        self.batches = batches
        self.i = 0

    def poll(self) -> SensorBatch:
        b = self.batches[self.i]
        self.i += 1
        return b


def bench_controller(seconds: float = 6.0) -> list[list[object]]:
    batches, states = [], []
    with LegSim() as sim:
        mvc = calibrate_mvc(sim, EMGConfig())
        for _ in range(int(seconds * 1000)):
            states.append(sim.read())
            sim.write(JointCommand.torque(np.zeros(4)))
            sim.clock.wait_until(sim.clock.now() + 1e-3)
            batches.append(sim.sensors.poll())
    ctrl = AssistController(_Replay(batches), mvc, AssistConfig())
    times = np.empty(len(states))
    imu = np.zeros(len(states), dtype=bool)
    assist = np.zeros(len(states), dtype=bool)
    clock = time.perf_counter
    for i, st in enumerate(states):
        s = JointState(st.t + 1e-3, st.q, st.dq, st.tau)
        t1 = clock()
        ctrl.update(s, s.t)
        times[i] = clock() - t1
        imu[i] = batches[i].imu.shape[0] > 0
        assist[i] = ctrl.status.mode == "assist"
    if not assist.any():
        raise RuntimeError(f"controller never assisted (last reason {ctrl.status.reason})")
    a = times[assist]
    ai = times[assist & imu]
    an = times[assist & ~imu]
    mad = Madgwick(frequency=200.0)
    q = np.array([1.0, 0, 0, 0])
    g, acc = np.array([0.1, -0.5, 0.02]), np.array([0.3, 0.1, 9.7])
    t_mad = time_calls(lambda: mad.updateIMU(q, g, acc), repeat=2000)
    return [
        ["assist controller, per 1 kHz cycle", "AssistController.update (all assisting cycles)",
         us(float(np.median(a))), us(float(np.percentile(a, 99))), "cycle budget at 1 kHz", "1000.00",
         f"{np.median(a) / 1e-3 * 100:.1f} %"],
        ["", "  cycles without an IMU sample", us(float(np.median(an))), us(float(np.percentile(an, 99))), "", "", ""],
        ["", "  cycles with an IMU sample (every 5th)", us(float(np.median(ai))), us(float(np.percentile(ai, 99))),
         "ahrs Madgwick.updateIMU x4", us(4 * float(np.median(t_mad))),
         f"{np.median(ai) / (4 * np.median(t_mad)):.1f}x"],
    ]


def bench_sim(steps: int = 2000) -> list[list[object]]:
    with LegSim() as sim:
        for _ in range(200):
            sim.step()
        t_sim = time_calls(sim.step, repeat=steps, warmup=10)
        c = sim._client
        t_pb = time_calls(lambda: p.stepSimulation(physicsClientId=c), repeat=steps, warmup=10)
    return [["leg simulation, per 1 ms step", "LegSim.step (wearer + sensors + physics)", us(float(np.median(t_sim))),
             us(float(np.percentile(t_sim, 99))), "pybullet.stepSimulation alone", us(float(np.median(t_pb))),
             f"{np.median(t_sim) / np.median(t_pb):.1f}x"]]


def main() -> None:
    rows = bench_emg() + bench_controller() + bench_sim()
    print(table(["case", "machaon", "median (us)", "p99 (us)", "peer / reference", "peer (us)", "ratio"], rows))


if __name__ == "__main__":
    main()
