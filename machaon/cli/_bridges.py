"""CLI pieces shared by the commands that offer a live view: ``--foxglove-port`` and ``--fast``.

``add_live_view_args(parser)`` adds the flags; ``open_live_view(args, ...)`` starts the Foxglove
WebSocket server when ``--foxglove-port`` was given (None otherwise) and raises ``BridgeSetupError``
(a ``MachaonError`` and a ``ValueError``: the command prints it in one line and exits 2) when the
port is taken. A headless simulation with a live view
paces itself at real time (a viewer cannot follow a faster one) unless ``--fast`` is given:
``paced(args, live)`` says whether to. ``open_run_log(args, stack, ...)`` opens the ``--record``
run log (``RunLogRecorder``, the same topics and schemas as the live view) or returns None.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from machaon.errors import UsageError


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


RECORD_HZ = 100.0  # cycles per second of robot time a run log keeps by default (as teleop serve's default)


def add_record_args(parser: argparse.ArgumentParser, what: str) -> None:
    """``--record FILE.mcap`` (``what``: its help) and ``--record-decimation K``."""
    parser.add_argument("--record", default=None, metavar="FILE.mcap", help=what)
    parser.add_argument("--record-decimation", type=int, default=None, metavar="K",
                        help=f"record every K-th control cycle (default: about {RECORD_HZ:.0f} per second)")


def check_record_args(args: argparse.Namespace) -> None:
    """``--record`` writable and ``--record-decimation`` >= 1, before the run starts (``UsageError``)."""
    if args.record_decimation is not None and args.record_decimation < 1:
        raise UsageError(f"--record-decimation must be >= 1, got {args.record_decimation}")
    if args.record:
        from machaon._io import check_writable

        check_writable(args.record, what="--record")


def open_run_log(args: argparse.Namespace, stack: contextlib.ExitStack, metadata: dict[str, str], *,
                 rate_hz: float, joint_names: Sequence[str] = (), link_frames: object | None = None) -> object | None:
    """A ``RunLogRecorder`` on ``args.record`` entered into ``stack`` (closed, and so complete, when the
    stack closes), or None without ``--record``. It keeps every ``--record-decimation``-th cycle of a loop
    at ``rate_hz`` (default: ``RECORD_HZ`` per second; the JSON encoding runs on the control thread).
    A file that cannot be created is a ``UsageError`` (exit 2)."""
    if not getattr(args, "record", None):
        return None
    from machaon.robot.runlog import RunLogRecorder

    decimation = args.record_decimation or max(1, round(rate_hz / RECORD_HZ))
    try:
        return stack.enter_context(RunLogRecorder(args.record, joint_names=joint_names, link_frames=link_frames,
                                                  decimation=decimation, metadata=metadata))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot record to {args.record}: {exc}") from exc


def paced(args: argparse.Namespace, live: object | None) -> bool:
    """True when a live view is on and ``--fast`` was not given."""
    return live is not None and not getattr(args, "fast", False)
