"""``machaon log``: look at run logs (MCAP files written by ``machaon.robot.runlog``).

- ``machaon log summary FILE`` prints duration, loop rate, period jitter/overruns and the
  supervisor events with their reasons.
- ``machaon log plot FILE [--out OUT.png]`` draws joint positions, tracking errors and torques to a
  PNG (matplotlib, Agg backend; no display needed).

A missing or unreadable file is a usage error (exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from machaon.cli._common import add_option, command, usage_errors


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``log`` with its ``summary`` and ``plot`` subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("log", help="run logs (MCAP): summary, plot")
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
    from machaon.robot.runlog import plot_run

    run = _load(args.file)
    out = args.out if args.out is not None else args.file.with_suffix(".png")
    plot_run(run, out)
    print(f"wrote {out}")
    return 0
