"""Running the whole procedure: plan, calibrate, register, then every screw; the report and its pictures."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.ortho import report as rep
from machaon.ortho.anatomy import Anatomy, SpineSegment
from machaon.ortho.execution import Navigator, drilled_path
from machaon.ortho.live import ProcedureLive
from machaon.ortho.planning import Plan, ScrewPlan, auto_plan, check_plan
from machaon.ortho.procedure.calibration import calibrate_hand_eye
from machaon.ortho.procedure.config import MM, ProcedureConfig, ProcedureError, ProcedureResult, ScrewRun
from machaon.ortho.procedure.patient_registration import register_patient
from machaon.ortho.procedure.screw import approach, execute_screw, standoff_ik
from machaon.ortho.procedure.world import ProcedureWorld

log = logging.getLogger(__name__)


def _plan(cfg: ProcedureConfig, anatomy: SpineSegment, say: Callable[[str], None]) -> Plan:
    if cfg.plan_path is not None:
        plan = Plan.load(cfg.plan_path)
        say(f"plan: {len(plan)} screws from {cfg.plan_path}")
        return plan
    t0 = time.perf_counter()
    if cfg.plan_mode == "auto":
        plan = auto_plan(anatomy)
    else:
        screws = []
        for lv in anatomy.levels:
            for side in ("left", "right"):
                ax = anatomy.pedicle_axis(lv, side)
                length = 0.8 * ax.chord_length
                screws.append(ScrewPlan(f"{lv}-{side[0].upper()}", lv, side, ax.entry, ax.entry + length * ax.direction,
                                        min(6.5 * MM, 2 * 0.7 * ax.semi_width)))
        plan = Plan(tuple(screws), anatomy.to_dict(), {"mode": "axis"})
    say(f"plan: {len(plan)} screws ({cfg.plan_mode}) in {time.perf_counter() - t0:.1f} s")
    return plan


def _plan_for(cfg: ProcedureConfig, say: Callable[[str], None]) -> tuple[SpineSegment, Plan]:
    """The simulated patient and the plan to execute (the plan file's own phantom if it has one)."""
    anatomy = SpineSegment(cfg.levels)
    plan = _plan(cfg, anatomy, say)
    if cfg.plan_path is not None:
        # the simulated patient is the phantom the plan was made on
        if not plan.anatomy:
            raise ValueError(f"{cfg.plan_path}: the plan stores no phantom description; a plan made on a "
                             "mesh cannot be executed in the simulation (its bone has no ground truth here)")
        anatomy = plan.build_anatomy()
    return anatomy, _chosen_screws(cfg, plan)


def _chosen_screws(cfg: ProcedureConfig, plan: Plan) -> Plan:
    """``plan`` cut to ``cfg.screws`` (all when None); unknown names raise ``ValueError``."""
    if cfg.screws is None:
        return plan
    unknown = set(cfg.screws) - {s.name for s in plan}
    if unknown:
        raise ValueError(f"screws: not in the plan: {sorted(unknown)}")
    return Plan(tuple(s for s in plan if s.name in cfg.screws), plan.anatomy, plan.meta)


def _run_screw(w: ProcedureWorld, anatomy: SpineSegment, screw: ScrewPlan, bump: bool) -> ScrewRun:
    """Approach the stand-off above ``screw``, then align, drill and retract; the evaluated run."""
    cfg, say = w.cfg, w.say
    t0 = w.sim.t
    e_b, a_b = w.navigator.axis_base(screw.entry, screw.direction)
    p_stand = e_b - cfg.standoff_m * a_b
    q_now = w.sim.read().q
    q_goal = standoff_ik(w, p_stand, a_b, q_now)
    w.live.on_phase(w.sim.t, "approach", screw.name)
    path, ok = approach(w, q_goal)
    t_app = w.sim.t - t0
    say(f"{screw.name}: approach {len(path.waypoints)} waypoints ({path.planner}, "
        f"{path.plan_time_s:.2f} s planning), collision-free: {ok}")
    times, stopped_by, pauses, trace = execute_screw(w, screw, bump=bump)
    times = {"approach": t_app, **times}
    hole = drilled_path(trace.samples, screw.entry, screw.target)
    if hole.depth < 1.0 * MM:
        raise ProcedureError(f"{screw.name}: the drill did not enter the bone (stopped by {stopped_by})")
    result = rep.evaluate_screw(anatomy, screw, hole.entry, hole.tip, times, stopped_by)
    say(f"{screw.name}: stopped by {stopped_by}; entry {result.entry_error / MM:.2f} mm, "
        f"tip {result.tip_error / MM:.2f} mm, angle {math.degrees(result.angle_error):.2f} deg")
    return ScrewRun(result, hole, stopped_by, pauses, path, ok, trace)


@dataclass(frozen=True)
class _Operation:
    """What the robot's part of a procedure produced: the hand-eye calibration, the tracking check,
    the patient registration (dicts as those steps return them) and one run per screw."""

    calib: dict
    tracking: dict
    regn: dict
    runs: list[ScrewRun]


def _open_world(cfg: ProcedureConfig, anatomy: Anatomy, plan: Plan, say: Callable[[str], None],
                live: ProcedureLive | None) -> ProcedureWorld:
    """The operating room for ``plan``, with ``live`` attached and told the plan; with a GUI the
    planned trajectories are drawn at the patient's rest pose (world frame)."""
    w = ProcedureWorld(cfg, anatomy, say)
    if live is not None:
        w.live = live
        live.attach(w)
    w.live.on_plan(w.sim.t, anatomy, plan, w.T_world_image0)
    w.live.on_phase(w.sim.t, "plan")
    if cfg.gui:  # the planned trajectories, drawn at the patient's rest pose
        for s in plan:
            a = w.T_world_image0[:3, :3] @ s.entry + w.T_world_image0[:3, 3]
            b = w.T_world_image0[:3, :3] @ s.target + w.T_world_image0[:3, 3]
            w.room.draw_line(a, b, (0.9, 0.1, 0.1), 2.0)
    return w


def _operate(w: ProcedureWorld, cfg: ProcedureConfig, anatomy: Anatomy, plan: Plan, directory: Path | None,
             say: Callable[[str], None]) -> _Operation:
    """Calibrate, register, place every screw of ``plan`` and (if asked) go home. Raises
    ``ProcedureError`` when a step cannot go on (the caller tells the live views and closes ``w``)."""
    w.live.on_phase(w.sim.t, "calibrate")
    calib, tracking = calibrate_hand_eye(w, directory)
    say("tracking check (rendered camera image vs truth): " + ", ".join(
        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in tracking.items()))
    w.live.on_phase(w.sim.t, "register")
    regn = register_patient(w, plan)
    w.live.on_registered(w.sim.t, regn["T_ref_image"])
    # the tool plate's place on the guide is known from the tool's design (as tracked tools are
    # factory-calibrated); the hand-eye estimate of it is only a check of the calibration
    w.navigator = Navigator(calib["T_base_cam"], regn["T_ref_image"], w.T_mount_toolplate, w.T_flange_tip,
                            cfg.camera_hz)
    # settle the navigation filter with the robot holding at home
    w.loop.set_controller(w.joint_ctl)
    for _ in range(int(0.6 * cfg.camera_hz)):
        w.camera_frame()
    runs = [_run_screw(w, anatomy, screw, bump=cfg.bump and i == 0) for i, screw in enumerate(plan)]
    if cfg.return_home:
        w.live.on_phase(w.sim.t, "home")
        approach(w, w.q_home)
    w.live.on_phase(w.sim.t, "done")
    return _Operation(calib, tracking, regn, runs)


def run_procedure(
    cfg: ProcedureConfig, report_dir: str | Path | None = None, say: Callable[[str], None] | None = None,
    anatomy: Anatomy | None = None, plan: Plan | None = None, live: ProcedureLive | None = None,
) -> ProcedureResult:
    """Run the whole procedure (package docstring); write ``report_dir/report.json`` and pictures if given.

    ``anatomy`` and ``plan`` given together (a ``BoneModel`` of real bone surfaces and the plan
    made on them, ``machaon.ortho.mesh_planning``) replace the phantom of ``cfg.levels`` and its plan.
    ``live`` (``machaon.ortho.live.ProcedureLive``): what the run tells 3D Slicer and Foxglove and,
    with an external tracker, where its camera frames come from.
    """
    say = say or (lambda msg: log.info("%s", msg))
    t_start = time.perf_counter()
    directory = None if report_dir is None else Path(report_dir)
    if (anatomy is None) != (plan is None):
        raise ValueError("anatomy and plan go together")
    if anatomy is None:
        anatomy, plan = _plan_for(cfg, say)
    else:
        plan = _chosen_screws(cfg, plan)
    t_plan = time.perf_counter() - t_start
    for s in plan:
        c = check_plan(anatomy, s)
        if c.breach:
            log.warning("%s: the plan itself breaches (%s)", s.name, c.breach_location)
    w = _open_world(cfg, anatomy, plan, say, live)
    try:
        op = _operate(w, cfg, anatomy, plan, directory, say)
    except ProcedureError as exc:
        w.live.on_fault(w.sim.t, str(exc))
        raise
    finally:
        w.close()
    registration = {k: v for k, v in op.regn.items() if not isinstance(v, np.ndarray)}
    calibration = {k: v for k, v in op.calib.items() if not isinstance(v, np.ndarray)}
    report = _make_report(cfg, anatomy, op.runs, registration, calibration, op.tracking,
                          {"plan": t_plan, "total": time.perf_counter() - t_start})
    out_dir = None
    if directory is not None:
        rep.write_report(directory, report, anatomy)
        _plot_traces(directory, op.runs)
        out_dir = directory
    return ProcedureResult(tuple(op.runs), registration, calibration, op.tracking, report, out_dir,
                           cfg.tolerance_mm, cfg.tolerance_deg)


def _make_report(cfg: ProcedureConfig, anatomy: SpineSegment, runs: list[ScrewRun], registration: dict,
                 calibration: dict, tracking: dict, times: dict) -> dict:
    """The JSON-ready report (``machaon.ortho.report.make_report``) with the run's own extras."""
    return rep.make_report(
        [r.result for r in runs],
        registration,
        anatomy,
        times,
        {
            "calibration": calibration,
            "tracking_check": tracking,
            "seed": cfg.seed,
            "levels": list(cfg.levels),
            "breathing_amplitude_mm": cfg.breathing_amplitude_m / MM if cfg.breathing else 0.0,
            "screw_runs": [
                {"name": r.result.name, "stopped_by": r.stopped_by, "pauses": r.pauses,
                 "max_lateral_mm": r.path.max_lateral / MM, "max_thrust_n": r.path.max_thrust_n,
                 "approach_planner": r.approach.planner, "approach_plan_time_s": r.approach.plan_time_s,
                 "approach_waypoints": len(r.approach.waypoints), "approach_collision_free": r.approach_collision_free}
                for r in runs
            ],
        },
    )


def _plot_traces(directory: Path, runs: list[ScrewRun]) -> None:
    """Force-depth profiles and motion-compensation traces, one PNG each (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 2.6 * len(runs)), dpi=100, squeeze=False)
    for ax_row, r in zip(axes, runs, strict=True):
        s = r.trace.samples
        d = [(x.tip_image - r.result.planned.entry) @ r.result.planned.direction / MM for x in s]
        ax_row[0].plot(d, [x.thrust_n for x in s], lw=0.8)
        ax_row[0].axvline(r.result.planned.length / MM, color="k", ls="--", lw=0.8)
        ax_row[0].set_xlabel("depth (mm)")
        ax_row[0].set_ylabel("thrust (N)")
        ax_row[0].set_title(f"{r.result.name}: stopped by {r.stopped_by}")
        t = np.array(r.trace.t)
        pat = np.array(r.trace.patient)
        ax_row[1].plot(t - t[0], np.linalg.norm(pat, axis=1) / MM, label="patient offset (mm)", lw=0.8)
        ax_row[1].plot(t - t[0], np.array(r.trace.lateral) / MM * 10, label="tool off axis (mm x10)", lw=0.8)
        ax_row[1].set_xlabel("time (s)")
        ax_row[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "drilling_traces.png")
    plt.close(fig)


def print_report(directory: str | Path, render: bool = True) -> int:
    """Print a report's per-screw table (and re-render its pictures); returns a CLI exit code."""
    d = Path(directory)
    r = rep.load_report(d)
    print(f"report {d / 'report.json'}")
    print(f"{'screw':<8}{'entry mm':>9}{'tip mm':>8}{'angle deg':>10}{'clear mm':>9}  breach  stopped_by")
    for s in r["screws"]:
        print(f"{s['name']:<8}{s['entry_error_mm']:9.2f}{s['tip_error_mm']:8.2f}{s['angle_error_deg']:10.2f}"
              f"{s['min_clearance_mm']:9.2f}  {str(s['breach']):<6}  {s.get('stopped_by')}")
    g = r.get("registration", {})
    if g:
        items = (f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in g.items())
        print("registration: " + ", ".join(items))
    if render:
        paths = rep.render_pictures(d, r)
        for p_ in paths:
            print(f"picture: {p_}")
    return 0
