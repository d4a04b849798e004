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

Torque mode: a joint torque becomes a goal current through the joint's :class:`JointMotor`
(``machaon.hardware.motor``): the torque-current curve (the datasheet's slope, or the one the
bench identified: ``kt_nm_per_a`` or ``curve_current_a``/``curve_torque_nm`` per joint) after
adding the identified gear friction (``coulomb_nm``, ``viscous_nms_rad``, times
``[control] friction_compensation``), clipped to the joint's current limit (the smallest of
``current_limit_a`` per joint, ``[control] current_limit_a`` and the servo's Current Limit item).
``JointState.tau`` is the estimated joint torque: the curve's torque at the measured current
minus the friction model.

Software limits (``[control] max_temperature_c``, ``min_voltage_v``/``max_voltage_v``; measured
current above 1.2 x the joint's current limit for ``lost_cycles`` reads) latch a persistent fault
(``over_temperature``, ``input_voltage_range``, ``over_current``) naming servo, joint and value,
and send the servos to the safe state, before the servos' own shutdown limits are reached. So does
a servo whose Bus Watchdog has tripped (``bus_watchdog``: the host fell silent for longer than
``bus_watchdog_ms``; in current mode the servo let go of its joint).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from machaon.hardware.actuator_config import COMMAND_MODE, MODES, ActuatorConfig, JointConfig
from machaon.hardware.control_table import (
    MODE_CURRENT,
    MODE_CURRENT_POSITION,
    MODE_POSITION,
    MODE_VELOCITY,
    MODELS_BY_NUMBER,
    RAD_PER_TICK,
    VELOCITY_UNIT_RAD_S,
    Model,
    model_by_name,
)
from machaon.hardware.dynamixel import Bus
from machaon.hardware.motor import JointMotor, curves_are_linear
from machaon.hardware.protocol import BusProtocolError, HardwareErrorStatus, PortError, hardware_error_names
from machaon.robot.backend import Clock
from machaon.robot.clock import MonotonicClock
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

log = logging.getLogger(__name__)

# the chain's configuration lives in actuator_config; importable from here as before
__all__ = ["MODES", "ActuatorBackend", "ActuatorConfig", "JointConfig"]

# Items read every cycle, mapped through Indirect Address 1.. to Indirect Data 1.. (address 224):
# hardware error, present current, velocity, position, temperature, input voltage, bus watchdog
_READ_ITEMS = ((70, 1), (126, 2), (128, 4), (132, 4), (146, 1), (144, 2), (98, 1))
_READ_ADDR = 224
_READ_LEN = sum(n for _, n in _READ_ITEMS)
# Reply deadline (s) of the setup transactions at open: they are not time-critical, and a host thread
# or an adapter that stalls for a few ms then must not make a healthy chain look absent.
SETUP_LATENCY_S = 0.05
OVER_CURRENT_MARGIN = 1.2  # measured current above this times the limit, lost_cycles reads in a row: a fault


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
        self.motors: tuple[JointMotor, ...] = tuple(config.motor(j) for j in config.joints)
        self._linear = curves_are_linear(self.motors)
        self._kt = np.array([m.curve.kt_nm_per_a for m in self.motors])
        self._coulomb = np.array([m.coulomb_nm for m in self.motors])
        self._viscous = np.array([m.viscous_nms_rad for m in self.motors])
        self._v_smooth = np.array([m.v_smooth_rad_s for m in self.motors])
        self._cur_unit = np.array([m.current_unit_a or 0.0 for m in self._models])
        # current cap per joint (A): the joint's, the chain's; the servo's Current Limit joins at open
        caps = [min(x for x in (j.current_limit_a, config.current_limit_a, m.stall_current_a) if x is not None)
                for j, m in zip(config.joints, self._models, strict=True)]
        self._i_max = np.array(caps, dtype=np.float64)
        self._over_i = np.zeros(len(config.joints), dtype=int)
        self.temperature_c = np.zeros(len(config.joints))
        self.voltage_v = np.zeros(len(config.joints))
        self.current_a = np.zeros(len(config.joints))
        self._lo = np.array([j.min_rad for j in config.joints])
        self._hi = np.array([j.max_rad for j in config.joints])
        n = len(self._ids)
        self._q = np.zeros(n)
        self._dq = np.zeros(n)
        self._tau = np.zeros(n)
        self._have_q = np.zeros(n, dtype=bool)
        self._missed = 0
        self._latched: DeviceFault | None = None
        self._reset_requested = False  # the operator's reset, served by the loop thread's next read
        self._shutdown_mask = [int(HardwareErrorStatus.OVERHEATING | HardwareErrorStatus.ELECTRICAL_SHOCK
                                   | HardwareErrorStatus.OVERLOAD)] * n
        self.cycles = 0
        self.bus = Bus(config.port, config.baudrate, latency_s=config.latency_s, retries=config.retries,
                       open_now=False)
        self._mode = MODES[config.mode]
        self._cmd_mode = COMMAND_MODE[config.mode]
        self._servo_mode = self._mode  # what the servos run now (position while holding at start)
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

    def request_fault_reset(self) -> None:
        """The operator's reset, from any thread: the next ``read`` (on the control loop's thread,
        which owns the bus) tries ``reset_faults()``; a fault whose cause remains (a silent servo)
        stays latched, and the log says so."""
        self._reset_requested = True

    def read(self) -> JointState:
        """One sync read of every servo; never raises for device trouble."""
        if self._reset_requested:
            self._serve_reset_request()
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
            self._take_status(j, dxl_id, d, faults)
        self._tau[:] = self._joint_torque(self.current_a, self._dq)
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

    def _serve_reset_request(self) -> None:
        """``request_fault_reset`` on the loop thread: clear a latched fault if its cause is gone."""
        self._reset_requested = False
        fault = self._latched
        if fault is None:
            return
        if self.reset_faults():
            log.warning("operator reset: latched fault cleared (%s: %s); servos set up again",
                        fault.code, fault.message)
        else:
            log.warning("operator reset refused: %s still stands (%s)", fault.code, fault.message)

    def _take_status(self, j: int, dxl_id: int, d: bytes, faults: list[DeviceFault]) -> None:
        """Joint ``j``'s status block ``d`` (servo ``dxl_id``) into the state arrays (joint frame, SI);
        software limits and a tripped Bus Watchdog latch; hardware errors are appended to ``faults``."""
        hw = d[0]
        cur = int.from_bytes(d[1:3], "little", signed=True)
        vel = int.from_bytes(d[3:7], "little", signed=True)
        pos = int.from_bytes(d[7:11], "little", signed=True)
        s = self._dir[j]
        self._q[j] = s * (pos - self._zero[j]) * RAD_PER_TICK
        self._dq[j] = s * vel * VELOCITY_UNIT_RAD_S
        if self._models[j].has_current:
            self.current_a[j] = s * cur * self._cur_unit[j]
        else:  # Present Load in 0.1 % of stall torque, as the equivalent current
            self.current_a[j] = s * cur * 1e-3 * self._models[j].stall_current_a
        self.temperature_c[j] = d[11]
        self.voltage_v[j] = int.from_bytes(d[12:14], "little") * 0.1
        self._have_q[j] = True
        limit = self._limit_fault(j, dxl_id)
        if limit is None and d[14] == 0xFF and self.config.bus_watchdog_ms > 0:
            # the servo stopped itself (zero goals, goals locked): the host was silent too long
            limit = DeviceFault(f"dxl:{dxl_id}", "bus_watchdog",
                                f"servo {dxl_id} ({self.config.joints[j].name}) stopped by its Bus Watchdog: "
                                f"no instruction for over {self.config.bus_watchdog_ms:g} ms (a stalled host)",
                                joint=j, persistent=True)
        if limit is not None and self._latched is None:
            self._latch(limit)
        if hw:
            names = hardware_error_names(hw)
            faults.append(DeviceFault(
                f"dxl:{dxl_id}", names[0] if names else f"hardware_error_{hw:#04x}",
                f"servo {dxl_id} ({self.config.joints[j].name}): hardware error {', '.join(names)} "
                f"(status {hw:#04x}, {d[11]} C)", joint=j, persistent=bool(hw & self._shutdown_mask[j])))

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
                amps = self._dir * np.clip(self._motor_current(v, self._dq), -self._i_max, self._i_max)
                units = np.rint(amps / self._cur_unit).astype(int)
                goals = {i: int(u).to_bytes(2, "little", signed=True) for i, u in zip(self._ids, units, strict=True)}
                if self._servo_mode != MODE_CURRENT:
                    self._engage_current(goals)
                else:
                    self.bus.sync_write(102, 2, goals)
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
        if enable and self._servo_mode in (MODE_POSITION, MODE_CURRENT_POSITION):
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

    def _friction(self, dq: np.ndarray) -> np.ndarray:
        return self._coulomb * np.tanh(dq / self._v_smooth) + self._viscous * dq

    def _motor_current(self, tau: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Joint-frame motor currents (A) for joint torques ``tau`` at speeds ``dq`` (friction compensated)."""
        tau_m = tau + self.config.friction_compensation * self._friction(dq)
        if self._linear:
            return tau_m / self._kt
        return np.array([m.curve.current(x) for m, x in zip(self.motors, tau_m, strict=True)], dtype=np.float64)

    def _joint_torque(self, amps: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Estimated joint torques (N m) from joint-frame motor currents and speeds."""
        if self._linear:
            tau = amps * self._kt
        else:
            tau = np.array([m.curve.torque(x) for m, x in zip(self.motors, amps, strict=True)], dtype=np.float64)
        return tau - self._friction(dq)

    def _limit_fault(self, j: int, dxl_id: int) -> DeviceFault | None:
        """A software-limit fault of joint ``j`` from its latest reading (None when inside the limits)."""
        c = self.config
        who = f"servo {dxl_id} ({c.joints[j].name})"
        t, v = self.temperature_c[j], self.voltage_v[j]
        if c.max_temperature_c is not None and t > c.max_temperature_c:
            return DeviceFault(f"dxl:{dxl_id}", "over_temperature",
                               f"{who}: {t:.0f} C, above the {c.max_temperature_c:g} C limit; let it cool, "
                               f"then reset", joint=j, persistent=True)
        low = c.min_voltage_v is not None and v < c.min_voltage_v
        if low or (c.max_voltage_v is not None and v > c.max_voltage_v):
            return DeviceFault(f"dxl:{dxl_id}", "input_voltage_range",
                               f"{who}: supply {v:.1f} V outside [{c.min_voltage_v}, {c.max_voltage_v}] V; "
                               f"check the power supply", joint=j, persistent=True)
        if abs(self.current_a[j]) > OVER_CURRENT_MARGIN * self._i_max[j]:
            self._over_i[j] += 1
            if self._over_i[j] >= c.lost_cycles:
                return DeviceFault(f"dxl:{dxl_id}", "over_current",
                                   f"{who}: {abs(self.current_a[j]):.2f} A for {self._over_i[j]} reads, above "
                                   f"{OVER_CURRENT_MARGIN:g} x its {self._i_max[j]:.2f} A limit", joint=j,
                                   persistent=True)
        else:
            self._over_i[j] = 0
        return None

    def _state(self, t: float, faults: tuple, ok: bool) -> JointState:
        return JointState(t=t, q=self._q.copy(), dq=self._dq.copy(), tau=self._tau.copy(), faults=faults, ok=ok)

    def _open(self, enable: bool) -> None:
        bus = self.bus
        bus.return_delay_s, bus.latency_s = 500e-6, max(self.config.latency_s, SETUP_LATENCY_S)  # during setup
        bus.open()
        missing = []
        for j, i in enumerate(self._ids):
            try:
                info = bus.ping(i)
            except BusProtocolError:
                missing.append(i)
                continue
            if info.model_number != self._models[j].model_number:
                found = MODELS_BY_NUMBER.get(info.model_number)
                bus.close()
                raise BusProtocolError(f"servo {i} ({self.config.joints[j].name}) is a "
                                       f"{found.name if found else 'model ' + str(info.model_number)}, the config "
                                       f"says {self._models[j].name}; fix the config's model or the wiring")
        if missing:
            bus.close()
            raise BusProtocolError(f"servos {missing} do not answer on {self.config.port} "
                                   f"at {self.config.baudrate} baud")
        rdt = max(0, min(254, int(round(self.config.return_delay_us / 2.0))))
        for j, i in enumerate(self._ids):
            bus.write(i, 98, b"\x00")  # clears a Bus Watchdog Error left from an earlier session
            bus.write(i, 64, b"\x00")  # EEPROM items need torque off
            bus.write(i, 9, bytes((rdt,)))
            bus.write(i, 11, bytes((self._start_mode(),)))
            self._shutdown_mask[j] = bus.read(i, 63, 1)[0]
            addr = bytearray()
            for a, size in _READ_ITEMS:
                for k in range(size):
                    addr += (a + k).to_bytes(2, "little")
            bus.write(i, 168, bytes(addr))
            if self._models[j].has_current:
                limit_a = bus.read_int(i, 38, 2) * self._models[j].current_unit_a
                self._i_max[j] = min(self._i_max[j], limit_a)
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
        bus.return_delay_s, bus.latency_s = rdt * 2e-6, self.config.latency_s  # the control cycle's
        self._latched = None
        self._missed = 0
        self._over_i[:] = 0
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

    def _start_mode(self) -> int:
        """The operating mode the servos start in: position (holding) for ``start_hold`` in current mode."""
        hold = self._mode == MODE_CURRENT and self.config.start_hold
        self._servo_mode = MODE_POSITION if hold else self._mode
        return self._servo_mode

    def _engage_current(self, goals: dict[int, bytes]) -> None:
        """Leave the start hold for current mode with the first goal currents (torque is off for the
        four broadcast writes only, well under a millisecond at 1 Mbaud and above)."""
        ids = self._ids
        self.bus.sync_write(64, 1, {i: b"\x00" for i in ids})
        self.bus.sync_write(11, 1, {i: bytes((MODE_CURRENT,)) for i in ids})
        self.bus.sync_write(102, 2, goals)
        self.bus.sync_write(64, 1, {i: b"\x01" for i in ids})
        self._servo_mode = MODE_CURRENT
        log.info("servos switched from the start hold to current mode")

    def _hold_present(self) -> None:
        res = self.bus.sync_read(self._ids, 132, 4)
        data = {i: d for i, d in res.data.items()}
        if data:
            self.bus.sync_write(116, 4, data)

    def _go_safe(self) -> None:
        """Send the safe state with broadcast sync writes (no answers needed: works on a lossy bus)."""
        ids = self._ids
        if self.config.bus_watchdog_ms > 0:  # a tripped Bus Watchdog locks the goals: clear it first
            self.bus.sync_write(98, 1, {i: b"\x00" for i in ids})
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
            self._servo_mode = MODE_POSITION
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
