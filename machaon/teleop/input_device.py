"""Operator input devices as event sources: a 3D mouse (3Dconnexion SpaceMouse) or a gamepad, read
through the Linux input subsystem (evdev).

Both kinds reach Linux as evdev devices (``/dev/input/eventN``): the kernel's HID driver turns a
SpaceMouse's HID reports into six axes (``EV_REL`` on older models, ``EV_ABS`` on newer ones) and
its buttons into ``BTN_0``/``BTN_1``...; a gamepad's driver (xpad, hid-sony, hid-generic) gives
sticks, triggers and ``BTN_SOUTH``... So one reader (python-evdev) serves both, with the kernel doing
the HID decoding (the alternative, hidapi on ``/dev/hidrawN``, would have us parse each vendor's
report layout ourselves and contend with spacenavd for the device).

:class:`EvdevSource` wraps anything python-evdev reads from (``evdev.InputDevice`` for a real
device; any ``evdev.eventio.EventIO`` on a file descriptor): ``read_events()`` returns the
``evdev.InputEvent`` objects waiting now (never blocks), and raises :class:`DeviceLost` when the
device is gone (unplugged: ``ENODEV``; end of file; any other read error). :func:`open_device`
opens a path (or ``"auto"``: the first SpaceMouse or gamepad found) and works out the device's
kind and axis ranges (:func:`device_kind`, ``DeviceInfo``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from machaon.errors import TeleopError

log = logging.getLogger(__name__)

__all__ = ["DeviceError", "DeviceInfo", "DeviceLost", "EvdevSource", "device_kind", "open_device"]

# USB vendor ids of 3Dconnexion devices: the Logitech-era SpaceNavigator/SpaceMouse and 3Dconnexion's own
SPACEMOUSE_VENDORS = (0x046D, 0x256F)


class DeviceError(TeleopError, ValueError):
    """An input device the user named cannot be opened or is not a 3D mouse or gamepad (bad input)."""


class DeviceLost(TeleopError, RuntimeError):
    """The input device went away (unplugged, or its file ended) while being read."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the mapping needs to know about a device: its name, kind (``"spacemouse"`` or
    ``"gamepad"``) and, for absolute axes, their raw ranges ``{code: (min, max)}``."""

    name: str
    kind: str
    abs_ranges: Mapping[int, tuple[int, int]] = field(default_factory=dict)


def device_kind(capabilities: Mapping[int, list], name: str = "", vendor: int = 0) -> str | None:
    """``"spacemouse"``, ``"gamepad"`` or None from evdev capabilities (``{EV_type: [codes or (code,
    AbsInfo)]}``, as ``InputDevice.capabilities()`` returns them), the name and the USB vendor id."""
    from evdev import ecodes as e

    def codes(ev_type: int) -> set[int]:
        return {c[0] if isinstance(c, tuple) else c for c in capabilities.get(ev_type, [])}

    keys, rel, absx = codes(e.EV_KEY), codes(e.EV_REL), codes(e.EV_ABS)
    six_rel = {e.REL_X, e.REL_Y, e.REL_Z, e.REL_RX, e.REL_RY, e.REL_RZ} <= rel
    six_abs = {e.ABS_X, e.ABS_Y, e.ABS_Z, e.ABS_RX, e.ABS_RY, e.ABS_RZ} <= absx
    if (six_rel or six_abs) and (vendor in SPACEMOUSE_VENDORS or "3dconnexion" in name.lower()
                                 or "spacemouse" in name.lower() or "space navigator" in name.lower()):
        return "spacemouse"
    if (e.BTN_GAMEPAD in keys or e.BTN_SOUTH in keys) and {e.ABS_X, e.ABS_Y} <= absx:
        return "gamepad"
    return None


class EvdevSource:
    """Events of one input device (module docstring). ``dev``: an ``evdev.InputDevice`` or any
    ``evdev.eventio.EventIO`` with a non-blocking ``fd``; ``info``: its name, kind and axis ranges.
    Use as a context manager (closes the device)."""

    def __init__(self, dev: object, info: DeviceInfo) -> None:
        self.dev = dev
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    def fileno(self) -> int:
        return self.dev.fileno()

    def read_events(self) -> list:
        """The events waiting now ([] when none); ``DeviceLost`` when the device is gone."""
        try:
            events = list(self.dev.read())
        except BlockingIOError:
            return []
        except OSError as exc:  # ENODEV when unplugged
            raise DeviceLost(f"input device {self.name!r} lost: {exc}") from None
        if not events:  # readable but nothing read: end of file
            raise DeviceLost(f"input device {self.name!r} lost: end of file")
        return events

    def close(self) -> None:
        close = getattr(self.dev, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EvdevSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _info(dev: object) -> DeviceInfo | None:
    from evdev import ecodes as e

    caps = dev.capabilities(absinfo=True)
    kind = device_kind(caps, dev.name, dev.info.vendor)
    if kind is None:
        return None
    ranges = {code: (ai.min, ai.max) for code, ai in caps.get(e.EV_ABS, []) if hasattr(ai, "min")}
    return DeviceInfo(dev.name, kind, ranges)


def open_device(path: str, kind: str | None = None) -> EvdevSource:
    """Open ``path`` (``/dev/input/eventN``, a ``/dev/input/by-id/...`` link, or ``"auto"``: the first
    3D mouse or gamepad in ``/dev/input``). ``kind`` overrides the detected kind. ``DeviceError``
    names what is wrong (no such device, no permission: the user needs the ``input`` group or a
    udev rule, not a 3D mouse or gamepad)."""
    import evdev

    if kind not in (None, "spacemouse", "gamepad"):
        raise DeviceError(f"device kind: 'spacemouse' or 'gamepad', got {kind!r}")
    if path == "auto":
        if not os.path.isdir("/dev/input"):
            raise DeviceError("no /dev/input on this machine: no input devices to use")
        for p in evdev.list_devices():
            try:
                dev = evdev.InputDevice(p)
            except OSError:
                continue
            info = _info(dev)
            if info is not None and (kind is None or info.kind == kind):
                log.info("input device %s: %s (%s)", p, info.name, info.kind)
                return EvdevSource(dev, info)
            dev.close()
        raise DeviceError("no 3D mouse or gamepad found in /dev/input (plugged in? readable by this user?)")
    try:
        dev = evdev.InputDevice(path)
    except OSError as exc:
        raise DeviceError(f"cannot open input device {path}: {exc} (is it plugged in, and readable by this "
                          "user, e.g. in the 'input' group?)") from None
    info = _info(dev)
    if info is None and kind is None:
        dev.close()
        raise DeviceError(f"{path} ({dev.name}) is neither a 3D mouse nor a gamepad; give --device-kind to use it")
    if info is None or (kind is not None and info.kind != kind):
        info = DeviceInfo(dev.name, kind, {} if info is None else info.abs_ranges)
    return EvdevSource(dev, info)
