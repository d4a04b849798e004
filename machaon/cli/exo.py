"""``machaon exo``: EMG/IMU-driven exoskeleton assist (sim, replay, live run).

Subcommands are added as their parts land; ``machaon exo`` alone prints the help.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``exo`` subcommand and its sub-subcommands to the ``machaon`` parser."""
    parser = sub.add_parser("exo", help="exoskeleton assist: EMG/IMU processing, leg simulation, replay")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    parser.add_subparsers(dest="exo_command", metavar="EXO_COMMAND")
