"""``machaon sim``: the simulation GUI, or a headless run that writes snapshots and an MCAP log."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os

from machaon.cli._bridges import add_live_view_args, open_live_view, paced
from machaon.cli._common import add_option, add_robot_arguments, command, usage_errors, warn
from machaon.errors import UsageError

_log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser(
        "sim",
        help="PyBullet simulation of an arm under impedance control (GUI, or --headless)",
        description=(
            "Open the PyBullet GUI with the arm under Cartesian impedance (sliders move the target, "
            "keys switch controller / record / replay / stop / reset), or run a scenario headless."
        ),
        epilog=(
            "GUI keys: c switch controller (Cartesian/joint impedance), r start/stop recording (MCAP), "
            "t replay the trajectory file or the scenario path, space protective stop, h hold/resume, "
            "x reset arm and supervisor, q quit. Sliders: target offset from home (m, deg), stiffness, "
            "damping ratio. Example: machaon sim --headless --duration 5 --scenario wall "
            "--record run.mcap --snapshots shots/"
        ),
    )
    add_robot_arguments(ap, tool_default=None, tool_help="tool on the flange ('none' for a bare flange; default: "
                                                       "drill_guide where the robot has one, else none)")
    ap.add_argument("--headless", action="store_true", help="no window: PyBullet DIRECT, as fast as possible")
    add_option(ap, "--duration", old=("--seconds",), type=float, default=None,
               help="simulated seconds to run (GUI: until closed; headless: 10)")
    ap.add_argument("--scenario", default="square", help="scenario name (see --list-scenarios)")
    ap.add_argument("--list-scenarios", action="store_true", help="print the scenarios and exit")
    ap.add_argument("--record", default=None, metavar="FILE.mcap", help="write joint states and commands (MCAP)")
    ap.add_argument("--snapshots", default=None, metavar="DIR", help="write PNG snapshots into DIR")
    ap.add_argument("--snapshot-every", type=float, default=1.0, help="seconds between snapshots")
    ap.add_argument("--replay", default=None, metavar="FILE", help="trajectory file (JSON or CSV) to replay")
    add_option(ap, "--rate-hz", old=("--rate",), type=float, default=1000.0, help="control loop rate, Hz")
    add_live_view_args(ap)
    ap.set_defaults(func=_run)


@command
def _run(args: argparse.Namespace) -> int:
    from machaon.sim.app import SimApp, SimAppError, scenario_names

    if args.list_scenarios:
        for name, doc in scenario_names().items():
            print(f"{name:12s} {doc}")
        return 0
    if args.duration is not None and not (0 < args.duration < float("inf")):
        raise UsageError("--duration must be > 0")
    if not (0 < args.rate_hz < float("inf")):
        raise UsageError(f"--rate-hz must be a positive number of Hz, got {args.rate_hz}")
    if not (0 < args.snapshot_every < float("inf")):
        raise UsageError(f"--snapshot-every must be > 0 s, got {args.snapshot_every}")
    from machaon._io import check_output_dir, check_writable

    if args.record:  # before the simulation starts, not after it ran
        check_writable(args.record, what="--record")
    if args.snapshots:
        check_output_dir(args.snapshots, what="--snapshots")
    gui = not args.headless
    if gui and not os.environ.get("DISPLAY"):
        warn("no DISPLAY; running headless (use xvfb-run for the GUI)")
        gui = False
    if not gui and args.duration is None:
        args.duration = 10.0
    if gui:  # say what each key did on the terminal, even without -v
        app_log = logging.getLogger("machaon.sim.app")
        if app_log.getEffectiveLevel() > logging.INFO:
            app_log.setLevel(logging.INFO)
    if args.tool is None:  # the description's drill guide where it has one (the desk arm has a bare flange)
        from machaon.robot.description import DescriptionError, load_description

        with usage_errors(DescriptionError):
            args.tool = "drill_guide" if "drill_guide" in load_description(args.robot).tools else "none"
    live = open_live_view(args, (), None)  # the session describes its arm to the view
    with usage_errors(SimAppError), contextlib.ExitStack() as stack:
        if live is not None:
            stack.enter_context(live)
        with SimApp(
            robot=args.robot,
            tool=None if args.tool in ("none", "") else args.tool,
            gui=gui,
            scenario=args.scenario,
            rate_hz=args.rate_hz,
            record=args.record,
            snapshots=args.snapshots,
            snapshot_every=args.snapshot_every,
            replay=args.replay,
            live_view=live,
        ) as app:
            if not gui and paced(args, live):
                app.sim.clock.realtime = True  # a viewer cannot follow a faster run
            summary = app.run(args.duration)
    print(summary)
    return 0
