"""``machaon ortho``: plan pedicle screws, run the robot-guided procedure in sim, read its report.

Subcommands:
- ``machaon ortho plan``   auto-plan a vertebra phantom (or a mesh) and write the plan JSON;
- ``machaon ortho run``    the whole procedure in PyBullet (GUI, or ``--headless``);
- ``machaon ortho report`` print a run's ``report.json`` and (re)render its pictures.

Millimetres and degrees appear only here and in files meant for people; everything inside is SI.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def _levels(text: str) -> tuple[str, ...]:
    levels = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not levels:
        raise argparse.ArgumentTypeError("expected a comma-separated list of levels, e.g. L3,L4")
    return levels


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``ortho`` and its subcommands to the ``machaon`` parser."""
    p = sub.add_parser("ortho", help="orthopedic planning and robot-guided execution (sim)")
    osub = p.add_subparsers(dest="ortho_command", metavar="SUBCOMMAND", required=True)

    pp = osub.add_parser("plan", help="auto-plan pedicle screws on a phantom or a mesh; write the plan JSON")
    pp.add_argument("--levels", type=_levels, default=("L3", "L4"), help="phantom levels (default L3,L4)")
    pp.add_argument("--mesh", default=None, help="bone mesh (STL/OBJ/PLY, mm) to plan on instead of the phantom")
    pp.add_argument("--out", "-o", default="plan.json", help="plan JSON to write (default plan.json)")
    pp.set_defaults(func=_cmd_plan)

    pr = osub.add_parser("run", help="run the whole procedure in simulation")
    pr.add_argument("--headless", action="store_true", help="PyBullet DIRECT mode (no window)")
    pr.add_argument("--levels", type=_levels, default=("L3", "L4"), help="phantom levels (default L3,L4)")
    pr.add_argument("--plan", default=None, help="plan JSON to execute (default: auto-plan the phantom)")
    pr.add_argument("--report", default=None, metavar="DIR", help="write DIR/report.json and PNG pictures")
    pr.add_argument("--seed", type=int, default=0, help="seed for tracker noise and bumps")
    pr.add_argument("--no-breathing", action="store_true", help="keep the patient still")
    pr.add_argument("--bump", action="store_true", help="inject a bump during the first drilling")
    pr.set_defaults(func=_cmd_run)

    pq = osub.add_parser("report", help="print a run report and render its pictures")
    pq.add_argument("dir", help="directory holding report.json")
    pq.add_argument("--no-render", action="store_true", help="only print, do not (re)write PNGs")
    pq.set_defaults(func=_cmd_report)


def _cmd_plan(args: argparse.Namespace) -> int:
    from machaon.ortho import planning

    try:
        plan = planning.plan_from_cli(levels=args.levels, mesh_path=args.mesh)
    except (ValueError, OSError) as exc:
        print(f"ortho plan: {exc}", file=sys.stderr)
        return 2
    plan.save(args.out)
    print(f"wrote {args.out} ({len(plan.screws)} screws)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from machaon.ortho.procedure import ProcedureConfig, run_procedure

    cfg = ProcedureConfig(
        levels=args.levels,
        seed=args.seed,
        gui=not args.headless,
        breathing=not args.no_breathing,
        bump=args.bump,
        plan_path=args.plan,
    )
    try:
        result = run_procedure(cfg, report_dir=args.report)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"ortho run: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.report:
        print(f"report and pictures in {args.report}")
    return 0 if result.all_within_tolerance else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from machaon.ortho.execution import print_report

    try:
        return print_report(args.dir, render=not args.no_render)
    except (ValueError, OSError) as exc:
        print(f"ortho report: {exc}", file=sys.stderr)
        return 2
