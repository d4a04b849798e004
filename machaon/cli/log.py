"""``machaon log``: look at run logs (MCAP files written by ``machaon.robot.runlog``).

- ``machaon log summary FILE`` prints duration, loop rate, period jitter/overruns and the
  supervisor events with their reasons.
- ``machaon log plot FILE [--out OUT.png]`` draws joint positions, tracking errors and torques to a
  PNG (matplotlib, Agg backend; no display needed).
- ``machaon log export-ros2 RUN.mcap OUTDIR`` writes the run as a ROS 2 bag (rosbag2, MCAP storage,
  CDR; ``machaon.bridges.ros2``) that ``ros2 bag info`` / ``ros2 bag play`` read.

A missing or unreadable file is a usage error (exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from machaon.cli._common import add_option, command, usage_errors


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``log`` with its ``summary``, ``plot`` and ``export-ros2`` subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("log", help="run logs (MCAP): summary, plot, recover (a killed run's log), "
                                "export-ros2 (a ROS 2 bag)")
    parser.set_defaults(func=command(lambda args: (parser.print_help(), 2)[1]))
    log_sub = parser.add_subparsers(dest="log_command", metavar="LOG_COMMAND")

    p_sum = log_sub.add_parser("summary", help="print rates, jitter and supervisor events of a run log")
    p_sum.add_argument("file", type=Path, help="MCAP run log")
    p_sum.set_defaults(func=_summary)

    p_plot = log_sub.add_parser("plot", help="plot joints, tracking errors and torques to a PNG")
    p_plot.add_argument("file", type=Path, help="MCAP run log")
    add_option(p_plot, "-o", "--out", old=("--output",), type=Path, default=None,
               help="PNG path (default: FILE with .png)")
    p_plot.set_defaults(func=_plot)

    p_rec = log_sub.add_parser("recover", help="rewrite a killed run's log as a complete MCAP file")
    p_rec.add_argument("file", type=Path, help="MCAP run log (e.g. of a run that was killed)")
    add_option(p_rec, "-o", "--out", old=("--output",), type=Path, default=None,
               help="recovered MCAP path (default: FILE.recovered.mcap)")
    p_rec.set_defaults(func=_recover)

    p_ros = log_sub.add_parser("export-ros2", help="write a run log as a ROS 2 bag (rosbag2, MCAP storage, CDR)")
    p_ros.add_argument("file", type=Path, metavar="RUN.mcap", help="MCAP run log")
    p_ros.add_argument("outdir", type=Path, metavar="OUTDIR", help="bag directory to create (must not exist)")
    p_ros.set_defaults(func=_export_ros2)


def _load(path: Path):
    from machaon.robot.runlog import RunLogError, read_run_log

    with usage_errors(OSError, RunLogError, context=f"cannot read {path}"):
        return read_run_log(path)


@command
def _summary(args: argparse.Namespace) -> int:
    from machaon.robot.runlog import format_summary

    print(format_summary(_load(args.file)))
    return 0


@command
def _plot(args: argparse.Namespace) -> int:
    from machaon._io import atomic_write, check_writable
    from machaon.robot.runlog import plot_run

    out = args.out if args.out is not None else args.file.with_suffix(".png")
    check_writable(out, what="-o")  # before reading and drawing, not after
    run = _load(args.file)
    with atomic_write(out, "wb") as fh:
        plot_run(run, fh)
    print(f"wrote {out}")
    return 0


@command
def _recover(args: argparse.Namespace) -> int:
    from machaon._io import check_writable
    from machaon.errors import UsageError
    from machaon.robot.runlog import RunLogError, recover_run_log

    out = args.out if args.out is not None else args.file.with_suffix(".recovered.mcap")
    if out.resolve() == args.file.resolve():
        raise UsageError("-o must differ from the input file")
    check_writable(out, what="-o")
    with usage_errors(RunLogError, context=f"cannot recover {args.file}"):
        n, stopped = recover_run_log(args.file, out)
    what = "complete file" if stopped is None else f"read up to a damaged record ({stopped})"
    print(f"wrote {out}: {n} messages ({what})")
    return 0


@command
def _export_ros2(args: argparse.Namespace) -> int:
    from machaon.bridges.ros2 import export_ros2

    # a missing or unreadable run log, an existing OUTDIR: BridgeSetupError, exit 2
    with usage_errors(OSError, context=f"cannot write {args.outdir}"):
        summary = export_ros2(args.file, args.outdir)
    print(f"wrote {summary.bag} ({summary.messages} messages)")
    for topic, n in sorted(summary.counts.items()):
        print(f"  {topic:28s} {n}")
    return 0
