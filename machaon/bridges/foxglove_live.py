"""Foxglove live view: a foxglove-sdk WebSocket server publishing what a run log records.

``FoxgloveLiveView(port)`` starts the SDK's WebSocket server (``foxglove.start_server``) on its own
``foxglove.Context`` (no global state) with one JSON channel per topic of
``machaon.robot.topics`` (``/tf``, ``/joint_states``, ``/wrench``, ``/machaon/command``,
``/machaon/target``, ``/machaon/supervisor``, ``/machaon/loop_stats``, ``/scene``, ``/log``), the same
schemas the MCAP run logs use, so the live view and the log look the same in Foxglove.

It is an observer (``machaon.bridges.observers``): give it to the ``ControlLoop`` as recorder
(directly or in ``Observers``). ``record_cycle`` runs on the control thread and only keeps every
cycle that is at least ``1 / rate_hz`` after the last kept one, in backend time and in wall time
(a simulation running faster than real time is still shown at ``rate_hz``): it copies that
cycle's arrays into the publisher queue (a bounded, drop-oldest deque) and returns. The publisher
thread computes the link poses (``LinkFrames``), encodes JSON and logs to the SDK, whose server
keeps a bounded backlog per client (``message_backlog_size``) and drops a slow client's oldest
messages. The control loop therefore never waits for a viewer, however slow or stuck.

Latched topics: the last supervisor event, every scene entity still shown and the latest pose of
each scene frame are sent again whenever a client subscribes, so a viewer that connects late sees
the anatomy and the robot's state.

Clients: the Foxglove app (``ws://HOST:PORT``), or any client speaking the Foxglove WebSocket
protocol. The SDK's server negotiates the subprotocol ``foxglove.sdk.v1`` (the wire protocol of
``foxglove.websocket.v1`` under its new name); a client must offer it.

A port that cannot be bound raises ``BridgeSetupError``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Sequence

import numpy as np

from machaon.bridges.errors import BridgeSetupError
from machaon.bridges.observers import BackgroundPublisher
from machaon.robot import topics as tp
from machaon.types import JointCommand, JointState

_log = logging.getLogger(__name__)

SUBPROTOCOL = "foxglove.sdk.v1"


def _copy(a: np.ndarray | None) -> np.ndarray | None:
    """A private copy for the publisher thread (the control loop may reuse its arrays next cycle)."""
    return None if a is None else np.array(a, dtype=np.float64)


def _ns(t: float) -> int:
    return max(0, int(round(t * 1e9))) if math.isfinite(t) else 0


def _listener(view: FoxgloveLiveView) -> object:
    """A foxglove-sdk ``ServerListener``: a new subscription asks the publisher to resend latched topics."""
    from foxglove.websocket import ServerListener

    class _Listener(ServerListener):
        def on_subscribe(self, client: object, channel: object) -> None:
            view._publisher.submit(("resend", getattr(channel, "topic", "")), droppable=False)

    return _Listener()


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
        import foxglove

        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise BridgeSetupError(f"foxglove port: an integer in 0..65535, got {port!r}")
        if not (math.isfinite(rate_hz) and 0 < rate_hz <= 1000):
            raise BridgeSetupError(f"foxglove rate: within (0, 1000] Hz, got {rate_hz!r}")
        self.joint_names = tuple(joint_names)
        self.link_frames = link_frames
        self.wrench_frame = wrench_frame or (link_frames.base_link if link_frames is not None else "base_link")
        self._period = 1.0 / rate_hz
        # also at most wall_rate_hz per second of wall time (default: rate_hz; None: no wall-time cap)
        self._wall_period = 0.0 if wall_rate_hz is None else self._period if wall_rate_hz < 0 else 1.0 / wall_rate_hz
        self._t_next = -math.inf
        self._wall_next = -math.inf
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
        self._publisher = BackgroundPublisher(self._publish, maxlen=queue_len, name="machaon-foxglove")
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self._context,
                                                 server_listener=_listener(self), message_backlog_size=backlog)
        except Exception as exc:  # the SDK raises RuntimeError/OSError variants for a taken port
            for ch in self._channels.values():
                ch.close()
            raise BridgeSetupError(f"foxglove live view: cannot listen on {host}:{port} ({exc})") from None
        self.host = host
        self.port = int(self._server.port)
        self._publisher.start()
        _log.info("Foxglove live view on ws://%s:%d", host, self.port)

    def describe_robot(self, joint_names: Sequence[str], link_frames: object | None,
                       wrench_frame: str | None = None) -> None:
        """Set the joint names and the ``LinkFrames`` of the robot being shown (before its first cycle;
        for applications that build the robot after the view was opened)."""
        self.joint_names = tuple(joint_names)
        self.link_frames = link_frames
        self.wrench_frame = wrench_frame or (link_frames.base_link if link_frames is not None else self.wrench_frame)

    # -- observer interface (control thread / application thread) ------------------------------

    def record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """Queue this cycle if ``1 / rate_hz`` has passed since the last queued one, in backend time and in
        wall time (a simulation faster than real time is shown at ``rate_hz`` too); cheap, never blocks."""
        if t < self._t_next:
            return
        now = time.monotonic()
        if now < self._wall_next:
            return
        self._t_next = max(self._t_next + self._period, t)
        self._wall_next = now + self._wall_period
        info = cmd.info
        target = {k: _copy(info[k]) for k in tp.TARGET_KEYS if info.get(k) is not None} if info else None
        self._publisher.submit(("cycle", t, _copy(state.q), _copy(state.dq), _copy(state.tau), bool(state.ok),
                                state.faults, _copy(state.wrench_tool), cmd.mode, _copy(cmd.tau), _copy(cmd.q),
                                _copy(cmd.dq), target))

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
    def dropped(self) -> int:
        """Items dropped from the publisher queue because it was full (the viewer side was slow)."""
        return self._publisher.dropped

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued so far has been handed to the server."""
        return self._publisher.flush(timeout)

    def close(self) -> None:
        self._publisher.close()
        try:
            self._server.stop()
        finally:
            for ch in self._channels.values():
                ch.close()

    def __enter__(self) -> FoxgloveLiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publisher thread ----------------------------------------------------------------------

    def _log_msg(self, topic: str, t: float, msg: dict) -> None:
        # hand the GIL back between building a message and logging it, and after: a control thread
        # waiting for it gets it now, not at the end of the interpreter's switch interval (5 ms by
        # default), so it waits for one step of the publisher at most
        time.sleep(0)
        self._channels[topic].log(msg, log_time=_ns(t))
        time.sleep(0)

    def _publish(self, item: tuple) -> None:
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
            _, t, entities, deleted = item
            for i in deleted:
                self._latched_entities.pop(i, None)
            for e in entities:
                self._latched_entities[e.id] = (t, e)
            self._log_msg(tp.TOPIC_SCENE, t, tp.scene_update_msg(t, entities, deleted))
        elif kind == "log":
            _, t, message, level = item
            self._log_msg(tp.TOPIC_LOG, t, tp.log_msg(t, message, level))
        elif kind == "resend":
            self._resend(item[1])

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
            frames = self.link_frames.frames(q)
            time.sleep(0)
            self._log_msg(tp.TOPIC_TF, t, tp.frame_transforms_msg(t, frames))

    def _resend(self, topic: str) -> None:
        if topic == tp.TOPIC_SUPERVISOR and self._latched_event is not None:
            self._log_msg(topic, *self._latched_event)
        elif topic == tp.TOPIC_SCENE and self._latched_entities:
            t = max(t for t, _ in self._latched_entities.values())
            self._log_msg(topic, t, tp.scene_update_msg(t, [e for _, e in self._latched_entities.values()]))
        elif topic == tp.TOPIC_TF and self._latched_frames:
            t = max(t for t, _ in self._latched_frames.values())
            self._log_msg(topic, t, tp.frame_transforms_msg(t, [f for _, f in self._latched_frames.values()]))
