"""OpenIGTLink for 3D Slicer and PLUS: a navigation server whose messages are pyigtl's.

``IgtlServer(port, host)`` listens for OpenIGTLink clients (3D Slicer's OpenIGTLinkIF connects as a
client; so does pyigtl's ``OpenIGTLinkClient``). Messages are built and packed by pyigtl
(``TransformMessage``, ``StringMessage``, ``PointMessage``, ``PolyDataMessage``; ``StatusMessage`` here,
as pyigtl has no STATUS). The socket side is our own small selector loop rather than pyigtl's
``OpenIGTLinkServer``, which serves one client at a time, spins after a client leaves, prints
tracebacks to stderr and installs process-wide SIGINT/SIGTERM handlers: here any number of clients
connect, each has its own bounded queue (a slow client loses its oldest messages, nobody else
does), and what a client sends is read and discarded (garbage included), never parsed.

Every ``send_*`` call only queues a request for the publisher thread (``BackgroundPublisher``),
which builds and packs the messages; the caller (the procedure, the control loop) never waits on
a socket. Units on the wire are millimetres (converted here, in ``_mm``); inside, metres.

Navigation devices (``send_tracking`` etc., names as PLUS and SlicerIGT use them):

=========================  ==========  =====================================================================
device                     type        content
=========================  ==========  =====================================================================
``ToolToReference``        TRANSFORM   the guide/drill tip in the patient reference plate's frame
``ReferenceToTracker``     TRANSFORM   the reference plate as the tracker (camera) measures it (raw)
``ToolToTracker``          TRANSFORM   the tool's marker plate as the tracker measures it (raw)
``RobotBaseToReference``   TRANSFORM   the robot's base in the reference frame (hand-eye calibration)
``<LEVEL>ToReference``     TRANSFORM   each registered vertebra's frame (e.g. ``L3ToReference``)
``<LEVEL>``                POLYDATA    the vertebra's surface in its own frame (mm), sent once per client
``<SCREW>``                POINT       the planned screw's ``entry`` and ``target`` in its vertebra's frame
``Status``                 STRING      the phase: ``plan``, ``register``, ``approach L3-left``,
                                       ``drill L3-left``, ``done``...
``Status``                 STATUS      on a supervisor fault (code 3 for an E-stop, 2 otherwise) and 1 (OK)
                                       when the robot runs again
=========================  ==========  =====================================================================

Latched devices (POLYDATA, POINT, ``<LEVEL>ToReference``, ``RobotBaseToReference``, the last
STRING) are sent to every client when it connects, so Slicer started late still shows the anatomy.
A port that cannot be bound raises ``BridgeSetupError``.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from machaon.bridges.errors import BridgeSetupError
from machaon.bridges.observers import BackgroundPublisher

_log = logging.getLogger(__name__)

DEFAULT_PORT = 18944  # OpenIGTLink's registered port
MM_PER_M = 1000.0

# OpenIGTLink STATUS codes used here
STATUS_OK, STATUS_ERROR, STATUS_PANIC = 1, 2, 3


def _mm(T_m: np.ndarray) -> np.ndarray:
    """A rigid transform in metres -> the same transform with its translation in millimetres."""
    T = np.array(T_m, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ValueError("transform: expected a finite 4x4 matrix")
    T[:3, 3] *= MM_PER_M
    return T


def _status_message_class() -> type:
    from pyigtl.messages import MessageBase

    class StatusMessage(MessageBase):
        """OpenIGTLink STATUS (v1 body: code u16, subcode i64, error name char[20], message)."""

        def __init__(self, code: int = STATUS_OK, subcode: int = 0, error_name: str = "", status_string: str = "",
                     timestamp: float | None = None, device_name: str | None = None) -> None:
            MessageBase.__init__(self, timestamp=timestamp, device_name=device_name)
            self._message_type = "STATUS"
            self.code, self.subcode = int(code), int(subcode)
            self.error_name, self.status_string = str(error_name), str(status_string)
            self._valid_message = True

        def content_asstring(self) -> str:
            return f"Code: {self.code}, subcode: {self.subcode}, error: {self.error_name}, {self.status_string}"

        def _pack_content(self) -> bytes:
            return (struct.pack(">Hq20s", self.code, self.subcode, self.error_name.encode("utf8")[:20])
                    + self.status_string.encode("utf8") + b"\0")

        def _unpack_content(self, content: bytes) -> None:
            self.code, self.subcode, name = struct.unpack_from(">Hq20s", content)
            self.error_name = name.split(b"\0", 1)[0].decode("utf8", "replace")
            self.status_string = content[30:].split(b"\0", 1)[0].decode("utf8", "replace")

    return StatusMessage


StatusMessage = _status_message_class()


@dataclass(frozen=True)
class PlannedScrew:
    """A planned screw for Slicer: ``entry_m``/``target_m`` in the frame of vertebra ``level`` (m)."""

    name: str
    level: str
    entry_m: np.ndarray
    target_m: np.ndarray


class _Client:
    __slots__ = ("sock", "peer", "out", "partial", "dropped")

    def __init__(self, sock: socket.socket, peer: object, queue_len: int) -> None:
        self.sock, self.peer = sock, peer
        self.out: deque[bytes] = deque(maxlen=queue_len)
        self.partial: memoryview | None = None
        self.dropped = 0


class IgtlServer:
    """OpenIGTLink navigation server (module docstring). Use as a context manager.

    ``port`` (0: any free port; ``self.port`` tells which), ``host`` (default loopback);
    ``queue_len``: messages queued per client before its oldest are dropped.
    """

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", *, queue_len: int = 512) -> None:
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise BridgeSetupError(f"OpenIGTLink port: an integer in 0..65535, got {port!r}")
        try:
            self._listener = socket.create_server((host, port), reuse_port=False)
        except (OSError, OverflowError) as exc:
            raise BridgeSetupError(f"OpenIGTLink server: cannot listen on {host}:{port} ({exc})") from None
        self._listener.setblocking(False)
        self.host, self.port = host, int(self._listener.getsockname()[1])
        self._queue_len = queue_len
        self._clients: dict[int, _Client] = {}
        self._lock = threading.Lock()
        self._latched: dict[tuple[str, str], bytes] = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stop = threading.Event()
        self.connections = 0  # before the I/O thread starts: a client waiting for the port is accepted at once
        self._last_state: str | None = None
        self._io = threading.Thread(target=self._io_loop, name="machaon-igtl-io", daemon=True)
        self._io.start()
        self._publisher = BackgroundPublisher(self._handle, name="machaon-igtl").start()
        _log.info("OpenIGTLink server on %s:%d", self.host, self.port)

    # -- what the application sends (any thread; never blocks) ----------------------------------

    def send_tracking(self, *, T_tracker_reference: np.ndarray | None = None, T_tracker_tool: np.ndarray | None = None,
                      T_reference_tool: np.ndarray | None = None,
                      T_reference_robotbase: np.ndarray | None = None) -> None:
        """One tracker frame: raw ``ReferenceToTracker``/``ToolToTracker``, the navigated
        ``ToolToReference`` (tool tip) and ``RobotBaseToReference``; poses in metres, None: not seen."""
        self._publisher.submit(("tracking", T_tracker_reference, T_tracker_tool, T_reference_tool,
                                T_reference_robotbase))

    def send_registration(self, T_reference_level: Mapping[str, np.ndarray]) -> None:
        """``<LEVEL>ToReference`` for each registered vertebra (metres); latched."""
        self._publisher.submit(("registration", dict(T_reference_level)), droppable=False)

    def send_anatomy(self, meshes: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """POLYDATA ``<LEVEL>`` per vertebra: (vertices (N, 3) m in the level's frame, faces (M, 3)); latched."""
        self._publisher.submit(("anatomy", dict(meshes)), droppable=False)

    def send_plan(self, screws: Iterable[PlannedScrew]) -> None:
        """POINT ``<SCREW>`` with its ``entry`` and ``target`` (level frame, m); latched."""
        self._publisher.submit(("plan", list(screws)), droppable=False)

    def send_status(self, phase: str, screw: str | None = None) -> None:
        """STRING ``Status``: the phase (``plan``, ``register``, ``approach``, ``drill``, ``done``) and the screw."""
        self._publisher.submit(("status", phase if not screw else f"{phase} {screw}"), droppable=False)

    def send_fault(self, code: str, reason: str, *, estop: bool = False) -> None:
        """STATUS ``Status``: a fault (``code``: the supervisor's fault code, ``reason``: why)."""
        self._publisher.submit(("fault", STATUS_PANIC if estop else STATUS_ERROR, code, reason), droppable=False)

    # -- observer interface: supervisor transitions become STATUS -------------------------------

    def record_events(self, events: Iterable[object]) -> None:
        """Supervisor events (``SupervisorEvent``): STATUS on entering a stop, OK on running again."""
        for ev in events:
            to = ev.to_state.value
            if to in ("protective_stop", "estop"):
                self.send_fault(ev.code, ev.reason, estop=to == "estop")
            elif to == "run" and self._last_state in ("protective_stop", "estop", "hold"):
                self._publisher.submit(("fault", STATUS_OK, "", "robot running"), droppable=False)
            self._last_state = to

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """Clients connected now."""
        with self._lock:
            return len(self._clients)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every request queued so far has been packed and queued to the clients."""
        return self._publisher.flush(timeout)

    def close(self) -> None:
        self._publisher.close()
        self._stop.set()
        self._wake()
        self._io.join(2.0)
        with self._lock:
            for c in self._clients.values():
                c.sock.close()
            self._clients.clear()
        self._sel.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> IgtlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publisher thread: build and pack with pyigtl --------------------------------------------

    def _handle(self, item: tuple) -> None:
        import pyigtl

        kind = item[0]
        if kind == "tracking":
            _, T_tr, T_tt, T_rt, T_rb = item
            for name, T in (("ReferenceToTracker", T_tr), ("ToolToTracker", T_tt), ("ToolToReference", T_rt)):
                if T is not None:
                    self._broadcast(pyigtl.TransformMessage(_mm(T), device_name=name))
            if T_rb is not None:
                self._broadcast(pyigtl.TransformMessage(_mm(T_rb), device_name="RobotBaseToReference"), latch=True)
        elif kind == "registration":
            for level, T in item[1].items():
                self._broadcast(pyigtl.TransformMessage(_mm(T), device_name=f"{level}ToReference"), latch=True)
        elif kind == "anatomy":
            for level, (V, F) in item[1].items():
                F = np.asarray(F, dtype=np.uint32).reshape(-1, 3)
                cells = np.hstack([np.full((len(F), 1), 3, dtype=np.uint32), F]).ravel()
                msg = pyigtl.PolyDataMessage(points=np.asarray(V, dtype=np.float64) * MM_PER_M, polygons=cells,
                                             device_name=str(level))
                self._broadcast(msg, latch=True)
        elif kind == "plan":
            for s in item[1]:
                P = np.vstack([s.entry_m, s.target_m]) * MM_PER_M
                msg = pyigtl.PointMessage(positions=P, names=[f"{s.name}_entry", f"{s.name}_target"],
                                          groups=s.level, rgba_colors=[[230, 40, 40, 255], [40, 120, 230, 255]],
                                          device_name=s.name)
                self._broadcast(msg, latch=True)
        elif kind == "status":
            self._broadcast(pyigtl.StringMessage(item[1], device_name="Status"), latch=True)
        elif kind == "fault":
            _, code, fault, reason = item
            self._broadcast(StatusMessage(code, 0, fault[:20], reason, device_name="Status"))

    def _broadcast(self, msg: object, latch: bool = False) -> None:
        data = msg.pack()
        if latch:
            with self._lock:
                self._latched[(msg.message_type, msg.device_name)] = data
        with self._lock:
            for c in self._clients.values():
                if len(c.out) == c.out.maxlen:
                    c.dropped += 1
                c.out.append(data)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):  # already awake (buffer full) or closing
            pass

    # -- I/O thread --------------------------------------------------------------------------------

    def _io_loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._sel.select(timeout=0.5)
            except (OSError, ValueError):
                break
            for key, mask in events:
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                else:
                    self._service(key.data, mask)
            self._update_interest()

    def _accept(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Client(sock, peer, self._queue_len)
        with self._lock:
            for data in self._latched.values():
                c.out.append(data)
            self._clients[sock.fileno()] = c
        self.connections += 1
        self._sel.register(sock, selectors.EVENT_READ, c)
        _log.info("OpenIGTLink client connected from %s:%d", *peer[:2])

    def _drop(self, c: _Client, why: str) -> None:
        with self._lock:
            self._clients.pop(c.sock.fileno(), None)
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        _log.info("OpenIGTLink client %s left (%s)", c.peer, why)

    def _service(self, c: _Client, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(65536)  # whatever a client sends is read and discarded
            except BlockingIOError:
                data = None
            except OSError as exc:
                self._drop(c, str(exc))
                return
            if data == b"":
                self._drop(c, "closed")
                return
        if mask & selectors.EVENT_WRITE:
            try:
                while True:
                    if c.partial is None:
                        with self._lock:
                            if not c.out:
                                break
                            c.partial = memoryview(c.out.popleft())
                    n = c.sock.send(c.partial)
                    c.partial = c.partial[n:] if n < len(c.partial) else None
            except BlockingIOError:
                pass
            except OSError as exc:
                self._drop(c, str(exc))

    def _update_interest(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
        for c in clients:
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if (c.partial is not None or c.out) else 0)
            try:
                if self._sel.get_key(c.sock).events != want:
                    self._sel.modify(c.sock, want, c)
            except (KeyError, ValueError, OSError):
                pass


def wait_for_clients(server: IgtlServer, n: int = 1, timeout: float = 5.0) -> bool:
    """Wait until ``n`` clients are connected (for tests and for ``--igtl-wait``-style start-ups)."""
    deadline = time.monotonic() + timeout
    while server.clients < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
