"""``machaon sim``: the simulation GUI, or a headless run that writes snapshots and an MCAP log."""

from __future__ import annotations

import argparse
import logging
import os
import sys

_log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    ap = sub.add_parser(
        "sim",
        help="PyBullet simulation of the arm (GUI, or --headless)",
        description=(
            "Open the PyBullet GUI with the arm under Cartesian impedance (sliders move the target, "
            "keys switch controller / record / replay / stop / reset), or run a scenario headless."
        ),
        epilog=(
            "GUI keys: c switch controller (Cartesian/joint impedance), r start/stop recording (MCAP), "
            "t replay the trajectory file or the scenario path, space protective stop, h hold/resume, "
            "x reset arm and supervisor, q quit. Sliders: target offset from home (m, deg), stiffness, "
            "damping ratio. Example: machaon sim --headless --seconds 5 --scenario wall "
            "--record run.mcap --snapshots shots/"
        ),
    )
    ap.add_argument("--robot", default="machaon_arm", help="robot name or .toml/.urdf path")
    ap.add_argument("--tool", default=None,
                    help="tool on the flange ('none' for a bare flange; default: drill_guide where the robot has "
                         "one, else none)")
    ap.add_argument("--headless", action="store_true", help="no window: PyBullet DIRECT, as fast as possible")
    ap.add_argument("--seconds", type=float, default=None, help="simulated seconds to run (GUI: until closed)")
    ap.add_argument("--scenario", default="square", help="scenario name (see --list-scenarios)")
    ap.add_argument("--list-scenarios", action="store_true", help="print the scenarios and exit")
    ap.add_argument("--record", default=None, metavar="FILE.mcap", help="write joint states and commands (MCAP)")
    ap.add_argument("--snapshots", default=None, metavar="DIR", help="write PNG snapshots into DIR")
    ap.add_argument("--snapshot-every", type=float, default=1.0, help="seconds between snapshots")
    ap.add_argument("--replay", default=None, metavar="FILE", help="trajectory file (JSON or CSV) to replay")
    ap.add_argument("--rate", type=float, default=1000.0, help="control loop rate, Hz")
    ap.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from machaon.sim.app import SimApp, SimAppError, scenario_names

    if args.list_scenarios:
        for name, doc in scenario_names().items():
            print(f"{name:12s} {doc}")
        return 0
    if args.seconds is not None and not (args.seconds > 0):
        print("machaon sim: --seconds must be > 0", file=sys.stderr)
        return 2
    gui = not args.headless
    if gui and not os.environ.get("DISPLAY"):
        print("machaon sim: no DISPLAY; running headless (use xvfb-run for the GUI)", file=sys.stderr)
        gui = False
    if not gui and args.seconds is None:
        args.seconds = 10.0
    if gui:  # say what each key did on the terminal, even without -v
        app_log = logging.getLogger("machaon.sim.app")
        if app_log.getEffectiveLevel() > logging.INFO:
            app_log.setLevel(logging.INFO)
    if args.tool is None:
        from machaon.robot.description import DescriptionError, load_description

        try:
            args.tool = "drill_guide" if "drill_guide" in load_description(args.robot).tools else "none"
        except DescriptionError as exc:
            print(f"machaon sim: {exc}", file=sys.stderr)
            return 2
    try:
        with SimApp(
            robot=args.robot,
            tool=None if args.tool in ("none", "") else args.tool,
            gui=gui,
            scenario=args.scenario,
            rate_hz=args.rate,
            record=args.record,
            snapshots=args.snapshots,
            snapshot_every=args.snapshot_every,
            replay=args.replay,
        ) as app:
            summary = app.run(args.seconds)
    except SimAppError as exc:
        print(f"machaon sim: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0
