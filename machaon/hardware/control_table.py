"""Control tables of common Dynamixel X-series servos (Protocol 2.0), as data, and unit conversions.

Addresses, sizes, access and ranges follow the ROBOTIS e-Manual pages of each model. The motor
figures (stall torque/current, no-load speed at the recommended voltage, gear ratio) come from the
same pages; the torque constant used to turn current into torque is stall torque / stall current at
the output shaft (the e-Manual quotes it as N m/A). The reflected rotor inertia and friction are
estimates for the emulator's motor model, not datasheet values.

Every conversion between SI units and wire units (ticks, 0.229 rpm, 2.69 mA, 2 us) is in
:class:`Units`, the one named place for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Operating modes (address 11)
MODE_CURRENT = 0
MODE_VELOCITY = 1
MODE_POSITION = 3
MODE_EXTENDED_POSITION = 4
MODE_CURRENT_POSITION = 5
MODE_PWM = 16

BAUD_CODES = {0: 9600, 1: 57600, 2: 115200, 3: 1_000_000, 4: 2_000_000, 5: 3_000_000, 6: 4_000_000,
              7: 4_500_000}
BAUD_TO_CODE = {v: k for k, v in BAUD_CODES.items()}


@dataclass(frozen=True)
class Field:
    """One control table item. ``lo``/``hi`` bound raw values; ``limit`` names the item whose
    value bounds this one (e.g. Goal Current by Current Limit, symmetric) at write time."""

    name: str
    address: int
    size: int
    access: str  # "R" or "RW"
    default: int = 0
    lo: int | None = None
    hi: int | None = None
    eeprom: bool = False
    signed: bool = False
    limit: str | None = None


def _x_series_fields(*, current_limit: int | None, velocity_limit: int, temp_limit: int, vmax: int,
                     vmin: int, vrange: tuple[int, int], pos_p: int, vel_i: int, vel_p: int,
                     modes: tuple[int, ...], load_instead_of_current: bool = False) -> tuple[Field, ...]:
    f = [
        Field("model_number", 0, 2, "R", eeprom=True),
        Field("model_information", 2, 4, "R", eeprom=True),
        Field("firmware_version", 6, 1, "R", eeprom=True),
        Field("id", 7, 1, "RW", 1, 0, 252, eeprom=True),
        Field("baud_rate", 8, 1, "RW", 1, 0, 7, eeprom=True),
        Field("return_delay_time", 9, 1, "RW", 250, 0, 254, eeprom=True),
        Field("drive_mode", 10, 1, "RW", 0, 0, 13, eeprom=True),
        Field("operating_mode", 11, 1, "RW", 3, 0, 16, eeprom=True),
        Field("secondary_id", 12, 1, "RW", 255, 0, 255, eeprom=True),
        Field("protocol_type", 13, 1, "RW", 2, 1, 2, eeprom=True),
        Field("homing_offset", 20, 4, "RW", 0, -1_044_479, 1_044_479, eeprom=True, signed=True),
        Field("moving_threshold", 24, 4, "RW", 10, 0, 1023, eeprom=True),
        Field("temperature_limit", 31, 1, "RW", temp_limit, 0, 100, eeprom=True),
        Field("max_voltage_limit", 32, 2, "RW", vmax, vrange[0], vrange[1], eeprom=True),
        Field("min_voltage_limit", 34, 2, "RW", vmin, vrange[0], vrange[1], eeprom=True),
        Field("pwm_limit", 36, 2, "RW", 885, 0, 885, eeprom=True),
        Field("velocity_limit", 44, 4, "RW", velocity_limit, 0, 1023, eeprom=True),
        Field("max_position_limit", 48, 4, "RW", 4095, 0, 4095, eeprom=True),
        Field("min_position_limit", 52, 4, "RW", 0, 0, 4095, eeprom=True),
        Field("startup_configuration", 60, 1, "RW", 0, 0, 3, eeprom=True),
        Field("shutdown", 63, 1, "RW", 52, 0, 255, eeprom=True),
        Field("torque_enable", 64, 1, "RW", 0, 0, 1),
        Field("led", 65, 1, "RW", 0, 0, 1),
        Field("status_return_level", 68, 1, "RW", 2, 0, 2),
        Field("registered_instruction", 69, 1, "R", 0),
        Field("hardware_error_status", 70, 1, "R", 0),
        Field("velocity_i_gain", 76, 2, "RW", vel_i, 0, 16383),
        Field("velocity_p_gain", 78, 2, "RW", vel_p, 0, 16383),
        Field("position_d_gain", 80, 2, "RW", 0, 0, 16383),
        Field("position_i_gain", 82, 2, "RW", 0, 0, 16383),
        Field("position_p_gain", 84, 2, "RW", pos_p, 0, 16383),
        Field("feedforward_2nd_gain", 88, 2, "RW", 0, 0, 16383),
        Field("feedforward_1st_gain", 90, 2, "RW", 0, 0, 16383),
        Field("bus_watchdog", 98, 1, "RW", 0, 0, 127),
        Field("goal_pwm", 100, 2, "RW", 0, signed=True, limit="pwm_limit"),
        Field("goal_velocity", 104, 4, "RW", 0, signed=True, limit="velocity_limit"),
        Field("profile_acceleration", 108, 4, "RW", 0, 0, 32767),
        Field("profile_velocity", 112, 4, "RW", 0, 0, 32767),
        Field("goal_position", 116, 4, "RW", 0, signed=True),
        Field("realtime_tick", 120, 2, "R", 0),
        Field("moving", 122, 1, "R", 0),
        Field("moving_status", 123, 1, "R", 0),
        Field("present_pwm", 124, 2, "R", 0, signed=True),
        Field("present_load" if load_instead_of_current else "present_current", 126, 2, "R", 0, signed=True),
        Field("present_velocity", 128, 4, "R", 0, signed=True),
        Field("present_position", 132, 4, "R", 0, signed=True),
        Field("velocity_trajectory", 136, 4, "R", 0, signed=True),
        Field("position_trajectory", 140, 4, "R", 0, signed=True),
        Field("present_input_voltage", 144, 2, "R", 0),
        Field("present_temperature", 146, 1, "R", 0),
        Field("backup_ready", 147, 1, "R", 0),
    ]
    if current_limit is not None:
        f.append(Field("current_limit", 38, 2, "RW", current_limit, 0, current_limit, eeprom=True))
        f.append(Field("goal_current", 102, 2, "RW", 0, signed=True, limit="current_limit"))
    for k in range(28):  # Indirect Address 1..28 and Indirect Data 1..28
        f.append(Field(f"indirect_address_{k + 1}", 168 + 2 * k, 2, "RW", 224 + k, 64, 661))
        f.append(Field(f"indirect_data_{k + 1}", 224 + k, 1, "RW", 0, 0, 255))
    return tuple(sorted(f, key=lambda x: x.address))


@dataclass(frozen=True)
class Model:
    """A servo model: its control table and the figures the unit conversions and emulator need.

    ``current_unit_a`` is None for models without current sensing (XL430: Present Load instead).
    ``kt_nm_per_a``: output torque per motor current (N m/A). ``stall_*`` and ``no_load_speed``
    are at ``nominal_voltage``. ``rotor_inertia_out`` is the motor rotor inertia reflected to the
    output shaft (kg m^2, times gear ratio squared) and ``viscous_friction``/``coulomb_friction``
    (N m s/rad, N m) are emulator estimates.
    """

    name: str
    model_number: int
    fields: tuple[Field, ...]
    modes: tuple[int, ...]
    current_unit_a: float | None
    kt_nm_per_a: float
    stall_torque_nm: float
    stall_current_a: float
    no_load_speed_rad_s: float
    nominal_voltage: float
    gear_ratio: float
    rotor_inertia_out: float
    viscous_friction: float
    coulomb_friction: float
    firmware_version: int = 48
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)
    by_address: dict[int, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "by_address", {f.address: f for f in self.fields})

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError naming the model when it has none."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no control table item {name!r}") from None

    @property
    def has_current(self) -> bool:
        return self.current_unit_a is not None

    @property
    def units(self) -> Units:
        return Units(self)


def _rpm(v: float) -> float:
    return v * 2.0 * math.pi / 60.0


XM430_W350 = Model(
    "XM430-W350", 1020,
    _x_series_fields(current_limit=1193, velocity_limit=200, temp_limit=80, vmax=160, vmin=95,
                     vrange=(95, 160), pos_p=800, vel_i=1920, vel_p=100, modes=(0, 1, 3, 4, 5, 16)),
    (0, 1, 3, 4, 5, 16), 2.69e-3, 4.1 / 2.3, 4.1, 2.3, _rpm(46), 12.0, 353.5, 0.010, 0.05, 0.03,
)
XM540_W270 = Model(
    "XM540-W270", 1120,
    _x_series_fields(current_limit=2047, velocity_limit=128, temp_limit=80, vmax=160, vmin=95,
                     vrange=(95, 160), pos_p=800, vel_i=1920, vel_p=100, modes=(0, 1, 3, 4, 5, 16)),
    (0, 1, 3, 4, 5, 16), 2.69e-3, 10.6 / 4.4, 10.6, 4.4, _rpm(30), 12.0, 272.5, 0.030, 0.10, 0.08,
)
XH430_W350 = Model(
    "XH430-W350", 1000,
    _x_series_fields(current_limit=648, velocity_limit=130, temp_limit=80, vmax=160, vmin=95,
                     vrange=(95, 160), pos_p=900, vel_i=1920, vel_p=100, modes=(0, 1, 3, 4, 5, 16)),
    (0, 1, 3, 4, 5, 16), 2.69e-3, 3.4 / 1.3, 3.4, 1.3, _rpm(30), 12.0, 353.5, 0.010, 0.05, 0.03,
)
XL430_W250 = Model(
    "XL430-W250", 1060,
    _x_series_fields(current_limit=None, velocity_limit=265, temp_limit=72, vmax=140, vmin=60,
                     vrange=(60, 140), pos_p=640, vel_i=1000, vel_p=100, modes=(1, 3, 4, 16),
                     load_instead_of_current=True),
    (1, 3, 4, 16), None, 1.5 / 1.4, 1.5, 1.4, _rpm(61), 12.0, 258.5, 0.004, 0.03, 0.02,
)

MODELS: dict[str, Model] = {m.name: m for m in (XM430_W350, XM540_W270, XH430_W350, XL430_W250)}
MODELS_BY_NUMBER: dict[int, Model] = {m.model_number: m for m in MODELS.values()}


def model_by_name(name: str) -> Model:
    """Look a model up by name (case-insensitive, e.g. ``"xm430-w350"``); ValueError listing known ones."""
    for k, m in MODELS.items():
        if k.lower() == name.strip().lower():
            return m
    raise ValueError(f"unknown servo model {name!r}; known: {', '.join(MODELS)}")


TICKS_PER_REV = 4096
RAD_PER_TICK = 2.0 * math.pi / TICKS_PER_REV  # 0.088 deg
VELOCITY_UNIT_RAD_S = 0.229 * 2.0 * math.pi / 60.0  # 0.229 rpm
RETURN_DELAY_UNIT_S = 2e-6
VOLTAGE_UNIT_V = 0.1


@dataclass(frozen=True)
class Units:
    """SI <-> wire conversions for one model: the one place ticks, 0.229 rpm and mA appear.

    Position ticks count from the servo's own zero (tick 0); the joint zero offset and direction
    are the backend's calibration, not this class's. Values going to the wire are rounded to the
    nearest integer; NaN/Inf raise ValueError.
    """

    model: Model

    @staticmethod
    def _round(x: float, what: str) -> int:
        if not math.isfinite(x):
            raise ValueError(f"{what}: not finite ({x!r})")
        return int(round(x))

    def rad_to_ticks(self, rad: float) -> int:
        return self._round(rad / RAD_PER_TICK, "position")

    @staticmethod
    def ticks_to_rad(ticks: int) -> float:
        return ticks * RAD_PER_TICK

    def rad_s_to_velocity(self, rad_s: float) -> int:
        return self._round(rad_s / VELOCITY_UNIT_RAD_S, "velocity")

    @staticmethod
    def velocity_to_rad_s(units: int) -> float:
        return units * VELOCITY_UNIT_RAD_S

    def amps_to_current(self, amps: float) -> int:
        if self.model.current_unit_a is None:
            raise ValueError(f"{self.model.name} has no current control")
        return self._round(amps / self.model.current_unit_a, "current")

    def current_to_amps(self, units: int) -> float:
        if self.model.current_unit_a is None:
            raise ValueError(f"{self.model.name} has no current sensing")
        return units * self.model.current_unit_a

    def nm_to_amps(self, tau_nm: float) -> float:
        return tau_nm / self.model.kt_nm_per_a

    def amps_to_nm(self, amps: float) -> float:
        return amps * self.model.kt_nm_per_a

    def nm_to_current(self, tau_nm: float) -> int:
        return self.amps_to_current(self.nm_to_amps(tau_nm))

    def current_to_nm(self, units: int) -> float:
        return self.amps_to_nm(self.current_to_amps(units))

    @staticmethod
    def return_delay_to_s(units: int) -> float:
        return units * RETURN_DELAY_UNIT_S

    @staticmethod
    def s_to_return_delay(seconds: float) -> int:
        return max(0, min(254, int(round(seconds / RETURN_DELAY_UNIT_S))))

    @staticmethod
    def voltage_to_v(units: int) -> float:
        return units * VOLTAGE_UNIT_V


def encode_int(value: int, size: int) -> bytes:
    """Little-endian ``size`` bytes of ``value`` (two's complement for negatives). ValueError if it does not fit."""
    bits = 8 * size
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise ValueError(f"value {value} does not fit in {size} bytes")
    return (value & ((1 << bits) - 1)).to_bytes(size, "little")


def decode_int(data: bytes, signed: bool = False) -> int:
    return int.from_bytes(data, "little", signed=signed)
