"""Control benchmark: the public impedance calls and the supervisor check, and 1 kHz loop timing.

1. Per call, as a user makes them, on example-robot-data's UR10 and the project's machaon_arm:
   ``cartesian_impedance_torque(chain, q, dq, T, K, D, g=g)`` (checked, result allocated) and
   with ``gravity=True`` (gravity from the chain in the same call), beside the same arithmetic
   with pinocchio's Python API and numpy (``forwardKinematics``, ``updateFramePlacement``,
   ``computeFrameJacobian``, ``log3``; ``computeGeneralizedGravity`` for the gravity row), on the
   same states, checked equal first. ``CartesianImpedance.update`` with gravity compensation and
   the inertia-based damping (JointState in, JointCommand out; the Cartesian inertia is
   refreshed every 10 ms, so the mean includes it and the median does not) and
   ``Supervisor.check`` on a clean RUN cycle (limits, workspace, tool speed), for scale.
   Medians of blocks of calls: wall time (ratios) and this thread's CPU time.
2. ``ControlLoop`` at 1 kHz on the ``FakeBackend`` paced by ``MonotonicClock`` (sleep-then-spin,
   1 ns timer slack), running ``CartesianImpedance`` with gravity and a supervisor, ``--runs``
   runs of ``--seconds`` at normal priority: the period error p99 of the WORST run is the number
   (the target is a tail); the peer is the same loop paced with ``time.sleep`` alone, also worst of
   ``--runs``. One run at SCHED_FIFO ``--priority`` (needs CAP_SYS_NICE; 0 skips it).

Run: ``python -m benchmarks.control [--seconds 5] [--runs 5] [--priority 80]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pinocchio as pin

from benchmarks._common import erd_urdf, per_call, pin_model, table, us
from machaon.control import CartesianGains, CartesianImpedance, cartesian_damping, cartesian_impedance_torque
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.kinematics import Chain, Dynamics
from machaon.robot.clock import MonotonicClock
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.types import JointCommand, JointState


class _SleepClock(MonotonicClock):
    """The naive pacing most Python loops use: ``time.sleep`` for the whole remaining time."""

    def wait_until(self, t: float) -> None:
        remaining = t - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


class _PinLaw:
    """The Cartesian impedance law with pinocchio's Python API and numpy (the peer)."""

    def __init__(self, chain: Chain) -> None:
        self.model, self.data, self.fid = pin_model(chain)

    def tau(self, q, dq, T_target, K, D, g=None):
        model, data, fid = self.model, self.data, self.fid
        pin.forwardKinematics(model, data, q)
        M = pin.updateFramePlacement(model, data, fid)
        J = pin.computeFrameJacobian(model, data, q, fid, pin.LOCAL_WORLD_ALIGNED)
        e = np.concatenate([T_target[:3, 3] - M.translation, pin.log3(T_target[:3, :3] @ M.rotation.T)])
        tau = J.T @ (K @ e - D @ (J @ dq))
        return tau if g is None else tau + g

    def tau_gravity(self, q, dq, T_target, K, D):
        return self.tau(q, dq, T_target, K, D, pin.computeGeneralizedGravity(self.model, self.data, q))


def _verdict(value_us: float | None, max_us: float | None, ratio: float | None, min_ratio: float | None) -> str:
    parts = []
    if max_us is not None:
        parts.append(f"<= {max_us:g} us: {'met' if value_us <= max_us else 'NOT met'}")
    if min_ratio is not None:
        parts.append(f">= {min_ratio:g}x: {'met' if ratio >= min_ratio else 'NOT met'}")
    return "; ".join(parts)


def law_rows(name: str, chain: Chain) -> list[list[object]]:
    rng = np.random.default_rng(0)
    q, dq = chain.random_q(rng), rng.normal(size=chain.dof)
    T = chain.fk(chain.random_q(rng))
    k = np.array([2000.0, 2000.0, 500.0, 50.0, 50.0, 20.0])
    K, D = np.diag(k), np.ascontiguousarray(cartesian_damping(k, 0.7))
    peer = _PinLaw(chain)
    g = chain.gravity_torque(q)
    assert np.allclose(cartesian_impedance_torque(chain, q, dq, T, K, D, g=g), peer.tau(q, dq, T, K, D, g),
                       rtol=1e-9, atol=1e-9)
    assert np.allclose(cartesian_impedance_torque(chain, q, dq, T, K, D, gravity=True),
                       peer.tau_gravity(q, dq, T, K, D), rtol=1e-9, atol=1e-9)
    rows = []
    cases = [
        ("cartesian_impedance_torque(chain, q, dq, T, K, D, g=g)",
         lambda: cartesian_impedance_torque(chain, q, dq, T, K, D, g=g), lambda: peer.tau(q, dq, T, K, D, g),
         1.5, 10.0),
        ("cartesian_impedance_torque(..., gravity=True)",
         lambda: cartesian_impedance_torque(chain, q, dq, T, K, D, gravity=True),
         lambda: peer.tau_gravity(q, dq, T, K, D), 2.0, None),
    ]
    for label, ours, theirs, max_us, min_ratio in cases:
        (a_w, a_c), (b_w, b_c) = per_call(ours), per_call(theirs)
        rows.append([name, label, us(a_w), us(a_c), us(b_w), us(b_c), f"{b_w / a_w:.1f}x ({b_c / a_c:.1f}x)",
                     _verdict(a_w * 1e6, max_us, min(b_w / a_w, b_c / a_c), min_ratio)])
    return rows


def cycle_rows() -> list[list[object]]:
    """CartesianImpedance.update and Supervisor.check as the sim GUI builds them (machaon_arm + drill guide)."""
    desc = load_description("machaon_arm")
    tool = desc.tool("drill_guide")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(tool.T_flange_tcp)
    dyn = Dynamics(chain, payload_mass=tool.mass, payload_com=tool.com_tcp)
    ctrl = CartesianImpedance(chain, CartesianGains(desc.cartesian_stiffness, desc.cartesian_damping_ratio),
                              dynamics=dyn, tau_max=desc.effort_limit)
    sup = Supervisor(SafetyConfig(**(desc.safety_kwargs() | {"target_timeout_s": None, "period_max_s": None})),
                     chain=chain, dynamics=dyn)
    q = np.array(desc.q_home)
    state = JointState(0.0, q, np.full(desc.dof, 0.01), np.zeros(desc.dof))
    T1 = chain.fk(q)
    T1[:3, 3] += (0.0, 0.005, 0.0)
    ctrl.set_target(T1)
    clock = [0.0]

    def update():
        clock[0] += 1e-3
        return ctrl.update(state, clock[0])

    cmd = JointCommand.torque(np.zeros(desc.dof))

    def check():
        clock[0] += 1e-3
        return sup.check(state, cmd, clock[0])

    u_w, u_c = per_call(update, calls=100, blocks=100)
    # The mean over whole 10 ms windows includes the Cartesian-inertia refresh.
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(10_000):
        update()
    u_mean, u_mean_cpu = (time.perf_counter() - t0) / 10_000, (time.thread_time() - c0) / 10_000
    s_w, s_c = per_call(check)
    assert sup.state.value == "run"
    return [
        ["machaon_arm + tool", "CartesianImpedance.update (gravity + inertia damping), median", us(u_w), us(u_c),
         "-", "-", "-", _verdict(u_w * 1e6, 3.0, None, None)],
        ["machaon_arm + tool", "  ... mean over 10 ms windows (Lambda refresh included)", us(u_mean), us(u_mean_cpu),
         "-", "-", "-", ""],
        ["machaon_arm + tool", "Supervisor.check (limits, workspace, tool speed), RUN", us(s_w), us(s_c), "-", "-",
         "-", _verdict(s_w * 1e6, 1.5, None, None)],
    ]


def _loop_stats(chain: Chain, dyn: Dynamics, clock, seconds: float, priority: int | None):
    q0 = chain.home()
    backend = FakeBackend(chain.dof, q0=q0, clock=clock, mass_matrix=dyn.mass_matrix(q0))
    ctrl = CartesianImpedance(chain, CartesianGains.isotropic(1000.0, 30.0, 0.7), dynamics=dyn)
    sup = Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None, period_max_s=1.0), chain=chain)
    loop = ControlLoop(backend, ctrl, sup, rate_hz=1000.0, realtime_priority=priority)
    return loop.run_for(seconds)


def loop_rows(seconds: float, runs: int, priority: int) -> list[list[object]]:
    desc = load_description("machaon_arm")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    dyn = Dynamics(chain)
    ours, peer = [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        ours.append(_loop_stats(chain, dyn, MonotonicClock(), seconds, None))
        peer.append(_loop_stats(chain, dyn, _SleepClock(), seconds, None))
    worst = max(ours, key=lambda s: s.error_p99)
    worst_peer = max(peer, key=lambda s: s.error_p99)
    p99s = ", ".join(us(s.error_p99) for s in ours)
    rows = [
        ["1 kHz loop, normal priority", f"period error p99, worst of {runs} ({seconds:g} s each)",
         us(worst.error_p99), "", us(worst_peer.error_p99), "", f"{worst_peer.error_p99 / worst.error_p99:.1f}x",
         _verdict(worst.error_p99 * 1e6, 60.0, None, None) + f" (runs: {p99s})"],
        ["1 kHz loop, normal priority", "period error median (worst run's)", us(worst.error_median), "",
         us(worst_peer.error_median), "", "-", f"overruns {sum(s.overruns for s in ours)} vs "
                                               f"{sum(s.overruns for s in peer)}"],
    ]
    if priority:
        fifo = _loop_stats(chain, dyn, MonotonicClock(), seconds, priority)
        rows.append([f"1 kHz loop, SCHED_FIFO {priority}", "period error median / p99 (one run)",
                     f"{us(fifo.error_median)} / {us(fifo.error_p99)}", "", "-", "", "-",
                     f"compute median {us(fifo.compute_median)} us"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each loop run")
    ap.add_argument("--runs", type=int, default=5, help="loop runs per pacing method (the worst p99 is reported)")
    ap.add_argument("--priority", type=int, default=80, help="SCHED_FIFO priority of one extra run (0: skip)")
    args = ap.parse_args()
    desc = load_description("machaon_arm")
    ur10 = Chain.from_urdf(erd_urdf("ur_description/urdf/ur10_robot.urdf"), "base_link", "tool0")
    arm = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    rows = law_rows("UR10", ur10) + law_rows("machaon_arm", arm) + cycle_rows()
    rows += loop_rows(args.seconds, args.runs, args.priority)
    print(table(["arm / loop", "call (median us)", "machaon wall", "machaon CPU", "peer wall", "peer CPU",
                 "peer / machaon, wall (CPU)", "issue #11 target"], rows))
    print("peer: pinocchio 4 Python API + numpy doing the same arithmetic (laws, same states, checked equal); "
          "time.sleep pacing at normal priority (loop, same controller and backend). A ratio target is judged on "
          "the smaller of the wall and CPU ratios.")


if __name__ == "__main__":
    main()
