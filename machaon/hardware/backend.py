"""``ActuatorBackend``: the ``Backend`` protocol on a chain of Dynamixel X-series servos.

Every cycle is one sync read and one sync write. At start the backend maps, through Indirect
Address 1..12, the items it needs (Hardware Error Status, Present Current, Velocity, Position,
Temperature) to one contiguous block, so a single sync read (fast sync read by default) returns all
of them for every servo. Joints map to servo ids with a direction (+1/-1) and the tick that is the
joint's zero, from a TOML config (:class:`ActuatorConfig`).

Modes (``[control] mode``): ``current`` (TORQUE commands, goal current = tau / kt), ``position``
and ``current_position`` (POSITION commands; the latter limits current to ``current_limit_a``),
``velocity`` (VELOCITY commands). A command in another mode is refused like a fault (the servos go
to the safe state) because switching the operating mode needs torque off.

Faults never raise out of ``read``/``write``: an id that does not answer is retried within the
cycle (Bus retries), then reported as a non-persistent ``DeviceFault`` and ``ok=False``; after
``lost_cycles`` consecutive incomplete reads, or when the port vanishes, the servos are sent to
the safe state (``hold``: hold the present position; ``torque_off``) and a persistent fault
(``comm_lost`` / ``port_lost``) is reported every cycle until ``reconnect()`` (or
``reset_faults()`` once communication is back). Hardware errors (overload, overheating, input
voltage, encoder, electrical shock) are reported with servo id and name; those the servo shuts down
for are persistent (``reboot()`` clears them). With ``bus_watchdog_ms`` the servos' Bus Watchdog
stops them by themselves when the host falls silent (a crashed process, a vanished port).
``write`` raises ValueError only for a malformed command (wrong length, NaN).
"""

from __future__ import annotations

import logging
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from machaon.hardware.control_table import (
    MODE_CURRENT,
    MODE_CURRENT_POSITION,
    MODE_POSITION,
    MODE_VELOCITY,
    RAD_PER_TICK,
    VELOCITY_UNIT_RAD_S,
    Model,
    model_by_name,
)
from machaon.hardware.dynamixel import Bus
from machaon.hardware.protocol import BusProtocolError, HardwareErrorStatus, PortError, hardware_error_names
from machaon.robot.backend import Clock
from machaon.robot.clock import MonotonicClock
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

log = logging.getLogger(__name__)

MODES = {"current": MODE_CURRENT, "position": MODE_POSITION, "current_position": MODE_CURRENT_POSITION,
         "velocity": MODE_VELOCITY}
_COMMAND_MODE = {"current": CommandMode.TORQUE, "position": CommandMode.POSITION,
                 "current_position": CommandMode.POSITION, "velocity": CommandMode.VELOCITY}
# Items read every cycle, mapped through Indirect Address 1.. to Indirect Data 1.. (address 224)
_READ_ITEMS = ((70, 1), (126, 2), (128, 4), (132, 4), (146, 1))
_READ_ADDR = 224
_READ_LEN = sum(n for _, n in _READ_ITEMS)


@dataclass(frozen=True)
class JointConfig:
    """One joint: its servo ``id`` and ``model``, ``direction`` (+1/-1), the servo tick at the joint's
    zero (``zero_ticks``), and optional joint limits in rad (goal positions are clamped to them)."""

    name: str
    id: int
    model: str = "XM430-W350"
    direction: int = 1
    zero_ticks: int = 2048
    min_rad: float = -math.inf
    max_rad: float = math.inf


@dataclass(frozen=True)
class ActuatorConfig:
    """Setup of a servo chain (see module docstring); build with ``from_toml``/``from_dict``.

    TOML layout::

        [bus]
        port = "/dev/ttyUSB0"
        baudrate = 1000000
        latency_ms = 2.0          # adapter latency added to every deadline
        retries = 1               # extra attempts inside a cycle
        fast_sync_read = true
        return_delay_us = 0       # written to every servo at start

        [control]
        mode = "current"          # current | position | current_position | velocity
        safe_state = "hold"       # hold | torque_off
        lost_cycles = 3           # incomplete reads in a row before the loss is persistent
        current_limit_a = 1.5     # cap on commanded current (optional)
        bus_watchdog_ms = 100     # servos stop by themselves when the host falls silent (0: off)

        [[joints]]
        name = "shoulder"
        id = 1
        model = "XM430-W350"
        direction = 1
        zero_ticks = 2048
    """

    port: str
    joints: tuple[JointConfig, ...]
    baudrate: int = 1_000_000
    latency_s: float = 0.002
    retries: int = 1
    fast_sync_read: bool = True
    return_delay_us: float = 0.0
    mode: str = "current"
    safe_state: str = "hold"
    lost_cycles: int = 3
    current_limit_a: float | None = None
    bus_watchdog_ms: float = 0.0
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.joints:
            raise ValueError("joints: at least one joint is needed")
        ids = [j.id for j in self.joints]
        if len(set(ids)) != len(ids) or not all(0 <= i <= 252 for i in ids):
            raise ValueError(f"joints: ids must be distinct and in 0..252, got {ids}")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {sorted(MODES)}, got {self.mode!r}")
        if self.safe_state not in ("hold", "torque_off"):
            raise ValueError(f"safe_state: expected 'hold' or 'torque_off', got {self.safe_state!r}")
        if self.lost_cycles < 1:
            raise ValueError("lost_cycles: must be >= 1")
        for j in self.joints:
            if j.direction not in (1, -1):
                raise ValueError(f"joint {j.name}: direction must be 1 or -1")
            m = model_by_name(j.model)
            if MODES[self.mode] not in m.modes:
                raise ValueError(f"joint {j.name}: {m.name} has no {self.mode} mode")
        if self.current_limit_a is not None and not (self.current_limit_a > 0):
            raise ValueError("current_limit_a: must be positive")
        if not 0 <= self.bus_watchdog_ms <= 127 * 20:
            raise ValueError("bus_watchdog_ms: must be in [0, 2540] ms (0 disables it)")

    @classmethod
    def from_dict(cls, d: dict, *, port: str | None = None) -> ActuatorConfig:
        bus = d.get("bus", {})
        ctl = d.get("control", {})
        joints = tuple(JointConfig(**j) for j in d.get("joints", ()))
        return cls(
            port=port or bus.get("port", "/dev/ttyUSB0"),
            joints=joints,
            baudrate=int(bus.get("baudrate", 1_000_000)),
            latency_s=float(bus.get("latency_ms", 2.0)) / 1000.0,
            retries=int(bus.get("retries", 1)),
            fast_sync_read=bool(bus.get("fast_sync_read", True)),
            return_delay_us=float(bus.get("return_delay_us", 0.0)),
            mode=str(ctl.get("mode", "current")),
            safe_state=str(ctl.get("safe_state", "hold")),
            lost_cycles=int(ctl.get("lost_cycles", 3)),
            current_limit_a=ctl.get("current_limit_a"),
            bus_watchdog_ms=float(ctl.get("bus_watchdog_ms", 0.0)),
        )

    @classmethod
    def from_toml(cls, path: str | Path, *, port: str | None = None) -> ActuatorConfig:
        """Read a config file; ``port`` overrides ``[bus] port``. Errors name the bad key."""
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f), port=port)


class ActuatorBackend:
    """Drive the servo chain described by ``config`` (see module docstring).

    Opening pings every configured id, checks its model number, writes the return delay, the
    operating mode, the indirect read map and enables torque (goals set to the present position
    / zero current first). Raises ``PortError``/``BusProtocolError`` (missing servos are named) at
    construction; after that, device trouble only shows in the ``JointState``.
    """

    def __init__(self, config: ActuatorConfig, *, clock: Clock | None = None, enable: bool = True) -> None:
        self.config = config
        self._clock = clock if clock is not None else MonotonicClock()
        self._models: list[Model] = [model_by_name(j.model) for j in config.joints]
        self._ids = [j.id for j in config.joints]
        self._dir = np.array([j.direction for j in config.joints], dtype=np.float64)
        self._zero = np.array([j.zero_ticks for j in config.joints], dtype=np.float64)
        self._kt = np.array([m.kt_nm_per_a for m in self._models])
        self._cur_unit = np.array([m.current_unit_a or 0.0 for m in self._models])
        self._lo = np.array([j.min_rad for j in config.joints])
        self._hi = np.array([j.max_rad for j in config.joints])
        n = len(self._ids)
        self._q = np.zeros(n)
        self._dq = np.zeros(n)
        self._tau = np.zeros(n)
        self._have_q = np.zeros(n, dtype=bool)
        self._missed = 0
        self._latched: DeviceFault | None = None
        self._shutdown_mask = [int(HardwareErrorStatus.OVERHEATING | HardwareErrorStatus.ELECTRICAL_SHOCK
                                   | HardwareErrorStatus.OVERLOAD)] * n
        self.cycles = 0
        self.bus = Bus(config.port, config.baudrate, latency_s=config.latency_s, retries=config.retries,
                       open_now=False)
        self._mode = MODES[config.mode]
        self._cmd_mode = _COMMAND_MODE[config.mode]
        self._open(enable)

    # ------------------------------------------------------------------ Backend protocol

    @property
    def dof(self) -> int:
        return len(self._ids)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.config.joints)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def latched_fault(self) -> DeviceFault | None:
        """The persistent fault the backend is latched in (None when running)."""
        return self._latched

    def read(self) -> JointState:
        """One sync read of every servo; never raises for device trouble."""
        t = self._clock.now()
        self.cycles += 1
        faults: list[DeviceFault] = []
        ok = True
        if self._latched is not None and self._latched.code == "port_lost":
            return self._state(t, (self._latched, *faults), False)
        try:
            res = self.bus.sync_read(self._ids, _READ_ADDR, _READ_LEN, fast=self.config.fast_sync_read)
        except PortError as exc:
            self._port_lost(str(exc))
            return self._state(t, (self._latched, *faults), False)  # type: ignore[arg-type]
        for j, dxl_id in enumerate(self._ids):
            d = res.data.get(dxl_id)
            if d is None:
                ok = False
                why = res.failed.get(dxl_id, "timeout")
                faults.append(DeviceFault(f"dxl:{dxl_id}", f"comm_{why}",
                                          f"servo {dxl_id} ({self.config.joints[j].name}): no valid status ({why})",
                                          joint=j))
                continue
            hw = d[0]
            cur = int.from_bytes(d[1:3], "little", signed=True)
            vel = int.from_bytes(d[3:7], "little", signed=True)
            pos = int.from_bytes(d[7:11], "little", signed=True)
            s = self._dir[j]
            self._q[j] = s * (pos - self._zero[j]) * RAD_PER_TICK
            self._dq[j] = s * vel * VELOCITY_UNIT_RAD_S
            if self._models[j].has_current:
                self._tau[j] = s * cur * self._cur_unit[j] * self._kt[j]
            else:  # Present Load in 0.1 % of stall torque
                self._tau[j] = s * cur * 1e-3 * self._models[j].stall_torque_nm
            self._have_q[j] = True
            if hw:
                names = hardware_error_names(hw)
                faults.append(DeviceFault(
                    f"dxl:{dxl_id}", names[0] if names else f"hardware_error_{hw:#04x}",
                    f"servo {dxl_id} ({self.config.joints[j].name}): hardware error {', '.join(names)} "
                    f"(status {hw:#04x}, {d[11]} C)", joint=j, persistent=bool(hw & self._shutdown_mask[j])))
        if not self._have_q.all():
            ok = False
        if ok:
            self._missed = 0
        else:
            self._missed += 1
            if self._missed >= self.config.lost_cycles and self._latched is None:
                lost = [self._ids[f.joint] for f in faults if f.code.startswith("comm_") and f.joint is not None]
                self._latch(DeviceFault("dxl:bus", "comm_lost",
                                        f"servos {lost} silent for {self._missed} cycles; servos sent to "
                                        f"{self.config.safe_state}", persistent=True))
        if self._latched is not None:
            faults.insert(0, self._latched)
        return self._state(t, tuple(faults), ok)

    def write(self, cmd: JointCommand) -> None:
        """Send ``cmd`` with one sync write. ValueError for a malformed command; device trouble
        (including a command in the wrong mode) becomes a fault in the next ``read``."""
        n = self.dof
        if not isinstance(cmd, JointCommand):
            raise ValueError("cmd: expected a JointCommand")
        want = {CommandMode.TORQUE: cmd.tau, CommandMode.POSITION: cmd.q, CommandMode.VELOCITY: cmd.dq}[cmd.mode]
        if want is None:
            raise ValueError(f"cmd: {cmd.mode.value} command without its values")
        v = np.asarray(want, dtype=np.float64)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ValueError(f"cmd: expected {n} finite values, got shape {v.shape}")
        if self._latched is not None:
            return  # servos stay in the safe state until reconnect()/reset_faults()
        if cmd.mode is not self._cmd_mode:
            self._latch(DeviceFault("dxl:bus", "mode_mismatch",
                                    f"{cmd.mode.value} command but the servos run in {self.config.mode} mode",
                                    persistent=True))
            return
        try:
            if self._mode == MODE_CURRENT:
                amps = self._dir * v / self._kt
                if self.config.current_limit_a is not None:
                    amps = np.clip(amps, -self.config.current_limit_a, self.config.current_limit_a)
                units = np.rint(amps / self._cur_unit).astype(int)
                self.bus.sync_write(102, 2, {i: int(u).to_bytes(2, "little", signed=True)
                                             for i, u in zip(self._ids, units, strict=True)})
            elif self._mode in (MODE_POSITION, MODE_CURRENT_POSITION):
                q = np.clip(v, self._lo, self._hi)
                ticks = np.clip(np.rint(self._dir * q / RAD_PER_TICK + self._zero), 0, 4095).astype(int)
                self.bus.sync_write(116, 4, {i: int(t).to_bytes(4, "little", signed=True)
                                             for i, t in zip(self._ids, ticks, strict=True)})
            else:
                units = np.rint(self._dir * v / VELOCITY_UNIT_RAD_S).astype(int)
                self.bus.sync_write(104, 4, {i: int(u).to_bytes(4, "little", signed=True)
                                             for i, u in zip(self._ids, units, strict=True)})
        except PortError as exc:
            self._port_lost(str(exc))

    def close(self) -> None:
        """Leave the servos in the safe state and close the port."""
        if self.bus.is_open:
            try:
                self._go_safe()
            except BusProtocolError as exc:
                log.warning("close: could not send the safe state: %s", exc)
        self.bus.close()

    def __enter__(self) -> ActuatorBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ operations

    def reconnect(self) -> bool:
        """Reopen the port and set the servos up again; True when every servo is back (fault cleared)."""
        try:
            self._open(enable=True)
        except BusProtocolError as exc:
            log.warning("reconnect failed: %s", exc)
            return False
        return True

    def reset_faults(self) -> bool:
        """Clear a latched fault once every servo answers again: the servos are set up afresh
        (operating mode restored, torque on). False (still latched) when some servo is silent."""
        if self._latched is None:
            return True
        if self._latched.code != "port_lost":
            try:
                if not self.bus.sync_read(self._ids, _READ_ADDR, _READ_LEN).complete:
                    return False
            except PortError:
                return False
        return self.reconnect()

    def torque(self, enable: bool) -> None:
        """Torque on/off for every servo (position modes hold the present position when enabled)."""
        if enable and self._mode in (MODE_POSITION, MODE_CURRENT_POSITION):
            self._hold_present()
        for i in self._ids:
            self.bus.write(i, 64, bytes((1 if enable else 0,)))

    def reboot(self, ids: list[int] | None = None) -> None:
        """Reboot servos (clears latched hardware errors), then set them up again with torque on."""
        for i in ids or self._ids:
            self.bus.reboot(i)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                for i in ids or self._ids:
                    self.bus.ping(i)
                break
            except BusProtocolError:
                time.sleep(0.02)
        self._open(enable=True)

    # ------------------------------------------------------------------ internals

    def _state(self, t: float, faults: tuple, ok: bool) -> JointState:
        return JointState(t=t, q=self._q.copy(), dq=self._dq.copy(), tau=self._tau.copy(), faults=faults, ok=ok)

    def _open(self, enable: bool) -> None:
        bus = self.bus
        bus.return_delay_s = 500e-6  # until we have set it
        bus.open()
        missing = []
        for j, i in enumerate(self._ids):
            try:
                info = bus.ping(i)
            except BusProtocolError:
                missing.append(i)
                continue
            if info.model_number != self._models[j].model_number:
                raise BusProtocolError(f"servo {i}: model number {info.model_number}, config says "
                                    f"{self._models[j].name} ({self._models[j].model_number})")
        if missing:
            bus.close()
            raise BusProtocolError(f"servos {missing} do not answer on {self.config.port} "
                                   f"at {self.config.baudrate} baud")
        rdt = max(0, min(254, int(round(self.config.return_delay_us / 2.0))))
        for j, i in enumerate(self._ids):
            bus.write(i, 98, b"\x00")  # clears a Bus Watchdog Error left from an earlier session
            bus.write(i, 64, b"\x00")  # EEPROM items need torque off
            bus.write(i, 9, bytes((rdt,)))
            bus.write(i, 11, bytes((self._mode,)))
            self._shutdown_mask[j] = bus.read(i, 63, 1)[0]
            addr = bytearray()
            for a, size in _READ_ITEMS:
                for k in range(size):
                    addr += (a + k).to_bytes(2, "little")
            bus.write(i, 168, bytes(addr))
            if self._mode == MODE_CURRENT_POSITION:
                # Goal Current is the current bound of this mode: the configured cap, else Current Limit
                limit = bus.read_int(i, 38, 2)
                units = limit if self.config.current_limit_a is None else min(
                    limit, int(self.config.current_limit_a / self._models[j].current_unit_a))
                bus.write_int(i, 102, 2, units)
            if self._mode == MODE_CURRENT:
                bus.write_int(i, 102, 2, 0)
            if self._mode == MODE_VELOCITY:
                bus.write_int(i, 104, 4, 0)
        bus.return_delay_s = rdt * 2e-6
        self._latched = None
        self._missed = 0
        res = bus.sync_read(self._ids, _READ_ADDR, _READ_LEN)
        for j, i in enumerate(self._ids):
            d = res.data.get(i)
            if d is not None:
                pos = int.from_bytes(d[7:11], "little", signed=True)
                self._q[j] = self._dir[j] * (pos - self._zero[j]) * RAD_PER_TICK
                self._have_q[j] = True
        if enable:
            self.torque(True)
        if self.config.bus_watchdog_ms > 0:
            wd = max(1, math.ceil(self.config.bus_watchdog_ms / 20.0))
            for i in self._ids:
                bus.write(i, 98, bytes((wd,)))

    def _hold_present(self) -> None:
        res = self.bus.sync_read(self._ids, 132, 4)
        data = {i: d for i, d in res.data.items()}
        if data:
            self.bus.sync_write(116, 4, data)

    def _go_safe(self) -> None:
        """Send the safe state with broadcast sync writes (no answers needed: works on a lossy bus)."""
        ids = self._ids
        if self.config.safe_state == "torque_off":
            self.bus.sync_write(64, 1, {i: b"\x00" for i in ids})
            return
        if self._mode == MODE_VELOCITY:
            self.bus.sync_write(104, 4, {i: bytes(4) for i in ids})
            return
        ticks = {i: int(np.rint(self._dir[j] * self._q[j] / RAD_PER_TICK + self._zero[j])).to_bytes(
            4, "little", signed=True) for j, i in enumerate(ids) if self._have_q[j]}
        if self._mode == MODE_CURRENT:
            # hold needs position control: torque off, position mode, goal = last position, torque on
            self.bus.sync_write(64, 1, {i: b"\x00" for i in ids})
            self.bus.sync_write(11, 1, {i: bytes((MODE_POSITION,)) for i in ids})
            if ticks:
                self.bus.sync_write(116, 4, ticks)
            self.bus.sync_write(64, 1, {i: b"\x01" for i in ids})
        elif ticks:
            self.bus.sync_write(116, 4, ticks)

    def _latch(self, fault: DeviceFault) -> None:
        log.error("%s: %s", fault.code, fault.message)
        self._latched = fault
        try:
            self._go_safe()
        except PortError as exc:
            log.error("safe state not sent, port gone: %s", exc)
            self._latched = DeviceFault("dxl:bus", "port_lost", f"{fault.message}; port lost: {exc}",
                                        persistent=True)
        except BusProtocolError as exc:
            log.error("safe state not confirmed: %s", exc)

    def _port_lost(self, why: str) -> None:
        self.bus.close()
        if self._latched is None or self._latched.code != "port_lost":
            self._latched = DeviceFault("dxl:bus", "port_lost", f"serial port {self.config.port} lost: {why}",
                                        persistent=True)
            log.error("port_lost: %s", why)
