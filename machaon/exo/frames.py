"""Binary frame format of the EMG/IMU acquisition board, and its encoder/decoder.

Wire format (version 1). Every frame is COBS-encoded (``cobs`` package) and terminated by one
0x00 byte, so a receiver resynchronises at the next zero after any corruption. The decoded
payload is little-endian:

======  =========  ==========================================================================
offset  type       field
======  =========  ==========================================================================
0       u8         version = 1
1       u8         flags: bit 0 = an IMU sample set follows the EMG samples
2       u32        frame counter (increments by 1 per frame, wraps at 2**32)
6       u8         C = EMG channels
7       u8         S = EMG samples per channel in this frame
8       u8         M = IMU sensors (present when flag bit 0 is set)
9       u8         reserved = 0
10      u16        EMG sample rate (Hz)
12      u16        frame rate (Hz); the IMU rate is given by how often flag bit 0 is set
14      i16[S][C]  EMG samples, sample-major (s0c0, s0c1, ..., s1c0, ...), raw ADC codes
...     i16[M][6]  IMU: per sensor gyro x, y, z then accel x, y, z, raw codes (if flag bit 0)
end-2   u16        CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF; ``binascii.crc_hqx``) of all
                   bytes before it
======  =========  ==========================================================================

Scales (the one place raw codes become SI): EMG full scale +/- ``EMG_FULL_SCALE_V`` (5 mV) over
int16; gyro +/- 2000 deg/s; accel +/- 16 g. Time of EMG sample k of frame n is
``n / frame_rate + k / emg_rate`` from the first frame's clock.

Channel layout of the Machaon exo board (``EMG_CHANNELS`` / ``IMU_SENSORS``): 8 EMG channels,
per leg rectus femoris (hip flexor), gluteus maximus (hip extensor), vastus lateralis (knee
extensor), semitendinosus (knee flexor), left leg first; 4 IMUs: thigh and shank, left first.
Default rates: EMG 2000 Hz, frames 1000 Hz (2 EMG samples each), IMU 200 Hz (every 5th frame).

A frame that fails COBS decoding, has a bad CRC, a wrong length or an unknown version is
counted as corrupt and dropped; gaps in the frame counter are counted as dropped frames.
"""

from __future__ import annotations

import binascii
import logging
import math
import struct
from dataclasses import dataclass

import numpy as np
from cobs import cobs

from machaon.errors import ExoError

log = logging.getLogger(__name__)

VERSION = 1
FLAG_IMU = 0x01
HEADER = struct.Struct("<BBIBBBBHH")
EMG_FULL_SCALE_V = 5e-3
GYRO_FULL_SCALE_RAD_S = math.radians(2000.0)
ACC_FULL_SCALE_M_S2 = 16 * 9.80665
EMG_V_PER_LSB = EMG_FULL_SCALE_V / 32768.0
GYRO_RAD_S_PER_LSB = GYRO_FULL_SCALE_RAD_S / 32768.0
ACC_M_S2_PER_LSB = ACC_FULL_SCALE_M_S2 / 32768.0

EMG_CHANNELS = ("RF_L", "GM_L", "VL_L", "ST_L", "RF_R", "GM_R", "VL_R", "ST_R")
IMU_SENSORS = ("thigh_l", "shank_l", "thigh_r", "shank_r")


class BoardFrameError(ExoError, ValueError):
    """A frame could not be decoded (COBS, CRC, length or version); the message says which."""


# The old name, for one release (#16: the hardware layer had a ``FrameError`` too).
FrameError = BoardFrameError


@dataclass(frozen=True)
class Frame:
    """One decoded frame in SI units.

    ``emg_v`` (S, C) volts; ``imu`` (M, 6) [gyro rad/s xyz, accel m/s^2 xyz] in each sensor
    frame, or None when this frame carries no IMU sample.
    """

    counter: int
    emg_rate_hz: int
    frame_rate_hz: int
    emg_v: np.ndarray
    imu: np.ndarray | None


def _quantise(x: np.ndarray, lsb: float) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) / lsb), -32768, 32767).astype("<i2")


def encode_frame(
    counter: int,
    emg_v: np.ndarray,
    imu: np.ndarray | None = None,
    emg_rate_hz: int = 2000,
    frame_rate_hz: int = 1000,
) -> bytes:
    """COBS-encoded frame (with the trailing 0x00) carrying ``emg_v`` (S, C) V and optional ``imu`` (M, 6).

    Values beyond full scale saturate at the int16 limits, as a real ADC clips. Raises
    ``ValueError`` for NaN or shapes that do not fit the header fields.
    """
    emg = np.asarray(emg_v, dtype=np.float64)
    if emg.ndim != 2 or not 0 < emg.shape[1] < 256 or emg.shape[0] >= 256:
        raise ValueError(f"emg_v: expected (S<256, 0<C<256), got {emg.shape}")
    if not np.isfinite(emg).all() or (imu is not None and not np.isfinite(imu).all()):
        raise ValueError("frame values must be finite")
    flags, m = 0, 0
    body = [_quantise(emg, EMG_V_PER_LSB).tobytes()]
    if imu is not None:
        im = np.asarray(imu, dtype=np.float64)
        if im.ndim != 2 or im.shape[1] != 6 or im.shape[0] >= 256:
            raise ValueError(f"imu: expected (M<256, 6), got {im.shape}")
        flags, m = FLAG_IMU, im.shape[0]
        raw = np.concatenate([_quantise(im[:, :3], GYRO_RAD_S_PER_LSB), _quantise(im[:, 3:], ACC_M_S2_PER_LSB)], axis=1)
        body.append(raw.tobytes())
    payload = HEADER.pack(
        VERSION, flags, counter & 0xFFFFFFFF, emg.shape[1], emg.shape[0], m, 0, emg_rate_hz, frame_rate_hz
    )
    payload += b"".join(body)
    payload += struct.pack("<H", binascii.crc_hqx(payload, 0xFFFF))
    return cobs.encode(payload) + b"\x00"


def decode_payload(encoded: bytes) -> Frame:
    """Decode one frame (COBS bytes without the 0x00 delimiter). Raises ``BoardFrameError``."""
    try:
        payload = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise BoardFrameError(f"COBS decode failed: {exc}") from None
    if len(payload) < HEADER.size + 2:
        raise BoardFrameError(f"frame too short ({len(payload)} bytes)")
    (crc,) = struct.unpack_from("<H", payload, len(payload) - 2)
    if binascii.crc_hqx(payload[:-2], 0xFFFF) != crc:
        raise BoardFrameError("CRC mismatch")
    version, flags, counter, c, s, m, _, emg_rate, frame_rate = HEADER.unpack_from(payload, 0)
    if version != VERSION:
        raise BoardFrameError(f"unknown frame version {version}")
    n_imu = m if flags & FLAG_IMU else 0
    expect = HEADER.size + 2 * s * c + 12 * n_imu + 2
    if len(payload) != expect or c == 0 or emg_rate == 0 or frame_rate == 0:
        raise BoardFrameError(f"frame length {len(payload)} does not match its header (expected {expect})")
    emg = np.frombuffer(payload, dtype="<i2", count=s * c, offset=HEADER.size).reshape(s, c) * EMG_V_PER_LSB
    imu = None
    if n_imu:
        raw = np.frombuffer(payload, dtype="<i2", count=6 * n_imu, offset=HEADER.size + 2 * s * c).reshape(n_imu, 6)
        imu = np.concatenate([raw[:, :3] * GYRO_RAD_S_PER_LSB, raw[:, 3:] * ACC_M_S2_PER_LSB], axis=1)
    return Frame(counter, emg_rate, frame_rate, emg, imu)


@dataclass(frozen=True)
class LinkStats:
    """Counters of a frame stream: good frames, corrupt frames, frames lost (counter gaps), bytes."""

    frames_ok: int
    frames_corrupt: int
    frames_dropped: int
    bytes_in: int


class FrameDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the frames completed by the chunk.

    Splits on 0x00, decodes each piece, counts corrupt frames and counter gaps (dropped frames).
    A partial frame at the end of a chunk is kept for the next call; pieces that fail to decode
    before the first good frame (the tail of a frame sent before listening began) are skipped,
    not counted. Corruption
    never raises; it is logged and counted.
    """

    MAX_FRAME = 4096

    def __init__(self) -> None:
        self._buf = bytearray()
        # Until the first good frame, undecodable pieces are the tail of a frame sent before we
        # started listening (a port opened mid-stream): skipped, not counted as corruption.
        self._synced = False
        self.bytes_skipped = 0
        self._last_counter: int | None = None
        self.frames_ok = 0
        self.frames_corrupt = 0
        self.frames_dropped = 0
        self.bytes_in = 0

    def feed(self, chunk: bytes) -> list[Frame]:
        self.bytes_in += len(chunk)
        self._buf += chunk
        out: list[Frame] = []
        while True:
            end = self._buf.find(b"\x00")
            if end < 0:
                if len(self._buf) > self.MAX_FRAME:  # garbage without delimiter: drop it
                    self.frames_corrupt += 1
                    log.warning("discarding %d bytes without frame delimiter", len(self._buf))
                    self._buf.clear()
                return out
            piece = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if not piece:
                continue
            try:
                frame = decode_payload(piece)
            except BoardFrameError as exc:
                if not self._synced:
                    self.bytes_skipped += len(piece)
                    log.debug("skipped %d bytes of a frame begun before listening: %s", len(piece), exc)
                    continue
                self.frames_corrupt += 1
                log.warning("corrupt frame dropped: %s", exc)
                continue
            if self._last_counter is not None:
                gap = (frame.counter - self._last_counter - 1) & 0xFFFFFFFF
                if gap:
                    # A counter going backwards (e.g. board reset) shows up as a huge gap: do not
                    # count it as 4 billion lost frames.
                    if gap < 0x80000000:
                        self.frames_dropped += gap
                        log.info("%d frame(s) dropped before counter %d", gap, frame.counter)
                    else:
                        log.warning("frame counter went back to %d (board reset?)", frame.counter)
            self._synced = True
            self._last_counter = frame.counter
            self.frames_ok += 1
            out.append(frame)

    @property
    def stats(self) -> LinkStats:
        return LinkStats(self.frames_ok, self.frames_corrupt, self.frames_dropped, self.bytes_in)
