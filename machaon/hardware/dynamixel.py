"""Host driver for a Dynamixel Protocol 2.0 bus over pyserial.

:class:`Bus` owns one serial port (pyserial opens and configures it; reads use ``select`` on its
file descriptor so that a transaction waits exactly until its deadline). Every transaction has a
deadline computed from the baud rate, the bytes on the wire both ways, the servos' Return Delay
Time and the adapter's latency; failed transactions are retried a bounded number of times; each id
has health counters. Group transactions (sync/fast sync/bulk read and write) serve a whole chain in
one instruction.

Errors (all :class:`~machaon.hardware.protocol.BusProtocolError`): ``CommunicationTimeout`` (no or
incomplete answer), ``CRCError`` (corrupt answer), ``StatusError`` (the servo reported an error),
``PortError`` (the port could not be opened or vanished). Group reads never raise for one servo's
trouble: the result says which ids answered and why the others did not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import termios
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import serial

from machaon.hardware.control_table import decode_int, encode_int
from machaon.hardware.protocol import (
    ALERT_BIT,
    BROADCAST_ID,
    BusFrameError,
    BusProtocolError,
    CommunicationTimeout,
    CRCError,
    Instruction,
    Packet,
    PortError,
    StatusError,
    StreamParser,
    decode_fast_status,
    encode_instruction,
    params_bulk_read,
    params_bulk_write,
    params_read,
    params_sync_read,
    params_sync_write,
    params_write,
    wire_time_s,
)

log = logging.getLogger(__name__)

STATUS_OVERHEAD = 11  # header(4) id(1) len(2) inst(1) err(1) crc(2)


@dataclass
class Health:
    """Per-id counters of what happened on the bus."""

    transactions: int = 0
    ok: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    status_errors: int = 0
    retries: int = 0
    consecutive_failures: int = 0
    last_error: str = ""

    def success(self) -> None:
        self.transactions += 1
        self.ok += 1
        self.consecutive_failures = 0

    def failure(self, kind: str, message: str) -> None:
        self.transactions += 1
        self.consecutive_failures += 1
        self.last_error = message
        if kind == "timeout":
            self.timeouts += 1
        elif kind == "crc":
            self.crc_errors += 1
        else:
            self.status_errors += 1


@dataclass(frozen=True)
class PingInfo:
    """Answer to PING: model number, firmware version, and the status error byte."""

    dxl_id: int
    model_number: int
    firmware_version: int
    error: int = 0


@dataclass
class GroupReadResult:
    """Outcome of a sync/bulk read: ``data[id]`` for every id that answered, ``errors[id]`` its
    status error byte (0 when clean; the alert bit 0x80 means a hardware error is pending), and
    ``failed[id]`` a reason (``"timeout"``, ``"crc"``) for every id that did not answer."""

    data: dict[int, bytes] = field(default_factory=dict)
    errors: dict[int, int] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    attempts: int = 1

    @property
    def complete(self) -> bool:
        return not self.failed


class Bus:
    """A Protocol 2.0 bus on ``port`` at ``baudrate``.

    ``latency_s``: adapter latency added to every deadline (USB adapters buffer; an FTDI at its
    1 ms latency timer needs ~2 ms). ``return_delay_s``: the servos' Return Delay Time (factory
    default 500 us; lower it when the servos are configured faster). ``retries``: extra attempts
    per transaction. Raises PortError when the port cannot be opened. Opening sets the tty's
    low-latency flag where the driver supports it (``low_latency`` says whether it did; a pty or
    a native UART does not); see ``machaon.hardware.latency`` for the adapter's own timer.

    >>> from machaon.hardware.emulator import ChainEmulator
    >>> with ChainEmulator([1, 2], baudrate=1_000_000) as em, Bus(em.port, 1_000_000, latency_s=0.1) as bus:
    ...     found = bus.broadcast_ping(max_id=5)     # id -> model, firmware
    ...     model = bus.ping(2).model_number
    >>> sorted(found), model                         # two XM430-W350s
    ([1, 2], 1020)
    """

    def __init__(self, port: str, baudrate: int = 1_000_000, *, latency_s: float = 0.002,
                 return_delay_s: float = 500e-6, retries: int = 1, open_now: bool = True) -> None:
        if baudrate <= 0:
            raise ValueError(f"baudrate: must be positive, got {baudrate}")
        if retries < 0:
            raise ValueError("retries: must be >= 0")
        self.port = port
        self.baudrate = baudrate
        self.latency_s = latency_s
        self.return_delay_s = return_delay_s
        self.retries = retries
        self.health: dict[int, Health] = {}
        self._ser: serial.Serial | None = None
        self._fd = -1
        self._late_polled = False  # the one look past a transaction's deadline (``_fill``) was taken
        self.low_latency = False
        self._parser = StreamParser()
        if open_now:
            self.open()

    # ------------------------------------------------------------------ port

    def open(self) -> None:
        """Open (or reopen) the port (a device or a ``/dev/serial/by-id/...`` link). Raises PortError,
        listing the serial ports there are when the path names none."""
        self.close()
        try:
            self._ser = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=1.0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._ser = None
            from machaon.hardware.ports import PortNotFound, resolve_port

            try:
                resolve_port(self.port)
            except PortNotFound as missing:
                raise PortError(f"cannot open {missing}") from None
            raise PortError(f"cannot open {self.port}: {exc}") from exc
        self._fd = self._ser.fileno()
        self._parser.clear()
        try:
            self._ser.set_low_latency_mode(True)
            self.low_latency = True
        except (ValueError, OSError, NotImplementedError, AttributeError) as exc:
            self.low_latency = False
            log.debug("%s: low-latency mode not available (%s)", self.port, exc)

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def close(self) -> None:
        if self._ser is not None:
            with contextlib.suppress(Exception):
                self._ser.close()
        self._ser = None
        self._fd = -1

    def set_baudrate(self, baudrate: int) -> None:
        """Change the port's baud rate (the servos' Baud Rate item is not touched)."""
        self.baudrate = baudrate
        if self._ser is not None:
            try:
                self._ser.baudrate = baudrate
            except (serial.SerialException, OSError, termios.error, ValueError) as exc:
                self._lost(exc)

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lost(self, exc: BaseException | str) -> None:
        self.close()
        raise PortError(f"port {self.port} lost: {exc}")

    def _health(self, dxl_id: int) -> Health:
        h = self.health.get(dxl_id)
        if h is None:
            h = self.health[dxl_id] = Health()
        return h

    # ------------------------------------------------------------------ raw I/O

    def wire_time(self, n_bytes: int) -> float:
        """Seconds ``n_bytes`` occupy the bus at this baud rate."""
        return wire_time_s(n_bytes, self.baudrate)

    def _send(self, packet: bytes, *, flush: bool = True) -> float:
        """Write ``packet``; ``flush`` first drops stale input (not needed before a write-only packet)."""
        if self._ser is None:
            raise PortError(f"port {self.port} is not open")
        self._parser.clear()
        self._late_polled = False
        try:
            if flush:
                self._ser.reset_input_buffer()  # stale answers from an earlier timed-out transaction
            n = 0
            deadline = time.monotonic() + self.wire_time(len(packet)) + 0.1
            while n < len(packet):
                try:
                    n += os.write(self._fd, packet[n:])
                except BlockingIOError:  # output buffer full: the adapter is not draining
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([], [self._fd], [], left)[1]:
                        raise CommunicationTimeout(f"port {self.port}: output stays full") from None
        except (OSError, termios.error, serial.SerialException) as exc:  # termios.error: tcflush on a dead pty
            self._lost(exc)
        return time.monotonic()

    def _fill(self, deadline: float) -> bool:
        """Read what is available, waiting until ``deadline``; False on timeout.

        Past the deadline, one last look (without waiting) per transaction still takes what has
        arrived: a host thread that was preempted (a loaded machine) may wake after its deadline
        with the answer already in the port's buffer, and that answer is not lost. One look only,
        so a bus that keeps sending noise cannot hold the caller past its deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            if self._late_polled:
                return False
            self._late_polled = True
            left = 0.0
        try:
            r, _, _ = select.select([self._fd], [], [], left)
        except (OSError, ValueError) as exc:
            self._lost(exc)
        if not r:
            return False
        try:
            data = os.read(self._fd, 65536)
        except OSError as exc:
            self._lost(exc)
        if not data:
            self._lost("end of file (device disconnected)")
        self._parser.feed(data)
        return True

    def _next_status(self, deadline: float) -> Packet | None:
        """Next valid status packet before ``deadline`` (None on timeout)."""
        while True:
            pkt = self._parser.next_packet()
            if pkt is not None:
                if pkt.is_status:
                    return pkt
                continue
            if not self._fill(deadline):
                return None

    def _deadline(self, t0: float, tx_bytes: int, rx_bytes: int, n_replies: int) -> float:
        return t0 + self.wire_time(tx_bytes + rx_bytes) + n_replies * self.return_delay_s + self.latency_s

    def _unicast(self, dxl_id: int, inst: int, params: bytes, rx_data: int) -> Packet | None:
        """One instruction to one id, with retries; the status packet (None for broadcast).

        Raises CommunicationTimeout, CRCError, StatusError (error number != 0), PortError.
        """
        pkt = encode_instruction(dxl_id, inst, params)
        if dxl_id == BROADCAST_ID:
            self._send(pkt)
            return None
        h = self._health(dxl_id)
        last: BusProtocolError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                h.retries += 1
            crc0 = self._parser.stats.crc_errors
            t0 = self._send(pkt)
            deadline = self._deadline(t0, len(pkt), STATUS_OVERHEAD + rx_data, 1)
            while True:
                st = self._next_status(deadline)
                if st is None:
                    break
                # a late answer to an earlier transaction (same id, other length) is not this one's
                if st.dxl_id == dxl_id and (len(st.params) == rx_data or st.error & 0x7F):
                    break
            if st is None:
                if self._parser.stats.crc_errors > crc0:
                    last = CRCError(f"servo {dxl_id}: corrupt status packet")
                    h.failure("crc", str(last))
                else:
                    last = CommunicationTimeout(f"servo {dxl_id}: no answer to {Instruction(inst).name}")
                    h.failure("timeout", str(last))
                continue
            if st.error & 0x7F:
                h.failure("status", f"status error {st.error:#04x}")
                raise StatusError(dxl_id, st.error)
            h.success()
            return st
        assert last is not None
        raise last

    # ------------------------------------------------------------------ instructions

    def ping(self, dxl_id: int) -> PingInfo:
        """PING one id. Raises CommunicationTimeout when nothing answers."""
        st = self._unicast(dxl_id, Instruction.PING, b"", 3)
        assert st is not None
        if len(st.params) < 3:
            raise BusFrameError(f"servo {dxl_id}: short ping answer")
        return PingInfo(dxl_id, st.params[0] | st.params[1] << 8, st.params[2], st.error)

    def broadcast_ping(self, max_id: int = 252) -> dict[int, PingInfo]:
        """PING every id at once; every servo answers in turn. Returns {id: PingInfo}."""
        pkt = encode_instruction(BROADCAST_ID, Instruction.PING)
        t0 = self._send(pkt)
        n = max_id + 1
        deadline = self._deadline(t0, len(pkt), 14 * n, n)
        found: dict[int, PingInfo] = {}
        while (st := self._next_status(deadline)) is not None:
            if len(st.params) >= 3:
                found[st.dxl_id] = PingInfo(st.dxl_id, st.params[0] | st.params[1] << 8, st.params[2], st.error)
        return dict(sorted(found.items()))

    def read(self, dxl_id: int, address: int, length: int) -> bytes:
        """READ ``length`` bytes at ``address``. Raises on timeout/CRC/status error."""
        st = self._unicast(dxl_id, Instruction.READ, params_read(address, length), length)
        assert st is not None
        if len(st.params) != length:
            raise BusFrameError(f"servo {dxl_id}: expected {length} bytes, got {len(st.params)}")
        return st.params

    def write(self, dxl_id: int, address: int, data: bytes) -> None:
        """WRITE ``data`` at ``address`` (broadcast id: no answer awaited)."""
        self._unicast(dxl_id, Instruction.WRITE, params_write(address, data), 0)

    def read_int(self, dxl_id: int, address: int, size: int, signed: bool = False) -> int:
        return decode_int(self.read(dxl_id, address, size), signed)

    def write_int(self, dxl_id: int, address: int, size: int, value: int) -> None:
        self.write(dxl_id, address, encode_int(int(value), size))

    def reg_write(self, dxl_id: int, address: int, data: bytes) -> None:
        """REG_WRITE: stage a write that ACTION applies."""
        self._unicast(dxl_id, Instruction.REG_WRITE, params_write(address, data), 0)

    def action(self, dxl_id: int = BROADCAST_ID) -> None:
        """ACTION: apply REG_WRITE-staged writes (broadcast by default)."""
        self._unicast(dxl_id, Instruction.ACTION, b"", 0)

    def reboot(self, dxl_id: int) -> None:
        """REBOOT one servo (clears hardware errors; torque comes back off)."""
        self._unicast(dxl_id, Instruction.REBOOT, b"", 0)

    def factory_reset(self, dxl_id: int, option: int = 0x02) -> None:
        """FACTORY_RESET: 0xFF everything, 0x01 all but ID, 0x02 all but ID and baud rate."""
        if option not in (0x01, 0x02, 0xFF):
            raise ValueError("option: expected 0x01, 0x02 or 0xFF")
        self._unicast(dxl_id, Instruction.FACTORY_RESET, bytes((option,)), 0)

    def clear_multi_turn(self, dxl_id: int) -> None:
        """CLEAR the multi-turn count (Present Position back within one turn)."""
        self._unicast(dxl_id, Instruction.CLEAR, b"\x01\x44\x58\x4c\x22", 0)

    def sync_write(self, address: int, length: int, data: Mapping[int, bytes]) -> None:
        """SYNC_WRITE ``length`` bytes at ``address`` to every id in ``data`` (no answers)."""
        self._send(encode_instruction(BROADCAST_ID, Instruction.SYNC_WRITE,
                                      params_sync_write(address, length, dict(data))), flush=False)

    def bulk_write(self, items: Sequence[tuple[int, int, bytes]]) -> None:
        """BULK_WRITE [(id, address, data)] in one instruction (no answers)."""
        self._send(encode_instruction(BROADCAST_ID, Instruction.BULK_WRITE, params_bulk_write(list(items))),
                   flush=False)

    def sync_read(self, ids: Iterable[int], address: int, length: int, *, fast: bool = False,
                  retry: bool = True) -> GroupReadResult:
        """SYNC_READ (or FAST_SYNC_READ) ``length`` bytes at ``address`` from every id.

        Never raises for servo trouble (only PortError): ids that did not answer are in
        ``failed``. With ``retry`` the missing ids are asked again (plain sync read) up to
        ``retries`` times. A fast read that fails falls back to a plain one in the retry.
        """
        ids = list(ids)
        return self._group_read([(i, address, length) for i in ids], sync=True, fast=fast, retry=retry)

    def bulk_read(self, items: Sequence[tuple[int, int, int]], *, fast: bool = False,
                  retry: bool = True) -> GroupReadResult:
        """BULK_READ (or FAST_BULK_READ) [(id, address, length)]; like :meth:`sync_read`."""
        return self._group_read(list(items), sync=False, fast=fast, retry=retry)

    def _group_read(self, items: list[tuple[int, int, int]], *, sync: bool, fast: bool,
                    retry: bool) -> GroupReadResult:
        res = GroupReadResult()
        todo = items
        attempts = 0
        while todo:
            attempts += 1
            if attempts > 1:
                for i, _, _ in todo:
                    self._health(i).retries += 1
            use_fast = fast and attempts == 1
            self._group_once(todo, sync=sync, fast=use_fast, res=res)
            todo = [it for it in todo if it[0] in res.failed]
            if not retry or attempts > self.retries:
                break
            for i, _, _ in todo:
                del res.failed[i]
        res.attempts = attempts
        for i, _, _ in items:
            h = self._health(i)
            if i in res.data:
                h.success()
            else:
                reason = res.failed.get(i, "timeout")
                h.failure(reason, f"group read: {reason}")
        return res

    def _group_once(self, items: list[tuple[int, int, int]], *, sync: bool, fast: bool,
                    res: GroupReadResult) -> None:
        if sync:
            address, length = items[0][1], items[0][2]
            inst = Instruction.FAST_SYNC_READ if fast else Instruction.SYNC_READ
            pkt = encode_instruction(BROADCAST_ID, inst, params_sync_read(address, length, [i for i, _, _ in items]))
        else:
            inst = Instruction.FAST_BULK_READ if fast else Instruction.BULK_READ
            pkt = encode_instruction(BROADCAST_ID, inst, params_bulk_read(items))
        rx = sum(STATUS_OVERHEAD + n for _, _, n in items)
        t0 = self._send(pkt)
        deadline = self._deadline(t0, len(pkt), rx, len(items))
        if fast:
            self._fast_frame(items, deadline, res)
            return
        want = {i: n for i, _, n in items}
        crc0 = self._parser.stats.crc_errors
        got: set[int] = set()
        while len(got) < len(want):
            if len(got) + (self._parser.stats.crc_errors - crc0) >= len(want):
                break  # every expected packet arrived, some corrupt: no need to wait longer
            st = self._next_status(deadline)
            if st is None:
                break
            if st.dxl_id in want and st.dxl_id not in got:
                got.add(st.dxl_id)
                res.errors[st.dxl_id] = st.error
                if st.error & 0x7F == 0 and len(st.params) == want[st.dxl_id]:
                    res.data[st.dxl_id] = st.params
                else:
                    res.failed[st.dxl_id] = "status" if st.error & 0x7F else "length"
        crc_failed = self._parser.stats.crc_errors - crc0
        for i in want:
            if i not in got:
                res.failed[i] = "crc" if crc_failed > 0 else "timeout"

    def _fast_frame(self, items: list[tuple[int, int, int]], deadline: float, res: GroupReadResult) -> None:
        crc0 = self._parser.stats.crc_errors
        frame = None
        while True:
            pkt = self._parser.next_packet(stuffed=False)
            if pkt is not None:
                if pkt.dxl_id == BROADCAST_ID and pkt.is_status:
                    frame = self._parser.last_raw
                    break
                continue
            if not self._fill(deadline):
                break
        if frame is None:
            reason = "crc" if self._parser.stats.crc_errors > crc0 else "timeout"
            for i, _, _ in items:
                res.failed[i] = reason
            return
        try:
            blocks = decode_fast_status(frame, [n for _, _, n in items])
        except (BusFrameError, CRCError):
            for i, _, _ in items:
                res.failed[i] = "crc"
            return
        for (want_id, _, _), (dxl_id, err, data) in zip(items, blocks, strict=True):
            if dxl_id != want_id:
                res.failed[want_id] = "crc"
                continue
            res.errors[dxl_id] = err
            if err & 0x7F:
                res.failed[dxl_id] = "status"
            else:
                res.data[dxl_id] = data


def alert(error: int) -> bool:
    """True when a status error byte carries the hardware-error alert bit."""
    return bool(error & ALERT_BIT)


__all__ = ["Bus", "GroupReadResult", "Health", "PingInfo", "alert"]
