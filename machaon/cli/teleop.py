"""``machaon teleop``: link profiles, the latency-injection relay, the robot server, the console.

Subcommands: ``keygen`` (a pre-shared key file, mode 0600).
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teleop", help="teleoperation: latency injection, robot server, operator console")
    tsub = p.add_subparsers(dest="teleop_command", metavar="SUBCOMMAND", required=True)

    k = tsub.add_parser("keygen", help="write a new random pre-shared key file (mode 0600)")
    k.add_argument("path", help="key file to create")
    k.add_argument("--force", action="store_true", help="overwrite an existing file")
    k.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from machaon.teleop.keys import KeyFileError, write_key

    try:
        write_key(args.path, overwrite=args.force)
    except KeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.path} (mode 0600)")
    return 0
