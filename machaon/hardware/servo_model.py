"""One emulated X-series servo: control table memory with access rules, and its motor model.

The memory behaves as the e-Manual describes: read-only items refuse writes (Access Error), EEPROM
items refuse writes while torque is on (Access Error), values outside an item's range give a Data
Range Error, goals beyond their limit registers a Data Limit Error, a write that covers only part of
a multi-byte item a Data Length Error; a failed write changes nothing. Indirect Address/Data 1..28
map reads and writes. Present values are refreshed from the motor state before every read.

Motor model (output shaft, SI): the servo's controller (current loop; velocity PI -> PWM; position
PID -> PWM; current-based position PID -> current limited by Goal Current) sets a current ``i``
bounded by Current Limit and by the voltage left after back-EMF, ``|V - ke w| / R`` with
``R = V_nom / I_stall`` and ``ke = V_nom / w_no_load`` (so stall torque and no-load speed match the
datasheet); torque ``kt i - b w - tc tanh(w / 0.01)`` goes to the plant. Gains follow the e-Manual
scalings (KPP = P/128, KPI = I/65536, KPD = D/16, KVP = P/128, KVI = I/65536, PWM full scale 885).
The current follows its target with a first-order lag (``CURRENT_TAU_S``). The Bus Watchdog
(98) stops the servo when the host falls silent. Heating (first-order thermal model), overload
(sustained current near the limit while stalled) and input-voltage checks set Hardware Error
Status bits; bits in Shutdown (63) also turn torque off
until a reboot. Position modes follow the velocity-based profile (Profile Velocity/Acceleration).
Not modelled: Drive Mode bits (reverse direction, time-based profile).
"""

from __future__ import annotations

import math

from machaon.hardware.control_table import (
    MODE_CURRENT,
    MODE_CURRENT_POSITION,
    MODE_EXTENDED_POSITION,
    MODE_POSITION,
    MODE_PWM,
    MODE_VELOCITY,
    RAD_PER_TICK,
    VELOCITY_UNIT_RAD_S,
    Field,
    Model,
    decode_int,
    encode_int,
)
from machaon.hardware.protocol import HardwareErrorStatus, StatusErrorCode

MEMORY_SIZE = 662
_INDIRECT_ADDR0 = 168
_INDIRECT_DATA0 = 224
_N_INDIRECT = 28
#: Time constant of the current response (motor L/R and the firmware current loop), s.
CURRENT_TAU_S = 5e-4
_GOALS = ("goal_pwm", "goal_current", "goal_velocity", "goal_position")


class EmulatedServo:
    """Control table and motor model of one servo of ``model``; ``dxl_id`` is its initial ID.

    ``read``/``write`` return ``(error_code, data)`` / ``error_code`` (0 = ok) exactly as the
    servo would put them in its status packet; they never raise for bad requests.

    ``kt_nm_per_a``, ``viscous_friction`` (N m s/rad) and ``coulomb_friction`` (N m) are this
    servo's own motor figures, the model's by default: set them to emulate a unit that differs from
    its datasheet (what the bench's identification has to find).
    """

    def __init__(self, model: Model, dxl_id: int, *, baud_code: int = 3, return_delay: int = 0,
                 supply_voltage: float = 12.0, ambient_c: float = 25.0) -> None:
        self.model = model
        self.mem = bytearray(MEMORY_SIZE)
        self._owner: dict[int, Field] = {}
        for f in model.fields:
            for a in range(f.address, f.address + f.size):
                self._owner[a] = f
        self.supply_voltage = supply_voltage
        self.ambient_c = ambient_c
        self.kt_nm_per_a = model.kt_nm_per_a
        self.viscous_friction = model.viscous_friction
        self.coulomb_friction = model.coulomb_friction
        self._init_ids = (dxl_id, baud_code, return_delay)
        self.factory_defaults()
        self._set("id", dxl_id)
        self._set("baud_rate", baud_code)
        self._set("return_delay_time", return_delay)
        self.temperature_c = ambient_c
        self.current_a = 0.0
        self.pwm = 0.0
        self._pos_integral = 0.0
        self._traj_pos: float | None = None  # profile generator state (ticks, ticks/s)
        self._traj_vel = 0.0
        self._vel_integral = 0.0
        self._prev_err = 0.0
        self._overload_time = 0.0
        self._since_heard = 0.0
        self._health_dt = 0.0
        self._tick_ms = 0.0
        self._q = 0.0
        self._dq = 0.0
        self.turn_offset = 2048  # the output shaft's q = 0 reads as tick 2048 (mid-range)
        self.offline_until = 0.0  # rebooting: no answers before this time
        self.registered: tuple[int, bytes] | None = None
        self._refresh()

    # ------------------------------------------------------------------ memory

    def factory_defaults(self, keep_id: bool = False, keep_baud: bool = False) -> None:
        """Every item to its initial value (FACTORY_RESET), optionally keeping ID and baud rate."""
        dxl_id = self.mem[7]
        baud = self.mem[8]
        self.mem[:] = bytes(MEMORY_SIZE)
        for f in self.model.fields:
            self.mem[f.address : f.address + f.size] = encode_int(f.default, f.size)
        self._set("model_number", self.model.model_number)
        self._set("firmware_version", self.model.firmware_version)
        self._set("present_input_voltage", int(round(self.supply_voltage * 10)))
        self._set("present_position", 2048)
        self._set("goal_position", 2048)
        if keep_id:
            self.mem[7] = dxl_id
        if keep_baud:
            self.mem[8] = baud

    def _set(self, name: str, value: int) -> None:
        f = self.model.by_name[name]
        self.mem[f.address : f.address + f.size] = encode_int(int(value), f.size)

    def get(self, name: str) -> int:
        """Raw value of the item ``name`` (signed where the item is)."""
        f = self.model.by_name[name]
        return decode_int(bytes(self.mem[f.address : f.address + f.size]), f.signed)

    @property
    def dxl_id(self) -> int:
        return self.mem[7]

    @property
    def baud_code(self) -> int:
        return self.mem[8]

    @property
    def return_delay_s(self) -> float:
        return self.mem[9] * 2e-6

    @property
    def status_return_level(self) -> int:
        return self.mem[68]

    @property
    def hardware_error(self) -> int:
        return self.mem[70]

    def _refresh(self) -> None:
        """Cache the items the motor model reads every step."""
        g = self.get
        self.mode = g("operating_mode")
        self.torque_on = bool(g("torque_enable"))
        self.goal_position = g("goal_position")
        self.goal_velocity = g("goal_velocity")
        self.goal_pwm = g("goal_pwm")
        self.goal_current = g("goal_current") if self.model.has_current else 0
        self.current_limit = g("current_limit") if self.model.has_current else None
        self.pwm_limit = g("pwm_limit")
        self.kpp, self.kpi, self.kpd = g("position_p_gain") / 128, g("position_i_gain") / 65536, g(
            "position_d_gain") / 16
        self.kvp, self.kvi = g("velocity_p_gain") / 128, g("velocity_i_gain") / 65536
        self.homing_offset = g("homing_offset")
        self.moving_threshold = g("moving_threshold")
        self.profile_velocity = g("profile_velocity")
        self.profile_acceleration = g("profile_acceleration")

    def _map(self, address: int) -> int:
        """Physical address behind ``address`` (follows Indirect Data 1..28)."""
        k = address - _INDIRECT_DATA0
        if 0 <= k < _N_INDIRECT:
            a = _INDIRECT_ADDR0 + 2 * k
            return self.mem[a] | (self.mem[a + 1] << 8)
        return address

    def read(self, address: int, length: int) -> tuple[int, bytes]:
        """Bytes at ``address`` (present values refreshed first). Out of the table: Access Error."""
        if length < 0 or address < 0 or address + length > MEMORY_SIZE:
            return StatusErrorCode.ACCESS_ERROR, b""
        self.sync_present()
        out = bytearray(length)
        for i in range(length):
            a = self._map(address + i)
            out[i] = self.mem[a] if 0 <= a < MEMORY_SIZE else 0
        return 0, bytes(out)

    def write(self, address: int, data: bytes) -> int:
        """Write ``data`` at ``address`` with the servo's checks; returns the status error number."""
        if address < 0 or address + len(data) > MEMORY_SIZE or not data:
            return StatusErrorCode.ACCESS_ERROR
        phys = [self._map(address + i) for i in range(len(data))]
        staged: dict[int, int] = dict(zip(phys, data, strict=True))
        touched: dict[str, Field] = {}
        for a in phys:
            f = self._owner.get(a)
            if f is None:
                return StatusErrorCode.ACCESS_ERROR
            touched[f.name] = f
        torque_on = bool(self.mem[64])
        watchdog_tripped = self.mem[98] == 0xFF
        new_vals: dict[str, int] = {}
        for f in touched.values():
            if f.access != "RW":
                return StatusErrorCode.ACCESS_ERROR
            if watchdog_tripped and f.name in _GOALS:
                return StatusErrorCode.DATA_RANGE_ERROR  # goals are read-only after a Bus Watchdog Error
            if not all(a in staged for a in range(f.address, f.address + f.size)):
                return StatusErrorCode.DATA_LENGTH_ERROR
            if f.eeprom and torque_on:
                return StatusErrorCode.ACCESS_ERROR
            raw = bytes(staged[a] for a in range(f.address, f.address + f.size))
            v = decode_int(raw, f.signed)
            if f.lo is not None and not f.lo <= v <= (f.hi if f.hi is not None else v):
                return StatusErrorCode.DATA_RANGE_ERROR
            new_vals[f.name] = v
        # limits given by other items (using the values being written in the same packet, if any)
        def lim(name: str) -> int:
            return new_vals.get(name, self.get(name))

        for name, v in new_vals.items():
            f = touched[name]
            if f.limit is not None and abs(v) > lim(f.limit):
                return StatusErrorCode.DATA_LIMIT_ERROR
            if name == "goal_position" and lim("operating_mode") in (MODE_POSITION, MODE_CURRENT_POSITION) and \
                    not lim("min_position_limit") <= v <= lim("max_position_limit"):
                return StatusErrorCode.DATA_LIMIT_ERROR
            if name == "operating_mode" and v not in self.model.modes:
                return StatusErrorCode.DATA_RANGE_ERROR
            if name == "torque_enable" and v == 1 and self.mem[70] & self.mem[63]:
                return StatusErrorCode.RESULT_FAIL
        for a, b in staged.items():
            self.mem[a] = b
        if "torque_enable" in new_vals and new_vals["torque_enable"] == 1 and not torque_on:
            # torque on: position modes start holding where they are (as the servo does)
            self._pos_integral = 0.0
            self._vel_integral = 0.0
            if self.get("operating_mode") in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
                self._set("goal_position", self._position_ticks())
        if "operating_mode" in new_vals or "torque_enable" in new_vals:
            self._pos_integral = self._vel_integral = 0.0
            self._traj_pos = None
        self._refresh()
        return 0

    # ------------------------------------------------------------------ lifecycle

    def reboot(self, now: float, downtime_s: float) -> None:
        """REBOOT: RAM items to defaults (torque off, errors cleared); silent for ``downtime_s``."""
        eeprom = bytes(self.mem[:64])
        pos = self.get("present_position")
        self.factory_defaults()
        self.mem[:64] = eeprom
        self._set("present_position", pos)
        self._set("goal_position", pos)
        self._overload_time = 0.0
        self.offline_until = now + downtime_s
        self._refresh()

    def clear_multi_turn(self) -> int:
        """CLEAR (multi-turn): bring Present Position back within one turn (0..4095); status error number.

        Refused (Result Fail) while the servo moves, as the e-Manual says.
        """
        if abs(getattr(self, "_dq", 0.0)) > self.moving_threshold * VELOCITY_UNIT_RAD_S:
            return StatusErrorCode.RESULT_FAIL
        ticks = self._position_ticks()
        self.turn_offset -= (ticks // 4096) * 4096
        if self.mode in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
            self._set("goal_position", self._position_ticks())
            self._refresh()
        return 0

    def _position_ticks(self) -> int:
        return int(round(getattr(self, "_q", 0.0) / RAD_PER_TICK)) + self.homing_offset + self.turn_offset

    # ------------------------------------------------------------------ motor model

    def sync_present(self, q_rad: float | None = None, dq_rad_s: float | None = None) -> None:
        """Write the present values (position, velocity, current, PWM, temperature, ...) into memory."""
        if q_rad is not None:
            self._q = q_rad
            self._dq = dq_rad_s if dq_rad_s is not None else 0.0
        ticks = self._position_ticks()
        vel = int(round(self._dq / VELOCITY_UNIT_RAD_S))
        self._set("present_position", ticks)
        self._set("present_velocity", vel)
        self._set("present_pwm", int(round(max(-885.0, min(885.0, self.pwm)))))
        if self.model.has_current:
            self._set("present_current", int(round(self.current_a / self.model.current_unit_a)))
        else:  # Present Load, 0.1 % of stall torque
            self._set("present_load", int(round(1000.0 * self.current_a / self.model.stall_current_a)))
        self._set("present_temperature", max(0, min(255, int(round(self.temperature_c)))))
        self._set("present_input_voltage", int(round(self.supply_voltage * 10)))
        self._set("moving", int(abs(vel) > self.moving_threshold))
        self._set("realtime_tick", int(self._tick_ms) % 32768)
        if self.mode in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
            ref = self.goal_position if self._traj_pos is None else int(round(self._traj_pos))
            self._set("position_trajectory", ref)
            self._set("velocity_trajectory", int(round(self._traj_vel / (VELOCITY_UNIT_RAD_S / RAD_PER_TICK))))

    def heard(self) -> None:
        """An instruction packet reached this servo (feeds the Bus Watchdog)."""
        self._since_heard = 0.0

    def _profile(self, pos: float, dt: float) -> float:
        """Position reference (ticks) from the velocity/acceleration profile (Profile Velocity 112 in
        0.229 rpm, Profile Acceleration 108 in 214.577 rev/min^2; 0 = unlimited): a trapezoid, or a
        triangle when the move is too short to reach the profile velocity."""
        goal = float(self.goal_position)
        if self.profile_velocity == 0 and self.profile_acceleration == 0:
            self._traj_pos, self._traj_vel = None, 0.0
            return goal
        if self._traj_pos is None:
            self._traj_pos, self._traj_vel = pos, 0.0
        ticks_per_rev = 2.0 * math.pi / RAD_PER_TICK
        v_max = self.profile_velocity * 0.229 / 60.0 * ticks_per_rev if self.profile_velocity else math.inf
        a_max = self.profile_acceleration * 214.577 / 3600.0 * ticks_per_rev if self.profile_acceleration \
            else math.inf
        x, v = self._traj_pos, self._traj_vel
        e = goal - x
        if e == 0.0 and v == 0.0:
            return goal
        v_des = math.copysign(min(v_max, math.sqrt(2.0 * a_max * abs(e)) if math.isfinite(a_max) else v_max), e)
        if math.isinf(v_des):
            x, v = goal, 0.0
        else:
            dv = v_des - v
            if math.isfinite(a_max):
                dv = max(-a_max * dt, min(a_max * dt, dv))
            v += dv
            x += v * dt
            if (goal - x) * e <= 0:  # reached (or passed) the goal this step
                x, v = goal, 0.0
        self._traj_pos, self._traj_vel = x, v
        return x

    def _watchdog(self, dt: float) -> None:
        """Bus Watchdog (98, units of 20 ms): with torque on and no instruction for longer than
        its value, the servo stops (position modes hold, others get zero goals) and the item reads -1;
        goals then refuse writes (Data Range Error) until Bus Watchdog is written 0."""
        wd = self.mem[98]
        if not self.torque_on or not 1 <= wd <= 127:
            self._since_heard = 0.0
            return
        self._since_heard += dt
        if self._since_heard <= wd * 0.020:
            return
        if self.mode in (MODE_POSITION, MODE_EXTENDED_POSITION, MODE_CURRENT_POSITION):
            self._set("goal_position", self._position_ticks())
        else:
            for name in ("goal_pwm", "goal_velocity") + (("goal_current",) if self.model.has_current else ()):
                self._set(name, 0)
        self.mem[98] = 0xFF
        self._refresh()

    def step(self, q_rad: float, dq_rad_s: float, dt: float) -> float:
        """Run the servo's controller for ``dt`` s at output state (q, dq); return the net torque (N m)."""
        m = self.model
        self._watchdog(dt)
        self._q, self._dq = q_rad, dq_rad_s
        self._tick_ms += dt * 1000.0
        v_s = self.supply_voltage
        r = m.nominal_voltage / m.stall_current_a
        ke = m.nominal_voltage / m.no_load_speed_rad_s
        i_lim = (self.current_limit * m.current_unit_a) if self.current_limit is not None else m.stall_current_a
        i = 0.0
        pwm = 0.0
        if self.torque_on:
            pos = q_rad / RAD_PER_TICK + self.homing_offset + self.turn_offset
            dt_ms = dt * 1000.0
            mode = self.mode
            if mode == MODE_CURRENT:
                i_cmd = self.goal_current * m.current_unit_a
                i = max(-i_lim, min(i_lim, i_cmd))
                i = max((-v_s - ke * dq_rad_s) / r, min((v_s - ke * dq_rad_s) / r, i))
                pwm = (i * r + ke * dq_rad_s) / v_s * 885.0
            else:
                if mode == MODE_VELOCITY:
                    err = self.goal_velocity - dq_rad_s / VELOCITY_UNIT_RAD_S
                    self._vel_integral += err * dt_ms
                    self._vel_integral = max(-1e6, min(1e6, self._vel_integral))
                    out = self.kvp * err + self.kvi * self._vel_integral
                elif mode == MODE_PWM:
                    out = float(self.goal_pwm)
                else:  # position modes
                    err = self._profile(pos, dt) - pos
                    self._pos_integral += err * dt_ms
                    self._pos_integral = max(-1e6, min(1e6, self._pos_integral))
                    derr = -dq_rad_s / RAD_PER_TICK / 1000.0  # ticks per ms, derivative on measurement
                    out = self.kpp * err + self.kpi * self._pos_integral + self.kpd * derr
                if mode == MODE_CURRENT_POSITION:
                    i_goal = abs(self.goal_current) * m.current_unit_a
                    i = out / 885.0 * m.stall_current_a
                    i = max(-min(i_lim, i_goal), min(min(i_lim, i_goal), i))
                    i = max((-v_s - ke * dq_rad_s) / r, min((v_s - ke * dq_rad_s) / r, i))
                    pwm = (i * r + ke * dq_rad_s) / v_s * 885.0
                else:
                    pwm = max(-self.pwm_limit, min(self.pwm_limit, out))
                    i = (pwm / 885.0 * v_s - ke * dq_rad_s) / r
                    i = max(-i_lim, min(i_lim, i))
        # the current follows its target with the electrical/current-loop time constant
        i = self.current_a + (i - self.current_a) * (1.0 - math.exp(-dt / CURRENT_TAU_S))
        self.current_a = i
        self.pwm = pwm
        self._update_health(i, i_lim, dq_rad_s, dt)
        friction = self.viscous_friction * dq_rad_s + self.coulomb_friction * math.tanh(dq_rad_s / 0.01)
        return self.kt_nm_per_a * i - friction

    def _update_health(self, i: float, i_lim: float, dq: float, dt: float) -> None:
        m = self.model
        # first-order thermal model: 60 C rise at stall current, 120 s time constant
        rise = 60.0 * (i / m.stall_current_a) ** 2
        self.temperature_c += dt * (self.ambient_c + rise - self.temperature_c) / 120.0
        if abs(i) >= 0.95 * i_lim and abs(dq) < 0.05:
            self._overload_time += dt
        else:
            self._overload_time = 0.0
        self._health_dt += dt
        if self._health_dt < 0.005:  # the checks below are slow compared with the physics step
            return
        self._health_dt = 0.0
        bits = self.mem[70]
        if self.temperature_c > self.mem[31]:
            bits |= HardwareErrorStatus.OVERHEATING
        v10 = self.supply_voltage * 10.0
        if not self.get("min_voltage_limit") <= v10 <= self.get("max_voltage_limit"):
            bits |= HardwareErrorStatus.INPUT_VOLTAGE
        if self._overload_time > 1.0:
            bits |= HardwareErrorStatus.OVERLOAD
        if bits != self.mem[70]:
            self.set_hardware_error(bits)

    def set_hardware_error(self, bits: int) -> None:
        """Set Hardware Error Status; bits also in Shutdown turn torque off (latched until reboot)."""
        self.mem[70] = bits & 0xFF
        if bits & self.mem[63] and self.mem[64]:
            self.mem[64] = 0
            self.torque_on = False
