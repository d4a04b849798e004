"""A chain of emulated Dynamixel X-series servos behind a real pseudo-terminal.

:class:`ChainEmulator` opens a pty (``os.openpty``), and a thread answers on its master side as a
daisy chain of servos would: Protocol 2.0 instructions (ping, read, write, reg write, action,
factory reset, reboot, clear, sync/fast sync read, sync write, bulk/fast bulk read, bulk write),
control-table memory rules and motor dynamics (:mod:`machaon.hardware.servo_model`), and bus
timing: an instruction occupies the wire for its bytes at the baud rate (10 bits a byte), each
status packet starts after the previous traffic plus the servo's Return Delay Time and is delivered
when its last byte would have left the wire. Servos only hear the host when the pty's baud rate
(set by the host with pyserial, read back with termios) matches their Baud Rate item.

The host opens :attr:`ChainEmulator.port` with pyserial exactly as it would open ``/dev/ttyUSB0``.

Fault injection (:class:`Faults`, change at any time): dropped and corrupted status packets
(counted or random with a seeded RNG), extra response delay, missing ids, a stuck bus (answers
every instruction with line noise), hardware errors, and :meth:`ChainEmulator.unplug` /
:meth:`ChainEmulator.replug` (the port vanishes; a new pty appears, behind the same ``link`` path
if one was given).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import termios
import threading
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from machaon.hardware.control_table import BAUD_CODES, BAUD_TO_CODE, Model, model_by_name
from machaon.hardware.plant import Plant, RigidLoadPlant
from machaon.hardware.protocol import (
    BROADCAST_ID,
    Instruction,
    Packet,
    StatusErrorCode,
    StreamParser,
    encode_fast_status,
    encode_status,
)
from machaon.hardware.servo_model import EmulatedServo

log = logging.getLogger(__name__)

_CATCH_UP_STEPS = 8  # physics steps per serving-loop turn at most (a slice of a few ms at most)
_BAUD_FROM_TERMIOS = {getattr(termios, f"B{b}"): b for b in BAUD_CODES.values() if hasattr(termios, f"B{b}")}


@dataclass
class Faults:
    """Faults to inject. Counters (``drop_next``...) are consumed one status packet at a time."""

    drop_next: int = 0
    corrupt_next: int = 0
    drop_prob: float = 0.0
    corrupt_prob: float = 0.0
    delay_s: float = 0.0
    missing_ids: set[int] = field(default_factory=set)
    stuck: bool = False
    seed: int = 0


class ChainEmulator:
    """Servos ``ids`` of ``model`` on one emulated bus, served on a pseudo-terminal.

    ``model``: one model for every servo, or one per id (a mixed chain). ``directions`` (+1/-1) and
    ``zero_ticks``, one per id, are how each servo is mounted on its joint of the plant (as a
    backend config's joints say): the servo's shaft turns ``direction * q_joint`` and reads
    ``zero_ticks`` at joint zero (default: +1 and 2048). ``baudrate``: the servos' Baud Rate item
    (one of the X-series rates). ``return_delay_us``: their Return Delay Time (the e-Manual
    default is 500 us; 0 is what a fast loop uses).
    ``plant``: output-shaft dynamics (default: each servo drives its rotor inertia plus
    ``load_inertia``). ``realtime=False`` answers at once instead of pacing at the baud rate.
    ``link``: also expose the pty slave under this path (a symlink that survives ``replug``).
    ``physics_dt``: motor model step (s). ``rest_until_torque``: the plant stands still until the
    first servo's torque is enabled (a real arm rests on its gears' static friction or a support
    until powered; the emulated gears have only sliding friction, so a loaded arm would otherwise
    sag before any host connects). Use as a context manager; ``close()`` stops the thread.
    """

    def __init__(self, ids: Sequence[int], *, model: str | Model | Sequence[str | Model] = "XM430-W350",
                 baudrate: int = 1_000_000, return_delay_us: float = 0.0, plant: Plant | None = None,
                 realtime: bool = True, link: str | None = None, physics_dt: float = 1e-3,
                 load_inertia: float = 0.002, reboot_time_s: float = 0.05, faults: Faults | None = None,
                 directions: Sequence[int] | None = None, zero_ticks: Sequence[int] | None = None,
                 rest_until_torque: bool = False) -> None:
        if baudrate not in BAUD_TO_CODE:
            raise ValueError(f"baudrate: {baudrate} is not an X-series rate ({sorted(BAUD_TO_CODE)})")
        ids = list(ids)
        if not ids or len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids):
            raise ValueError(f"ids: expected distinct ids in 0..252, got {ids}")
        per_id = [model] * len(ids) if isinstance(model, str | Model) else list(model)
        if len(per_id) != len(ids):
            raise ValueError(f"model: expected one model or {len(ids)} (one per id), got {len(per_id)}")
        models = [m if isinstance(m, Model) else model_by_name(m) for m in per_id]
        dirs = [1] * len(ids) if directions is None else [int(d) for d in directions]
        zeros = [2048] * len(ids) if zero_ticks is None else [int(z) for z in zero_ticks]
        if len(dirs) != len(ids) or any(d not in (1, -1) for d in dirs):
            raise ValueError(f"directions: expected {len(ids)} values of +1 or -1")
        if len(zeros) != len(ids) or any(not 0 <= z <= 4095 for z in zeros):
            raise ValueError(f"zero_ticks: expected {len(ids)} values in 0..4095")
        rdt = max(0, min(254, int(round(return_delay_us / 2.0))))
        self.model = models[0]
        self.models = models
        self.servos = [EmulatedServo(m, i, baud_code=BAUD_TO_CODE[baudrate], return_delay=rdt)
                       for m, i in zip(models, ids, strict=True)]
        for s, z in zip(self.servos, zeros, strict=True):
            s.turn_offset = z
            s.sync_present()
        self._dir = np.array(dirs, dtype=np.float64)
        self._resting = bool(rest_until_torque)
        self.plant: Plant = plant if plant is not None else RigidLoadPlant(
            [m.rotor_inertia_out + load_inertia for m in models])
        if self.plant.dof != len(ids):
            raise ValueError(f"plant: has {self.plant.dof} dof for {len(ids)} servos")
        self.realtime = realtime
        self.physics_dt = physics_dt
        self.reboot_time_s = reboot_time_s
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self.link = link
        self._lock = threading.RLock()
        self._parser = StreamParser()
        self._bus_free_at = 0.0
        self._last_rx = 0.0
        self._t_phys = time.monotonic()
        # wake at least this often to integrate the plant, so the present values a status packet
        # carries are never more than about one physics step old
        self._reply_first = plant is not None
        self._tick_s = max(float(physics_dt), 1e-3) if plant is not None else 0.005
        self._stop = threading.Event()
        self._master = -1
        self._slave = -1
        self.port = ""
        self.stats = {"instructions": 0, "statuses": 0, "dropped": 0, "corrupted": 0}
        self._wake_r, self._wake_w = os.pipe()
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name="dxl-emulator", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ pty lifecycle

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a serial adapter
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link:
            tmp = self.link + ".tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.port, tmp)
            os.replace(tmp, self.link)
        self._parser.clear()

    def _close_pty(self) -> None:
        # Forget the fds before closing them: their numbers are free for reuse from the first close on.
        fds = (self._master, self._slave)
        self._master = self._slave = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def unplug(self) -> None:
        """The adapter vanishes: the pty is closed; the host's reads and writes fail."""
        with self._lock:
            self._close_pty()
        os.write(self._wake_w, b"x")

    def replug(self) -> str:
        """A new pty appears (and ``link`` points to it); returns its path."""
        with self._lock:
            if self._master < 0:
                self._open_pty()
        os.write(self._wake_w, b"x")
        return self.port

    @property
    def ids(self) -> list[int]:
        return [s.dxl_id for s in self.servos]

    def servo(self, dxl_id: int) -> EmulatedServo:
        for s in self.servos:
            if s.dxl_id == dxl_id:
                return s
        raise KeyError(f"no emulated servo with id {dxl_id}")

    def inject_hardware_error(self, dxl_id: int, bits: int) -> None:
        """Set Hardware Error Status bits of one servo (as if it detected them)."""
        with self._lock:
            s = self.servo(dxl_id)
            s.set_hardware_error(s.hardware_error | bits)

    def set_motor(self, dxl_id: int, *, kt_nm_per_a: float | None = None, coulomb_nm: float | None = None,
                  viscous_nms_rad: float | None = None) -> None:
        """Change one servo's motor figures (torque constant N m/A, gear friction N m and N m s/rad)."""
        for name, v in (("kt_nm_per_a", kt_nm_per_a), ("coulomb_nm", coulomb_nm), ("viscous_nms_rad", viscous_nms_rad)):
            if v is not None and not (np.isfinite(v) and v >= (1e-9 if name == "kt_nm_per_a" else 0.0)):
                raise ValueError(f"{name}: must be a finite number >= 0 (kt > 0), got {v!r}")
        with self._lock:
            s = self.servo(dxl_id)
            if kt_nm_per_a is not None:
                s.kt_nm_per_a = float(kt_nm_per_a)
            if coulomb_nm is not None:
                s.coulomb_friction = float(coulomb_nm)
            if viscous_nms_rad is not None:
                s.viscous_friction = float(viscous_nms_rad)

    def plant_state(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self.plant.state()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=2.0)
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.link:
            with contextlib.suppress(OSError):
                if os.path.islink(self.link):
                    os.unlink(self.link)

    def __enter__(self) -> ChainEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ physics

    def advance(self, now: float, max_steps: int | None = None) -> bool:
        """Integrate every servo's motor model and the plant towards ``now`` (monotonic s), at most
        ``max_steps`` physics steps; True when it is still behind ``now`` afterwards."""
        dt = self.physics_dt
        n = int((now - self._t_phys) / dt)
        if n <= 0:
            return False
        if n > 400:  # long idle (or a stalled thread): catch up coarsely, never hang
            self._t_phys = now - 400 * dt
            n = 400
        behind = max_steps is not None and n > max_steps
        if behind:
            n = max_steps
        servos = self.servos
        d = self._dir
        tau = np.empty(len(servos))
        for _ in range(n):
            q, dq = self.plant.state()
            q, dq = d * q, d * dq  # joint -> servo shaft
            for k, s in enumerate(servos):
                tau[k] = s.step(float(q[k]), float(dq[k]), dt)
            if self._resting:
                self._resting = not any(s.torque_on for s in servos)
            if not self._resting:
                self.plant.step(d * tau, dt)
        q, dq = self.plant.state()
        q, dq = d * q, d * dq
        for k, s in enumerate(servos):
            s.sync_present(float(q[k]), float(dq[k]))
        self._t_phys += n * dt
        return behind

    # ------------------------------------------------------------------ serving

    def _line_baud(self) -> int | None:
        try:
            attrs = termios.tcgetattr(self._master)
        except (termios.error, OSError):
            return None
        return _BAUD_FROM_TERMIOS.get(attrs[5])

    def _run(self) -> None:
        behind = False
        while not self._stop.is_set():
            with self._lock:
                master = self._master
            fds = [self._wake_r] + ([master] if master >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.0 if behind else self._tick_s)
            except (OSError, ValueError):
                ready = []
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 64)
            data = b""
            if master >= 0 and master in ready:
                try:  # read only our own pty: unplugged since the select, its fd number may be another file's now
                    with self._lock:
                        if self._master == master and select.select([master], [], [], 0)[0]:
                            data = os.read(master, 65536)
                except OSError:  # slave side not open: nothing to hear
                    data = b""
                    time.sleep(0.002)
            now = time.monotonic()
            with self._lock:
                try:
                    # The built-in plant steps in microseconds: integrate up to now, then answer with
                    # exact present values. A coupled plant that is slow to step (the PyBullet arm of
                    # ``hw emulate --sim``: ~0.1 ms a step) would delay status packets past the host's
                    # deadline: answer first, from the last integration (at most one physics tick
                    # old, the thread wakes every tick), then integrate. Either way physics runs in
                    # short slices between packets: a catch-up after a stall (a loaded machine) must
                    # not hold the answers back for its whole duration.
                    if not self._reply_first:
                        behind = self.advance(now, _CATCH_UP_STEPS)
                    if data:
                        self._parser.feed(data)
                        self._serve(now)
                    elif self._parser.pending and now - self._last_rx > 0.002:
                        self._parser.expire()  # inter-packet timeout: a partial frame is given up
                        self._serve(now)
                    if self._reply_first:
                        behind = self.advance(time.monotonic(), _CATCH_UP_STEPS)
                except Exception:  # the emulator must never die from a host's bytes
                    log.exception("emulator: error while serving")
            if data:
                self._last_rx = now

    def _serve(self, t_rx: float) -> None:
        baud = self._line_baud()
        while True:
            pkt = self._parser.next_packet()
            if pkt is None:
                self._answer_crc_errors(baud, t_rx)
                return
            raw_len = len(self._parser.last_raw)
            self.stats["instructions"] += 1
            if pkt.is_status:
                continue  # another device's status (or our own echo): not for us
            bus_baud = baud or BAUD_CODES[self.servos[0].baud_code]
            byte_t = 10.0 / bus_baud
            t_end = max(t_rx, self._bus_free_at) + raw_len * byte_t if self.realtime else t_rx
            self._bus_free_at = t_end
            if self.faults.stuck:
                noise = bytes(self._rng.randrange(256) for _ in range(16))
                self._emit([noise], t_end, byte_t)
                continue
            listeners = [s for s in self.servos if (baud is None or BAUD_CODES.get(s.baud_code) == baud)
                         and s.dxl_id not in self.faults.missing_ids and s.offline_until <= t_rx]
            for s in listeners:
                s.heard()
            replies = self._execute(pkt, listeners, t_rx)
            if replies:
                fast = pkt.instruction in (Instruction.FAST_SYNC_READ, Instruction.FAST_BULK_READ)
                self._emit(replies, t_end, byte_t, coalesce=fast)

    def _answer_crc_errors(self, baud: int | None, t_rx: float) -> None:
        """A servo that receives a packet for its id with a bad CRC answers CRC Error (e-Manual)."""
        rejected = self._parser.rejected
        while rejected:
            dxl_id, inst = rejected.popleft()
            if inst == 0x55 or dxl_id == BROADCAST_ID or self.faults.stuck or dxl_id in self.faults.missing_ids:
                continue
            for s in self.servos:
                if s.dxl_id == dxl_id and (baud is None or BAUD_CODES.get(s.baud_code) == baud) \
                        and s.offline_until <= t_rx and s.status_return_level == 2:
                    bus_baud = baud or BAUD_CODES[s.baud_code]
                    t_end = max(t_rx, self._bus_free_at) if self.realtime else t_rx
                    self._emit([self._status(s, StatusErrorCode.CRC_ERROR)], t_end, 10.0 / bus_baud)

    def _emit(self, replies: list, t_start: float, byte_t: float, *, coalesce: bool = False) -> None:
        """Send status packets one after another, each after its servo's return delay.

        ``replies`` holds raw bytes or (servo, bytes). ``coalesce``: the parts form one frame (fast
        read) and are delivered together when the last byte would have left the wire.
        """
        t = t_start
        held = bytearray()
        for item in replies:
            if isinstance(item, tuple):
                servo, data = item
                t += servo.return_delay_s
            else:
                data = item
            t += self.faults.delay_s
            f = self.faults
            if f.drop_next > 0 or (f.drop_prob and self._rng.random() < f.drop_prob):
                f.drop_next = max(0, f.drop_next - 1)
                self.stats["dropped"] += 1
                if coalesce:
                    break  # the rest of a fast frame never follows a silent servo
                continue
            if f.corrupt_next > 0 or (f.corrupt_prob and self._rng.random() < f.corrupt_prob):
                f.corrupt_next = max(0, f.corrupt_next - 1)
                b = bytearray(data)
                k = self._rng.randrange(len(b))
                b[k] ^= 1 << self._rng.randrange(8)
                data = bytes(b)
                self.stats["corrupted"] += 1
            t += len(data) * byte_t
            if coalesce:
                held += data
                continue
            self._write_at(t, data)
        if held:
            self._write_at(t, bytes(held))
        self._bus_free_at = max(self._bus_free_at, t)

    def _write_at(self, t: float, data: bytes) -> None:
        if self.realtime:
            _sleep_until(t)
        try:
            os.write(self._master, data)
        except OSError:
            return
        self.stats["statuses"] += 1

    # ------------------------------------------------------------------ instructions

    def _status(self, s: EmulatedServo, error: int, params: bytes = b"") -> tuple[EmulatedServo, bytes]:
        alert = 0x80 if s.hardware_error else 0
        return (s, encode_status(s.dxl_id, error | alert, params))

    def _execute(self, pkt: Packet, servos: list[EmulatedServo], now: float) -> list:
        inst, p, target = pkt.instruction, pkt.params, pkt.dxl_id
        by_id = {s.dxl_id: s for s in servos}
        if inst == Instruction.PING:
            chosen = sorted(servos, key=lambda s: s.dxl_id) if target == BROADCAST_ID else (
                [by_id[target]] if target in by_id else [])
            info = lambda s: s.mem[0:2] + s.mem[6:7]  # noqa: E731 - model number, firmware version
            return [self._status(s, 0, bytes(info(s))) for s in chosen]
        if inst in (Instruction.SYNC_READ, Instruction.FAST_SYNC_READ, Instruction.SYNC_WRITE,
                    Instruction.BULK_READ, Instruction.FAST_BULK_READ, Instruction.BULK_WRITE):
            if target != BROADCAST_ID:
                return []
            return self._group(inst, p, by_id)
        s = by_id.get(target)
        targets = servos if target == BROADCAST_ID else ([s] if s is not None else [])
        replies = []
        for s in targets:
            level = s.status_return_level  # the level in force when the instruction arrived
            err, data = self._single(s, inst, p, now)
            if target == BROADCAST_ID or err is None:
                continue
            if level == 0 or (level == 1 and inst != Instruction.READ):
                continue
            replies.append(self._status(s, err, data))
        return replies

    def _single(self, s: EmulatedServo, inst: int, p: bytes, now: float) -> tuple[int | None, bytes]:
        """Execute a unicast/broadcast instruction on one servo: (status error | None for no reply, data)."""
        if inst == Instruction.READ:
            if len(p) != 4:
                return StatusErrorCode.DATA_LENGTH_ERROR, b""
            err, data = s.read(p[0] | p[1] << 8, p[2] | p[3] << 8)
            return err, data
        if inst == Instruction.WRITE:
            if len(p) < 3:
                return StatusErrorCode.DATA_LENGTH_ERROR, b""
            return s.write(p[0] | p[1] << 8, p[2:]), b""
        if inst == Instruction.REG_WRITE:
            if len(p) < 3:
                return StatusErrorCode.DATA_LENGTH_ERROR, b""
            s.registered = (p[0] | p[1] << 8, bytes(p[2:]))
            s.mem[69] = 1
            return 0, b""
        if inst == Instruction.ACTION:
            if s.registered is None:
                return StatusErrorCode.INSTRUCTION_ERROR, b""
            addr, data = s.registered
            s.registered = None
            s.mem[69] = 0
            return s.write(addr, data), b""
        if inst == Instruction.REBOOT:
            s.reboot(now, self.reboot_time_s)
            return 0, b""
        if inst == Instruction.FACTORY_RESET:
            opt = p[0] if p else 0xFF
            if opt not in (0x01, 0x02, 0xFF):
                return StatusErrorCode.DATA_RANGE_ERROR, b""
            if s.torque_on:
                return StatusErrorCode.ACCESS_ERROR, b""
            s.factory_defaults(keep_id=opt in (0x01, 0x02), keep_baud=opt == 0x02)
            s._refresh()
            return 0, b""
        if inst == Instruction.CLEAR:
            if p[:5] == b"\x01\x44\x58\x4c\x22":
                return s.clear_multi_turn(), b""
            if p[:5] == b"\x02\x45\x52\x43\x4c":  # clear error
                s.set_hardware_error(0)
                return 0, b""
            return StatusErrorCode.DATA_RANGE_ERROR, b""
        return StatusErrorCode.INSTRUCTION_ERROR, b""

    def _group(self, inst: int, p: bytes, by_id: dict[int, EmulatedServo]) -> list:
        if inst in (Instruction.SYNC_READ, Instruction.FAST_SYNC_READ):
            if len(p) < 5:
                return []
            addr, n = p[0] | p[1] << 8, p[2] | p[3] << 8
            items = [(i, addr, n) for i in p[4:]]
        elif inst in (Instruction.BULK_READ, Instruction.FAST_BULK_READ):
            if len(p) % 5:
                return []
            items = [(p[k], p[k + 1] | p[k + 2] << 8, p[k + 3] | p[k + 4] << 8) for k in range(0, len(p), 5)]
        elif inst == Instruction.SYNC_WRITE:
            if len(p) < 4:
                return []
            addr, n = p[0] | p[1] << 8, p[2] | p[3] << 8
            body = p[4:]
            if n == 0 or len(body) % (n + 1):
                return []
            for k in range(0, len(body), n + 1):
                s = by_id.get(body[k])
                if s is not None:
                    s.write(addr, body[k + 1 : k + 1 + n])
            return []
        else:  # BULK_WRITE
            k = 0
            while k + 5 <= len(p):
                dxl_id, addr, n = p[k], p[k + 1] | p[k + 2] << 8, p[k + 3] | p[k + 4] << 8
                s = by_id.get(dxl_id)
                if s is not None and k + 5 + n <= len(p):
                    s.write(addr, p[k + 5 : k + 5 + n])
                k += 5 + n
            return []
        fast = inst in (Instruction.FAST_SYNC_READ, Instruction.FAST_BULK_READ)
        if fast:
            blocks = []
            for dxl_id, addr, n in items:
                s = by_id.get(dxl_id)
                if s is None:
                    break  # the chain of answers stops at a silent servo
                err, data = s.read(addr, n)
                blocks.append((dxl_id, err | (0x80 if s.hardware_error else 0), data if not err else bytes(n)))
            if not blocks:
                return []
            # the header announces every requested block; after a silent servo the rest never comes
            full = encode_fast_status(blocks + [(i, 0, bytes(n)) for i, _, n in items[len(blocks):]])
            return [(by_id[b[0]], c) for b, c in zip(blocks, full, strict=False)]
        replies = []
        for dxl_id, addr, n in items:
            s = by_id.get(dxl_id)
            if s is None:
                continue
            err, data = s.read(addr, n)
            replies.append(self._status(s, err, data if not err else b""))
        return replies


def _sleep_until(t: float) -> None:
    """Sleep until monotonic time ``t``; the last 300 us are spun for sub-100 us accuracy."""
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        # sleep(0) releases the GIL, so a host in the same process is not starved while we spin
        time.sleep(left - 2.5e-4 if left > 3e-4 else 0)
