"""Serial acquisition of the EMG/IMU board (pyserial), and an emulated board on a pseudo-terminal.

``SerialAcquisition`` opens a serial port, decodes frames (``machaon.exo.frames``) in a reader
thread and hands them out as ``SensorBatch`` objects with ``poll()``. ``BoardEmulator`` plays
recorded or synthetic samples into a real pty at the board's frame rate, optionally dropping or
corrupting frames, so tests run the same bytes a USB board would send.

Times in a ``SensorBatch`` are board time (s since the first frame received, from the frame
counter), not host time; ``last_frame_monotonic`` tells how fresh the stream is on the host clock.
A missing port raises ``AcquisitionError`` at ``open``; a link that dies later never raises into
the caller: ``poll`` returns empty batches, ``connected`` turns False and the log says why.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import tty
from collections.abc import Callable, Iterator

import numpy as np
import serial

from machaon.errors import ExoError
from machaon.exo.frames import FrameDecoder, LinkStats, encode_frame
from machaon.exo.sensors import SensorBatch

log = logging.getLogger(__name__)


class AcquisitionError(ExoError, RuntimeError):
    """The acquisition port could not be opened or configured."""


class SerialAcquisition:
    """Reads board frames from ``port`` with pyserial in a background thread.

    Use as a context manager. ``poll()`` returns every sample received since the previous call
    (possibly none). ``stats`` has the link counters (ok / corrupt / dropped frames).
    """

    def __init__(self, port: str, baudrate: int = 3_000_000, n_emg: int = 8, n_imu: int = 4) -> None:
        self.port = port
        self.baudrate = baudrate
        self.n_emg, self.n_imu = n_emg, n_imu
        self._decoder = FrameDecoder()
        self._frames: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ser: serial.Serial | None = None
        self._first_counter: int | None = None
        self._reported = (0, 0)
        self.connected = False
        self.last_frame_monotonic = -np.inf

    def open(self) -> SerialAcquisition:
        """Open the port and start the reader thread (a second call does nothing)."""
        if self._ser is not None:
            return self
        try:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=0.002)
        except (serial.SerialException, OSError) as exc:
            raise AcquisitionError(f"cannot open acquisition port {self.port!r}: {exc}") from None
        self.connected = True
        self._thread = threading.Thread(target=self._run, name=f"exo-acq:{self.port}", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> SerialAcquisition:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._ser is not None:
            self._ser.close()
            self._ser = None
        self.connected = False

    def _run(self) -> None:
        ser = self._ser
        assert ser is not None
        while not self._stop.is_set():
            try:
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError) as exc:
                log.error("acquisition link on %s lost: %s", self.port, exc)
                self.connected = False
                return
            if not chunk:
                continue
            frames = self._decoder.feed(chunk)
            if frames:
                with self._lock:
                    self._frames.extend(frames)
                    self.last_frame_monotonic = time.monotonic()

    @property
    def stats(self) -> LinkStats:
        return self._decoder.stats

    def poll(self) -> SensorBatch:
        """All samples received since the last poll, as one batch (board time, SI units)."""
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
        st = self._decoder.stats
        dropped, corrupt = st.frames_dropped - self._reported[0], st.frames_corrupt - self._reported[1]
        self._reported = (st.frames_dropped, st.frames_corrupt)
        if not frames:
            return SensorBatch.empty(self.n_emg, self.n_imu, dropped=dropped, corrupt=corrupt)
        if self._first_counter is None:
            self._first_counter = frames[0].counter
        t_emg, emg, t_imu, imu = [], [], [], []
        for f in frames:
            if f.emg_v.shape[1] != self.n_emg or (f.imu is not None and f.imu.shape[0] != self.n_imu):
                log.warning("frame %d has layout %s/%s, expected %d EMG, %d IMU: dropped", f.counter,
                            f.emg_v.shape, None if f.imu is None else f.imu.shape, self.n_emg, self.n_imu)
                corrupt += 1
                continue
            t0 = ((f.counter - self._first_counter) & 0xFFFFFFFF) / f.frame_rate_hz
            t_emg.append(t0 + np.arange(f.emg_v.shape[0]) / f.emg_rate_hz)
            emg.append(f.emg_v)
            if f.imu is not None:
                t_imu.append(t0)
                imu.append(f.imu)
        if not emg:
            return SensorBatch.empty(self.n_emg, self.n_imu, dropped=dropped, corrupt=corrupt)
        return SensorBatch(
            t_emg=np.concatenate(t_emg),
            emg_v=np.vstack(emg),
            t_imu=np.asarray(t_imu, dtype=np.float64),
            imu=np.stack(imu) if imu else np.zeros((0, self.n_imu, 6)),
            dropped=dropped,
            corrupt=corrupt,
        )


class BoardEmulator:
    """An acquisition board on a pseudo-terminal: streams frames of ``emg_v`` / ``imu`` at ``frame_rate_hz``.

    ``emg_v`` (N, C) volts at ``emg_rate_hz``; ``imu`` (K, M, 6) SI at ``frame_rate_hz /
    imu_every``. ``port`` is the pty slave path to open with pyserial. ``drop`` / ``corrupt``
    are predicates on the frame counter selecting frames to leave out or to damage (one flipped
    byte). ``realtime=False`` writes as fast as the pty accepts. Stops at the end of the data
    (``finished`` is set) unless ``loop``.
    """

    def __init__(
        self,
        emg_v: np.ndarray,
        imu: np.ndarray | None = None,
        emg_rate_hz: int = 2000,
        frame_rate_hz: int = 1000,
        imu_every: int = 5,
        realtime: bool = True,
        loop: bool = False,
        drop: Callable[[int], bool] | None = None,
        corrupt: Callable[[int], bool] | None = None,
    ) -> None:
        self.emg_v = np.asarray(emg_v, dtype=np.float64)
        self.imu = None if imu is None else np.asarray(imu, dtype=np.float64)
        self.emg_rate_hz, self.frame_rate_hz, self.imu_every = emg_rate_hz, frame_rate_hz, imu_every
        if emg_rate_hz % frame_rate_hz:
            raise ValueError("emg_rate_hz must be a multiple of frame_rate_hz")
        self.per_frame = emg_rate_hz // frame_rate_hz
        self.n_frames = self.emg_v.shape[0] // self.per_frame
        self.realtime, self.loop = realtime, loop
        self.drop, self.corrupt = drop, corrupt
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0

    def frame_bytes(self, n: int) -> bytes:
        k = n % self.n_frames
        emg = self.emg_v[k * self.per_frame : (k + 1) * self.per_frame]
        imu = None
        if self.imu is not None and k % self.imu_every == 0 and k // self.imu_every < self.imu.shape[0]:
            imu = self.imu[k // self.imu_every]
        data = encode_frame(n, emg, imu, self.emg_rate_hz, self.frame_rate_hz)
        if self.corrupt is not None and self.corrupt(n):
            b = bytearray(data)
            b[len(b) // 2] ^= 0x5A
            if b[len(b) // 2] == 0:  # keep the delimiter structure: damage content, not framing
                b[len(b) // 2] = 0x01
            data = bytes(b)
        return data

    @contextlib.contextmanager
    def closing(self) -> Iterator[BoardEmulator]:
        """Context that closes the emulator on exit without starting it (call ``start`` later)."""
        try:
            yield self
        finally:
            self.close()

    def start(self) -> BoardEmulator:
        self._thread = threading.Thread(target=self._run, name="exo-board-emulator", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> BoardEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            view = view[n:]

    def _run(self) -> None:
        t0 = time.monotonic()
        n = 0
        try:
            while not self._stop.is_set():
                if not self.loop and n >= self.n_frames:
                    break
                if self.realtime:
                    due = int((time.monotonic() - t0) * self.frame_rate_hz) + 1
                    if due <= n:
                        time.sleep(max(0.0, t0 + n / self.frame_rate_hz - time.monotonic()))
                        continue
                else:
                    due = n + 50
                if not self.loop:
                    due = min(due, self.n_frames)
                chunk = b"".join(self.frame_bytes(i) for i in range(n, due) if not (self.drop and self.drop(i)))
                self._write_all(chunk)
                self.frames_sent += due - n
                n = due
        except OSError as exc:
            log.error("board emulator stopped: %s", exc)
        finally:
            self.finished.set()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1
