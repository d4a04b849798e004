"""Tracked poses from an OpenIGTLink server (PLUS serving an optical tracker), for ``--tracker igtl:``.

``IgtlTrackerClient(host, port)`` connects to the server in a background thread, reads its
messages (headers and bodies decoded by pyigtl, the CRC-64 checked with pyigtl's CRC), and keeps
the latest TRANSFORM of every device (translation converted from mm to m). ``latest(device)``
returns it (``TrackedPose``) or None; ``wait_update(devices, timeout)`` waits until each device has
a pose newer than the last one taken, so a navigation loop can process every tracker frame.

Robustness: a lost or refused connection is retried every ``retry_s``; a message with a bad CRC, an
unknown type, a non-rigid matrix or NaN is skipped (counted in ``rejected``); a header that cannot
be a message (unreadable type, body larger than ``max_body`` bytes) means the stream is garbage and
the connection is dropped and retried. None of this raises into the caller.

``parse_tracker_address("igtl:HOST:PORT")`` parses the CLI's spelling (``BridgeSetupError`` if malformed).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from machaon.bridges.errors import BridgeSetupError

_log = logging.getLogger(__name__)

HEADER_SIZE = 58


@dataclass(frozen=True)
class TrackedPose:
    """``T_tracker_device`` (4x4, m) as received; ``timestamp`` the sender's (s), ``received`` our
    ``time.monotonic()``, ``seq`` counts messages of this device."""

    device: str
    T: np.ndarray
    timestamp: float
    received: float
    seq: int


def parse_tracker_address(text: str) -> tuple[str, int]:
    """``"igtl:HOST:PORT"`` -> (host, port); ``BridgeSetupError`` names what is wrong otherwise."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] != "igtl" or not parts[1]:
        raise BridgeSetupError(f"tracker {text!r}: expected igtl:HOST:PORT, e.g. igtl:127.0.0.1:18944")
    try:
        port = int(parts[2])
    except ValueError:
        raise BridgeSetupError(f"tracker {text!r}: port {parts[2]!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise BridgeSetupError(f"tracker {text!r}: port must be within 1..65535")
    return parts[1], port


def _rigid(T: np.ndarray, tol: float = 1e-3) -> bool:
    R = T[:3, :3]
    return bool(np.isfinite(T).all() and np.allclose(R.T @ R, np.eye(3), atol=tol)
                and abs(np.linalg.det(R) - 1.0) < tol)


class IgtlTrackerClient:
    """OpenIGTLink client keeping the latest pose per device (module docstring). Context manager."""

    def __init__(self, host: str, port: int, *, retry_s: float = 0.5, max_body: int = 1 << 24,
                 connect_timeout: float = 1.0) -> None:
        self.host, self.port = host, int(port)
        self.retry_s, self.max_body, self.connect_timeout = retry_s, max_body, connect_timeout
        self._poses: dict[str, TrackedPose] = {}
        self._taken: dict[str, int] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self.connected = False
        self.connections = 0
        self.rejected = 0
        self.received = 0
        self._thread = threading.Thread(target=self._run, name="machaon-igtl-tracker", daemon=True)
        self._thread.start()

    # -- consumer side ---------------------------------------------------------------------------

    def latest(self, device: str) -> TrackedPose | None:
        """The newest pose of ``device`` (None if none arrived yet); marks it as taken."""
        with self._cond:
            p = self._poses.get(device)
            if p is not None:
                self._taken[device] = p.seq
            return p

    def take_fresh(self, device: str) -> TrackedPose | None:
        """The newest pose of ``device`` if it arrived after the one last taken (else None); marks it taken."""
        with self._cond:
            p = self._poses.get(device)
            if p is None or p.seq <= self._taken.get(device, 0):
                return None
            self._taken[device] = p.seq
            return p

    def wait_update(self, devices: Iterable[str], timeout: float) -> bool:
        """Wait up to ``timeout`` s until every device in ``devices`` has a pose newer than the one last
        taken with ``latest``; True if they all do."""
        devices = list(devices)
        deadline = time.monotonic() + timeout

        def fresh() -> bool:
            return all(d in self._poses and self._poses[d].seq > self._taken.get(d, 0) for d in devices)

        with self._cond:
            while not fresh():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        self._stop.set()
        s = self._sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(2.0)

    def __enter__(self) -> IgtlTrackerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receiver thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            except OSError:
                self._stop.wait(self.retry_s)
                continue
            self._sock = sock
            self.connected = True
            self.connections += 1
            _log.info("tracker: connected to OpenIGTLink server %s:%d", self.host, self.port)
            try:
                sock.settimeout(0.5)
                self._read(sock)
            except (OSError, ValueError, struct.error) as exc:
                _log.warning("tracker: connection to %s:%d lost (%s); retrying", self.host, self.port, exc)
            finally:
                self.connected = False
                self._sock = None
                sock.close()
            self._stop.wait(self.retry_s)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self._stop.is_set():
                raise OSError("closing")
            try:
                chunk = sock.recv(min(n - len(buf), 1 << 16))
            except TimeoutError:
                continue
            if not chunk:
                raise OSError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def _read(self, sock: socket.socket) -> None:
        from pyigtl.messages import CRC64, MessageBase

        while not self._stop.is_set():
            header = self._recv_exact(sock, HEADER_SIZE)
            try:
                fields = MessageBase.parse_header(header)
            except (UnicodeDecodeError, struct.error) as exc:
                raise ValueError(f"garbage header ({exc})") from None
            size = fields["body_size"]
            if size > self.max_body:
                raise ValueError(f"message body of {size} bytes announced (limit {self.max_body})")
            body = self._recv_exact(sock, size)
            crc = struct.unpack_from(">Q", header, 50)[0]
            if fields["message_type"] != "TRANSFORM" or CRC64(body) != crc:
                self.rejected += fields["message_type"] == "TRANSFORM"
                continue
            msg = MessageBase.create_message("TRANSFORM")
            try:
                msg.unpack(fields, body)
            except (struct.error, ValueError):
                self.rejected += 1
                continue
            T = np.array(msg.matrix, dtype=np.float64)
            if not _rigid(T):
                self.rejected += 1
                continue
            T[:3, 3] /= 1000.0
            with self._cond:
                old = self._poses.get(msg.device_name)
                self._poses[msg.device_name] = TrackedPose(msg.device_name, T, float(fields["timestamp"]),
                                                           time.monotonic(), 1 if old is None else old.seq + 1)
                self.received += 1
                self._cond.notify_all()
