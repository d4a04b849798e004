"""The ``machaon`` command. Each subcommand lives in its own module with a ``register(sub)``.

This layer is the only place that picks a backend by name.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

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
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `machaon ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
