"""pyigtl's own client and server for the tests, with decoders for the two message types pyigtl lacks.

pyigtl 0.3 packs POLYDATA but cannot unpack it, and has no STATUS: the tests register
``PolyDataReader`` and machaon's ``StatusMessage`` in pyigtl's message table (``monkeypatch``), so
pyigtl's ``OpenIGTLinkClient`` receives them like any other message.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import time

import numpy as np
import pyigtl
from pyigtl.messages import PolyDataMessage

from machaon.bridges.igtl import StatusMessage


class PolyDataReader(PolyDataMessage):
    """POLYDATA as the OpenIGTLink spec lays it out: counts, points (float32), cell arrays (uint32)."""

    def _unpack_content(self, content: bytes) -> None:
        (n_pts, _nv, sv, _nl, sl, _np, sp, _ns, ss, _na) = struct.unpack_from(">10I", content)
        off = 40
        self.points = np.frombuffer(content, dtype=">f4", count=3 * n_pts, offset=off).reshape(-1, 3).astype(float)
        off += 12 * n_pts + sv + sl
        cells = np.frombuffer(content, dtype=">u4", count=sp // 4, offset=off).astype(np.int64)
        self.polygons = cells
        off += sp + ss


def register_decoders(monkeypatch) -> None:
    table = pyigtl.messages.message_type_to_class_constructor
    monkeypatch.setitem(table, "POLYDATA", PolyDataReader)
    monkeypatch.setitem(table, "STATUS", StatusMessage)


def client(port: int) -> pyigtl.OpenIGTLinkClient:
    c = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 5
    while not c.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    return c


def stop(c: pyigtl.OpenIGTLinkClient) -> None:
    """``c.stop()`` without waiting for a pause in the stream. pyigtl's client thread looks at its stop
    flag only once its socket has nothing to read for 10 ms, which a server that streams every 5 ms
    (a 200 Hz loop) may not allow for tens of seconds; shutting the socket down ends its reading."""
    c.communication_thread_stop_requested = True
    sock = c.socket
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    c.stop()


class PyigtlServer:
    """pyigtl's ``OpenIGTLinkServer`` on a free loopback port, its process-wide signal handlers restored."""

    def __init__(self) -> None:
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        self.server = pyigtl.OpenIGTLinkServer(port=0, local_server=True)
        for s, h in saved.items():
            signal.signal(s, h)
        self.port = self.server.server_address[1]

    def send(self, msg: object) -> None:
        self.server.send_message(msg, wait=False)

    def close(self) -> None:
        self.server.stop()
