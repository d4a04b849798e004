"""``machaon hw ...``: serial actuator tools (the Dynamixel servo-chain emulator, bus scan)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``hw`` subcommand and its own subcommands to ``sub``."""
    hw = sub.add_parser("hw", help="serial actuator tools: servo-chain emulator, bus scan")
    hw_sub = hw.add_subparsers(dest="hw_command", metavar="HWCOMMAND", required=True)

    em = hw_sub.add_parser("emulate", help="emulate a Dynamixel X-series chain on a pseudo-terminal")
    em.add_argument("--ids", default="1-6", help="servo ids, e.g. 1-6 or 1,2,5 (default 1-6)")
    em.add_argument("--baud", type=int, default=1_000_000, help="bus baud rate (default 1000000)")
    em.add_argument("--model", default="XM430-W350", help="X-series model name (default XM430-W350)")
    em.add_argument("--return-delay-us", type=float, default=None, help="return delay time override (us)")
    em.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                    help="pace replies at the baud rate (default on)")
    em.add_argument("--link", default=None, help="also create a symlink to the pty slave at this path")
    em.add_argument("--sim", action="store_true", help="couple the servos to the PyBullet arm (hardware in the loop)")
    em.set_defaults(func=_cmd_emulate)

    scan = hw_sub.add_parser("scan", help="ping every id on a bus at one or more baud rates")
    scan.add_argument("--port", required=True)
    scan.add_argument("--baud", default="57600,1000000,2000000,3000000,4000000",
                      help="comma-separated baud rates to try")
    scan.add_argument("--ids", default="0-252")
    scan.set_defaults(func=_cmd_scan)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from machaon.cli._hw_impl import run_emulate

    return run_emulate(args)


def _cmd_scan(args: argparse.Namespace) -> int:
    from machaon.cli._hw_impl import run_scan

    return run_scan(args)
