"""The ``machaon`` command. Each subcommand lives in its own module with a ``register(sub)``.

This layer is the only place that picks a backend by name. Every subcommand handler is wrapped
by :func:`machaon.cli._common.command`, the one place where a :class:`~machaon.errors.MachaonError`
becomes one line on stderr, ``machaon: error: <what to fix>``, and an exit code
(:data:`~machaon.cli._common.EXIT_STATUS`, listed in ``machaon --help``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from machaon.cli._common import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_STATUS

# Subcommand modules, in the order --help lists them. Each defines register(subparsers).
_COMMANDS = (
    "machaon.cli.kin",
    "machaon.cli.sim",
    "machaon.cli.log",
    "machaon.cli.hw",
    "machaon.cli.bench",
    "machaon.cli.ortho",
    "machaon.cli.exo",
    "machaon.cli.teleop",
    "machaon.cli.demo",
    "machaon.cli.trial",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="machaon",
        description="Machaon: control and simulation for surgical and rehabilitation robots.",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``machaon`` with ``argv`` (default ``sys.argv[1:]``); the exit code (see :data:`EXIT_STATUS`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("machaon: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `machaon ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
