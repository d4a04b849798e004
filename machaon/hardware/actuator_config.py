"""The setup of a servo chain: :class:`ActuatorConfig` (bus, control, software limits) and one
:class:`JointConfig` per joint (servo id, model, mounting, torque model), from a TOML file or a
robot description's ``[hardware]`` servo map. ``ActuatorBackend`` (``machaon.hardware.backend``)
drives the chain it describes.

Units: SI, except where a TOML key says otherwise (``latency_ms``, ``return_delay_us``,
``bus_watchdog_ms``, ``zero_ticks``). Bad values raise ``ValueError`` naming the key or the joint.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from machaon.hardware.control_table import (
    MODE_CURRENT,
    MODE_CURRENT_POSITION,
    MODE_POSITION,
    MODE_VELOCITY,
    model_by_name,
)
from machaon.hardware.motor import JointMotor, TorqueCurve
from machaon.types import CommandMode

__all__ = ["MODES", "ActuatorConfig", "JointConfig"]

MODES = {"current": MODE_CURRENT, "position": MODE_POSITION, "current_position": MODE_CURRENT_POSITION,
         "velocity": MODE_VELOCITY}
COMMAND_MODE = {"current": CommandMode.TORQUE, "position": CommandMode.POSITION,
                "current_position": CommandMode.POSITION, "velocity": CommandMode.VELOCITY}


@dataclass(frozen=True)
class JointConfig:
    """One joint: its servo ``id`` and ``model``, ``direction`` (+1/-1), the servo tick at the joint's
    zero (``zero_ticks``), and optional joint limits in rad (goal positions are clamped to them).

    Torque model (module docstring): ``kt_nm_per_a`` (None: the model's datasheet stall torque /
    stall current), or a curve ``curve_current_a``/``curve_torque_nm`` (A, N m, positive and
    increasing); ``coulomb_nm``/``viscous_nms_rad``: identified gear friction (0: none known);
    ``current_limit_a``: this joint's current cap (A); ``gear_ratio``: for the record (the servo's
    own, already inside its position and torque figures).
    """

    name: str
    id: int
    model: str = "XM430-W350"
    direction: int = 1
    zero_ticks: int = 2048
    min_rad: float = -math.inf
    max_rad: float = math.inf
    kt_nm_per_a: float | None = None
    curve_current_a: tuple[float, ...] | None = None
    curve_torque_nm: tuple[float, ...] | None = None
    coulomb_nm: float = 0.0
    viscous_nms_rad: float = 0.0
    current_limit_a: float | None = None
    gear_ratio: float | None = None

    def torque_curve(self) -> TorqueCurve:
        """The joint's torque-current curve (ValueError for a malformed one)."""
        if (self.curve_current_a is None) != (self.curve_torque_nm is None):
            raise ValueError(f"joint {self.name}: give both curve_current_a and curve_torque_nm, or neither")
        if self.curve_current_a is not None:
            return TorqueCurve(tuple(self.curve_current_a), tuple(self.curve_torque_nm))
        kt = self.kt_nm_per_a if self.kt_nm_per_a is not None else model_by_name(self.model).kt_nm_per_a
        return TorqueCurve.linear(kt)


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
        max_temperature_c = 70    # software limits (optional): protective stop beyond them
        min_voltage_v = 10.5
        max_voltage_v = 14.8
        friction_compensation = 1.0   # fraction of the joints' friction model added to torques
        start_hold = false        # current mode: hold position until the first torque command

        [[joints]]
        name = "shoulder"
        id = 1
        model = "XM430-W350"
        direction = 1
        zero_ticks = 2048
        kt_nm_per_a = 1.783       # optional torque model, see JointConfig
        coulomb_nm = 0.03
        viscous_nms_rad = 0.05
        current_limit_a = 1.35

    The same sections under ``[hardware]`` in a robot description's TOML: :meth:`from_robot`.
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
    max_temperature_c: float | None = None
    min_voltage_v: float | None = None
    max_voltage_v: float | None = None
    friction_compensation: float = 1.0
    start_hold: bool = False
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
        for j in self.joints:
            if j.current_limit_a is not None and not (j.current_limit_a > 0):
                raise ValueError(f"joint {j.name}: current_limit_a must be positive")
            if j.kt_nm_per_a is not None and not (j.kt_nm_per_a > 0):
                raise ValueError(f"joint {j.name}: kt_nm_per_a must be positive")
            self.motor(j)  # checks the curve and the friction values
        for name in ("max_temperature_c", "min_voltage_v", "max_voltage_v"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive number")
        if self.min_voltage_v is not None and self.max_voltage_v is not None and \
                self.min_voltage_v >= self.max_voltage_v:
            raise ValueError("min_voltage_v: must be below max_voltage_v")
        if not (math.isfinite(self.friction_compensation) and 0 <= self.friction_compensation <= 1):
            raise ValueError("friction_compensation: must be in [0, 1]")

    def motor(self, joint: JointConfig) -> JointMotor:
        """The torque model of ``joint`` (ValueError naming the joint for bad values)."""
        try:
            return JointMotor(joint.torque_curve(), joint.coulomb_nm, joint.viscous_nms_rad,
                              self.friction_compensation)
        except ValueError as exc:
            raise ValueError(f"joint {joint.name}: {exc}") from None

    @classmethod
    def from_dict(cls, d: dict, *, port: str | None = None) -> ActuatorConfig:
        """Build from the TOML layout (class docstring), or from a robot description's TOML whose
        ``[hardware]`` section has it; ValueError naming an unknown or bad key."""
        if "joints" not in d and isinstance(d.get("hardware"), dict):
            d = d["hardware"]
        bus = d.get("bus", {})
        ctl = d.get("control", {})
        known = set(JointConfig.__dataclass_fields__)
        joints = []
        for k, j in enumerate(d.get("joints", ())):
            bad = sorted(set(j) - known)
            if bad:
                raise ValueError(f"joints[{k}]: unknown keys {bad}; known: {sorted(known)}")
            if "name" not in j or "id" not in j:
                raise ValueError(f"joints[{k}]: needs at least name and id")
            j = dict(j)
            for key in ("curve_current_a", "curve_torque_nm"):
                if key in j:
                    j[key] = tuple(float(x) for x in j[key])
            joints.append(JointConfig(**j))
        joints = tuple(joints)
        opt = lambda key: None if ctl.get(key) is None else float(ctl[key])  # noqa: E731
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
            current_limit_a=opt("current_limit_a"),
            bus_watchdog_ms=float(ctl.get("bus_watchdog_ms", 0.0)),
            max_temperature_c=opt("max_temperature_c"),
            min_voltage_v=opt("min_voltage_v"),
            max_voltage_v=opt("max_voltage_v"),
            friction_compensation=float(ctl.get("friction_compensation", 1.0)),
            start_hold=bool(ctl.get("start_hold", False)),
        )

    @classmethod
    def from_toml(cls, path: str | Path, *, port: str | None = None) -> ActuatorConfig:
        """Read a config file; ``port`` overrides ``[bus] port``. Errors name the bad key."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(data, port=port)  # (a robot description: its [hardware] servo map)

    @classmethod
    def from_robot(cls, robot: str | Path, *, port: str | None = None) -> ActuatorConfig:
        """The servo map of a robot description (``"desk"`` or a description TOML path): its
        ``[hardware]`` section. ValueError when the description has none."""
        from machaon.robot.description import DESCRIPTIONS_DIR

        path = Path(robot)
        if path.suffix.lower() != ".toml":
            path = DESCRIPTIONS_DIR / f"{robot}.toml"
        if not path.is_file():
            raise ValueError(f"robot {robot!r}: no description TOML at {path}")
        with open(path, "rb") as f:
            data = tomllib.load(f)
        if "hardware" not in data:
            raise ValueError(f"robot {robot!r}: its description ({path.name}) has no [hardware] servo map")
        return cls.from_dict(data["hardware"], port=port)
