"""Transport-independent protocol endpoints and link-health statistics.

``ServerEndpoint`` and ``ClientEndpoint`` turn datagrams into messages and messages into
datagrams; they never touch a socket, so the same code runs over UDP (``server``, ``client``)
and over the in-process ``SimChannel`` in simulated time (``sweep``). Times ``t`` are the
caller's clock in seconds (monotonic, or simulated).

Rules the server endpoint enforces, each drop counted by reason and logged
(``DropCounters``): malformed, unauthenticated, replayed, for an unknown session, out of bounds,
or stale (a motion command older than the newest one applied: reordered packets never move the
robot backwards; an E-stop is accepted even when reordered).
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass

import numpy as np

from machaon.teleop.messages import (
    CmdFlag,
    Command,
    CommandKind,
    LinkProtocolError,
    MalformedError,
    MsgType,
    RobotStateMsg,
    SessionError,
    StaleError,
    Timing,
)
from machaon.teleop.session import (
    ClientHandshake,
    DropCounters,
    ServerHandshake,
    Session,
    parse_header,
)

log = logging.getLogger(__name__)

_MAX_PENDING = 8


@dataclass(frozen=True)
class LinkHealth:
    """Link statistics seen from one end. Times in seconds (NaN before any sample).

    ``rtt_p50_s``/``rtt_p99_s``: round trip from echoed timestamps (peer hold time removed);
    ``one_way_s``: RTT/2 (the estimate when the clocks are not synchronised);
    ``jitter_s``: RFC 3550 interarrival jitter of the peer's packets;
    ``loss``: fraction of the peer's sequence numbers not received; ``age_s``: time since the
    last valid packet.
    """

    rtt_p50_s: float
    rtt_p99_s: float
    one_way_s: float
    jitter_s: float
    loss: float
    received: int
    age_s: float


class LinkMeter:
    """Accumulates the samples behind ``LinkHealth``."""

    def __init__(self, window: int = 2000) -> None:
        self._rtt: collections.deque[float] = collections.deque(maxlen=window)
        self._jitter = 0.0
        self._prev_transit: float | None = None
        self._first_seq: int | None = None
        self._highest = 0
        self.received = 0
        self._t_last: float | None = None

    def on_packet(self, t_recv: float, seq: int, timing: Timing) -> None:
        self.received += 1
        self._t_last = t_recv
        if self._first_seq is None:
            self._first_seq = seq
        self._highest = max(self._highest, seq)
        transit = t_recv - timing.t_send
        if self._prev_transit is not None:
            self._jitter += (abs(transit - self._prev_transit) - self._jitter) / 16.0
        self._prev_transit = transit
        if timing.echo_t > 0:
            rtt = t_recv - timing.echo_t - timing.echo_hold_s
            if 0 <= rtt < 60:
                self._rtt.append(rtt)

    def health(self, t_now: float) -> LinkHealth:
        if self._rtt:
            a = np.fromiter(self._rtt, dtype=np.float64)
            p50, p99 = (float(x) for x in np.percentile(a, [50, 99]))
        else:
            p50 = p99 = math.nan
        expected = 0 if self._first_seq is None else self._highest - self._first_seq + 1
        loss = 1.0 - self.received / expected if expected else math.nan
        return LinkHealth(
            p50, p99, p50 / 2, self._jitter if self._prev_transit is not None else math.nan,
            max(0.0, loss), self.received, math.nan if self._t_last is None else t_now - self._t_last,
        )


class ServerEndpoint:
    """Robot side. ``handle(data, peer, t)`` -> (accepted ``Command`` or None, replies to send).

    A replayed HELLO gets a WELCOME but cannot take over: a new session becomes the live one
    only when its first authenticated COMMAND arrives, and only if the live session has been
    silent for ``takeover_after_s`` (one operator at a time; a console that restarts gets the
    robot back after that delay, and the robot is in HOLD by then anyway).
    """

    def __init__(self, psk: bytes, takeover_after_s: float = 1.0) -> None:
        self._hs = ServerHandshake(psk)
        self.takeover_after_s = float(takeover_after_s)
        self._t_live = -math.inf
        self._pending: collections.OrderedDict[int, Session] = collections.OrderedDict()
        self.session: Session | None = None
        self.peer: object = None
        self.drops = DropCounters("teleop server")
        self.meter = LinkMeter()
        self.last_seq = 0
        self.accepted = 0
        self._echo_t = 0.0
        self._echo_recv = 0.0

    def handle(self, data: bytes, peer: object, t: float) -> tuple[Command | None, list[bytes]]:
        try:
            return self._handle(data, peer, t)
        except LinkProtocolError as exc:
            self.drops.record(exc, peer)
            return None, []

    def _handle(self, data: bytes, peer: object, t: float) -> tuple[Command | None, list[bytes]]:
        h = parse_header(data)
        if h.type == MsgType.HELLO:
            welcome, sess = self._hs.answer(data)
            self._pending[sess.session_id] = sess
            while len(self._pending) > _MAX_PENDING:
                self._pending.popitem(last=False)
            log.info("teleop server: handshake from %s (session %#x pending)", peer, sess.session_id)
            return None, [welcome]
        if h.type != MsgType.COMMAND:
            raise MalformedError(f"server does not accept {h.type.name}")
        live = self.session is not None and h.session_id == self.session.session_id
        sess = self.session if live else self._pending.get(h.session_id)
        if sess is None:
            raise SessionError(f"unknown session {h.session_id:#x}")
        seq, body = sess.open(data, MsgType.COMMAND)
        cmd = Command.unpack(body)
        if not live:  # first authenticated packet: this session becomes the live one ...
            if self.session is not None and t - self._t_live < self.takeover_after_s:
                # ... unless another operator is still driving: one operator at a time
                raise SessionError(f"session {h.session_id:#x} refused: operator session "
                                   f"{self.session.session_id:#x} is active")
            del self._pending[h.session_id]
            if self.session is not None:
                log.warning("teleop server: session %#x replaced by %#x", self.session.session_id, sess.session_id)
            self.session = sess
            self.last_seq = 0
            self.meter = LinkMeter()
            log.info("teleop server: session %#x established with %s", sess.session_id, peer)
        if seq <= self.last_seq and not (cmd.flags & CmdFlag.ESTOP):
            raise StaleError(f"command seq {seq} is older than the applied seq {self.last_seq}")
        self.last_seq = max(self.last_seq, seq)
        self._t_live = t
        self.peer = peer  # replies go where authenticated commands come from
        self.accepted += 1
        self.meter.on_packet(t, seq, cmd.timing)
        self._echo_t, self._echo_recv = cmd.timing.t_send, t
        return cmd, []

    def state_packet(self, state: RobotStateMsg, t: float) -> bytes | None:
        """Seal a state message for the live session (None when there is none). ``state.timing``
        is replaced by this endpoint's send time and echo fields."""
        if self.session is None:
            return None
        hold = t - self._echo_recv if self._echo_t > 0 else 0.0
        timing = Timing(t, self._echo_t, hold)
        msg = RobotStateMsg(timing, *[getattr(state, f) for f in _STATE_FIELDS])
        return self.session.seal(MsgType.STATE, msg.pack())[1]


_STATE_FIELDS = [f for f in RobotStateMsg.__dataclass_fields__ if f != "timing"]


class ClientEndpoint:
    """Operator side: ``hello()``, then ``handle(data, t)`` for every datagram; ``command(...)``
    seals commands once ``connected``. ``latest`` is the newest robot state received."""

    def __init__(self, psk: bytes) -> None:
        self._psk = psk
        # HELLOs still waiting for their WELCOME: on a long link (a GEO satellite hop is
        # ~600 ms round trip) a retry goes out before the first answer comes back.
        self._pending: collections.deque[ClientHandshake] = collections.deque(maxlen=8)
        self.session: Session | None = None
        self.drops = DropCounters("teleop console")
        self.meter = LinkMeter()
        self.latest: RobotStateMsg | None = None
        self.latest_t = math.nan
        self._last_state_seq = 0
        self._echo_t = 0.0
        self._echo_recv = 0.0
        self.sent = 0

    @property
    def connected(self) -> bool:
        return self.session is not None

    def hello(self) -> bytes:
        """A HELLO (a new one each call, so a lost handshake can simply be retried; a WELCOME
        answering any of the last 8 is accepted)."""
        hs = ClientHandshake(self._psk)
        self._pending.append(hs)
        return hs.hello()

    def handle(self, data: bytes, t: float) -> RobotStateMsg | None:
        try:
            h = parse_header(data)
            if h.type == MsgType.WELCOME:
                if self.session is not None:
                    raise SessionError("unexpected WELCOME: already connected")
                self.session = self._finish(data)
                self._pending.clear()
                log.info("teleop console: session %#x established", self.session.session_id)
                return None
            if h.type != MsgType.STATE:
                raise MalformedError(f"console does not accept {h.type.name}")
            if self.session is None:
                raise SessionError("STATE before the handshake")
            seq, body = self.session.open(data, MsgType.STATE)
            msg = RobotStateMsg.unpack(body)
            if seq <= self._last_state_seq:
                raise StaleError(f"state seq {seq} older than {self._last_state_seq}")
            self._last_state_seq = seq
            self.meter.on_packet(t, seq, msg.timing)
            self._echo_t, self._echo_recv = msg.timing.t_send, t
            self.latest, self.latest_t = msg, t
            return msg
        except LinkProtocolError as exc:
            self.drops.record(exc)
            return None

    def _finish(self, data: bytes) -> Session:
        err: LinkProtocolError = SessionError("WELCOME without a HELLO")
        for hs in reversed(self._pending):
            try:
                return hs.finish(data)
            except LinkProtocolError as exc:
                err = exc
        raise err

    def command(self, t: float, kind: CommandKind = CommandKind.HEARTBEAT, **fields: object) -> bytes:
        """Seal a command sent at time ``t``; ``fields`` are ``Command`` fields other than
        ``timing``/``kind``. Raises ``SessionError`` before the handshake."""
        if self.session is None:
            raise SessionError("not connected")
        hold = t - self._echo_recv if self._echo_t > 0 else 0.0
        cmd = Command(Timing(t, self._echo_t, hold), kind, **fields)  # type: ignore[arg-type]
        self.sent += 1
        return self.session.seal(MsgType.COMMAND, cmd.pack())[1]
