"""A helper process behind a socket pair: how the teleop network process and the Foxglove live view
keep their work out of the control loop's interpreter.

A control loop shares its Python interpreter, and so the GIL, with every thread beside it; a thread
that parses datagrams or encodes JSON for a viewer takes the GIL and the loop waits for it. The
fix is a child process (``python -m <module> --ctl-fd N``) talking to the parent over an
``AF_UNIX``/``SOCK_SEQPACKET`` socket pair: one message per ``send``, never torn or merged,
bounded by the socket buffers, so a parent that sends non-blocking never waits for the child.

Protocol pieces shared by every such child:

- the first message parent -> child is the configuration (JSON); it carries the parent's log level;
- the child's log records come back as ``L`` + level byte + logger name + NUL + text
  (``ForwardLog``; dropped, never blocked on, when the pair is full) and the parent re-logs them
  under the same logger name (``relay_log``), so a filter on ``machaon.*`` sees Machaon's records
  and not, say, a library's complaint about a client;
- the child ignores SIGINT (Ctrl-C in the terminal is the parent's to handle) and exits when the
  parent closes its end, even if the parent was killed.

``start_child`` spawns the child and waits for its first message (its "ready", or why it failed);
``child_main`` is the child's side of the same handshake.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

CTL_BUF = 1 << 18  # bytes in flight on the socket pair, each way (a bounded queue)
MAX_MSG = 1 << 16  # largest single message; bigger payloads are sent in pieces by the caller


def socket_pair(bufsize: int = CTL_BUF) -> tuple[socket.socket, socket.socket]:
    """A connected ``SOCK_SEQPACKET`` pair (parent end, child end) with ``bufsize`` buffers."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (parent, child):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    return parent, child


def start_child(module: str, config: dict, *, args: Sequence[str] = (), pass_fds: Sequence[int] = (),
                timeout: float = 30.0, bufsize: int = CTL_BUF) -> tuple[subprocess.Popen, socket.socket, bytes]:
    """Start ``python -m module --ctl-fd N *args``, send it ``config`` (plus the ``machaon`` logger's
    level) and wait up to ``timeout`` s for its first message. Returns (process, parent end of the
    pair, first message); the first message is empty if the child exited or did not answer in time
    (the process has then been stopped). The parent end is left in blocking mode."""
    parent, child = socket_pair(bufsize)
    fds = (*pass_fds, child.fileno())
    cmd = [sys.executable, "-m", module, "--ctl-fd", str(child.fileno()), *args]
    try:
        proc = subprocess.Popen(cmd, pass_fds=fds, stdin=subprocess.DEVNULL)
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
    config = {**config, "level": logging.getLogger("machaon").getEffectiveLevel()}
    parent.sendall(json.dumps(config).encode())
    parent.settimeout(timeout)
    try:
        first = parent.recv(MAX_MSG)
    except (TimeoutError, OSError):
        first = b""
    while first[:1] == b"L":  # log lines written while starting up come before the answer
        relay_log(first[1:])
        try:
            first = parent.recv(MAX_MSG)
        except (TimeoutError, OSError):
            first = b""
    parent.settimeout(None)
    if not first:
        stop_child(proc, parent, timeout=1.0)
    return proc, parent, first


def stop_child(proc: subprocess.Popen | None, ctl: socket.socket | None, *, quit_msg: bytes = b"Q",
               timeout: float = 3.0) -> None:
    """Ask the child to quit, wait ``timeout`` s, kill it if it has not gone; close the parent end."""
    if ctl is not None:
        try:
            ctl.send(quit_msg, socket.MSG_DONTWAIT)
        except OSError:
            pass
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if ctl is not None:
        ctl.close()


def relay_log(body: bytes) -> None:
    """Log a child's ``L`` message (the ``L`` already stripped) on the logger the child used."""
    if body:
        name, _, text = body[1:].partition(b"\0")
        logging.getLogger(name.decode(errors="replace")).log(body[0], "%s", text.decode(errors="replace"))


class ForwardLog(logging.Handler):
    """The child's log handler: sends each record to the parent, dropped when the pair is full."""

    def __init__(self, ctl: socket.socket) -> None:
        super().__init__()
        self._ctl = ctl

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ctl.send(b"L" + bytes([min(record.levelno, 255)]) + record.name.encode()[:200] + b"\0"
                           + record.getMessage().encode()[:4000], socket.MSG_DONTWAIT)
        except OSError:
            pass


def child_main(description: str, serve: Callable[[socket.socket, dict, object], None],
               argv: list[str] | None = None, extra_args: Callable[[object], None] | None = None) -> int:
    """The child's entry point: parse ``--ctl-fd`` (and ``extra_args``' options), forward logging to
    the parent, read the configuration and run ``serve(ctl, config, args)``. An exception is logged
    (the parent sees why) and gives exit code 1; the parent sees the socket close either way."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--ctl-fd", type=int, required=True)
    if extra_args is not None:
        extra_args(ap)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl = socket.socket(fileno=args.ctl_fd)
    root = logging.getLogger()
    root.handlers[:] = [ForwardLog(ctl)]
    try:
        config = json.loads(ctl.recv(MAX_MSG))
        root.setLevel(int(config.get("level", logging.WARNING)))
        serve(ctl, config, args)
    except Exception as exc:  # report why, then let the parent see the socket close
        logging.getLogger(__name__).error("%s failed: %r", description, exc)
        return 1
    finally:
        ctl.close()
    return 0
