"""CLI pieces shared by the commands that offer a live view: ``--foxglove-port`` and ``--fast``.

``add_live_view_args(parser)`` adds the flags; ``open_live_view(args, ...)`` starts the Foxglove
WebSocket server when ``--foxglove-port`` was given (None otherwise) and raises ``BridgeSetupError``
(a ``MachaonError`` and a ``ValueError``: the command prints it in one line and exits 2) when the
port is taken. A headless simulation with a live view
paces itself at real time (a viewer cannot follow a faster one) unless ``--fast`` is given:
``paced(args, live)`` says whether to.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def port_number(text: str) -> int:
    """argparse type: a TCP port 0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 0..65535")
    return port


def add_live_view_args(parser: argparse.ArgumentParser, *, fast: bool = True) -> None:
    g = parser.add_argument_group("live view (Foxglove)")
    g.add_argument("--foxglove-port", type=port_number, default=None, metavar="PORT",
                   help="serve a Foxglove live view on ws://127.0.0.1:PORT (/tf, /joint_states, target, supervisor, "
                        "scene); open it in Foxglove with 'Open connection'")
    if fast:
        g.add_argument("--fast", action="store_true",
                       help="with --foxglove-port headless: run as fast as possible instead of at real time")


def open_live_view(args: argparse.Namespace, joint_names: Sequence[str], link_frames: object | None) -> object | None:
    """A ``FoxgloveLiveView`` on 127.0.0.1:``args.foxglove_port``, or None without the flag."""
    if getattr(args, "foxglove_port", None) is None:
        return None
    from machaon.bridges.foxglove_live import FoxgloveLiveView

    view = FoxgloveLiveView(args.foxglove_port, "127.0.0.1", joint_names=joint_names, link_frames=link_frames)
    print(f"Foxglove live view on {view.url}", flush=True)
    return view


def paced(args: argparse.Namespace, live: object | None) -> bool:
    """True when a live view is on and ``--fast`` was not given."""
    return live is not None and not getattr(args, "fast", False)
