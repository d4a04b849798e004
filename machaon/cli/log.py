"""``machaon log``: look at run logs (MCAP files written by ``machaon.robot.runlog``).

- ``machaon log summary FILE`` prints duration, loop rate, period jitter/overruns and the
  supervisor events with their reasons.
- ``machaon log plot FILE [-o OUT.png]`` draws joint positions, tracking errors and torques to a
  PNG (matplotlib, Agg backend; no display needed).
- ``machaon log export-ros2 RUN.mcap OUTDIR`` writes the run as a ROS 2 bag (rosbag2, MCAP storage,
  CDR; ``machaon.bridges.ros2``) that ``ros2 bag info`` / ``ros2 bag play`` read.

A missing or unreadable file is reported on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``log`` with its ``summary`` and ``plot`` subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("log", help="run logs (MCAP): summary, plot")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    log_sub = parser.add_subparsers(dest="log_command", metavar="LOG_COMMAND")

    p_sum = log_sub.add_parser("summary", help="print rates, jitter and supervisor events of a run log")
    p_sum.add_argument("file", type=Path, help="MCAP run log")
    p_sum.set_defaults(func=_summary)

    p_plot = log_sub.add_parser("plot", help="plot joints, tracking errors and torques to a PNG")
    p_plot.add_argument("file", type=Path, help="MCAP run log")
    p_plot.add_argument("-o", "--output", type=Path, default=None, help="PNG path (default: FILE with .png)")
    p_plot.set_defaults(func=_plot)

    p_ros = log_sub.add_parser("export-ros2", help="write a run log as a ROS 2 bag (rosbag2, MCAP storage, CDR)")
    p_ros.add_argument("file", type=Path, metavar="RUN.mcap", help="MCAP run log")
    p_ros.add_argument("outdir", type=Path, metavar="OUTDIR", help="bag directory to create (must not exist)")
    p_ros.set_defaults(func=_export_ros2)


def _load(path: Path):
    from machaon.robot.runlog import RunLogError, read_run_log

    try:
        return read_run_log(path)
    except (OSError, RunLogError) as exc:
        print(f"machaon log: cannot read {path}: {exc}", file=sys.stderr)
        return None


def _summary(args: argparse.Namespace) -> int:
    from machaon.robot.runlog import format_summary

    run = _load(args.file)
    if run is None:
        return 2
    print(format_summary(run))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from machaon.robot.runlog import plot_run

    run = _load(args.file)
    if run is None:
        return 2
    out = args.output if args.output is not None else args.file.with_suffix(".png")
    plot_run(run, out)
    print(f"wrote {out}")
    return 0


def _export_ros2(args: argparse.Namespace) -> int:
    from machaon.bridges.errors import BridgeError
    from machaon.bridges.ros2 import export_ros2

    try:
        summary = export_ros2(args.file, args.outdir)
    except BridgeError as exc:
        print(f"machaon log export-ros2: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"machaon log export-ros2: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {summary.bag} ({summary.messages} messages)")
    for topic, n in sorted(summary.counts.items()):
        print(f"  {topic:28s} {n}")
    return 0
