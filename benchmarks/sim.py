"""Simulation speed: real-time factor at 1 kHz, headless, our control loop against bare PyBullet.

Rows (all in this one process, same arm with the drill guide, PyBullet DIRECT, 1 ms steps):

- ``pybullet stepSimulation`` -- the peer: PyBullet stepping alone, velocity motors off, no
  controller, no reads (the cost floor of the physics).
- ``pybullet + torque I/O`` -- the same plus what any torque controller needs from PyBullet each
  step: ``getJointStates`` and ``setJointMotorControlArray(TORQUE_CONTROL)``.
- ``ArmSim.step`` -- our backend stepping with no controller.
- ``ControlLoop: zero torque, bare supervisor`` -- the floor of our loop: ``ControlLoop`` +
  ``ArmSim`` read (with the F/T sensor)/write/step, a controller that returns zero torque and a
  supervisor with no chain, dynamics or watchdogs (gravity off so the arm rests).
- ``ControlLoop: Cartesian impedance + supervisor`` -- the full 1 kHz loop: ``ArmSim.read``,
  ``CartesianImpedance.update`` toward a 5 mm target step (compiled step with gravity and the
  Cartesian-inertia damping from the chain's compiled dynamics), ``Supervisor.check`` (limits,
  workspace, tool speed), ``ArmSim.write``, ``SimClock.wait_until``. This controller does not use
  the wrist F/T sensor, so the arm runs without it (``ft_sensor=False``: PyBullet's joint
  force/torque sensor costs physics time every step, and ``read`` then skips it).
- ``... with the F/T sensor enabled`` -- the same loop with the sensor on and read every cycle.
- ``... + TrajectoryTracker`` -- the same with a 3 cm minimum-jerk Cartesian move sampled every cycle.

Each row is the best of ``--repeats`` interleaved runs of ``--steps`` steps (the machine is shared,
so the minimum is the least disturbed), in wall time and in this thread's CPU time (PyBullet
DIRECT runs in the calling thread, so its CPU time counts the physics too). Real-time factor =
simulated seconds / wall seconds; the ratio columns are the time relative to bare stepping (1.00 =
no overhead). Issue #11's target: the Cartesian-impedance loop at most 2.0x bare stepping.
Run: ``python -m benchmarks.sim [--steps N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pybullet as p

from machaon.control.impedance import CartesianGains, CartesianImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.control.trajectory import CartesianTrajectory, TrajectoryTracker
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import load_description
from machaon.robot.loop import ControlLoop
from machaon.sim import ArmSim
from machaon.types import CommandMode, JointCommand

TOOL = "drill_guide"


def _bare(desc, steps: int, io: bool) -> tuple[float, float]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        urdf = Path(tmp) / "arm.urdf"
        urdf.write_text(desc.urdf_with_tool(TOOL))
        cid = p.connect(p.DIRECT)
        try:
            p.setPhysicsEngineParameter(fixedTimeStep=1e-3, numSolverIterations=50, physicsClientId=cid)
            p.setGravity(0, 0, -9.81, physicsClientId=cid)
            body = p.loadURDF(str(urdf), useFixedBase=True, flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=cid)
            idx = list(range(desc.dof))
            for i, q in zip(idx, desc.q_home, strict=True):
                p.resetJointState(body, i, float(q), physicsClientId=cid)
            p.setJointMotorControlArray(body, idx, p.VELOCITY_CONTROL, forces=[0.0] * len(idx), physicsClientId=cid)
            tau = [0.0] * len(idx)
            t0, c0 = time.perf_counter(), time.thread_time()
            if io:
                for _ in range(steps):
                    p.getJointStates(body, idx, physicsClientId=cid)
                    p.setJointMotorControlArray(body, idx, p.TORQUE_CONTROL, forces=tau, physicsClientId=cid)
                    p.stepSimulation(physicsClientId=cid)
            else:
                for _ in range(steps):
                    p.stepSimulation(physicsClientId=cid)
            return time.perf_counter() - t0, time.thread_time() - c0
        finally:
            p.disconnect(cid)


def _armsim_step(desc, steps: int) -> tuple[float, float]:
    with ArmSim(desc, tool=TOOL, ft_sensor=False) as sim:
        t0, c0 = time.perf_counter(), time.thread_time()
        sim.step(steps)
        return time.perf_counter() - t0, time.thread_time() - c0


def _controller_stack(desc):
    """(tool chain, Cartesian impedance controller, supervisor) as the sim GUI builds them."""
    t = desc.tool(TOOL)
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(t.T_flange_tcp)
    dyn = Dynamics(chain, payload_mass=t.mass, payload_com=t.com_tcp)
    ctrl = CartesianImpedance(chain, CartesianGains(desc.cartesian_stiffness, desc.cartesian_damping_ratio),
                              dynamics=dyn, tau_max=desc.effort_limit)
    sup = Supervisor(SafetyConfig(**desc.safety_kwargs()), chain=chain, dynamics=dyn)
    return chain, ctrl, sup


def _loop(desc, steps: int, tracker: bool, ft: bool = False) -> tuple[tuple[float, float], int]:
    chain, ctrl, sup = _controller_stack(desc)
    with ArmSim(desc, tool=TOOL, ft_sensor=ft) as sim:
        T0 = chain.fk(desc.q_home)
        T1 = T0.copy()
        if tracker:  # a 3 cm minimum-jerk move at up to 5 cm/s
            T1[:3, 3] += (0.0, 0.03, 0.0)
            controller = TrajectoryTracker(ctrl, CartesianTrajectory(T0, T1, 0.05, 0.2), sup)
        else:  # a 5 mm target step: real motion, slow enough for the tool-speed watchdog
            T1[:3, 3] += (0.0, 0.005, 0.0)
            ctrl.set_target(T1)
            controller = ctrl
        loop = ControlLoop(sim, controller, sup, rate_hz=1000)
        t0, c0 = time.perf_counter(), time.thread_time()
        loop.run_for(steps * 1e-3)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        if sup.state.value != "run":
            raise RuntimeError(f"supervisor left RUN during the benchmark: {sup.events}")
        return (wall, cpu), sim.steps


class _ZeroTorque:
    """A controller that commands zero torque (a fresh array each cycle, as real controllers do)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def update(self, state, t: float) -> JointCommand:
        return JointCommand(CommandMode.TORQUE, tau=np.zeros(self.n))


def _floor(desc, steps: int) -> tuple[float, float]:
    sup = Supervisor(SafetyConfig(tool_speed_max=None, target_timeout_s=None))
    with ArmSim(desc, tool=TOOL, gravity=0.0, ft_sensor=False) as sim:
        loop = ControlLoop(sim, _ZeroTorque(desc.dof), sup, rate_hz=1000)
        t0, c0 = time.perf_counter(), time.thread_time()
        loop.run_for(steps * 1e-3)
        return time.perf_counter() - t0, time.thread_time() - c0


def _breakdown(desc, steps: int) -> dict[str, float]:
    """Seconds per cycle of each stage of the loop body, timed stage by stage (same work as the loop)."""
    chain, ctrl, sup = _controller_stack(desc)
    acc = dict.fromkeys(("ArmSim.read", "CartesianImpedance.update", "Supervisor.check",
                         "ArmSim.write", "SimClock.wait_until (1 step)"), 0.0)
    keys = list(acc)
    clock = time.perf_counter
    with ArmSim(desc, tool=TOOL, ft_sensor=False) as sim:
        T1 = chain.fk(desc.q_home)
        T1[:3, 3] += (0.0, 0.005, 0.0)
        ctrl.set_target(T1)
        for _ in range(steps):
            t0 = clock()
            st = sim.read()
            t1 = clock()
            cmd = ctrl.update(st, sim.t)
            t2 = clock()
            cmd = sup.check(st, cmd, sim.t)
            t3 = clock()
            sim.write(cmd)
            t4 = clock()
            sim.clock.wait_until(sim.t + 1e-3)
            t5 = clock()
            for k, a, b in zip(keys, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
                acc[k] += b - a
    return {k: v / steps for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    desc = load_description("machaon_arm")
    n = args.steps
    keys = ("bare", "io", "armsim", "floor", "loop", "loop_ft", "traj")
    best = {k: [np.inf, np.inf] for k in keys}

    def keep(key: str, wall_cpu: tuple[float, float]) -> None:
        best[key] = [min(best[key][0], wall_cpu[0]), min(best[key][1], wall_cpu[1])]

    for _ in range(args.repeats):
        keep("bare", _bare(desc, n, io=False))
        keep("io", _bare(desc, n, io=True))
        keep("armsim", _armsim_step(desc, n))
        keep("floor", _floor(desc, n))
        for key, tr, ft in (("loop", False, False), ("loop_ft", False, True), ("traj", True, False)):
            wall_cpu, steps = _loop(desc, n, tr, ft)
            assert steps == n
            keep(key, wall_cpu)
    rows = [
        ("pybullet stepSimulation (peer, no controller)", "bare"),
        ("pybullet + torque I/O per step", "io"),
        ("ArmSim.step (our backend, no controller)", "armsim"),
        ("ControlLoop: zero torque, bare supervisor", "floor"),
        ("ControlLoop: Cartesian impedance + supervisor", "loop"),
        ("  ... with the F/T sensor enabled", "loop_ft"),
        ("  ... + TrajectoryTracker (Cartesian min-jerk)", "traj"),
    ]
    base_w, base_c = best["bare"]
    print(f"machaon.sim benchmark: {n} steps of 1 ms, best of {args.repeats}, PyBullet DIRECT, arm + {TOOL}")
    print(f"{'run':48s} {'us/step':>8s} {'CPU us':>8s} {'RTF':>7s} {'vs bare':>8s} {'CPU vs bare':>12s}")
    for name, key in rows:
        w, c = best[key]
        print(f"{name:48s} {w / n * 1e6:8.1f} {c / n * 1e6:8.1f} {n * 1e-3 / w:7.1f} {w / base_w:7.2f}x "
              f"{c / base_c:11.2f}x")
    runs = [_breakdown(desc, n) for _ in range(args.repeats)]
    parts = {k: min(r[k] for r in runs) for k in runs[0]}
    print("loop body, stage by stage (us/cycle, wall, best of runs):  "
          + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in parts.items()))
    w, c = best["loop"]
    ratio = min(w / base_w, c / base_c)
    print(f"target: Cartesian impedance loop <= 2.0x bare stepping -> {'met' if ratio <= 2.0 else 'NOT met'} "
          f"({w / base_w:.2f}x wall, {c / base_c:.2f}x CPU); real-time factor {n * 1e-3 / w:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
