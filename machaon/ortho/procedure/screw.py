"""One screw, as a navigated robot executes it: approach, align and hold on the axis, drill, retract.

**Approach** from the current pose to a stand-off above the entry along a collision-free joint
path (``machaon.ortho.approach`` over ``machaon.sim.CollisionChecker``), the goal from
``Chain.ik_axis``; **align and hold** on the axis under Cartesian impedance with motion
compensation at camera rate; **drill** against the bone's thrust with the depth stop and breach
detection, a patient bump pausing the drilling; **retract** with the drill off.
"""

from __future__ import annotations

import math

import numpy as np

from machaon.ortho.approach import ApproachPath, check_path, plan_approach
from machaon.ortho.drilling import BreachDetector
from machaon.ortho.execution import AxisGains, AxisHoldController, Phase
from machaon.ortho.planning import ScrewPlan
from machaon.ortho.procedure.config import MM, ProcedureError, ScrewTrace
from machaon.ortho.procedure.world import ProcedureWorld


def _plate_score(w: ProcedureWorld, q: np.ndarray) -> float:
    """How well the camera sees the tool plate at ``q``: best near 35 deg off the line of sight."""
    T = w.chain_flange.fk(q) @ w.T_mount_toolplate
    v = w.cam_pos - T[:3, 3]
    ang = math.degrees(math.acos(float(np.clip(v @ T[:3, 2] / np.linalg.norm(v), -1.0, 1.0))))
    return -abs(ang - 35.0)


def standoff_ik(w: ProcedureWorld, p: np.ndarray, axis: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """Joint goal putting the drill tip at ``p`` on ``axis`` (base frame), collision-free, tool plate visible.

    ``Chain.ik_axis`` solves the five-DOF task (roll free, chosen for joint margins and
    manipulability); when its roll hides the tool plate from the camera or collides, the roll is
    searched with ``Chain.ik`` for the best line of sight (the tracker needs the plate).
    """
    cands = []
    r = w.chain.ik_axis(p, axis, q0=q0, seed=w.cfg.seed)
    if r.success:
        cands.append(r.q)
    if not cands or _plate_score(w, cands[0]) < -25.0 or w.checker.in_collision(cands[0], margin=0.01):
        z = axis / np.linalg.norm(axis)
        x0 = np.cross([0.0, 1.0, 0.0], z) if abs(z[1]) < 0.9 else np.cross([1.0, 0.0, 0.0], z)
        x0 /= np.linalg.norm(x0)
        for k in range(12):
            psi = 2 * math.pi * k / 12
            x = math.cos(psi) * x0 + math.sin(psi) * np.cross(z, x0)
            T = np.eye(4)
            T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, np.cross(z, x), z, p
            rk = w.chain.ik(T, q0=q0, seed=w.cfg.seed + k)
            if rk.success:
                cands.append(rk.q)
    cands = [q for q in cands if not w.checker.in_collision(q, margin=0.01)]
    if not cands:
        raise ProcedureError("stand-off pose: no collision-free IK solution")
    return max(cands, key=lambda q: _plate_score(w, q) - 2.0 * float(np.linalg.norm(q - q0)))


def approach(w: ProcedureWorld, q_goal: np.ndarray) -> tuple[ApproachPath, bool]:
    """Plan and execute a collision-free joint path from the current pose to ``q_goal``."""
    from machaon.control.trajectory import TrajectorySequence, TrajectoryTracker

    cfg = w.cfg
    q0 = w.sim.read().q

    def valid(q: np.ndarray) -> bool:
        return not w.checker.in_collision(q, margin=0.01)

    # the joints' path stays inside the software limits
    lo, hi = np.array(w.chain.lower), np.array(w.chain.upper)
    path = plan_approach(q0, q_goal, valid, lo, hi, planner=cfg.planner, seed=cfg.seed, resolution_rad=0.03,
                         timeout_s=20.0)
    ok = check_path(path.waypoints, valid, lo, hi, resolution_rad=0.03)
    traj = TrajectorySequence.through(list(path.waypoints), 0.4, 1.0)
    w.joint_ctl.set_target(q0)
    tracker = TrajectoryTracker(w.joint_ctl, traj, w.supervisor)
    w.loop.set_controller(tracker)
    t_end = w.sim.t + traj.duration + 0.3
    while w.sim.t < t_end:
        w.camera_frame()
    return path, ok


class _ScrewExecution:
    """Align, hold, drill and retract one screw under the axis-hold controller, recording a ``ScrewTrace``."""

    def __init__(self, w: ProcedureWorld, screw: ScrewPlan) -> None:
        from machaon.control.impedance import CartesianGains, CartesianImpedance

        cfg = w.cfg
        assert w.navigator is not None
        self.w, self.screw, self.nav = w, screw, w.navigator
        g = AxisGains()
        gains = CartesianGains.axial(g.k_across, g.k_along, g.k_rot_across, g.k_rot_about, g.damping_ratio)
        imp = CartesianImpedance(w.chain, gains, dynamics=w.dyn, tau_max=np.array(w.sim.desc.effort_limit))
        self.length = screw.length + float(cfg.extra_depth_m.get(screw.name, 0.0))
        det = BreachDetector(cfg.control_hz)
        self.ctl = AxisHoldController(imp, g, self.length, feed_m_s=cfg.feed_m_s, standoff_m=cfg.standoff_m,
                                      detector=det, supervisor=w.supervisor)
        self.push_axis()
        w.loop.set_controller(self.ctl)
        self.trace = ScrewTrace()

    def push_axis(self) -> None:
        e, a = self.nav.axis_base(self.screw.entry, self.screw.direction)
        self.ctl.set_axis(e, a, self.nav.v_image_corrected)

    def frame(self) -> tuple[float, float]:
        """One camera frame: control, tracking, a new axis, a trace row; (lateral error m, angle deg)."""
        w, ctl, tr = self.w, self.ctl, self.trace
        w.camera_frame()
        self.push_axis()
        T = w.chain.fk(w.sim.read().q)
        lat, dep = ctl.lateral_error(T[:3, 3]), ctl.depth(T[:3, 3])
        tr.t.append(w.sim.t)
        tr.s_cmd.append(ctl.s_cmd)
        tr.depth.append(dep)
        tr.lateral.append(lat)
        tr.force.append(ctl.axial_force_n)
        tr.patient.append(w.motion.offset(w.sim.t).tolist())
        tr.phase.append(ctl.phase.value)
        tr.jump.append(self.nav.innovation)
        return lat, float(np.degrees(np.arccos(np.clip(T[:3, 2] @ ctl.axis, -1, 1))))

    def align(self) -> float:
        """Hold at the stand-off until on the axis for 0.3 s (at most 5 s); the time it took (s)."""
        w = self.w
        w.live.on_phase(w.sim.t, "align", self.screw.name)
        t0 = w.sim.t
        good = 0
        while w.sim.t - t0 < 5.0:
            lat, ang = self.frame()
            good = good + 1 if (lat < 0.2 * MM and ang < 0.2) else 0
            if good >= int(0.3 * w.cfg.camera_hz):
                break
        return w.sim.t - t0

    def drill(self, bump: bool) -> tuple[str, int, float]:
        """Drill to the depth stop (or a breach, or the time limit): (stopped_by, pauses, time s)."""
        w, ctl, cfg = self.w, self.ctl, self.w.cfg
        t0 = w.sim.t
        w.drill.start_hole()
        ctl.set_phase(Phase.DRILL)
        w.live.on_phase(w.sim.t, "drill", self.screw.name)
        self.pauses = 0
        self._calm = 0
        bumped = False
        stopped_by = "timeout"
        t_limit = (self.length + cfg.standoff_m) / cfg.feed_m_s + 20.0
        t_at_depth = None
        while w.sim.t - t0 < t_limit:
            lat, _ = self.frame()
            if bump and not bumped and ctl.s_cmd >= cfg.bump_depth_m:
                w.motion.add_bump(w.sim.t, np.array(cfg.bump_m))
                bumped = True
                w.say(f"{self.screw.name}: patient bump of {np.linalg.norm(cfg.bump_m) / MM:.1f} mm")
            self._watch_patient(lat)
            if ctl.phase is Phase.STOPPED:
                stopped_by = "breach"
                w.say(f"{self.screw.name}: breach detected at {ctl.s_cmd / MM:.1f} mm, drill stopped")
                break
            if ctl.phase is Phase.DRILL and ctl.s_cmd >= self.length:  # (the command ends at length + preload)
                # the commanded depth is at the stop; the drill keeps cutting until the tip (which lags
                # behind under thrust) is there too
                t_at_depth = w.sim.t if t_at_depth is None else t_at_depth
                if self.trace.depth[-1] >= self.length - 0.1 * MM or w.sim.t - t_at_depth >= 3.0:
                    stopped_by = "depth_stop"
                    ctl.set_phase(Phase.STOPPED)
                    break
        return stopped_by, self.pauses, w.sim.t - t0

    def _watch_patient(self, lat: float) -> None:
        """Pause drilling when the patient moves (speed or a jump of the tracked pose); resume when calm."""
        w, ctl, cfg, nav = self.w, self.ctl, self.w.cfg, self.nav
        speed = float(np.linalg.norm(nav.v_image))
        jump = nav.innovation
        if ctl.phase is Phase.DRILL and (speed > cfg.bump_speed_threshold or jump > cfg.bump_jump_m):
            ctl.set_phase(Phase.PAUSED)
            self.pauses += 1
            self._calm = 0
            w.say(f"{self.screw.name}: patient moved ({speed / MM:.0f} mm/s, jump {jump / MM:.1f} mm), "
                  f"drilling paused at {ctl.s_cmd / MM:.1f} mm")
        elif ctl.phase is Phase.PAUSED:
            self._calm = self._calm + 1 if (speed < 0.5 * cfg.bump_speed_threshold and jump < 0.5 * cfg.bump_jump_m
                                            and lat < 0.3 * MM) else 0
            if self._calm >= int(0.3 * cfg.camera_hz):
                ctl.set_phase(Phase.DRILL)
                w.say(f"{self.screw.name}: back on the axis, drilling resumed")

    def retract(self) -> float:
        """Hold a moment at the stop, then retract to the stand-off with the drill off; the time (s)."""
        w, cfg = self.w, self.w.cfg
        for _ in range(int(0.2 * cfg.camera_hz)):
            self.frame()
        self.trace.samples = w.drill.stop_hole()
        self.ctl.set_phase(Phase.RETRACT)
        t0 = w.sim.t
        while self.ctl.s_cmd > -cfg.standoff_m + 1e-6 and w.sim.t - t0 < 15.0:
            self.frame()
        return w.sim.t - t0


def execute_screw(w: ProcedureWorld, screw: ScrewPlan, bump: bool) -> tuple[dict, str, int, ScrewTrace]:
    """Align, hold, drill and retract one screw; returns (times s, stopped_by, pauses, trace)."""
    run = _ScrewExecution(w, screw)
    times = {"align": run.align()}
    stopped_by, pauses, times["drill"] = run.drill(bump)
    times["retract"] = run.retract()
    return times, stopped_by, pauses, run.trace
