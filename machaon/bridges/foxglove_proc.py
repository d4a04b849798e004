"""The Foxglove live view's own process: the SDK's WebSocket server, link poses, JSON encoding.

Started by ``machaon.bridges.foxglove_live.FoxgloveLiveView`` as ``python -m
machaon.bridges.foxglove_proc`` (``machaon._childproc``), so that nothing a viewer costs (forward
kinematics of every link, JSON, the SDK's serialisation and WebSocket threads) runs in the control
loop's interpreter. The parent sends, over the socket pair:

- ``M`` + pickle: the layout of the cycles that follow (command mode, device faults, which arrays
  and their shapes); sent only when it changes;
- ``C`` + ``t`` (float64), ``ok`` (byte) + every array of the layout as float64, concatenated: one
  control cycle, packed on the control thread without pickling;
- ``p``/``P`` + pickle piece: any other item (supervisor event, loop stats, scene frames, 3D
  entities, log line, robot description), in pieces of at most 64 KiB, ``P`` on the last one;
- ``F`` + token: answer ``A`` + JSON ``{"token", "dropped"}`` once everything before it is published;
- ``Q`` (or the parent hanging up): publish what is queued, stop the server, exit.

The child answers its first message with ``R`` + JSON ``{"port"}`` once the server listens, or ``E``
+ why it could not. The main thread takes the waiting messages off the socket every 10 ms (``POLL_S``)
and queues them in a ``BackgroundPublisher`` (bounded, drop-oldest for cycles and frames), whose
thread builds the messages and logs them to the SDK; the SDK keeps a bounded backlog per client and
drops a slow client's oldest messages.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import struct
import sys
import time

import numpy as np

from machaon._childproc import MAX_MSG, child_main
from machaon.bridges.observers import BackgroundPublisher
from machaon.robot import topics as tp
from machaon.types import JointCommand, JointState

_log = logging.getLogger(__name__)

CYCLE_HEAD = struct.Struct("<dB")  # t, ok
# the arrays of a cycle, in the order a layout lists them: state, command, then the controller's target
STATE_SLOTS = ("q", "dq", "tau", "wrench_tool")
COMMAND_SLOTS = ("c_tau", "c_q", "c_dq")
# The child reads the socket every POLL_S instead of sleeping in recv: a reader asleep on the socket
# would have to be woken by every send, and on a virtual machine that wake-up (an interrupt to the
# other CPU) is paid by the sender, i.e. the control thread. A viewer does not see 10 ms.
POLL_S = 0.01
DROPPABLE = frozenset({"cycle", "frames"})  # superseded by the next one; the rest is never dropped first


def _ns(t: float) -> int:
    return max(0, int(round(t * 1e9))) if math.isfinite(t) else 0


def decode_cycle(layout: tuple, body: bytes) -> tuple:
    """A ``C`` message's body (after the kind byte) under ``layout`` -> the publisher's cycle item."""
    mode, faults, slots = layout
    t, ok = CYCLE_HEAD.unpack_from(body)
    flat = np.frombuffer(body, dtype=np.float64, offset=CYCLE_HEAD.size).copy()  # writable, for the kernels
    arrays: dict[str, np.ndarray] = {}
    i = 0
    for name, shape in slots:
        n = math.prod(shape)
        arrays[name] = flat[i:i + n].reshape(shape)
        i += n
    if i != flat.size:
        raise ValueError(f"cycle message holds {flat.size} numbers, its layout {i}")
    target = {k: arrays[k] for k in tp.TARGET_KEYS if k in arrays} or None
    return ("cycle", t, arrays["q"], arrays["dq"], arrays["tau"], bool(ok), faults, arrays.get("wrench_tool"),
            mode, arrays.get("c_tau"), arrays.get("c_q"), arrays.get("c_dq"), target)


class FoxgloveSession:
    """The SDK server and what it publishes (runs in the child). ``publish(item)`` is the
    ``BackgroundPublisher`` handler; latched topics (the last supervisor event, every scene entity
    still shown, the latest pose of each scene frame) are sent again when a client subscribes."""

    def __init__(self, host: str, port: int, *, name: str = "machaon", backlog: int = 1024,
                 queue_len: int = 64) -> None:
        import foxglove
        from foxglove.websocket import ServerListener

        self.joint_names: tuple[str, ...] = ()
        self.link_frames: object | None = None
        self.wrench_frame = "base_link"
        self._context = foxglove.Context()
        self._channels = {}
        for topic, schema in tp.SCHEMAS.items():
            self._channels[topic] = foxglove.Channel(
                topic, schema=foxglove.Schema(name=schema["title"], encoding="jsonschema",
                                              data=json.dumps(schema).encode()),
                message_encoding="json", context=self._context,
            )
        self._latched_event: tuple[float, dict] | None = None
        self._latched_entities: dict[str, tuple[float, object]] = {}
        self._latched_frames: dict[str, tuple[float, tp.FramePose]] = {}
        self.publisher = BackgroundPublisher(self.publish, maxlen=queue_len, name="machaon-foxglove")
        publisher = self.publisher

        class _Listener(ServerListener):
            def on_subscribe(self, client: object, channel: object) -> None:
                publisher.submit(("resend", getattr(channel, "topic", "")), droppable=False)

        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self._context,
                                                 server_listener=_Listener(), message_backlog_size=backlog)
        except Exception as exc:  # the SDK raises RuntimeError/OSError variants for a taken port
            self._close_channels()
            raise OSError(f"cannot listen on {host}:{port} ({exc})") from None
        self.port = int(self._server.port)
        self.publisher.start()

    def close(self) -> None:
        self.publisher.close()
        try:
            self._server.stop()
        finally:
            self._close_channels()

    def _close_channels(self) -> None:
        for ch in self._channels.values():
            ch.close()

    # -- the publisher thread ------------------------------------------------------------------

    def _log_msg(self, topic: str, t: float, msg: dict) -> None:
        self._channels[topic].log(msg, log_time=_ns(t))

    def publish(self, item: tuple) -> None:
        kind = item[0]
        if kind == "cycle":
            self._publish_cycle(*item[1:])
        elif kind == "event":
            ev = item[1]
            msg = tp.supervisor_msg(ev)
            self._latched_event = (ev.t, msg)
            self._log_msg(tp.TOPIC_SUPERVISOR, ev.t, msg)
        elif kind == "stats":
            _, t, stats = item
            self._log_msg(tp.TOPIC_STATS, 0.0 if t is None else t, tp.stats_msg(stats))
        elif kind == "frames":
            _, t, frames = item
            for f in frames:
                self._latched_frames[f.child] = (t, f)
            self._log_msg(tp.TOPIC_TF, t, tp.frame_transforms_msg(t, frames))
        elif kind == "scene":
            self._publish_scene(*item[1:])
        elif kind == "log":
            _, t, message, level = item
            self._log_msg(tp.TOPIC_LOG, t, tp.log_msg(t, message, level))
        elif kind == "describe":
            _, self.joint_names, self.link_frames, self.wrench_frame = item
        elif kind == "resend":
            self._resend(item[1])

    def _publish_scene(self, t: float, entities: list, deleted: list) -> None:
        for i in deleted:
            self._latched_entities.pop(i, None)
        for e in entities:
            self._latched_entities[e.id] = (t, e)
        self._log_msg(tp.TOPIC_SCENE, t, tp.scene_update_msg(t, entities, deleted))

    def _publish_cycle(self, t, q, dq, tau, ok, faults, wrench, mode, c_tau, c_q, c_dq, target) -> None:
        names = self.joint_names if len(self.joint_names) == len(q) else tuple(f"joint{i + 1}" for i in range(len(q)))
        state = JointState(t, q, dq, tau, wrench, faults, ok)
        self._log_msg(tp.TOPIC_JOINT_STATES, t, tp.joint_state_msg(t, names, state))
        self._log_msg(tp.TOPIC_COMMAND, t, tp.command_msg(t, JointCommand(mode, c_tau, c_q, c_dq)))
        if target:
            msg = tp.target_msg(t, target)
            if msg is not None:
                self._log_msg(tp.TOPIC_TARGET, t, msg)
        if wrench is not None:
            self._log_msg(tp.TOPIC_WRENCH, t, tp.wrench_msg(t, wrench, self.wrench_frame))
        if self.link_frames is not None and np.isfinite(q).all():
            self._log_msg(tp.TOPIC_TF, t, tp.frame_transforms_msg(t, self.link_frames.frames(q)))

    def _resend(self, topic: str) -> None:
        if topic == tp.TOPIC_SUPERVISOR and self._latched_event is not None:
            self._log_msg(topic, *self._latched_event)
        elif topic == tp.TOPIC_SCENE and self._latched_entities:
            t = max(t for t, _ in self._latched_entities.values())
            self._log_msg(topic, t, tp.scene_update_msg(t, [e for _, e in self._latched_entities.values()]))
        elif topic == tp.TOPIC_TF and self._latched_frames:
            t = max(t for t, _ in self._latched_frames.values())
            self._log_msg(topic, t, tp.frame_transforms_msg(t, [f for _, f in self._latched_frames.values()]))


# -- the child's main thread: read the socket, queue for the publisher -----------------------------


class _Reader:
    """Turns the parent's messages into publisher items (module docstring)."""

    def __init__(self, ctl: socket.socket, session: FoxgloveSession) -> None:
        self.ctl = ctl
        self.session = session
        self.layout: tuple | None = None
        self.pieces: list[bytes] = []
        self.bad = 0

    def handle(self, msg: bytes) -> bool:
        """Queue what ``msg`` carries; False when the parent says quit."""
        kind, body = msg[:1], msg[1:]
        pub = self.session.publisher
        try:
            if kind == b"C":
                if self.layout is not None:
                    pub.submit(decode_cycle(self.layout, body))
            elif kind == b"M":
                self.layout = pickle.loads(body)
            elif kind == b"p":
                self.pieces.append(body)
            elif kind == b"P":
                self.pieces.append(body)
                item = pickle.loads(b"".join(self.pieces))
                self.pieces.clear()
                pub.submit(item, droppable=item[0] in DROPPABLE)
            elif kind == b"F":
                pub.submit(lambda token=body: self._ack(token), droppable=False)
            elif kind == b"Q":
                return False
        except Exception as exc:  # the parent is ours, so this is a bug: say so once, go on
            self.pieces.clear()
            self.bad += 1
            if self.bad == 1:
                _log.error("foxglove live view: bad message from the robot process (%r); later ones are counted",
                           exc)
        return True

    def _ack(self, token: bytes) -> None:
        body = {"token": token.decode(), "dropped": self.session.publisher.dropped, "bad": self.bad}
        try:
            self.ctl.send(b"A" + json.dumps(body).encode(), socket.MSG_DONTWAIT)
        except OSError:
            pass


def _lowest_priority() -> None:
    """Run this process (and the SDK's threads, started after) under ``SCHED_IDLE``: on a machine
    short of cores the control loop always gets the CPU first; the view gets the idle time, which
    on anything but a saturated machine is plenty for 50 frames a second. On a saturated machine
    the view stalls (its queues drop the oldest) and the loop does not: that is the trade. ``nice``
    10 was not enough (the loop's p99 at 1 kHz went from 25-65 to 243-416 us on 2 cores, 21:35).
    Lowering one's own priority needs no privilege; where the policy does not exist, ``nice`` 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass


def _serve(ctl: socket.socket, config: dict, _args: object) -> None:
    if config.get("idle_priority", True):
        _lowest_priority()
    try:
        session = FoxgloveSession(config["host"], int(config["port"]), name=config.get("name", "machaon"),
                                  backlog=int(config.get("backlog", 1024)), queue_len=int(config.get("queue_len", 64)))
    except OSError as exc:
        ctl.send(b"E" + str(exc).encode())
        return
    reader = _Reader(ctl, session)
    try:
        ctl.send(b"R" + json.dumps({"port": session.port}).encode())
        ctl.setblocking(False)
        while _drain(ctl, reader):
            time.sleep(POLL_S)
    finally:
        session.close()


def _drain(ctl: socket.socket, reader: _Reader) -> bool:
    """Handle every message waiting on the socket; False when the parent says quit or hangs up."""
    while True:
        try:
            msg = ctl.recv(MAX_MSG + 1)
        except BlockingIOError:
            return True
        if not msg or not reader.handle(msg):
            return False


if __name__ == "__main__":
    sys.exit(child_main("machaon Foxglove live view process (started by FoxgloveLiveView)", _serve))
