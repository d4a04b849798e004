"""Foxglove live view: a foxglove-sdk WebSocket server publishing what a run log records.

``FoxgloveLiveView(port)`` starts the SDK's WebSocket server (``foxglove.start_server``) with one
JSON channel per topic of ``machaon.robot.topics`` (``/tf``, ``/joint_states``, ``/wrench``,
``/machaon/command``, ``/machaon/target``, ``/machaon/supervisor``, ``/machaon/loop_stats``,
``/scene``, ``/log``), the same schemas the MCAP run logs use, so the live view and the log look
the same in Foxglove.

The server, the link poses (``LinkFrames``) and the JSON encoding run in a process of their own
(``machaon.bridges.foxglove_proc``): the control loop's interpreter only copies numbers into a
socket, so a viewer never takes the GIL from the loop. It is an observer
(``machaon.bridges.observers``): give it to the ``ControlLoop`` as recorder (directly or in
``Observers``). ``record_cycle`` runs on the control thread and only keeps every cycle that is at
least ``1 / rate_hz`` after the last kept one, in backend time and in wall time (a simulation
running faster than real time is still shown at ``rate_hz``); it packs that cycle's arrays into one
message and sends it without waiting (when the socket is full the cycle is dropped and counted).
Other items (supervisor events, stats, scene frames and entities, log lines) are pickled and sent by
a parent thread. In the child, a bounded drop-oldest queue feeds the SDK, whose server keeps a
bounded backlog per client (``message_backlog_size``) and drops a slow client's oldest messages. The
control loop therefore never waits for a viewer, however slow or stuck, and if the view's process
dies the run goes on without it (logged once, ``error`` says why).

Latched topics: the last supervisor event, every scene entity still shown and the latest pose of
each scene frame are sent again whenever a client subscribes, so a viewer that connects late sees
the anatomy and the robot's state.

Clients: the Foxglove app (``ws://HOST:PORT``), or any client speaking the Foxglove WebSocket
protocol. The SDK's server negotiates the subprotocol ``foxglove.sdk.v1`` (the wire protocol of
``foxglove.websocket.v1`` under its new name); a client must offer it.

A port that cannot be bound raises ``BridgeSetupError``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import pickle
import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np

from machaon._childproc import MAX_MSG, relay_log, start_child, stop_child
from machaon.bridges.errors import BridgeSetupError
from machaon.bridges.foxglove_proc import COMMAND_SLOTS, CYCLE_HEAD, STATE_SLOTS
from machaon.bridges.observers import BackgroundPublisher
from machaon.robot import topics as tp
from machaon.types import JointCommand, JointState

_log = logging.getLogger(__name__)

SUBPROTOCOL = "foxglove.sdk.v1"


_CHILD = "machaon.bridges.foxglove_proc"
_SEND_WAIT_S = 5.0  # how long the parent's sender thread waits for room before it gives the view up


def _cycle_parts(state: JointState, cmd: JointCommand) -> tuple[tuple, list[np.ndarray]]:
    """The slots (name, shape) and the arrays of one cycle, in the layout's order (``foxglove_proc``);
    the arrays are contiguous float64, ready to be sent as they are (no copy when they already are)."""
    slots, arrays = [], []
    for name, a in ((STATE_SLOTS[0], state.q), (STATE_SLOTS[1], state.dq), (STATE_SLOTS[2], state.tau),
                    (STATE_SLOTS[3], state.wrench_tool), (COMMAND_SLOTS[0], cmd.tau), (COMMAND_SLOTS[1], cmd.q),
                    (COMMAND_SLOTS[2], cmd.dq)):
        if a is not None:
            a = np.ascontiguousarray(a, dtype=np.float64)
            slots.append((name, a.shape))
            arrays.append(a)
    info = cmd.info
    if info:
        for k in tp.TARGET_KEYS:
            a = info.get(k)
            if a is not None:
                try:
                    a = np.ascontiguousarray(a, dtype=np.float64)
                except (TypeError, ValueError):  # not numbers: /machaon/target shows numbers only
                    continue
                slots.append((k, a.shape))
                arrays.append(a)
    return tuple(slots), arrays


class FoxgloveLiveView:
    """Foxglove WebSocket live view (module docstring). Use as a context manager.

    ``port`` (0: any free port; ``self.port`` tells which), ``host`` (default loopback);
    ``joint_names`` for ``/joint_states``; ``link_frames`` (``LinkFrames``) for the arm's ``/tf``;
    ``rate_hz``: cycles published per second of backend time; ``wrench_frame``: frame of ``/wrench``;
    ``queue_len``: cycles the publisher queue holds before dropping the oldest;
    ``backlog``: messages the server buffers per client before dropping that client's oldest;
    ``wall_rate_hz``: cap in wall time too (default ``rate_hz``; None: backend time only).
    """

    def __init__(
        self,
        port: int = 8765,
        host: str = "127.0.0.1",
        *,
        joint_names: Sequence[str] = (),
        link_frames: object | None = None,
        rate_hz: float = 50.0,
        wrench_frame: str | None = None,
        name: str = "machaon",
        queue_len: int = 64,
        backlog: int = 1024,
        wall_rate_hz: float | None = -1.0,
    ) -> None:
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise BridgeSetupError(f"foxglove port: an integer in 0..65535, got {port!r}")
        if not (math.isfinite(rate_hz) and 0 < rate_hz <= 1000):
            raise BridgeSetupError(f"foxglove rate: within (0, 1000] Hz, got {rate_hz!r}")
        self._period = 1.0 / rate_hz
        # also at most wall_rate_hz per second of wall time (default: rate_hz; None: no wall-time cap)
        self._wall_period = 0.0 if wall_rate_hz is None else self._period if wall_rate_hz < 0 else 1.0 / wall_rate_hz
        self._t_next = -math.inf
        self._wall_next = -math.inf
        self._layout: tuple | None = None
        self.error: str | None = None
        self._closing = False
        self._full_drops = 0  # cycles not sent because the socket pair was full
        self._child_dropped = 0  # the child's queue drops, as of its last answer
        self._acks: dict[str, threading.Event] = {}
        self._tokens = itertools.count()
        config = {"host": host, "port": port, "name": name, "backlog": backlog, "queue_len": queue_len}
        try:
            self._proc, self._ctl, first = start_child(_CHILD, config)
        except OSError as exc:
            raise BridgeSetupError(f"foxglove live view: cannot start its process ({exc})") from None
        if first[:1] != b"R":
            stop_child(self._proc, self._ctl, timeout=1.0)
            why = first[1:].decode(errors="replace") if first[:1] == b"E" else "its process did not start"
            raise BridgeSetupError(f"foxglove live view: {why}")
        self.host = host
        self.port = int(json.loads(first[1:])["port"])
        self._publisher = BackgroundPublisher(self._send_item, maxlen=queue_len, name="machaon-foxglove-send").start()
        self._reader = threading.Thread(target=self._read, name="machaon-foxglove-read", daemon=True)
        self._reader.start()
        self.describe_robot(joint_names, link_frames, wrench_frame)
        _log.info("Foxglove live view on ws://%s:%d", host, self.port)

    def describe_robot(self, joint_names: Sequence[str], link_frames: object | None,
                       wrench_frame: str | None = None) -> None:
        """Set the joint names and the ``LinkFrames`` of the robot being shown (before its first cycle;
        for applications that build the robot after the view was opened)."""
        self.joint_names = tuple(joint_names)
        self.link_frames = link_frames
        self.wrench_frame = wrench_frame or (link_frames.base_link if link_frames is not None
                                             else getattr(self, "wrench_frame", "base_link"))
        self._publisher.submit(("describe", self.joint_names, self.link_frames, self.wrench_frame), droppable=False)

    # -- observer interface (control thread / application thread) ------------------------------

    def record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """Send this cycle if ``1 / rate_hz`` has passed since the last sent one, in backend time and in
        wall time (a simulation faster than real time is shown at ``rate_hz`` too); cheap, never blocks."""
        if t < self._t_next or self.error is not None:
            return
        now = time.monotonic()
        if now < self._wall_next:
            return
        self._t_next = max(self._t_next + self._period, t)
        self._wall_next = now + self._wall_period
        slots, arrays = _cycle_parts(state, cmd)
        layout = (cmd.mode, state.faults, slots)
        if layout != self._layout:
            if not self._send_now([b"M", pickle.dumps(layout)]):
                return
            self._layout = layout
        self._send_now([b"C", CYCLE_HEAD.pack(t, bool(state.ok)), *arrays])  # gathered by the kernel, not copied

    def record_events(self, events: Iterable[object]) -> None:
        for ev in events:
            self._publisher.submit(("event", ev), droppable=False)

    def record_stats(self, stats: object, t: float | None = None) -> None:
        self._publisher.submit(("stats", t, stats), droppable=False)

    def record_transforms(self, t: float, frames: Iterable[tp.FramePose]) -> None:
        self._publisher.submit(("frames", t, list(frames)))

    def record_scene(self, t: float, entities: Iterable[tp.SceneEntity], deleted_ids: Iterable[str] = ()) -> None:
        self._publisher.submit(("scene", t, list(entities), list(deleted_ids)), droppable=False)

    def record_log(self, t: float, message: str, level: int = tp.LOG_INFO) -> None:
        self._publisher.submit(("log", t, str(message), int(level)), droppable=False)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The view's process (None once closed)."""
        return None if self._proc is None else self._proc.pid

    @property
    def dropped(self) -> int:
        """Items dropped on the way because a queue was full (the viewer side was slow): cycles the
        socket pair had no room for, and the queues' drops in both processes (the child's as of the
        last ``flush``)."""
        return self._full_drops + self._publisher.dropped + self._child_dropped

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything recorded so far has been handed to the server (False on timeout, or
        when the view's process is gone)."""
        deadline = time.monotonic() + timeout
        if self.error is not None or not self._publisher.flush(timeout):
            return False
        token = str(next(self._tokens))
        done = self._acks[token] = threading.Event()
        try:
            return (self._send_waiting(b"F" + token.encode(), deadline)
                    and done.wait(max(0.0, deadline - time.monotonic())))
        finally:
            self._acks.pop(token, None)

    def close(self) -> None:
        if self._proc is None:
            return
        self._publisher.close()
        self._closing = True
        if self.error is None:
            self._send_waiting(b"Q", time.monotonic() + 2.0)
        stop_child(self._proc, None, timeout=5.0)
        self._reader.join(2.0)
        self._ctl.close()
        self._proc = None
        self.error = self.error or "closed"  # later records are no-ops

    def __enter__(self) -> FoxgloveLiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- talking to the view's process ---------------------------------------------------------

    def _fail(self, why: str) -> None:
        if self.error is None and not self._closing:
            self.error = why
            _log.error("Foxglove live view: %s; the run goes on without it", why)

    def _send_now(self, parts: list) -> bool:
        """One message, without waiting (control thread): False, counted, when there is no room."""
        try:
            self._ctl.sendmsg(parts, (), socket.MSG_DONTWAIT)
            return True
        except BlockingIOError:
            self._full_drops += 1
        except OSError as exc:
            self._fail(f"lost its process ({exc})")
        return False

    def _send_waiting(self, msg: bytes, deadline: float) -> bool:
        """One message, waiting for room until ``deadline`` (never on the control thread)."""
        while self.error is None:
            try:
                self._ctl.send(msg, socket.MSG_DONTWAIT)
                return True
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail("its process stopped reading (no room on the socket before the deadline)")
                    return False
                select.select([], [self._ctl], [], left)
            except OSError as exc:
                self._fail(f"lost its process ({exc})")
        return False

    def _send_item(self, item: tuple) -> None:
        """The sender thread's handler: ``item`` pickled, in pieces that fit one message."""
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        step = MAX_MSG - 1
        deadline = time.monotonic() + _SEND_WAIT_S
        for i in range(0, len(data), step):
            kind = b"P" if i + step >= len(data) else b"p"
            if not self._send_waiting(kind + data[i:i + step], deadline):
                return

    def _read(self) -> None:
        """The reader thread: the child's log lines and flush answers, until it hangs up."""
        while True:
            try:
                msg = self._ctl.recv(MAX_MSG)
            except OSError:
                msg = b""
            if not msg:
                self._fail("its process exited")
                return
            if msg[:1] == b"L":
                relay_log(msg[1:])
            elif msg[:1] == b"A":
                ack = json.loads(msg[1:])
                self._child_dropped = int(ack["dropped"])
                done = self._acks.get(ack["token"])
                if done is not None:
                    done.set()
