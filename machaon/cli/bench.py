"""``machaon bench``: the actuator bench test suite against a real bus (or the emulator).

Exit status: 0 when every check passed, 1 when a check failed, 2 for bad arguments or a port that
cannot be opened, 130 when interrupted (the servos are left in the safe state).
"""

from __future__ import annotations

import argparse
import math
import sys

from machaon.cli._common import add_option, command, usage_errors, warn
from machaon.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand to ``sub``."""
    p = sub.add_parser("bench", help="bench-test a chain of Dynamixel servos and write a report "
                                          "(--identify: torque constants, friction)")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or an emulator pty")
    p.add_argument("--ids", default="1-6", help="servo ids expected on the bus (default 1-6)")
    p.add_argument("--baud", type=int, default=1_000_000, help="baud rate (default 1000000)")
    p.add_argument("--scan-bauds", default=None,
                   help="comma-separated baud rates to scan (default: only --baud)")
    p.add_argument("--out", default="bench-report", help="report directory (default ./bench-report)")
    p.add_argument("--dry-run", action="store_true", help="read-only checks and the motion plan; move nothing")
    p.add_argument("--step-rad", type=float, default=0.2, help="position step, rad (at most 0.5)")
    p.add_argument("--current-a", type=float, default=0.15, help="current step, A (at most 0.5)")
    p.add_argument("--step-duration", type=float, default=0.5, help="duration of each step, s")
    p.add_argument("--latency-samples", type=int, default=300, help="round trips for the latency histogram")
    add_option(p, "--min-rate-hz", old=("--min-rate",), type=float, default=200.0,
               help="loop rate the chain must reach, Hz")
    p.add_argument("--latency-ms", type=float, default=10.0,
                   help="adapter latency margin added to every transaction deadline (default 10 ms)")
    p.add_argument("--safe-state", choices=("hold", "torque_off"), default="hold",
                   help="what the servos do when the bench stops early (default hold)")
    p.add_argument("--sysfs-root", default="/sys", help=argparse.SUPPRESS)  # tests point it at a fake tree
    p.add_argument("--identify", action="store_true",
                   help="also identify each joint's torque constant and friction (slow sweeps) and check the "
                        "gravity model; writes identified.toml (load it with --hw-config) into --out")
    p.add_argument("--robot", default="desk",
                   help="with --identify: the robot description whose servo map and model the servos are "
                        "(default desk)")
    p.add_argument("--sweep-deg", type=float, default=15.0,
                   help="with --identify: each joint sweeps this far either side of where it stands (default 15)")
    p.add_argument("--gravity-grid", type=int, choices=(2, 3), default=3,
                   help="with --identify: poses per joint of the gravity-check grid (default 3: 3 x 3 poses)")
    p.set_defaults(func=_cmd_bench)


@command
def _cmd_bench(args: argparse.Namespace) -> int:
    from machaon._io import check_output_dir
    from machaon.cli.hw import parse_ids
    from machaon.hardware.bench import BenchOptions, parse_bauds, run_bench
    from machaon.hardware.protocol import PortError

    if args.baud <= 0:
        raise UsageError(f"--baud must be a positive baud rate, got {args.baud}")
    check_output_dir(args.out, what="--out")  # before the bench moves anything, not after
    with usage_errors():
        opts = BenchOptions(port=args.port, ids=tuple(parse_ids(args.ids)), baudrate=args.baud,
                            scan_bauds=parse_bauds(args.scan_bauds), out_dir=args.out, dry_run=args.dry_run,
                            step_rad=args.step_rad, current_a=args.current_a, step_duration_s=args.step_duration,
                            latency_samples=args.latency_samples, min_loop_rate_hz=args.min_rate_hz,
                            safe_state=args.safe_state, latency_s=args.latency_ms / 1000.0,
                            sysfs_root=args.sysfs_root, identify_dynamics=args.identify,
                            robot=args.robot if args.identify else None, sweep_rad=math.radians(args.sweep_deg),
                            gravity_levels=args.gravity_grid)
    if opts.dry_run:
        print("dry run: no motion; planned steps:")
    with usage_errors(PortError):  # a port that cannot be opened: exit 2, as the module doc says
        report = run_bench(opts, progress=lambda s: print(f"... {s}", file=sys.stderr, flush=True))
    for w in report.warnings:
        warn(w)
    if opts.dry_run:
        for line in report.plan:
            print(f"  - {line}")
    for c in report.checks:
        tag = "PASS" if c.passed else "FAIL"
        who = f" [id {c.dxl_id}]" if c.dxl_id is not None else ""
        print(f"{tag}  {c.name}{who}: {c.detail}")
    n_fail = sum(not c.passed for c in report.checks)
    print(f"{'PASSED' if report.passed else 'FAILED'}: {len(report.checks) - n_fail}/{len(report.checks)} checks; "
          f"report in {opts.out_dir}/report.md")
    if report.identified_toml:
        print(f"identified parameters in {opts.out_dir}/identified.toml (use it with --hw-config)")
    if report.interrupted:
        return 130
    return 0 if report.passed else 1
