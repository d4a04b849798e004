"""Authenticated, encrypted teleoperation sessions over a pre-shared key.

Packet = header (20 bytes, authenticated, not encrypted) + body::

    magic "MQ" | version u8 | type u8 | session_id u64 | seq u64        (little-endian)

Handshake (both messages MAC'd with HMAC-SHA256 under ``k_hs = HKDF(psk, info="...handshake")``):

1. HELLO (client -> server): ``client_nonce`` (32 random bytes) + MAC.
2. WELCOME (server -> client): ``client_nonce`` echoed + ``server_nonce`` + MAC, with a fresh
   random ``session_id`` in the header. The client accepts only a WELCOME echoing its own nonce.

Both sides then derive per-direction keys with HKDF-SHA256 (RFC 5869) from the PSK, salted with
both nonces and bound to the session id; a recorded session can therefore not be replayed into a
new one, and neither side alone chooses the keys. COMMAND and STATE bodies are sealed with
ChaCha20-Poly1305 (RFC 8439); the nonce is the 64-bit sequence number, never reused under a key
because each direction has its own key and the sender's counter only goes up. The receiver keeps
a sliding replay window (RFC 4303 sec. 3.4.3 style): a sequence number seen before, or older than
the window, is rejected.

The server keeps a new session *pending* until its first authenticated data packet: a replayed
HELLO earns the replayer a WELCOME but no keys, and cannot displace the live session.

Every rejection raises a ``LinkProtocolError`` subclass; ``DropCounters.record`` counts it by reason
and logs it.
"""

from __future__ import annotations

import hmac as _hmac
import logging
import secrets
import struct
from collections import Counter
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from machaon.teleop.keys import KEY_BYTES
from machaon.teleop.messages import (
    PROTOCOL_VERSION,
    AuthError,
    LinkProtocolError,
    MalformedError,
    MsgType,
    ReplayError,
    SessionError,
)

log = logging.getLogger(__name__)

MAGIC = b"MQ"
HEADER = struct.Struct("<2sBBQQ")
NONCE_BYTES = 32
MAC_BYTES = 32
TAG_BYTES = 16
MAX_PACKET = 1400  # larger datagrams are malformed by definition (no fragmentation)
_INFO_HS = b"machaon-teleop v1 handshake"
_INFO_SESSION = b"machaon-teleop v1 session"


@dataclass(frozen=True)
class Header:
    version: int
    type: MsgType
    session_id: int
    seq: int

    def pack(self) -> bytes:
        return HEADER.pack(MAGIC, self.version, int(self.type), self.session_id, self.seq)


def parse_header(packet: bytes) -> Header:
    """Header of a datagram; ``MalformedError`` for a short/oversized packet, bad magic, an
    unknown version or message type."""
    if len(packet) < HEADER.size:
        raise MalformedError(f"packet of {len(packet)} bytes is shorter than the header")
    if len(packet) > MAX_PACKET:
        raise MalformedError(f"packet of {len(packet)} bytes exceeds {MAX_PACKET}")
    magic, version, mtype, sid, seq = HEADER.unpack_from(packet)
    if magic != MAGIC:
        raise MalformedError("bad magic")
    if version != PROTOCOL_VERSION:
        raise MalformedError(f"unsupported protocol version {version}")
    try:
        t = MsgType(mtype)
    except ValueError:
        raise MalformedError(f"unknown message type {mtype}") from None
    return Header(version, t, sid, seq)


def _hkdf(psk: bytes, length: int, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(psk)


def _mac(key: bytes, data: bytes) -> bytes:
    h = HMAC(key, hashes.SHA256())
    h.update(data)
    return h.finalize()


def _check_psk(psk: bytes) -> bytes:
    if not isinstance(psk, bytes | bytearray) or len(psk) != KEY_BYTES:
        raise ValueError(f"psk must be {KEY_BYTES} bytes")
    return bytes(psk)


class ReplayWindow:
    """Sliding window over received sequence numbers (``size`` most recent)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.highest = -1
        self._bits = 0  # bit i set = (highest - i) was seen

    def check(self, seq: int) -> None:
        """Raise ``ReplayError`` if ``seq`` was seen or is older than the window; else accept it."""
        if seq > self.highest:
            shift = seq - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            self.highest = seq
            return
        off = self.highest - seq
        if off >= self.size:
            raise ReplayError(f"seq {seq} is older than the replay window (highest {self.highest})")
        if self._bits >> off & 1:
            raise ReplayError(f"seq {seq} already received")
        self._bits |= 1 << off


class Session:
    """One side of an established session: ``seal`` outgoing bodies, ``open`` incoming packets."""

    def __init__(self, session_id: int, k_send: bytes, k_recv: bytes, window: int = 1024) -> None:
        self.session_id = session_id
        self._send = ChaCha20Poly1305(k_send)
        self._recv = ChaCha20Poly1305(k_recv)
        self._seq = 0
        self.window = ReplayWindow(window)

    @staticmethod
    def _nonce(seq: int) -> bytes:
        return b"\0\0\0\0" + seq.to_bytes(8, "little")

    def seal(self, mtype: MsgType, body: bytes) -> tuple[int, bytes]:
        """(seq, packet) for ``body``; the sequence number starts at 1 and only increases."""
        self._seq += 1
        hdr = Header(PROTOCOL_VERSION, mtype, self.session_id, self._seq).pack()
        return self._seq, hdr + self._send.encrypt(self._nonce(self._seq), body, hdr)

    def open(self, packet: bytes, expect: MsgType) -> tuple[int, bytes]:
        """(seq, body) of an authentic, fresh packet of type ``expect``; else a ``LinkProtocolError``."""
        h = parse_header(packet)
        if h.type != expect:
            raise MalformedError(f"unexpected message type {h.type.name}")
        if h.session_id != self.session_id:
            raise SessionError(f"packet for session {h.session_id:#x}, current is {self.session_id:#x}")
        if len(packet) < HEADER.size + TAG_BYTES:
            raise MalformedError("packet too short for its tag")
        try:
            body = self._recv.decrypt(self._nonce(h.seq), packet[HEADER.size :], packet[: HEADER.size])
        except InvalidTag:
            raise AuthError("authentication tag mismatch (forged or tampered)") from None
        self.window.check(h.seq)  # only after authentication: forged seqs must not move the window
        return h.seq, body


def _session_keys(psk: bytes, cn: bytes, sn: bytes, sid: int) -> tuple[bytes, bytes]:
    k = _hkdf(psk, 64, _INFO_SESSION + sid.to_bytes(8, "little"), salt=cn + sn)
    return k[:32], k[32:]  # client->server, server->client


class ClientHandshake:
    """Client side: ``hello()`` once, then ``finish(welcome_packet)`` -> ``Session``."""

    def __init__(self, psk: bytes) -> None:
        self._psk = _check_psk(psk)
        self._k_hs = _hkdf(self._psk, 32, _INFO_HS)
        self._nonce = secrets.token_bytes(NONCE_BYTES)

    def hello(self) -> bytes:
        hdr = Header(PROTOCOL_VERSION, MsgType.HELLO, 0, 0).pack()
        return hdr + self._nonce + _mac(self._k_hs, hdr + self._nonce)

    def finish(self, packet: bytes) -> Session:
        h = parse_header(packet)
        if h.type != MsgType.WELCOME:
            raise MalformedError(f"expected WELCOME, got {h.type.name}")
        body = packet[HEADER.size :]
        if len(body) != 2 * NONCE_BYTES + MAC_BYTES:
            raise MalformedError("WELCOME of wrong length")
        signed, mac = packet[: -MAC_BYTES], body[-MAC_BYTES:]
        if not _hmac.compare_digest(mac, _mac(self._k_hs, signed)):
            raise AuthError("WELCOME MAC mismatch")
        cn, sn = body[:NONCE_BYTES], body[NONCE_BYTES : 2 * NONCE_BYTES]
        if not _hmac.compare_digest(cn, self._nonce):
            raise ReplayError("WELCOME does not answer our HELLO")
        k_c2s, k_s2c = _session_keys(self._psk, cn, sn, h.session_id)
        return Session(h.session_id, k_send=k_c2s, k_recv=k_s2c)


class ServerHandshake:
    """Server side: ``answer(hello_packet)`` -> (welcome_packet, pending ``Session``)."""

    def __init__(self, psk: bytes) -> None:
        self._psk = _check_psk(psk)
        self._k_hs = _hkdf(self._psk, 32, _INFO_HS)

    def answer(self, packet: bytes) -> tuple[bytes, Session]:
        h = parse_header(packet)
        if h.type != MsgType.HELLO:
            raise MalformedError(f"expected HELLO, got {h.type.name}")
        body = packet[HEADER.size :]
        if len(body) != NONCE_BYTES + MAC_BYTES or h.session_id != 0 or h.seq != 0:
            raise MalformedError("malformed HELLO")
        if not _hmac.compare_digest(body[NONCE_BYTES:], _mac(self._k_hs, packet[: -MAC_BYTES])):
            raise AuthError("HELLO MAC mismatch")
        cn = body[:NONCE_BYTES]
        sn = secrets.token_bytes(NONCE_BYTES)
        sid = secrets.randbits(64) or 1
        hdr = Header(PROTOCOL_VERSION, MsgType.WELCOME, sid, 0).pack()
        signed = hdr + cn + sn
        k_c2s, k_s2c = _session_keys(self._psk, cn, sn, sid)
        return signed + _mac(self._k_hs, signed), Session(sid, k_send=k_s2c, k_recv=k_c2s)


class DropCounters:
    """Counts and logs every dropped packet by reason (``malformed``, ``auth``, ``replay``,
    ``stale``, ``bounds``, ``session``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_reason: Counter[str] = Counter()

    def record(self, exc: LinkProtocolError, peer: object = None) -> None:
        self.by_reason[exc.reason] += 1
        log.warning("%s: dropped packet from %s: %s: %s", self.name, peer, exc.reason, exc)

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())
