"""Control benchmark: the fused Cython Cartesian impedance step, and 1 kHz loop timing.

1. One control cycle of Cartesian impedance on the project's arm (machaon_arm, 6 joints): tool
   pose + Jacobian + rotation-vector error + ``tau = J^T (K e + D (v_d - J dq))``. Machaon does it
   with one call of the fused kernel (``CartesianStep.step``); the peer does the same arithmetic
   with pinocchio's Python API (``forwardKinematics``, ``updateFramePlacement``,
   ``computeFrameJacobian``, ``log3``) and numpy, on the same states. Results are checked equal.
   The full controller (``CartesianImpedance.update``, with pinocchio gravity) is shown for scale.
2. ``ControlLoop`` at 1 kHz on the ``FakeBackend`` paced by ``MonotonicClock`` (sleep-then-spin),
   running a ``CartesianImpedance`` controller with gravity and inertia-based damping, for
   ``--seconds`` (default 10): period error median/p99, with the loop thread at SCHED_FIFO
   ``--priority`` (needs root; 0 for normal) and again at normal priority. The peer is the same
   loop at normal priority paced with ``time.sleep`` alone.

Run: ``python -m benchmarks.control [--seconds 10] [--states 2000]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pinocchio as pin

import machaon
from benchmarks._common import table, us
from machaon.control import CartesianGains, CartesianImpedance, cartesian_damping
from machaon.control import _impedance as kernels
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.kinematics import Chain, Dynamics
from machaon.robot.clock import MonotonicClock
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import JointState

URDF = Path(machaon.__file__).parent / "robot" / "descriptions" / "machaon_arm.urdf"


class _SleepClock(MonotonicClock):
    """The naive pacing most Python loops use: ``time.sleep`` for the whole remaining time."""

    def wait_until(self, t: float) -> None:
        remaining = t - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _pin_step(model, data, fid, iq, iv, q, dq, T_target, K, D):
    qf = np.zeros(model.nq)
    qf[iq] = q
    pin.forwardKinematics(model, data, qf)
    M = pin.updateFramePlacement(model, data, fid)
    J = pin.computeFrameJacobian(model, data, qf, fid, pin.LOCAL_WORLD_ALIGNED)[:, iv]
    e = np.concatenate([T_target[:3, 3] - M.translation, pin.log3(T_target[:3, :3] @ M.rotation.T)])
    return J.T @ (K @ e - D @ (J @ dq))


def bench_step(n_states: int) -> list[list[object]]:
    chain = Chain.from_urdf(URDF, "base_link", "flange")
    dyn = Dynamics(chain)
    rng = np.random.default_rng(0)
    Q = chain.random_q(rng, n_states)
    dQ = rng.normal(size=(n_states, chain.dof))
    targets = chain.fk_batch(chain.random_q(rng, n_states))
    k = np.array([2000.0, 2000.0, 500.0, 50.0, 50.0, 20.0])
    K = np.diag(k)
    D = np.ascontiguousarray(cartesian_damping(k, 0.7))

    step = kernels.CartesianStep(chain.kernel)
    step.set_gains(K, D)
    tau = np.empty(chain.dof)

    model = pin.buildModelFromUrdf(str(URDF))
    data = model.createData()
    fid = model.getFrameId("flange")
    assert model.nq == model.nv == chain.dof, "the benchmark expects an arm with only revolute joints"
    iq = [model.joints[model.getJointId(n)].idx_q for n in chain.joint_names]
    iv = [model.joints[model.getJointId(n)].idx_v for n in chain.joint_names]

    # Same states, same answers.
    worst = 0.0
    for i in range(n_states):
        step.step(Q[i], dQ[i], targets[i], None, 0.0, tau)
        ref = _pin_step(model, data, fid, iq, iv, Q[i], dQ[i], targets[i], K, D)
        worst = max(worst, float(np.abs(tau - ref).max() / max(1.0, np.abs(ref).max())))
    assert worst < 1e-9, f"fused step disagrees with pinocchio + numpy: {worst:.3g}"

    Qs, dQs, Ts = list(Q), list(dQ), list(targets)
    n = n_states

    def time_fused() -> float:
        t0 = time.perf_counter()
        for j in range(n):
            step.step(Qs[j], dQs[j], Ts[j], None, 0.0, tau)
        return (time.perf_counter() - t0) / n

    def time_peer() -> float:
        t0 = time.perf_counter()
        for j in range(n):
            _pin_step(model, data, fid, iq, iv, Qs[j], dQs[j], Ts[j], K, D)
        return (time.perf_counter() - t0) / n

    ctrl = CartesianImpedance(chain, CartesianGains(k, 0.7), dynamics=dyn)
    states = [JointState(0.0, Q[j], dQ[j], np.zeros(chain.dof)) for j in range(n_states)]
    ctrl.on_activate(states[0], 0.0)
    clock = [0.0]

    def time_update() -> float:
        t0 = time.perf_counter()
        for j in range(n):
            ctrl.set_target(Ts[j])
            clock[0] += 1e-3
            ctrl.update(states[j], clock[0])
        return (time.perf_counter() - t0) / n

    # Interleaved repeats, best-of: the machine is shared, so take each side's least-disturbed pass.
    fused, peer, update = [], [], []
    for _ in range(7):
        fused.append(time_fused())
        peer.append(time_peer())
        update.append(time_update())
    f, p, u = min(fused), min(peer), min(update)
    return [
        ["Cartesian impedance step (FK + J + law), us/call", us(f), us(p), f"{p / f:.1f}x",
         f"max rel. diff {worst:.1e}"],
        ["CartesianImpedance.update (+ gravity, limits), us", us(u), "-", "-", "pinocchio gravity inside"],
    ]


def bench_loop(seconds: float, priority: int) -> list[list[object]]:
    chain = Chain.from_urdf(URDF, "base_link", "flange")
    dyn = Dynamics(chain)
    results = {}
    runs = (("machaon", MonotonicClock(), priority), ("machaon-normal", MonotonicClock(), None),
            ("sleep", _SleepClock(), None))
    for name, clock, prio in runs:
        q0 = chain.home()
        backend = FakeBackend(chain.dof, q0=q0, clock=clock, mass_matrix=dyn.mass_matrix(q0))
        ctrl = CartesianImpedance(chain, CartesianGains.isotropic(1000.0, 30.0, 0.7), dynamics=dyn)
        sup = Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None, period_max_s=1.0), chain=chain)
        loop = ControlLoop(backend, ctrl, sup, rate_hz=1000.0, realtime_priority=prio)
        results[name] = loop.run_for(seconds)
    m, n, s = results["machaon"], results["machaon-normal"], results["sleep"]
    rt = f"SCHED_FIFO {priority}" if priority else "normal priority"
    return [
        [f"1 kHz loop ({rt}): period error median, us", us(m.error_median), us(s.error_median),
         f"{s.error_median / max(m.error_median, 1e-9):.1f}x", f"{m.cycles} cycles, {seconds:g} s each"],
        [f"1 kHz loop ({rt}): period error p99, us", us(m.error_p99), us(s.error_p99),
         f"{s.error_p99 / max(m.error_p99, 1e-9):.1f}x", f"overruns {m.overruns} vs {s.overruns}"],
        [f"1 kHz loop ({rt}): max period, us", us(m.period_max), us(s.period_max), "-",
         f"cycle compute median {us(m.compute_median)} us, p99 {us(m.compute_p99)} us"],
        ["1 kHz loop (normal priority): period error median / p99, us",
         f"{us(n.error_median)} / {us(n.error_p99)}", f"{us(s.error_median)} / {us(s.error_p99)}",
         f"{s.error_p99 / max(n.error_p99, 1e-9):.1f}x (p99)", f"overruns {n.overruns}"],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="loop timing duration per pacing method")
    ap.add_argument("--states", type=int, default=2000, help="random states for the impedance step")
    ap.add_argument("--priority", type=int, default=80, help="SCHED_FIFO priority of the loop (0: normal)")
    args = ap.parse_args()
    rows = bench_step(args.states) + bench_loop(args.seconds, args.priority)
    print(table(["case", "machaon", "peer", "ratio", "notes"], rows))
    print("peer: pinocchio Python API + numpy (step, same states, best of 7 interleaved passes); "
          "time.sleep pacing at normal priority (loop, same controller and backend).")


if __name__ == "__main__":
    main()
