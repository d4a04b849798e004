"""From a 3D mouse's or a gamepad's events to a Cartesian velocity: axes, dead band, scaling, clutch.

A :class:`DeviceProfile` binds device axes to the six components of a twist ``[vx vy vz wx wy wz]``
(m/s, rad/s) in the robot's base frame, for an operator who faces the robot from behind its base
(pushing the 3D mouse's cap away from you moves the tool away, +x; to the right, -y; pulling it
up, +z). Each axis is normalised to [-1, 1] from its raw range, passed through a dead band
(``|x| < d`` gives 0; the rest is rescaled so the output starts from 0 at the band's edge) and
scaled by ``v_max_m_s`` or ``w_max_rad_s``. The clutch is a dead man's button: motion only while
one of ``clutch_buttons`` is held; releasing it stops the twist at once.

Events are applied per frame (at ``SYN_REPORT``). ``SYN_DROPPED`` (the kernel's buffer overflowed:
the device state is unknown) zeroes every axis and releases the clutch until it is pressed again.
Relative axes (a SpaceMouse on older kernels reports its deflection as ``EV_REL``, and the kernel
drops zero-valued relative events, so "back to centre" never arrives) fall back to 0 when not
refreshed for ``rel_timeout_s``.

:data:`SPACEMOUSE` and :data:`GAMEPAD` are the default profiles; :func:`profile_for` picks one for a
``DeviceInfo`` and fits absolute axes to the device's reported ranges.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from evdev import ecodes as e

from machaon.teleop.input_device import DeviceInfo

__all__ = ["GAMEPAD", "SPACEMOUSE", "AxisBinding", "DeviceMapper", "DeviceProfile", "profile_for"]


@dataclass(frozen=True)
class AxisBinding:
    """Raw axis (``ev_type`` EV_REL/EV_ABS, ``code``) to twist component ``index`` (0..5) with
    ``sign``; raw values ``lo``..``hi`` map to -1..1 (a trigger-style axis from ``lo`` at rest
    with ``unipolar``: lo..hi to 0..1)."""

    ev_type: int
    code: int
    index: int
    sign: float = 1.0
    lo: float = -350.0
    hi: float = 350.0
    unipolar: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.index <= 5 or self.sign not in (1.0, -1.0, 1, -1) or not self.hi > self.lo:
            raise ValueError(f"axis binding {self}: index 0..5, sign +-1 and lo < hi")

    def normalise(self, raw: float) -> float:
        if self.unipolar:
            x = (raw - self.lo) / (self.hi - self.lo)
        else:
            x = (2.0 * raw - (self.hi + self.lo)) / (self.hi - self.lo)
        return float(min(1.0, max(-1.0, x)))


@dataclass(frozen=True)
class DeviceProfile:
    """How a kind of device drives the tool (module docstring). Units: m/s, rad/s, s."""

    name: str
    axes: tuple[AxisBinding, ...]
    clutch_buttons: tuple[int, ...]
    dead_band: float = 0.1
    v_max_m_s: float = 0.05
    w_max_rad_s: float = 0.5
    rel_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.dead_band < 1.0:
            raise ValueError("dead_band: must be in [0, 1)")
        for name in ("v_max_m_s", "w_max_rad_s", "rel_timeout_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive number")
        if not self.clutch_buttons:
            raise ValueError("clutch_buttons: at least one")


# SpaceMouse: raw x right, y away from the user, z down; rx, ry, rz about those (kernel hid-generic,
# as spacenavd reads them), full scale about +-350.
SPACEMOUSE = DeviceProfile(
    "spacemouse",
    axes=tuple(AxisBinding(t, c, i, s) for t in (e.EV_REL, e.EV_ABS) for c, i, s in (
        (0x00, 1, -1.0), (0x01, 0, 1.0), (0x02, 2, -1.0),  # X -> -y, Y -> +x, Z -> -z
        (0x03, 4, -1.0), (0x04, 3, 1.0), (0x05, 5, -1.0))),  # RX -> -wy, RY -> +wx, RZ -> -wz
    clutch_buttons=(e.BTN_0,),
    dead_band=0.05,
)

# Gamepad (Linux gamepad mapping): left stick moves in the horizontal plane, right stick up/down
# and yaw; the right shoulder button is the clutch. Stick ranges are fitted from the device.
GAMEPAD = DeviceProfile(
    "gamepad",
    axes=(AxisBinding(e.EV_ABS, e.ABS_Y, 0, -1.0, -32768, 32767),  # left stick up: away (+x)
          AxisBinding(e.EV_ABS, e.ABS_X, 1, -1.0, -32768, 32767),  # left stick right: -y
          AxisBinding(e.EV_ABS, e.ABS_RY, 2, -1.0, -32768, 32767),  # right stick up: +z
          AxisBinding(e.EV_ABS, e.ABS_RX, 5, -1.0, -32768, 32767)),  # right stick right: yaw -z
    clutch_buttons=(e.BTN_TR,),
    dead_band=0.15,
)


def profile_for(info: DeviceInfo, **overrides: object) -> DeviceProfile:
    """The default profile of ``info.kind``, its absolute axes fitted to the device's ranges, with
    ``overrides`` (e.g. ``v_max_m_s``) applied. ValueError for an unknown kind."""
    base = {"spacemouse": SPACEMOUSE, "gamepad": GAMEPAD}.get(info.kind)
    if base is None:
        raise ValueError(f"no profile for device kind {info.kind!r}")
    axes = tuple(dataclasses.replace(a, lo=info.abs_ranges[a.code][0], hi=info.abs_ranges[a.code][1])
                 if a.ev_type == e.EV_ABS and a.code in info.abs_ranges
                 and info.abs_ranges[a.code][1] > info.abs_ranges[a.code][0] else a
                 for a in base.axes)
    return dataclasses.replace(base, axes=axes, **overrides)


class DeviceMapper:
    """Keeps a device's state from its events and turns it into a twist (module docstring).

    ``feed(events, t)`` with ``evdev.InputEvent`` objects and the time they were read (s,
    monotonic); ``twist(t)`` the Cartesian velocity now (zeros without the clutch); ``clutch``.
    """

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self._by_key = {(a.ev_type, a.code): a for a in profile.axes}
        self._value: dict[tuple[int, int], float] = {}
        self._stamp: dict[tuple[int, int], float] = {}
        self._pending: list = []
        self._buttons: set[int] = set()
        self._dropping = False
        self.frames = 0
        self.dropped = 0

    @property
    def clutch(self) -> bool:
        return any(b in self._buttons for b in self.profile.clutch_buttons)

    def feed(self, events: list, t: float) -> None:
        for ev in events:
            if ev.type == e.EV_SYN:
                if ev.code == e.SYN_DROPPED:
                    self._reset()
                    self._dropping = True
                elif ev.code == e.SYN_REPORT:
                    if not self._dropping:
                        self._apply(self._pending, t)
                        self.frames += 1
                    self._pending = []
                    self._dropping = False
                continue
            if not self._dropping:
                self._pending.append(ev)

    def _apply(self, events: list, t: float) -> None:
        for ev in events:
            if ev.type == e.EV_KEY:
                if ev.value:
                    self._buttons.add(ev.code)
                else:
                    self._buttons.discard(ev.code)
            elif (ev.type, ev.code) in self._by_key:
                self._value[(ev.type, ev.code)] = float(ev.value)
                self._stamp[(ev.type, ev.code)] = t

    def _reset(self) -> None:
        self.dropped += 1
        self._value.clear()
        self._pending = []
        self._buttons.clear()  # only a press that arrives after this engages the clutch again

    def twist(self, t: float) -> np.ndarray:
        """``[vx vy vz wx wy wz]`` (m/s, rad/s, base frame) from the latest frame."""
        out = np.zeros(6)
        if not self.clutch:
            return out
        p = self.profile
        for key, raw in self._value.items():
            a = self._by_key[key]
            if a.ev_type == e.EV_REL and t - self._stamp[key] > p.rel_timeout_s:
                continue  # not refreshed: the cap is back at centre (zero REL events never arrive)
            x = a.normalise(raw)
            mag = abs(x)
            if mag <= p.dead_band:
                continue
            x = math.copysign((mag - p.dead_band) / (1.0 - p.dead_band), x)
            out[a.index] += a.sign * x * (p.v_max_m_s if a.index < 3 else p.w_max_rad_s)
        return out
