"""``machaon log``: look at run logs (MCAP files written by ``machaon.robot.runlog``).

- ``machaon log summary FILE`` prints duration, loop rate, period jitter/overruns and the
  supervisor events with their reasons.
- ``machaon log plot FILE [-o OUT.png]`` draws joint positions, tracking errors and torques to a
  PNG (matplotlib, Agg backend; no display needed).
- ``machaon log recover FILE [-o OUT.mcap]`` rewrites the readable part of a log whose run was
  killed (no summary section) as a complete MCAP file (default ``FILE.recovered.mcap``).

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

    p_rec = log_sub.add_parser("recover", help="rewrite a killed run's log as a complete MCAP file")
    p_rec.add_argument("file", type=Path, help="MCAP run log (e.g. of a run that was killed)")
    p_rec.add_argument("-o", "--output", type=Path, default=None,
                       help="recovered MCAP path (default: FILE.recovered.mcap)")
    p_rec.set_defaults(func=_recover)


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


def _recover(args: argparse.Namespace) -> int:
    from machaon._io import OutputPathError, check_writable
    from machaon.robot.runlog import RunLogError, recover_run_log

    out = args.output if args.output is not None else args.file.with_suffix(".recovered.mcap")
    if out.resolve() == args.file.resolve():
        print("machaon log: --output must differ from the input file", file=sys.stderr)
        return 2
    try:
        check_writable(out, what="-o")
    except OutputPathError as exc:
        print(f"machaon log: {exc}", file=sys.stderr)
        return 2
    try:
        n, stopped = recover_run_log(args.file, out)
    except (RunLogError, OutputPathError) as exc:
        print(f"machaon log: cannot recover {args.file}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, OutputPathError) else 1
    except OSError as exc:
        print(f"machaon log: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    what = "complete file" if stopped is None else f"read up to a damaged record ({stopped})"
    print(f"wrote {out}: {n} messages ({what})")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from machaon._io import OutputPathError, check_writable
    from machaon.robot.runlog import plot_run

    out = args.output if args.output is not None else args.file.with_suffix(".png")
    try:
        check_writable(out, what="-o")
    except OutputPathError as exc:
        print(f"machaon log: {exc}", file=sys.stderr)
        return 2
    run = _load(args.file)
    if run is None:
        return 2
    from machaon._io import OutputPathError, atomic_write

    out = args.output if args.output is not None else args.file.with_suffix(".png")
    try:
        with atomic_write(out, "wb") as fh:
            plot_run(run, fh)
    except OutputPathError as exc:
        print(f"machaon log: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"machaon log: cannot write {out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0
