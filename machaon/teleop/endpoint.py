"""Transport-independent protocol endpoints and link-health statistics.

``ServerEndpoint`` and ``ClientEndpoint`` turn datagrams into messages and messages into
datagrams; they never touch a socket, so the same code runs over UDP (``server``, ``client``)
and over the in-process ``SimChannel`` in simulated time (``sweep``). Times ``t`` are the
caller's clock in seconds (monotonic, or simulated).

Rules the server endpoint enforces, cheapest check first, each drop counted by reason
(``DropCounters``: one summary line per second at most, never one per packet):

1. header: magic, version, type and the type's exact length (no cryptography yet);
2. HELLO: mac1 (one keyed hash); while more than ``cookie_load_per_s`` HELLOs a second arrive, a
   valid cookie MAC (else a COOKIE reply and nothing else) and a per-source rate limit; then the
   Noise message (one AEAD decryption) and its timestamp, which must be newer than every HELLO
   accepted before (a replayed HELLO is dropped here, before any Diffie-Hellman or state);
3. COMMAND: a known live or pending session, not expired, a sequence number not seen before
   (checked before decryption), then the AEAD tag, the body's bounds, and staleness (a motion
   command older than the newest one applied: reordered packets never move the robot backwards;
   an E-stop is accepted even when reordered).

A pending session (handshake answered, no command yet) never displaces the live one: it becomes
live on its first authenticated command, and only if the live session has been silent for
``takeover_after_s``, has expired, or is the session this one rekeys (its owner proved it in
the HELLO). Pending sessions are bounded in number and expire.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from machaon.teleop.admission import RateMeter, SourceLimiter
from machaon.teleop.messages import (
    CmdFlag,
    Command,
    CommandKind,
    CookieRequired,
    ExpiredError,
    LinkProtocolError,
    MalformedError,
    MsgType,
    RateLimitError,
    RobotStateMsg,
    SessionError,
    StaleError,
    Timing,
)
from machaon.teleop.session import (
    COOKIE_VALID_S,
    ClientHandshake,
    CookieJar,
    DropCounters,
    RekeyPolicy,
    ServerHandshake,
    Session,
    parse_header,
)

log = logging.getLogger(__name__)


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
        self._expected_before = 0  # packets expected in earlier sequences (before a rekey)
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

    def new_sequence(self) -> None:
        """The peer's sequence numbers start again (a new session after a rekey); statistics go on."""
        if self._first_seq is not None:
            self._expected_before += self._highest - self._first_seq + 1
        self._first_seq = None
        self._highest = 0

    def health(self, t_now: float) -> LinkHealth:
        if self._rtt:
            a = np.fromiter(self._rtt, dtype=np.float64)
            p50, p99 = (float(x) for x in np.percentile(a, [50, 99]))
        else:
            p50 = p99 = math.nan
        expected = self._expected_before + (0 if self._first_seq is None else self._highest - self._first_seq + 1)
        loss = 1.0 - self.received / expected if expected else math.nan
        return LinkHealth(
            p50, p99, p50 / 2, self._jitter if self._prev_transit is not None else math.nan,
            max(0.0, loss), self.received, math.nan if self._t_last is None else t_now - self._t_last,
        )


class ServerEndpoint:
    """Robot side. ``handle(data, peer, t)`` -> (accepted ``Command`` or None, replies to send).

    See the module docstring for the checks. ``cookie_load_per_s``: HELLO rate (valid mac1) above
    which cookies are required (0: always); ``hello_rate_per_s``/``hello_burst``: per-source limit
    on HELLOs with a valid cookie while under load; ``max_pending``/``pending_timeout_s``: bound on
    answered handshakes waiting for their first command.
    """

    def __init__(
        self,
        psk: bytes,
        takeover_after_s: float = 1.0,
        *,
        policy: RekeyPolicy | None = None,
        cookie_load_per_s: float = 20.0,
        hello_rate_per_s: float = 5.0,
        hello_burst: float = 10.0,
        max_pending: int = 8,
        pending_timeout_s: float = 10.0,
    ) -> None:
        self._hs = ServerHandshake(psk, policy)
        self._cookies = CookieJar(psk)
        self.takeover_after_s = float(takeover_after_s)
        self.cookie_load_per_s = float(cookie_load_per_s)
        self._hello_meter = RateMeter(1.0)
        self._limiter = SourceLimiter(hello_rate_per_s, hello_burst)
        self.max_pending = int(max_pending)
        self.pending_timeout_s = float(pending_timeout_s)
        self._t_live = -math.inf
        # session id -> (session, initiation id, id of the live session it rekeys or 0)
        self._pending: collections.OrderedDict[int, tuple[Session, int, int]] = collections.OrderedDict()
        self.session: Session | None = None
        self.peer: object = None
        self.drops = DropCounters("teleop server")
        self.meter = LinkMeter()
        self.last_seq = 0
        self.accepted = 0
        self.handshakes = 0
        self.cookies_sent = 0
        self._echo_t = 0.0
        self._echo_recv = 0.0

    def handle(self, data: bytes, peer: object, t: float) -> tuple[Command | None, list[bytes]]:
        try:
            return self._handle(data, peer, t)
        except LinkProtocolError as exc:
            self.drops.record(exc, peer, t)
            return None, []

    def _handle(self, data: bytes, peer: object, t: float) -> tuple[Command | None, list[bytes]]:
        h = parse_header(data)
        if h.type == MsgType.HELLO:
            return None, self._hello(data, peer, t)
        if h.type != MsgType.COMMAND:
            raise MalformedError(f"server does not accept {h.type.name}")
        live = self.session is not None and h.session_id == self.session.session_id
        if live:
            sess, successor_of = self.session, 0
        else:
            entry = self._pending.get(h.session_id)
            if entry is None:
                raise SessionError(f"unknown session {h.session_id:#x}")
            sess, _, successor_of = entry
        seq, body = sess.open(data, MsgType.COMMAND, t)
        cmd = Command.unpack(body)
        if not live:  # first authenticated packet: this session becomes the live one ...
            cur = self.session
            rekey = cur is not None and successor_of == cur.session_id
            if (cur is not None and not rekey and not cur.expired(t)
                    and t - self._t_live < self.takeover_after_s):
                # ... unless another operator is still driving: one operator at a time
                raise SessionError(f"session {h.session_id:#x} refused: operator session "
                                   f"{cur.session_id:#x} is active")
            del self._pending[h.session_id]
            if rekey:
                log.info("teleop server: session %#x rekeyed as %#x", cur.session_id, sess.session_id)
                self.meter.new_sequence()
            else:
                if cur is not None:
                    log.warning("teleop server: session %#x replaced by %#x", cur.session_id, sess.session_id)
                self.meter = LinkMeter()
                log.info("teleop server: session %#x established with %s", sess.session_id, peer)
            self.session = sess
            self.last_seq = 0
        if seq <= self.last_seq and not (cmd.flags & CmdFlag.ESTOP):
            raise StaleError(f"command seq {seq} is older than the applied seq {self.last_seq}")
        self.last_seq = max(self.last_seq, seq)
        self._t_live = t
        self.peer = peer  # replies go where authenticated commands come from
        self.accepted += 1
        self.meter.on_packet(t, seq, cmd.timing)
        self._echo_t, self._echo_recv = cmd.timing.t_send, t
        return cmd, []

    def _hello(self, data: bytes, peer: object, t: float) -> list[bytes]:
        self._hs.check_mac1(data)
        if self._hello_meter.hit(t) > self.cookie_load_per_s:  # under load
            if not self._cookies.valid_mac2(data, peer, t):
                self.cookies_sent += 1
                self.drops.record(CookieRequired("under load: HELLO answered with a cookie"), peer, t)
                return [self._cookies.reply(data, peer, t)]
            if not self._limiter.allow(peer, t):
                raise RateLimitError(f"HELLO rate from {peer} above {self._limiter.rate:g}/s")
        welcome, sess, init = self._hs.answer(data, t, self.session)
        for sid in [s for s, (p, _, _) in self._pending.items() if t - p.t_created > self.pending_timeout_s]:
            del self._pending[sid]
        self._pending[sess.session_id] = (sess, init.initiation_id, init.previous_session_id)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        self.handshakes += 1
        log.info("teleop server: handshake from %s (session %#x pending%s)", peer, sess.session_id,
                 ", rekeys the live session" if init.previous_session_id else "")
        return [welcome]

    @property
    def pending(self) -> int:
        return len(self._pending)

    def state_packet(self, state: RobotStateMsg, t: float) -> bytes | None:
        """Seal a state message for the live session (None when there is none, or it expired).
        ``state.timing``, ``last_seq`` and ``dropped_packets`` are filled in by this endpoint."""
        sess = self.session
        if sess is None or sess.expired(t):
            return None
        hold = t - self._echo_recv if self._echo_t > 0 else 0.0
        msg = replace(state, timing=Timing(t, self._echo_t, hold), last_seq=self.last_seq,
                      dropped_packets=self.drops.total & 0xFFFFFFFF)
        try:
            return sess.seal(MsgType.STATE, msg.pack())[1]
        except LinkProtocolError:
            return None


class ClientEndpoint:
    """Operator side: ``hello(t)``, then ``handle(data, t)`` for every datagram; ``command(...)``
    seals commands once ``connected``. ``latest`` is the newest robot state received.

    After a COOKIE (the server is under load) ``hello_due`` is set: send ``hello(t)`` again at
    once, it carries the cookie. ``needs_rekey(t)`` says when to send ``hello(t)`` to replace the
    live session's keys; commands keep flowing on the old session until the answer arrives.
    """

    def __init__(self, psk: bytes, policy: RekeyPolicy | None = None) -> None:
        self._psk = psk
        self.policy = policy or RekeyPolicy()
        # HELLOs still waiting for their WELCOME: on a long link (a GEO satellite hop is
        # ~600 ms round trip) a retry goes out before the first answer comes back.
        self._pending: collections.deque[ClientHandshake] = collections.deque(maxlen=8)
        self.session: Session | None = None
        self._previous: Session | None = None
        self._last_state_seq: dict[int, int] = {}
        self._cookie: tuple[bytes, float] | None = None
        self.hello_due = False
        self._t_rekey_hello = -math.inf
        self._ts_ns = 0
        self.drops = DropCounters("teleop console")
        self.meter = LinkMeter()
        self.latest: RobotStateMsg | None = None
        self.latest_t = math.nan
        self._echo_t = 0.0
        self._echo_recv = 0.0
        self.sent = 0
        self.rekeys = 0

    @property
    def connected(self) -> bool:
        return self.session is not None

    def hello(self, t: float | None = None) -> bytes:
        """A new HELLO (each call: a lost handshake is simply retried; a WELCOME answering any of
        the last 8 is accepted). Carries the server's cookie when one is fresh at ``t``; when
        connected, it is a rekey of the live session."""
        ts = max(time.time_ns(), self._ts_ns + 1)  # strictly increasing, even if the clock steps back
        self._ts_ns = ts
        cookie = None
        if self._cookie is not None and (t is None or t - self._cookie[1] < COOKIE_VALID_S):
            cookie = self._cookie[0]
        hs = ClientHandshake(self._psk, timestamp_ns=ts, cookie=cookie, previous=self.session, policy=self.policy)
        self._pending.append(hs)
        self.hello_due = False
        if self.session is not None and t is not None:
            self._t_rekey_hello = t
        return hs.hello()

    def needs_rekey(self, t: float) -> bool:
        s = self.session
        return s is not None and s.wants_rekey(t) and t - self._t_rekey_hello >= self.policy.retry_s

    def _handshake(self, initiation_id: int) -> ClientHandshake:
        for hs in self._pending:
            if hs.initiation_id == initiation_id:
                return hs
        raise SessionError("answer to a HELLO we did not send (or no longer wait for)")

    def handle(self, data: bytes, t: float) -> RobotStateMsg | None:
        try:
            h = parse_header(data)
            if h.type == MsgType.WELCOME:
                self._welcome(data, h.session_id, t)
                return None
            if h.type == MsgType.COOKIE:
                self._cookie = (self._handshake(h.session_id).open_cookie(data), t)
                self.hello_due = True
                log.info("teleop console: server under load, retrying the handshake with its cookie")
                return None
            if h.type != MsgType.STATE:
                raise MalformedError(f"console does not accept {h.type.name}")
            if self.session is not None and h.session_id == self.session.session_id:
                sess = self.session
            elif self._previous is not None and h.session_id == self._previous.session_id:
                sess = self._previous
            elif self.session is None:
                raise SessionError("STATE before the handshake")
            else:
                raise SessionError(f"STATE for unknown session {h.session_id:#x}")
            seq, body = sess.open(data, MsgType.STATE, t)
            msg = RobotStateMsg.unpack(body)
            last = self._last_state_seq.get(sess.session_id, 0)
            if seq <= last:
                raise StaleError(f"state seq {seq} older than {last}")
            self._last_state_seq = {sess.session_id: seq}
            if sess is self.session and self._previous is not None:
                self._previous = None  # the server has switched: late states of the old session are stale
                self.meter.new_sequence()
            self.meter.on_packet(t, seq, msg.timing)
            self._echo_t, self._echo_recv = msg.timing.t_send, t
            self.latest, self.latest_t = msg, t
            return msg
        except LinkProtocolError as exc:
            self.drops.record(exc, None, t)
            return None

    def _welcome(self, data: bytes, initiation_id: int, t: float) -> None:
        hs = self._handshake(initiation_id)
        if hs.previous is None and self.session is not None:
            raise SessionError("unexpected WELCOME: already connected")
        if hs.previous is not None and hs.previous is not self.session:
            raise SessionError("WELCOME for a rekey of a session we no longer use")
        sess = hs.finish(data, t)
        self._pending.clear()
        if hs.previous is None:
            self.session = sess
            log.info("teleop console: session %#x established", sess.session_id)
        else:
            self._previous, self.session = self.session, sess
            self.rekeys += 1
            log.info("teleop console: session %#x rekeyed as %#x", self._previous.session_id, sess.session_id)

    def command(self, t: float, kind: CommandKind = CommandKind.HEARTBEAT, **fields: object) -> bytes:
        """Seal a command sent at time ``t``; ``fields`` are ``Command`` fields other than
        ``timing``/``kind``. Raises ``SessionError`` before the handshake or after the session
        expired (``ExpiredError``)."""
        if self.session is None:
            raise SessionError("not connected")
        if self.session.expired(t):
            raise ExpiredError("session expired; rekey")
        hold = t - self._echo_recv if self._echo_t > 0 else 0.0
        cmd = Command(Timing(t, self._echo_t, hold), kind, **fields)  # type: ignore[arg-type]
        pkt = self.session.seal(MsgType.COMMAND, cmd.pack())[1]
        self.sent += 1
        return pkt
