"""Exo benchmark: streaming EMG throughput, the assist controller's cost per cycle, EMG-to-torque delay.

1. EMG chain, 8 channels at 2 kHz (band-pass 20-450 Hz, 50/100/150 Hz notches, rectification,
   5 Hz envelope): Machaon's ``EMGStream.process`` (compiled chain + channel-quality statistics)
   on 1 ms blocks (2 samples), against SciPy offline causal filtering of the whole recording (same
   filters, ``sosfilt`` over 60 s at once), reported per 1 ms of data, and against the bare SciPy
   block chain (``sosfilt`` with ``zi``, no quality checks) on the same blocks. The outputs are
   checked equal to 1e-12 (relative to the largest envelope).
2. ``AssistController.update`` per control cycle, replaying 6 s of sensor data and joint states
   recorded from the leg simulation (it locks on to the gait after ~3 s; assisting cycles are
   timed), against the 1 kHz budget; cycles that fold in an IMU sample (4 ``ahrs`` Madgwick
   updates + gait-phase oscillators) are shown separately, and ``ahrs`` Madgwick alone as its peer.
   The EMG-to-torque delay: the group delay of the band-pass + notch chain at the EMG's median
   frequency (~100 Hz) plus that of the envelope low-pass at the 1 Hz of gait-rate activation
   (``scipy.signal.group_delay``), plus one 1 ms block of samples and one 1 ms control cycle.
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
    assert err <= 1e-12 * np.abs(offline).max(), err  # equal to SciPy's offline filtering

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
    bmed = float(np.median(bare))
    target = f"<= 10 us: {'met' if med <= 10e-6 else 'NOT met'}"
    return [
        ["EMG 8 ch @ 2 kHz, per 1 ms block", "EMGStream.process (compiled, + quality)", us(med), us(p99),
         "bare SciPy sosfilt+zi block chain, same blocks", us(bmed), f"{bmed / med:.1f}x faster", target],
        ["", "", "", "", "SciPy offline sosfilt, per 1 ms of data", us(t_off), f"{med / t_off:.1f}x", ""],
        ["", "real-time load at 1 kHz", f"{med / 1e-3 * 100:.2f} %", "", "max |stream - offline| (V)",
         f"{err:.1e}", "", ""],
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
    med = float(np.median(a))
    return [
        ["assist controller, per 1 kHz cycle", "AssistController.update (all assisting cycles)",
         us(med), us(float(np.percentile(a, 99))), "cycle budget at 1 kHz", "1000.00",
         f"{med / 1e-3 * 100:.1f} %", f"median <= 60 us: {'met' if med <= 60e-6 else 'NOT met'}"],
        ["", "  cycles without an IMU sample", us(float(np.median(an))), us(float(np.percentile(an, 99))), "", "",
         "", ""],
        ["", "  cycles with an IMU sample (every 5th)", us(float(np.median(ai))), us(float(np.percentile(ai, 99))),
         "ahrs Madgwick.updateIMU x4", us(4 * float(np.median(t_mad))),
         f"{np.median(ai) / (4 * np.median(t_mad)):.1f}x", ""],
    ]


def emg_to_torque_delay_ms(cycle_s: float = 1e-3) -> tuple[float, float, float, float]:
    """(band-pass + notch group delay at 100 Hz, envelope group delay at 1 Hz, block + cycle, total), ms."""
    cfg = EMGConfig()
    f = design_filters(cfg)
    _, gd_pre = signal.group_delay(signal.sos2tf(f.sos_pre), w=[100.0], fs=cfg.fs_hz)
    _, gd_env = signal.group_delay(signal.sos2tf(f.sos_env), w=[1.0], fs=cfg.fs_hz)
    pre, env = 1e3 * float(gd_pre[0]) / cfg.fs_hz, 1e3 * float(gd_env[0]) / cfg.fs_hz
    io = 1e3 * (1e-3 + cycle_s)  # the newest sample waits up to one block, the command one cycle
    return pre, env, io, pre + env + io


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
    rows = bench_emg() + bench_controller()
    rows += [r + [""] for r in bench_sim()]
    print(table(["case", "machaon", "median (us)", "p99 (us)", "peer / reference", "peer (us)", "ratio",
                 "issue #11 target"], rows))
    pre, env, io, total = emg_to_torque_delay_ms()
    print(f"EMG-to-torque delay: {total:.1f} ms = band-pass + notches {pre:.1f} ms (group delay at 100 Hz) + "
          f"envelope low-pass {env:.1f} ms (at 1 Hz) + one block and one cycle {io:.1f} ms")


if __name__ == "__main__":
    main()
