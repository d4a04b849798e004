"""Authenticated, encrypted teleoperation sessions over a pre-shared key (protocol version 2).

Every datagram starts with a 20-byte header (little-endian)::

    magic "MQ" | version u8 | type u8 | session_id u64 | seq u64

and has one exact length per type (``WIRE_SIZE``), so ``parse_header`` rejects junk with one
``struct`` unpack and a dictionary look-up, before any cryptography.

Handshake: Noise ``NNpsk0`` (``machaon.teleop.noise``), shaped like WireGuard's
(``IKpsk2``; Donenfeld, NDSS 2017, section 5) where the two meet:

- HELLO (operator -> robot, 136 bytes)::

      header(session_id = initiation id I, seq 0) | e (32) | AEAD(payload, 36 + 16) | mac1 (16) | mac2 (16)

  Noise message 1 with prologue ``"machaon-teleop v2" || I``. The payload is a TAI64N timestamp
  (12 bytes, as WireGuard's), then ``prev_session_id`` (8) and ``rekey_tag`` (16), both zero
  unless this handshake replaces the sender's live session (rekey, below).
- WELCOME (robot -> operator, 92 bytes)::

      header(session_id = I, seq 0) | e (32) | AEAD(session_id, 8 + 16) | mac1 (16)

  Noise message 2; the payload carries the new session's id. ``Split()`` gives the two transport
  keys. Forward secrecy comes from the ephemeral X25519 exchange (``ee``): a recorded session
  cannot be decrypted later even with the PSK.
- COOKIE (robot -> operator, 64 bytes)::

      header(session_id = I, seq 0) | nonce (12) | ChaCha20-Poly1305(cookie (16), aad = the HELLO's mac1)

``mac1`` = HMAC-BLAKE2s(BLAKE2s("mac1----" || psk), everything before it)[:16] lets the server
drop a HELLO that was not made with the PSK (or is a replay) for one keyed hash. Under load the
server also wants ``mac2`` = HMAC-BLAKE2s(cookie, everything before it)[:16] with
``cookie = HMAC-BLAKE2s(secret, source address)[:16]`` and a secret that changes every two
minutes: a HELLO without a valid ``mac2`` gets a COOKIE (encrypted under a key derived from the
PSK) and nothing else. The server keeps no state for it, and every reply it sends to a source that
has not shown it can receive at its address is smaller than what that source sent.

Replays: the server remembers the highest HELLO timestamp it has accepted and rejects any HELLO
that is not newer, so a captured HELLO replayed at any rate is dropped after its mac1 and one
AEAD decryption (no Diffie-Hellman, no state, no reply) and can never displace a pending or live
session. (As in WireGuard, the watermark lives in memory: after a server restart the first replay
of an old HELLO earns one WELCOME that is useless without the initiator's ephemeral key.)

Transport (COMMAND, STATE), as WireGuard's: ChaCha20-Poly1305 with the 64-bit sequence number as
the nonce and the header as associated data, one key per direction; a sliding replay window
(RFC 6479 style) rejects a sequence number seen before or older than the window, checked once
before decryption (cheap) and recorded after it (so forged packets cannot move the window).

Key lifetime (``RekeyPolicy``): the operator starts a new handshake after ``rekey_after_s`` or
``rekey_after_packets``; both ends refuse a session older than ``reject_after_s`` or past
``reject_after_packets``. A rekeying HELLO carries the live session's id and
``rekey_tag = HMAC-BLAKE2s(rekey_key, e)[:16]`` with ``rekey_key`` derived from that session's
keys, so only its owner can hand the robot over to the new session without a pause.

Every rejection raises a ``LinkProtocolError`` subclass; ``DropCounters`` counts them by reason and
source and produces one summary line per interval instead of one log line per packet.
"""

from __future__ import annotations

import collections
import hmac as _hmac
import ipaddress
import logging
import math
import secrets
import struct
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from machaon.teleop import noise
from machaon.teleop.keys import KEY_BYTES
from machaon.teleop.messages import (
    PROTOCOL_VERSION,
    AuthError,
    Command,
    ExpiredError,
    LinkProtocolError,
    MalformedError,
    MsgType,
    ReplayError,
    RobotStateMsg,
    SessionError,
)

log = logging.getLogger(__name__)

MAGIC = b"MQ"
HEADER = struct.Struct("<2sBBQQ")
TAG_BYTES = 16
MAC_BYTES = 16
TIMESTAMP_BYTES = 12
HELLO_PAYLOAD = struct.Struct(">QI8s16s")  # TAI64N seconds, nanoseconds | prev session id | rekey tag
WELCOME_PAYLOAD = struct.Struct("<Q")  # new session id
PROLOGUE = b"machaon-teleop v2"
_HELLO_NOISE = noise.DHLEN + HELLO_PAYLOAD.size + TAG_BYTES
_WELCOME_NOISE = noise.DHLEN + WELCOME_PAYLOAD.size + TAG_BYTES
COOKIE_NONCE_BYTES = 12

WIRE_SIZE = {
    MsgType.HELLO: HEADER.size + _HELLO_NOISE + 2 * MAC_BYTES,
    MsgType.WELCOME: HEADER.size + _WELCOME_NOISE + MAC_BYTES,
    MsgType.COOKIE: HEADER.size + COOKIE_NONCE_BYTES + MAC_BYTES + TAG_BYTES,
    MsgType.COMMAND: HEADER.size + Command._FMT.size + TAG_BYTES,
    MsgType.STATE: HEADER.size + RobotStateMsg._FMT.size + TAG_BYTES,
}
MAX_PACKET = max(WIRE_SIZE.values())
_TAI64_BASE = (1 << 62) + 10  # TAI64 label of the Unix epoch (TAI - UTC = 10 s in 1970)
COOKIE_SECRET_S = 120.0  # the cookie secret changes this often (WireGuard's COOKIE_SECRET_MAX_AGE)
COOKIE_VALID_S = 110.0  # how long the operator uses a cookie it received
_LABEL_MAC1 = b"mac1----"
_LABEL_COOKIE = b"cookie--"


@dataclass(frozen=True)
class Header:
    version: int
    type: MsgType
    session_id: int
    seq: int

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.version, int(self.type), self.session_id, self.seq)


_TYPES = {int(t): t for t in MsgType}
_SIZE_BY_TYPE = {int(t): n for t, n in WIRE_SIZE.items()}


def parse_header(packet: bytes) -> Header:
    """Header of a datagram; ``MalformedError`` for bad magic, an unknown version or message type,
    or a length other than that type's (``WIRE_SIZE``). No cryptography happens here."""
    n = len(packet)
    if n < HEADER.size:
        raise MalformedError(f"packet of {n} bytes is shorter than the header")
    magic, version, mtype, sid, seq = HEADER.unpack_from(packet)
    if magic != MAGIC:
        raise MalformedError("bad magic")
    if version != PROTOCOL_VERSION:
        raise MalformedError(f"unsupported protocol version {version}")
    t = _TYPES.get(mtype)
    if t is None:
        raise MalformedError(f"unknown message type {mtype}")
    if n != _SIZE_BY_TYPE[mtype]:
        raise MalformedError(f"{t.name} of {n} bytes, expected {_SIZE_BY_TYPE[mtype]}")
    return Header(version, t, sid, seq)


def _check_psk(psk: bytes) -> bytes:
    if not isinstance(psk, bytes | bytearray) or len(psk) != KEY_BYTES:
        raise ValueError(f"psk must be {KEY_BYTES} bytes")
    return bytes(psk)


def _mac(key: bytes, data: bytes) -> bytes:
    return noise.hmac_blake2s(key, data)[:MAC_BYTES]


def tai64n(ns: int) -> bytes:
    """TAI64N label (12 bytes, big-endian) of a Unix time in nanoseconds (leap seconds ignored,
    as WireGuard does: only the order matters)."""
    s, n = divmod(ns, 1_000_000_000)
    return struct.pack(">QI", _TAI64_BASE + s, n)


def peer_bytes(peer: object) -> bytes:
    """Bytes naming a datagram's source for the cookie: packed IP address and port for a UDP
    ``(host, port)``, else the text of ``peer`` (in-process links)."""
    if isinstance(peer, tuple) and len(peer) >= 2 and isinstance(peer[1], int):
        try:
            return ipaddress.ip_address(peer[0]).packed + peer[1].to_bytes(2, "big")
        except ValueError:
            pass
    return str(peer).encode()


@dataclass(frozen=True)
class RekeyPolicy:
    """Key lifetime of a session (WireGuard's timers, section 6.1 of its paper). The operator
    starts a new handshake after ``rekey_after_s`` seconds or ``rekey_after_packets`` sent;
    either end refuses the session after ``reject_after_s`` or ``reject_after_packets``."""

    rekey_after_s: float = 120.0
    reject_after_s: float = 180.0
    rekey_after_packets: int = 1 << 24
    reject_after_packets: int = (1 << 24) + (1 << 16)
    retry_s: float = 1.0  # a rekey handshake that got no answer is retried this often

    def __post_init__(self) -> None:
        if not (0 < self.rekey_after_s < self.reject_after_s < math.inf):
            raise ValueError("RekeyPolicy: need 0 < rekey_after_s < reject_after_s < inf")
        if not (0 < self.rekey_after_packets < self.reject_after_packets < (1 << 64)):
            raise ValueError("RekeyPolicy: need 0 < rekey_after_packets < reject_after_packets < 2**64")


class ReplayWindow:
    """Sliding window over received sequence numbers (``size`` most recent)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.highest = -1
        self._bits = 0  # bit i set = (highest - i) was seen

    def seen(self, seq: int) -> LinkProtocolError | None:
        """Why ``seq`` would be rejected (seen, or older than the window), or None; changes nothing."""
        if seq > self.highest:
            return None
        off = self.highest - seq
        if off >= self.size:
            return ReplayError(f"seq {seq} is older than the replay window (highest {self.highest})")
        if self._bits >> off & 1:
            return ReplayError(f"seq {seq} already received")
        return None

    def check(self, seq: int) -> None:
        """Raise ``ReplayError`` if ``seq`` was seen or is older than the window; else accept it."""
        err = self.seen(seq)
        if err is not None:
            raise err
        if seq > self.highest:
            shift = seq - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = seq
            return
        self._bits |= 1 << (self.highest - seq)


class Session:
    """One side of an established session: ``seal`` outgoing bodies, ``open`` incoming packets.

    ``t_created`` is on the caller's clock (s), as is every ``t`` passed to ``open``/``expired``.
    """

    def __init__(
        self,
        session_id: int,
        k_send: bytes,
        k_recv: bytes,
        *,
        t_created: float = 0.0,
        rekey_key: bytes = b"",
        policy: RekeyPolicy | None = None,
        window: int = 1024,
    ) -> None:
        self.session_id = session_id
        self._send = ChaCha20Poly1305(k_send)
        self._recv = ChaCha20Poly1305(k_recv)
        self._seq = 0
        self.window = ReplayWindow(window)
        self.t_created = float(t_created)
        self.rekey_key = rekey_key
        self.policy = policy or RekeyPolicy()

    @property
    def sent(self) -> int:
        return self._seq

    def expired(self, t: float) -> bool:
        p = self.policy
        return (t - self.t_created >= p.reject_after_s or self._seq >= p.reject_after_packets
                or self.window.highest >= p.reject_after_packets)

    def wants_rekey(self, t: float) -> bool:
        p = self.policy
        return t - self.t_created >= p.rekey_after_s or self._seq >= p.rekey_after_packets

    def seal(self, mtype: MsgType, body: bytes) -> tuple[int, bytes]:
        """(seq, packet) for ``body``; ``ExpiredError`` once ``reject_after_packets`` were sent."""
        if self._seq >= self.policy.reject_after_packets:
            raise ExpiredError(f"session {self.session_id:#x} has sent its last packet; rekey")
        self._seq += 1
        hdr = Header(PROTOCOL_VERSION, mtype, self.session_id, self._seq).pack()
        return self._seq, hdr + self._send.encrypt(noise.aead_nonce(self._seq), body, hdr)

    def open(self, packet: bytes, mtype: MsgType, t: float) -> tuple[int, bytes]:
        """(seq, body) of an authenticated packet of type ``mtype`` for this session at time ``t``;
        ``LinkProtocolError`` otherwise (wrong type or session, expired, replayed, forged)."""
        h = parse_header(packet)
        if h.type != mtype:
            raise MalformedError(f"expected {mtype.name}, got {h.type.name}")
        if h.session_id != self.session_id:
            raise SessionError(f"packet for session {h.session_id:#x}, current is {self.session_id:#x}")
        if self.expired(t) or h.seq >= self.policy.reject_after_packets:
            raise ExpiredError(f"session {self.session_id:#x} is past its key lifetime")
        err = self.window.seen(h.seq)  # cheap: a replay costs no decryption
        if err is not None:
            raise err
        try:
            body = self._recv.decrypt(noise.aead_nonce(h.seq), packet[HEADER.size :], packet[: HEADER.size])
        except InvalidTag:
            raise AuthError("authentication tag mismatch (forged or tampered)") from None
        self.window.check(h.seq)  # only after authentication: forged seqs must not move the window
        return h.seq, body


def _session(sid: int, keys: tuple[bytes, bytes], k_c2s: bytes, t: float, policy: RekeyPolicy | None) -> Session:
    return Session(sid, keys[0], keys[1], t_created=t, policy=policy,
                   rekey_key=noise.hmac_blake2s(k_c2s, b"machaon-teleop rekey"))


class _Keys:
    """Keys every handshake message needs, derived once from the PSK."""

    def __init__(self, psk: bytes) -> None:
        self.psk = _check_psk(psk)
        self.mac1 = noise.blake2s(_LABEL_MAC1 + self.psk)
        self.cookie = noise.blake2s(_LABEL_COOKIE + self.psk)

    def check_mac1(self, packet: bytes, end: int) -> None:
        if not _hmac.compare_digest(packet[end - MAC_BYTES : end], _mac(self.mac1, packet[: end - MAC_BYTES])):
            raise AuthError(f"{MsgType(packet[3]).name} mac1 mismatch (wrong key or not ours)")


def _prologue(initiation_id: int) -> bytes:
    return PROLOGUE + initiation_id.to_bytes(8, "little")


class ClientHandshake:
    """Operator side of one handshake: ``hello()``, then ``finish(welcome, t)`` -> ``Session``.

    ``timestamp_ns``: wall-clock time of this initiation (Unix ns; must grow from one handshake to
    the next, ``ClientEndpoint`` sees to it); ``cookie``: the latest cookie the server sent, if
    any; ``previous``: the live session this handshake replaces (rekey)."""

    def __init__(
        self,
        psk: bytes,
        *,
        timestamp_ns: int | None = None,
        cookie: bytes | None = None,
        previous: Session | None = None,
        policy: RekeyPolicy | None = None,
    ) -> None:
        self._keys = _Keys(psk)
        self.initiation_id = secrets.randbits(64) or 1
        self.timestamp_ns = time.time_ns() if timestamp_ns is None else int(timestamp_ns)
        self._noise = noise.Initiator(self._keys.psk, _prologue(self.initiation_id))
        self._cookie = cookie
        self.previous = previous
        self._policy = policy
        self._packet: bytes | None = None

    def hello(self) -> bytes:
        """The HELLO datagram (built once; the same bytes on every call)."""
        if self._packet is None:
            hdr = Header(PROTOCOL_VERSION, MsgType.HELLO, self.initiation_id, 0).pack()
            prev_sid, tag = 0, bytes(MAC_BYTES)
            if self.previous is not None and self.previous.rekey_key:
                prev_sid = self.previous.session_id
                tag = _mac(self.previous.rekey_key, self._noise.ephemeral_public)  # binds this initiation
            ts_s, ts_ns = divmod(self.timestamp_ns, 1_000_000_000)
            payload = HELLO_PAYLOAD.pack(_TAI64_BASE + ts_s, ts_ns, prev_sid.to_bytes(8, "little"), tag)
            e_and_payload = self._noise.write_message_1(payload)
            body = hdr + e_and_payload
            body += _mac(self._keys.mac1, body)
            mac2 = _mac(self._cookie, body) if self._cookie is not None else bytes(MAC_BYTES)
            self._packet = body + mac2
        return self._packet

    def open_cookie(self, packet: bytes) -> bytes:
        """The cookie inside a COOKIE answering this HELLO; ``AuthError`` if it does not."""
        h = parse_header(packet)
        if h.type != MsgType.COOKIE or h.session_id != self.initiation_id:
            raise SessionError("COOKIE for another handshake")
        hello = self.hello()
        mac1 = hello[-2 * MAC_BYTES : -MAC_BYTES]
        nonce = packet[HEADER.size : HEADER.size + COOKIE_NONCE_BYTES]
        try:
            return ChaCha20Poly1305(self._keys.cookie).decrypt(nonce, packet[HEADER.size + COOKIE_NONCE_BYTES :], mac1)
        except InvalidTag:
            raise AuthError("COOKIE not made with our key for our HELLO") from None

    def finish(self, packet: bytes, t: float = 0.0) -> Session:
        """The session a WELCOME answering this HELLO establishes (created at time ``t``)."""
        h = parse_header(packet)
        if h.type != MsgType.WELCOME:
            raise MalformedError(f"expected WELCOME, got {h.type.name}")
        if h.session_id != self.initiation_id:
            raise SessionError("WELCOME does not answer this HELLO")
        self._keys.check_mac1(packet, len(packet))
        try:
            payload = self._noise.read_message_2(packet[HEADER.size : HEADER.size + _WELCOME_NOISE])
        except (InvalidTag, ValueError):
            raise AuthError("WELCOME does not decrypt (forged, or for another HELLO)") from None
        (sid,) = WELCOME_PAYLOAD.unpack(payload)
        if sid == 0:
            raise MalformedError("WELCOME with session id 0")
        k_send, k_recv = self._noise.split()
        return _session(sid, (k_send, k_recv), k_send, t, self._policy)


@dataclass(frozen=True)
class Initiation:
    """What a server learns from a valid HELLO."""

    initiation_id: int
    timestamp: bytes  # TAI64N
    previous_session_id: int  # 0 unless the sender proved it owns that session (rekey)


class ServerHandshake:
    """Robot side: ``check_mac1``; ``answer(hello, t, live)`` -> (WELCOME, pending ``Session``,
    ``Initiation``). Keeps the highest accepted HELLO timestamp: older or equal ones are replays."""

    def __init__(self, psk: bytes, policy: RekeyPolicy | None = None) -> None:
        self._keys = _Keys(psk)
        self._policy = policy
        self.highest_timestamp = bytes(TIMESTAMP_BYTES)

    def check_mac1(self, hello: bytes) -> None:
        """``AuthError`` unless the HELLO's mac1 was made with the PSK (one keyed hash)."""
        self._keys.check_mac1(hello, len(hello) - MAC_BYTES)

    def answer(self, packet: bytes, t: float, live: Session | None = None) -> tuple[bytes, Session, Initiation]:
        """Process a HELLO whose header and mac1 were checked. Raises ``AuthError`` if it does not
        decrypt, ``ReplayError`` if its timestamp is not newer than every HELLO accepted before."""
        h = parse_header(packet)
        if h.type != MsgType.HELLO or h.seq != 0 or h.session_id == 0:
            raise MalformedError("malformed HELLO")
        responder = noise.Responder(self._keys.psk, _prologue(h.session_id))
        e_pub = packet[HEADER.size : HEADER.size + noise.DHLEN]
        try:
            payload = responder.read_message_1(packet[HEADER.size : HEADER.size + _HELLO_NOISE])
        except (InvalidTag, ValueError):
            raise AuthError("HELLO does not decrypt under the PSK") from None
        ts_s, ts_ns, prev_raw, tag = HELLO_PAYLOAD.unpack(payload)
        ts = struct.pack(">QI", ts_s, ts_ns)
        if ts <= self.highest_timestamp:
            raise ReplayError("HELLO timestamp is not newer than the last accepted one (replayed HELLO)")
        prev = int.from_bytes(prev_raw, "little")
        if prev:
            if live is None or live.session_id != prev or not _hmac.compare_digest(tag, _mac(live.rekey_key, e_pub)):
                prev = 0  # not (or no longer) the owner of a live session: an ordinary handshake
        self.highest_timestamp = ts
        sid = secrets.randbits(64) or 1
        hdr = Header(PROTOCOL_VERSION, MsgType.WELCOME, h.session_id, 0).pack()
        try:
            body = hdr + responder.write_message_2(WELCOME_PAYLOAD.pack(sid))
        except ValueError:  # a low-order ephemeral key: no shared secret
            raise AuthError("HELLO carries an invalid ephemeral key") from None
        welcome = body + _mac(self._keys.mac1, body)
        k_send, k_recv = responder.split()
        return welcome, _session(sid, (k_send, k_recv), k_recv, t, self._policy), Initiation(h.session_id, ts, prev)


class CookieJar:
    """Stateless cookies (server side): ``reply(hello, peer, t)`` -> COOKIE datagram;
    ``valid_mac2(hello, peer, t)``. The secret changes every ``COOKIE_SECRET_S``; cookies made
    under the previous secret are still accepted."""

    def __init__(self, psk: bytes) -> None:
        self._key = _Keys(psk).cookie
        self._secrets: collections.deque[bytes] = collections.deque(maxlen=2)
        self._t_rotate = -math.inf

    def _current(self, t: float) -> bytes:
        if t - self._t_rotate >= COOKIE_SECRET_S:
            self._secrets.appendleft(secrets.token_bytes(32))
            self._t_rotate = t
        return self._secrets[0]

    def cookie(self, peer: object, t: float) -> bytes:
        return _mac(self._current(t), peer_bytes(peer))

    def valid_mac2(self, hello: bytes, peer: object, t: float) -> bool:
        self._current(t)
        mac2, signed = hello[-MAC_BYTES:], hello[:-MAC_BYTES]
        pb = peer_bytes(peer)
        return any(_hmac.compare_digest(mac2, _mac(_mac(s, pb), signed)) for s in self._secrets)

    def reply(self, hello: bytes, peer: object, t: float) -> bytes:
        """COOKIE answering ``hello`` (64 bytes, smaller than the HELLO: no amplification)."""
        h = HEADER.unpack_from(hello)
        hdr = Header(PROTOCOL_VERSION, MsgType.COOKIE, h[3], 0).pack()
        nonce = secrets.token_bytes(COOKIE_NONCE_BYTES)
        mac1 = hello[-2 * MAC_BYTES : -MAC_BYTES]
        return hdr + nonce + ChaCha20Poly1305(self._key).encrypt(nonce, self.cookie(peer, t), mac1)


class DropCounters:
    """Counts dropped packets by reason (``malformed``, ``auth``, ``replay``, ``stale``,
    ``bounds``, ``session``, ``expired``, ``ratelimit``, ``cookie``) and by source, and logs one
    summary line per ``interval_s`` of the caller's clock at most (never one line per packet:
    a flood must not become a flood of log lines). ``max_sources`` bounds the per-source table."""

    def __init__(self, name: str, interval_s: float = 1.0, max_sources: int = 256) -> None:
        self.name = name
        self.interval_s = float(interval_s)
        self.max_sources = int(max_sources)
        self.by_reason: collections.Counter[str] = collections.Counter()
        self._window: collections.Counter[str] = collections.Counter()
        self._sources: collections.Counter[object] = collections.Counter()
        self._last_error: object = ""
        self._t_summary: float | None = None
        self.total = 0

    def record(self, exc: LinkProtocolError, peer: object = None, t: float | None = None) -> None:
        self.total += 1
        self.by_reason[exc.reason] += 1
        self._window[exc.reason] += 1
        if peer is not None and (peer in self._sources or len(self._sources) < self.max_sources):
            self._sources[peer] += 1
        self._last_error = exc  # formatted only when a summary is written
        if t is not None:
            self.maybe_summarise(t)

    def maybe_summarise(self, t: float) -> str | None:
        """The summary of drops since the last one, logged at WARNING, if ``interval_s`` has
        passed and something was dropped; else None."""
        if self._t_summary is None:
            self._t_summary = t
        if not self._window or t - self._t_summary < self.interval_s:
            return None
        n = sum(self._window.values())
        reasons = ", ".join(f"{k} {v}" for k, v in self._window.most_common())
        top = ", ".join(f"{p} ({c})" for p, c in self._sources.most_common(3))
        line = (f"{self.name}: dropped {n} packets in {t - self._t_summary:.1f} s ({reasons})"
                f"{'; top sources ' + top if top else ''}; last: {self._last_error}")
        log.warning("%s", line)
        self._window.clear()
        self._sources.clear()
        self._t_summary = t
        return line
