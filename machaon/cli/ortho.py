"""``machaon ortho``: plan pedicle screws, run the robot-guided procedure in sim, read its report.

Subcommands:
- ``machaon ortho plan``   auto-plan a vertebra phantom, bone meshes (``--mesh L3.stl L4.stl``) or a
  CT label map (``--labelmap SEG.nii.gz --labels L3=22,L4=23``) and write the plan JSON;
- ``machaon ortho run``    the whole procedure in PyBullet (GUI, or ``--headless``), on the phantom
  or on bone meshes / a label map;
- ``machaon ortho report`` print a run's ``report.json`` and (re)render its pictures.

Millimetres and degrees appear only here and in files meant for people; everything inside is SI.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import time

from machaon.cli._bridges import (
    add_live_view_args,
    add_record_args,
    check_record_args,
    open_live_view,
    open_run_log,
    port_number,
)
from machaon.cli._common import add_option, command, usage_errors, warn
from machaon.errors import UsageError

log = logging.getLogger(__name__)

MM = 1e-3  # the one place this module converts: mm on the command line -> m inside


def _levels(text: str) -> tuple[str, ...]:
    levels = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not levels:
        raise argparse.ArgumentTypeError("expected a comma-separated list of levels, e.g. L3,L4")
    return levels


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ortho`` and its subcommands to the ``machaon`` parser."""
    p = sub.add_parser("ortho", help="orthopedic planning and robot-guided execution (sim): plan, run, report")
    osub = p.add_subparsers(dest="ortho_command", metavar="SUBCOMMAND", required=True)

    pp = osub.add_parser("plan", help="auto-plan pedicle screws on a phantom or a mesh; write the plan JSON")
    pp.add_argument("--levels", type=_levels, default=("L3", "L4"), help="phantom levels (default L3,L4)")
    pp.add_argument("--mesh", nargs="+", default=None, metavar="FILE",
                    help="bone mesh file(s) (STL/OBJ/PLY, mm; one per level, named by file stem) "
                    "instead of the phantom")
    pp.add_argument("--starts", default=None, metavar="PLAN",
                    help="plan JSON with one rough trajectory per screw (optional: without it the "
                    "anatomy of each mesh is found from its surface)")
    _add_surface_options(pp)
    pp.add_argument("--length-fraction", type=float, default=0.8, help="screw length / bone chord (default 0.8)")
    pp.add_argument("--out", "-o", default="plan.json", help="plan JSON to write (default plan.json)")
    pp.set_defaults(func=_cmd_plan)

    pr = osub.add_parser("run", help="run the whole procedure in simulation")
    pr.add_argument("--headless", action="store_true", help="PyBullet DIRECT mode (no window)")
    pr.add_argument("--levels", type=_levels, default=("L3", "L4"), help="phantom levels (default L3,L4)")
    pr.add_argument("--plan", default=None, help="plan JSON to execute (default: auto-plan the phantom)")
    pr.add_argument("--mesh", nargs="+", default=None, metavar="FILE",
                    help="run on these bone meshes (STL/OBJ/PLY, mm, LPS; one vertebra each, named by file stem) "
                    "instead of the phantom; planned from their surfaces unless --plan is given")
    _add_surface_options(pr)
    pr.add_argument("--plan-mode", choices=("auto", "axis"), default="auto",
                    help="auto: clearance-maximising auto-plan; axis: screws on the pedicle axes (faster)")
    add_option(pr, "--out", old=("--report",), default=None, metavar="DIR",
               help="write DIR/report.json and PNG pictures (default: ./machaon-ortho-<UTC time>)")
    pr.add_argument("--seed", type=int, default=0, help="seed for tracker noise and bumps")
    pr.add_argument("--no-breathing", action="store_true", help="keep the patient still")
    pr.add_argument("--no-bump", action="store_true", help="no patient bump during the first drilling")
    pr.add_argument("--feed-mm-s", type=float, default=4.0, help="drill feed rate, mm/s (default 4)")
    add_option(pr, "--rate-hz", old=("--control-hz",), type=float, default=500.0, choices=(250.0, 500.0, 1000.0),
               help="control-loop rate (default 500; the physics steps at the same rate)")
    pr.add_argument("--screws", default=None, help="comma-separated screw names to execute (default: all)")
    pr.add_argument("--fast-calibration", action="store_true",
                    help="hand-eye calibration from the tracker noise model instead of rendered images")
    g = pr.add_argument_group("3D Slicer / PLUS (OpenIGTLink)")
    g.add_argument("--igtl-port", type=port_number, default=None, metavar="PORT",
                   help="serve the navigation over OpenIGTLink for 3D Slicer's OpenIGTLinkIF (see docs/slicer.md)")
    g.add_argument("--igtl-host", default="127.0.0.1", metavar="HOST",
                   help="address the OpenIGTLink server listens on (default 127.0.0.1)")
    g.add_argument("--tracker", default=None, metavar="igtl:HOST:PORT",
                   help="take ReferenceToTracker/ToolToTracker from an OpenIGTLink server (e.g. PLUS) instead of "
                        "the simulated camera")
    add_record_args(pr, "write a run log (MCAP): joint states and commands, supervisor events, scene frames, "
                        "vertebrae, planned screws and phases, as the Foxglove live view shows them")
    add_live_view_args(pr)
    pr.set_defaults(func=_cmd_run)

    pq = osub.add_parser("report", help="print a run report and render its pictures")
    pq.add_argument("dir", help="directory holding report.json")
    pq.add_argument("--no-render", action="store_true", help="only print, do not (re)write PNGs")
    pq.set_defaults(func=_cmd_report)


def _add_surface_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labelmap", default=None, metavar="SEG",
                   help="CT segmentation label map (NIfTI, e.g. SEG.nii.gz) instead of meshes; needs --labels")
    p.add_argument("--labels", default=None, metavar="L1=20,...",
                   help="levels and their label values in --labelmap, e.g. L1=20,L2=21")
    p.add_argument("--units", choices=("mm", "m"), default="mm", help="length unit of the mesh files (default mm)")


def _plan_surfaces(args: argparse.Namespace, **kw: object) -> object:
    """The ``MeshPlan`` of ``--mesh FILES`` or ``--labelmap SEG --labels ...``; bad input is a UsageError."""
    from machaon.errors import MachaonError
    from machaon.ortho.labelmap import parse_labels
    from machaon.ortho.mesh_planning import plan_labelmap, plan_mesh_files

    if args.labelmap and args.mesh:
        raise UsageError("give either --mesh or --labelmap, not both")
    if bool(args.labelmap) != bool(args.labels):
        raise UsageError("--labelmap and --labels go together (e.g. --labelmap SEG.nii.gz --labels L1=20,L2=21)")
    # a file that cannot be planned on (unreadable, open, wrong units, no canal) is bad input
    with usage_errors(MachaonError, ValueError, OSError):
        if args.labelmap:
            return plan_labelmap(args.labelmap, parse_labels(args.labels), **kw)
        return plan_mesh_files(args.mesh, units=args.units, **kw)


def _cmd_plan_surfaces(args: argparse.Namespace, t0: float) -> int:
    mp = _plan_surfaces(args, length_fraction=args.length_fraction)
    dt = time.perf_counter() - t0
    print(f"{'screw':<8}{'diam mm':>8}{'length mm':>10}{'cortex mm':>10}{'canal mm':>9}{'tip mm':>7}  verdict")
    for r in mp.reports:
        print(f"{r.name:<8}{r.diameter / MM:8.1f}{r.length / MM:10.0f}{r.cortex_clearance / MM:10.2f}"
              f"{r.canal_clearance / MM:9.2f}{r.tip_to_anterior_cortex / MM:7.1f}  "
              + ("ok" if r.ok else "NOT SAFE: " + "; ".join(r.messages)))
    with usage_errors(OSError, context=f"cannot write {args.out}"):
        mp.save(args.out)
    print(f"wrote {args.out} ({len(mp.plan)} screws on {len(mp.anatomy)} vertebrae, planned in {dt:.1f} s)")
    if not mp.all_ok:
        warn("some screws are not safe as planned (see above)")
        return 1
    return 0


@command
def _cmd_plan(args: argparse.Namespace) -> int:
    from machaon._io import check_writable
    from machaon.ortho.anatomy import AnatomyError, BoneModel, SpineSegment
    from machaon.ortho.planning import Plan, PlanError, auto_plan, check_plan

    check_writable(args.out, what="--out")  # before planning (seconds), not after
    t0 = time.perf_counter()
    if args.labelmap or args.labels or (args.mesh and args.starts is None):
        return _cmd_plan_surfaces(args, t0)
    with usage_errors(PlanError, AnatomyError, ValueError, OSError):
        if args.mesh:
            anatomy = BoneModel.from_files(args.mesh, units=args.units)
            if args.starts is None:
                raise UsageError("a mesh has no pedicle axes; give --starts PLAN with rough trajectories")
            plan = auto_plan(anatomy, starts=Plan.load(args.starts), length_fraction=args.length_fraction)
        else:
            anatomy = SpineSegment(args.levels)
            starts = None if args.starts is None else Plan.load(args.starts)
            plan = auto_plan(anatomy, starts=starts, length_fraction=args.length_fraction)
    dt = time.perf_counter() - t0
    print(f"{'screw':<8}{'length mm':>10}{'diam mm':>8}{'clear mm':>9}{'canal mm':>9}  breach")
    for s in plan:
        c = check_plan(anatomy, s)
        print(f"{s.name:<8}{s.length / MM:10.1f}{s.diameter / MM:8.1f}{c.min_clearance / MM:9.2f}"
              f"{c.canal_clearance / MM:9.2f}  {c.breach_location if c.breach else '-'}")
    with usage_errors(OSError, context=f"cannot write {args.out}"):
        plan.save(args.out)
    print(f"wrote {args.out} ({len(plan)} screws, planned in {dt:.1f} s)")
    return 0


@command
def _cmd_run(args: argparse.Namespace) -> int:
    from machaon.ortho.procedure import ProcedureConfig, ProcedureError, run_procedure

    if not (math.isfinite(args.feed_mm_s) and 0.1 <= args.feed_mm_s <= 10.0):
        raise UsageError("--feed-mm-s must be within 0.1..10")
    gui = not args.headless
    if gui:
        import os

        if not os.environ.get("DISPLAY"):
            warn("no DISPLAY; running headless")
            gui = False
    cfg = ProcedureConfig(
        levels=args.levels,
        seed=args.seed,
        gui=gui,
        plan_path=args.plan,
        plan_mode=args.plan_mode,
        breathing=not args.no_breathing,
        bump=not args.no_bump,
        feed_m_s=args.feed_mm_s * MM,
        calibration_from_images=not args.fast_calibration,
        control_hz=args.rate_hz,
        sim_dt=1.0 / args.rate_hz,
        screws=None if args.screws is None else tuple(s.strip() for s in args.screws.split(",") if s.strip()),
    )
    if args.out is None:
        args.out = time.strftime("machaon-ortho-%Y%m%d-%H%M%S", time.gmtime())
    from machaon._io import check_output_dir

    check_output_dir(args.out, what="--out")  # before the procedure (minutes), not after
    check_record_args(args)
    if args.plan is not None:
        import json
        from pathlib import Path

        with usage_errors(OSError, ValueError, context=f"--plan {args.plan}: not a readable plan JSON"):
            json.loads(Path(args.plan).read_text(encoding="utf-8"))
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    bone = plan = None
    if args.mesh or args.labelmap or args.labels:
        bone, plan = _bone_and_plan(args, say)
        cfg = dataclasses.replace(cfg, levels=tuple(bone.levels), plan_path=None)
    with contextlib.ExitStack() as stack:
        live = _procedure_live(args, stack, headless=not gui)  # a taken port, a bad address: exit 2
        with usage_errors(ProcedureError, ValueError, OSError):
            result = run_procedure(cfg, report_dir=args.out, say=say, anatomy=bone, plan=plan, live=live)
    print(result.summary())
    from pathlib import Path

    pictures = sorted(str(p) for p in Path(args.out).glob("*.png"))
    print(f"report: {Path(args.out) / 'report.json'}")
    print("pictures: " + ", ".join(pictures))
    return 0 if result.all_within_tolerance else 1


def _bone_and_plan(args: argparse.Namespace, say: object) -> tuple:
    """(BoneModel, Plan) for ``ortho run`` on meshes or a label map: the plan made on them, or ``--plan``."""
    from machaon.ortho.planning import Plan, PlanError

    mp = _plan_surfaces(args)
    plan = mp.plan
    if args.plan:
        with usage_errors(PlanError, OSError):
            plan = Plan.load(args.plan)
        unknown = sorted({s.level for s in plan} - set(mp.anatomy))
        if unknown:
            raise UsageError(f"{args.plan}: levels {unknown} are not among the bones given")
    say(f"bones {', '.join(mp.anatomy)} from {'the label map' if args.labelmap else 'the meshes'}; "
        f"{len(plan)} screws {'from ' + args.plan if args.plan else 'planned on their surfaces'}")
    return mp.bone, plan


def _procedure_live(args: argparse.Namespace, stack: contextlib.ExitStack, headless: bool) -> object | None:
    """The bridges of ``ortho run`` (OpenIGTLink server, tracker client, Foxglove live view, run log), or None."""
    if args.igtl_port is None and args.tracker is None and args.foxglove_port is None and not args.record:
        return None
    from machaon.bridges.igtl import IgtlServer
    from machaon.bridges.igtl_tracker import IgtlTrackerClient, parse_tracker_address
    from machaon.ortho.live import ProcedureLive
    from machaon.robot.observers import Observers

    tracker = None
    if args.tracker is not None:
        host, port = parse_tracker_address(args.tracker)
        tracker = stack.enter_context(IgtlTrackerClient(host, port))
        print(f"tracker: OpenIGTLink server {host}:{port}", flush=True)
    igtl = None
    if args.igtl_port is not None:
        igtl = stack.enter_context(IgtlServer(args.igtl_port, args.igtl_host))
        print(f"OpenIGTLink server on {igtl.host}:{igtl.port} (3D Slicer: OpenIGTLinkIF, client)", flush=True)
    view = open_live_view(args, (), None)
    if view is not None:
        stack.enter_context(view)
    watched = view is not None or igtl is not None
    # the run log takes the same observer calls as the live view (the procedure describes its arm to both)
    recorder = open_run_log(args, stack, {"source": "machaon ortho run", "robot": "machaon_arm",
                                          "seed": str(args.seed)}, rate_hz=args.rate_hz)
    observers = view if recorder is None else recorder if view is None else Observers(recorder, view)
    return ProcedureLive(observers=observers, igtl=igtl, tracker=tracker,
                         realtime=headless and watched and not args.fast)


@command
def _cmd_report(args: argparse.Namespace) -> int:
    from machaon.ortho.procedure import print_report
    from machaon.ortho.report import ReportError

    with usage_errors(ReportError, ValueError, OSError):
        return print_report(args.dir, render=not args.no_render)
