"""Dynamixel Protocol 2.0: packet encoding, decoding and a resynchronising stream parser.

Wire format (ROBOTIS e-Manual, Protocol 2.0)::

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAM ... | CRC_L CRC_H

``LEN`` counts the bytes after itself (instruction, parameters after byte stuffing, CRC). A status
packet has ``INST = 0x55`` followed by an error byte. Byte stuffing: inside instruction and
parameters, every ``FF FF FD`` is sent as ``FF FF FD FD`` so that a header can never appear inside
a packet. The CRC-16 (polynomial 0x8005, initial value 0, not reflected) covers every byte from the
header up to the CRC, after stuffing.

Fast sync read answers with one status packet for all servos (ID 0xFE, not stuffed) whose
parameters are, per servo: ``error, id, data[L], crc16`` where every block's CRC is the running CRC
of the whole frame up to that point; the last block's CRC is the frame CRC.

Errors: one-shot decoders raise :class:`BusProtocolError` subclasses; :class:`StreamParser` never
raises on bad bytes, it skips them and counts what it skipped.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from machaon.errors import HardwareError

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 252
STATUS = 0x55
#: Largest LEN the parser accepts; longer claims are garbage (a full control table read is < 1 kB).
MAX_LENGTH = 4096


class Instruction(enum.IntEnum):
    """Instruction codes of Protocol 2.0."""

    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    FACTORY_RESET = 0x06
    REBOOT = 0x08
    CLEAR = 0x10
    STATUS = 0x55
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83
    FAST_SYNC_READ = 0x8A
    BULK_READ = 0x92
    BULK_WRITE = 0x93
    FAST_BULK_READ = 0x9A


class StatusErrorCode(enum.IntEnum):
    """Error numbers in the low 7 bits of a status packet's error byte."""

    OK = 0x00
    RESULT_FAIL = 0x01
    INSTRUCTION_ERROR = 0x02
    CRC_ERROR = 0x03
    DATA_RANGE_ERROR = 0x04
    DATA_LENGTH_ERROR = 0x05
    DATA_LIMIT_ERROR = 0x06
    ACCESS_ERROR = 0x07


#: Bit 7 of the status error byte: the servo has a hardware error (see Hardware Error Status).
ALERT_BIT = 0x80


class HardwareErrorStatus(enum.IntFlag):
    """Bits of the Hardware Error Status register (address 70) and of Shutdown (address 63)."""

    INPUT_VOLTAGE = 0x01
    OVERHEATING = 0x04
    MOTOR_ENCODER = 0x08
    ELECTRICAL_SHOCK = 0x10
    OVERLOAD = 0x20


_HW_ERROR_NAMES = {
    HardwareErrorStatus.INPUT_VOLTAGE: "input_voltage",
    HardwareErrorStatus.OVERHEATING: "overheating",
    HardwareErrorStatus.MOTOR_ENCODER: "motor_encoder",
    HardwareErrorStatus.ELECTRICAL_SHOCK: "electrical_shock",
    HardwareErrorStatus.OVERLOAD: "overload",
}


def hardware_error_names(bits: int) -> tuple[str, ...]:
    """Names of the set bits of a Hardware Error Status value, e.g. ``("overheating", "overload")``."""
    return tuple(name for flag, name in _HW_ERROR_NAMES.items() if bits & flag)


def status_error_name(error: int) -> str:
    """Name of the error number in a status error byte (the alert bit is ignored)."""
    code = error & 0x7F
    try:
        return StatusErrorCode(code).name.lower()
    except ValueError:
        return f"unknown_error_{code:#04x}"


# ---------------------------------------------------------------------------------------------
# Errors


class BusProtocolError(HardwareError):
    """Base class of every error this package raises about the bus or its packets."""


class BusFrameError(BusProtocolError):
    """Bytes that are not a well-formed packet (bad header, length or field)."""


class CRCError(BusFrameError):
    """A packet whose CRC does not match its bytes."""


class CommunicationTimeout(BusProtocolError):
    """No (complete) answer within the transaction's deadline."""


class PortError(BusProtocolError):
    """The serial port could not be opened or went away (adapter unplugged)."""


class StatusError(BusProtocolError):
    """A servo answered with a non-zero error number in its status packet."""

    def __init__(self, dxl_id: int, error: int) -> None:
        self.dxl_id = dxl_id
        self.error = error
        super().__init__(f"servo {dxl_id}: {status_error_name(error)} (error byte {error:#04x})")


# The old names, for one release (#16 made every exception name unique: ``ProtocolError`` and
# ``FrameError`` were also teleop's and the exo board's).
ProtocolError = BusProtocolError
FrameError = BusFrameError


# ---------------------------------------------------------------------------------------------
# CRC and byte stuffing (the hot parts; a compiled version is used when built)


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return tuple(table)


CRC_TABLE = _make_table()


def crc16_py(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16 of Protocol 2.0 (poly 0x8005, not reflected), continuing from ``crc``. Pure Python."""
    table = CRC_TABLE
    for b in data:
        crc = ((crc << 8) ^ table[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff_py(payload: bytes | bytearray) -> bytes:
    """Byte-stuff instruction+parameters: insert 0xFD after every ``FF FF FD``. Pure Python."""
    if b"\xff\xff\xfd" not in payload:
        return bytes(payload)
    return bytes(payload).replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff_py(payload: bytes | bytearray) -> bytes:
    """Undo byte stuffing: ``FF FF FD FD`` becomes ``FF FF FD``. Pure Python."""
    if b"\xff\xff\xfd\xfd" not in payload:
        return bytes(payload)
    return bytes(payload).replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


try:  # the compiled kernels (machaon/hardware/_crc.pyx); same results, about 50x faster
    from machaon.hardware._crc import crc16, stuff, unstuff  # type: ignore[import-not-found]

    COMPILED = True
except ImportError:  # pragma: no cover - exercised only when the extension is not built
    crc16 = crc16_py
    stuff = stuff_py
    unstuff = unstuff_py
    COMPILED = False


# ---------------------------------------------------------------------------------------------
# Packets


@dataclass(frozen=True)
class Packet:
    """A decoded packet. ``instruction`` is 0x55 for a status packet; ``params`` are unstuffed.

    For a status packet ``error`` is the error byte and ``params`` the data after it.
    """

    dxl_id: int
    instruction: int
    params: bytes
    error: int = 0

    @property
    def is_status(self) -> bool:
        return self.instruction == STATUS


def _check_id(dxl_id: int, allow_broadcast: bool = True) -> None:
    top = BROADCAST_ID if allow_broadcast else MAX_ID
    if not isinstance(dxl_id, int) or not 0 <= dxl_id <= top:
        raise ValueError(f"dxl_id: expected 0..{top}, got {dxl_id!r}")


def _frame(dxl_id: int, body: bytes) -> bytes:
    """Header, id, length, stuffed ``body`` (instruction [+ error] + params), CRC."""
    body = stuff(body)
    n = len(body) + 2
    if n > 0xFFFF:
        raise ValueError("packet too long")
    head = HEADER + bytes((dxl_id, n & 0xFF, n >> 8))
    pkt = head + body
    c = crc16(pkt)
    return pkt + bytes((c & 0xFF, c >> 8))


def encode_instruction(dxl_id: int, instruction: int, params: bytes | bytearray = b"") -> bytes:
    """Bytes of an instruction packet (stuffed, with CRC). Raises ValueError for a bad id/instruction."""
    _check_id(dxl_id)
    if not 0 <= int(instruction) <= 0xFF or instruction == STATUS:
        raise ValueError(f"instruction: not an instruction code: {instruction!r}")
    return _frame(dxl_id, bytes((int(instruction),)) + bytes(params))


def encode_status(dxl_id: int, error: int, params: bytes | bytearray = b"") -> bytes:
    """Bytes of a status packet (stuffed, with CRC), as a servo sends it."""
    _check_id(dxl_id, allow_broadcast=False)
    return _frame(dxl_id, bytes((STATUS, error & 0xFF)) + bytes(params))


def encode_fast_status(blocks: list[tuple[int, int, bytes]]) -> list[bytes]:
    """The fast sync/bulk read answer for ``blocks`` = [(id, error, data), ...], in wire order.

    Returns one chunk per servo (each servo sends its own part): the first chunk carries the header
    (ID 0xFE, LEN for the whole frame, 0x55). Every chunk ends with the running CRC of the frame so
    far. Fast answers are not byte-stuffed.
    """
    if not blocks:
        raise ValueError("blocks: empty")
    length = 1 + sum(4 + len(d) for _, _, d in blocks)
    chunks: list[bytes] = []
    crc = 0
    for k, (dxl_id, error, data) in enumerate(blocks):
        part = bytes((error & 0xFF, dxl_id)) + bytes(data)
        if k == 0:
            part = HEADER + bytes((BROADCAST_ID, length & 0xFF, length >> 8, STATUS)) + part
        crc = crc16(part, crc)
        tail = bytes((crc & 0xFF, crc >> 8))
        crc = crc16(tail, crc)
        chunks.append(part + tail)
    return chunks


def decode_fast_status(frame: bytes, data_lengths: list[int]) -> list[tuple[int, int, bytes]]:
    """Split a complete fast read frame into [(id, error, data)], checking every block's CRC.

    ``data_lengths`` gives each block's data length in order. Raises BusFrameError/CRCError.
    """
    if len(frame) < 8 or frame[:4] != HEADER or frame[4] != BROADCAST_ID or frame[7] != STATUS:
        raise BusFrameError("not a fast read status frame")
    length = frame[5] | (frame[6] << 8)
    if len(frame) != length + 7 or length != 1 + sum(4 + n for n in data_lengths):
        raise BusFrameError(f"fast read frame length {length} does not match the request")
    out = []
    pos = 8
    crc = crc16(frame[:8])
    for n in data_lengths:
        block = frame[pos : pos + 2 + n]
        crc = crc16(block, crc)
        got = frame[pos + 2 + n] | (frame[pos + 3 + n] << 8)
        if got != crc:
            raise CRCError(f"fast read block of id {block[1]}: CRC mismatch")
        crc = crc16(frame[pos + 2 + n : pos + 4 + n], crc)
        out.append((block[1], block[0], bytes(block[2:])))
        pos += 4 + n
    return out


def decode_packet(raw: bytes | bytearray, *, stuffed: bool = True) -> Packet:
    """Decode exactly one complete packet. Raises BusFrameError (CRCError for a bad CRC)."""
    raw = bytes(raw)
    if len(raw) < 10 or raw[:4] != HEADER:
        raise BusFrameError("missing header or too short")
    length = raw[5] | (raw[6] << 8)
    if length < 3 or len(raw) != 7 + length:
        raise BusFrameError(f"length field {length} does not match {len(raw)} bytes")
    crc = raw[-2] | (raw[-1] << 8)
    if crc16(raw[:-2]) != crc:
        raise CRCError("CRC mismatch")
    body = unstuff(raw[7:-2]) if stuffed else raw[7:-2]
    inst = body[0]
    if inst == STATUS:
        if len(body) < 2:
            raise BusFrameError("status packet without error byte")
        return Packet(raw[4], inst, body[2:], body[1])
    return Packet(raw[4], inst, body[1:])


@dataclass
class ParserStats:
    """What a StreamParser has seen: good frames, CRC failures, bytes skipped while resyncing."""

    frames: int = 0
    crc_errors: int = 0
    bad_frames: int = 0
    skipped_bytes: int = 0


class StreamParser:
    """Incremental Protocol 2.0 parser for a byte stream (either direction).

    ``feed(data)`` appends bytes; ``packets()`` yields every complete, CRC-valid packet found so
    far, in order. Garbage before a header is skipped; a frame with a bad CRC or an impossible
    length is dropped one byte at a time so that a valid frame hidden behind a false header is
    still found. ``expire()`` gives up on a partial frame that will never complete (the bus went
    quiet); call it after an inter-frame timeout. Never raises on input bytes.
    ``raw=True`` also keeps each packet's raw bytes in ``last_raw`` (for fast-read frames, which are
    not stuffed and must be split with :func:`decode_fast_status`).
    """

    def __init__(self, *, max_length: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._max_length = max_length
        self.stats = ParserStats()
        self.last_raw = b""
        #: (id, instruction) of the latest complete frames rejected for their CRC (a servo answers
        #: those addressed to it with a CRC Error status); bounded, consumers pop from it.
        self.rejected: deque[tuple[int, int]] = deque(maxlen=16)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes held (a partial frame or not-yet-scanned input)."""
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()

    def expire(self) -> None:
        """Drop the first byte of a partial frame (or all garbage) so scanning can go on."""
        if self._buf:
            del self._buf[:1]
            self.stats.skipped_bytes += 1

    def _resync(self, start: int) -> bool:
        """Discard bytes before the next header at or after ``start``; False when none is left."""
        buf = self._buf
        i = buf.find(HEADER, start)
        if i < 0:
            # keep a possible header prefix at the tail
            keep = 0
            for k in (3, 2, 1):
                if len(buf) >= k and buf[-k:] == HEADER[:k]:
                    keep = k
                    break
            drop = len(buf) - keep
            if drop:
                self.stats.skipped_bytes += drop
                del buf[:drop]
            return False
        if i:
            self.stats.skipped_bytes += i
            del buf[:i]
        return True

    def next_packet(self, *, stuffed: bool = True) -> Packet | None:
        """The next complete valid packet, or None when more bytes are needed."""
        buf = self._buf
        while True:
            if not self._resync(0):
                return None
            if len(buf) < 7:
                return None
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > self._max_length or buf[4] == 0xFF:
                self.stats.bad_frames += 1
                self.stats.skipped_bytes += 1
                del buf[:1]
                continue
            end = 7 + length
            if len(buf) < end:
                return None
            crc = buf[end - 2] | (buf[end - 1] << 8)
            if crc16(memoryview(buf)[: end - 2]) != crc:
                self.stats.crc_errors += 1
                self.rejected.append((buf[4], buf[7]))
                self.stats.skipped_bytes += 1
                del buf[:1]
                continue
            raw = bytes(buf[:end])
            del buf[:end]
            body = unstuff(raw[7:-2]) if stuffed else raw[7:-2]
            inst = body[0]
            if inst == STATUS:
                if len(body) < 2:
                    self.stats.bad_frames += 1
                    continue
                pkt = Packet(raw[4], inst, body[2:], body[1])
            else:
                pkt = Packet(raw[4], inst, body[1:])
            self.stats.frames += 1
            self.last_raw = raw
            return pkt

    def packets(self) -> list[Packet]:
        """All complete valid packets currently in the buffer."""
        out = []
        while (p := self.next_packet()) is not None:
            out.append(p)
        return out


# ---------------------------------------------------------------------------------------------
# Instruction parameter builders (little-endian, as the e-Manual specifies)


def u16(v: int) -> bytes:
    return bytes((v & 0xFF, (v >> 8) & 0xFF))


def params_read(address: int, length: int) -> bytes:
    return u16(address) + u16(length)


def params_write(address: int, data: bytes) -> bytes:
    return u16(address) + bytes(data)


def params_sync_read(address: int, length: int, ids: list[int] | tuple[int, ...]) -> bytes:
    return u16(address) + u16(length) + bytes(ids)


def params_sync_write(address: int, length: int, data: dict[int, bytes] | list[tuple[int, bytes]]) -> bytes:
    items = data.items() if isinstance(data, dict) else data
    out = bytearray(u16(address) + u16(length))
    for dxl_id, d in items:
        if len(d) != length:
            raise ValueError(f"sync write data for id {dxl_id}: expected {length} bytes, got {len(d)}")
        out.append(dxl_id)
        out += d
    return bytes(out)


def params_bulk_read(items: list[tuple[int, int, int]]) -> bytes:
    """[(id, address, length)] -> parameters of BULK_READ / FAST_BULK_READ."""
    out = bytearray()
    for dxl_id, address, length in items:
        out.append(dxl_id)
        out += u16(address) + u16(length)
    return bytes(out)


def params_bulk_write(items: list[tuple[int, int, bytes]]) -> bytes:
    """[(id, address, data)] -> parameters of BULK_WRITE."""
    out = bytearray()
    for dxl_id, address, data in items:
        out.append(dxl_id)
        out += u16(address) + u16(len(data)) + bytes(data)
    return bytes(out)


def wire_time_s(n_bytes: int, baudrate: int) -> float:
    """Time ``n_bytes`` take on the wire: 10 bits a byte (start, 8 data, stop) at ``baudrate``."""
    return n_bytes * 10.0 / baudrate

