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
- ``ControlLoop: Cartesian impedance + supervisor`` -- the full 1 kHz loop: ``ArmSim.read`` (with
  the F/T sensor), ``CartesianImpedance.update`` toward a 5 mm target step (Cython kernel, gravity
  and the Cartesian inertia from pinocchio),
  ``Supervisor.check`` (limits, workspace, tool speed), ``ArmSim.write``, ``SimClock.wait_until``.
- ``... + TrajectoryTracker`` -- the same with a 3 cm minimum-jerk Cartesian move sampled every cycle.

Each row is the best of ``--repeats`` runs of ``--steps`` steps (the machine is shared, so the
minimum is the least disturbed). Real-time factor = simulated seconds / wall seconds; the ratio
column is the wall time relative to bare stepping (1.00 = no overhead).
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


def _bare(desc, steps: int, io: bool) -> float:
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
            t0 = time.perf_counter()
            if io:
                for _ in range(steps):
                    p.getJointStates(body, idx, physicsClientId=cid)
                    p.setJointMotorControlArray(body, idx, p.TORQUE_CONTROL, forces=tau, physicsClientId=cid)
                    p.stepSimulation(physicsClientId=cid)
            else:
                for _ in range(steps):
                    p.stepSimulation(physicsClientId=cid)
            return time.perf_counter() - t0
        finally:
            p.disconnect(cid)


def _armsim_step(desc, steps: int) -> float:
    with ArmSim(desc, tool=TOOL) as sim:
        t0 = time.perf_counter()
        sim.step(steps)
        return time.perf_counter() - t0


def _controller_stack(desc):
    """(tool chain, Cartesian impedance controller, supervisor) as the sim GUI builds them."""
    t = desc.tool(TOOL)
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(t.T_flange_tcp)
    dyn = Dynamics(chain, payload_mass=t.mass, payload_com=t.com_tcp)
    ctrl = CartesianImpedance(chain, CartesianGains(desc.cartesian_stiffness, desc.cartesian_damping_ratio),
                              dynamics=dyn, tau_max=desc.effort_limit)
    sup = Supervisor(SafetyConfig(**desc.safety_kwargs()), chain=chain, dynamics=dyn)
    return chain, ctrl, sup


def _loop(desc, steps: int, tracker: bool) -> tuple[float, int]:
    chain, ctrl, sup = _controller_stack(desc)
    with ArmSim(desc, tool=TOOL) as sim:
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
        t0 = time.perf_counter()
        loop.run_for(steps * 1e-3)
        wall = time.perf_counter() - t0
        if sup.state.value != "run":
            raise RuntimeError(f"supervisor left RUN during the benchmark: {sup.events}")
        return wall, sim.steps


class _ZeroTorque:
    """A controller that commands zero torque (a fresh array each cycle, as real controllers do)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def update(self, state, t: float) -> JointCommand:
        return JointCommand(CommandMode.TORQUE, tau=np.zeros(self.n))


def _floor(desc, steps: int) -> float:
    sup = Supervisor(SafetyConfig(tool_speed_max=None, target_timeout_s=None))
    with ArmSim(desc, tool=TOOL, gravity=0.0) as sim:
        loop = ControlLoop(sim, _ZeroTorque(desc.dof), sup, rate_hz=1000)
        t0 = time.perf_counter()
        loop.run_for(steps * 1e-3)
        return time.perf_counter() - t0


def _breakdown(desc, steps: int) -> dict[str, float]:
    """Seconds per cycle of each stage of the loop body, timed stage by stage (same work as the loop)."""
    chain, ctrl, sup = _controller_stack(desc)
    acc = dict.fromkeys(("ArmSim.read (joints + F/T)", "CartesianImpedance.update", "Supervisor.check",
                         "ArmSim.write", "SimClock.wait_until (1 step)"), 0.0)
    keys = list(acc)
    clock = time.perf_counter
    with ArmSim(desc, tool=TOOL) as sim:
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
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    desc = load_description("machaon_arm")
    n = args.steps
    rows: list[tuple[str, float]] = []
    best = {k: np.inf for k in ("bare", "io", "armsim", "floor", "loop", "traj")}
    for _ in range(args.repeats):
        best["bare"] = min(best["bare"], _bare(desc, n, io=False))
        best["io"] = min(best["io"], _bare(desc, n, io=True))
        best["armsim"] = min(best["armsim"], _armsim_step(desc, n))
        best["floor"] = min(best["floor"], _floor(desc, n))
        for key, tr in (("loop", False), ("traj", True)):
            wall, steps = _loop(desc, n, tr)
            assert steps == n
            best[key] = min(best[key], wall)
    rows = [
        ("pybullet stepSimulation (peer, no controller)", best["bare"]),
        ("pybullet + torque I/O per step", best["io"]),
        ("ArmSim.step (our backend, no controller)", best["armsim"]),
        ("ControlLoop: zero torque, bare supervisor", best["floor"]),
        ("ControlLoop: Cartesian impedance + supervisor", best["loop"]),
        ("  ... + TrajectoryTracker (Cartesian min-jerk)", best["traj"]),
    ]
    base = best["bare"]
    print(f"machaon.sim benchmark: {n} steps of 1 ms, best of {args.repeats}, PyBullet DIRECT, arm + {TOOL}")
    print(f"{'run':48s} {'wall s':>8s} {'us/step':>9s} {'RTF':>8s} {'vs bare':>8s}")
    for name, wall in rows:
        print(f"{name:48s} {wall:8.3f} {wall / n * 1e6:9.1f} {n * 1e-3 / wall:8.1f} {wall / base:7.2f}x")
    runs = [_breakdown(desc, n) for _ in range(args.repeats)]
    parts = {k: min(r[k] for r in runs) for k in runs[0]}
    print("loop body, stage by stage (us/cycle, best of runs):  "
          + ", ".join(f"{k} {v * 1e6:.1f}" for k, v in parts.items()))
    loop_rtf = n * 1e-3 / best["loop"]
    print(f"targets: RTF >= 10 with the loop -> {'met' if loop_rtf >= 10 else 'NOT met'} ({loop_rtf:.1f}); "
          f"loop overhead <= 30% of bare stepping -> "
          f"{'met' if best['loop'] <= 1.3 * base else 'NOT met'} (+{(best['loop'] / base - 1) * 100:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
