"""``machaon bench``: the actuator bench test suite against a real bus (or the emulator)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand to ``sub``."""
    p = sub.add_parser("bench", help="bench-test a chain of Dynamixel servos and write a report")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or an emulator pty")
    p.add_argument("--ids", default="1-6", help="servo ids expected on the bus (default 1-6)")
    p.add_argument("--baud", type=int, default=1_000_000, help="baud rate (default 1000000)")
    p.add_argument("--scan-bauds", default=None,
                   help="comma-separated baud rates to scan (default: only --baud)")
    p.add_argument("--out", default="bench-report", help="report directory (default ./bench-report)")
    p.add_argument("--dry-run", action="store_true", help="plan and print the steps; move nothing")
    p.add_argument("--step-rad", type=float, default=0.2, help="position step amplitude, rad (max 0.5)")
    p.add_argument("--current-a", type=float, default=0.15, help="current step amplitude, A (max 0.5)")
    p.add_argument("--latency-samples", type=int, default=300, help="round trips for the latency histogram")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from machaon.hardware.bench import run_bench_cli

    return run_bench_cli(args)
