"""Operator input devices: a 3D mouse and a gamepad mapped to Cartesian velocity, with dead band,
scaling, a dead man's clutch, and HOLD when the device goes away.

This machine has no ``/dev/uinput`` (the kernel here is built without it) and no ``/dev/input``, so
no kernel-made virtual device can exist. The virtual device here is the next real thing: a Unix
socket pair carrying ``struct input_event`` records, written by python-evdev's own writer
(``EventIO.write``/``syn``, the code ``UInput`` uses) and read by python-evdev's own reader
(``EventIO.read``, the code ``InputDevice`` uses) through a real file descriptor and ``select``.
What only a real device would add (the kernel's HID decoding, ``EVIOCG*`` capability queries,
``ENODEV`` on unplug) is not exercised here; capability detection is tested on the dicts
``InputDevice.capabilities()`` returns.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest
from evdev import AbsInfo, InputEvent, ecodes
from evdev.eventio import EventIO

from machaon.teleop.client import TeleopClient
from machaon.teleop.device_driver import DeviceTeleop
from machaon.teleop.device_mapping import GAMEPAD, SPACEMOUSE, DeviceMapper, profile_for
from machaon.teleop.input_device import DeviceError, DeviceInfo, DeviceLost, EvdevSource, device_kind, open_device
from machaon.teleop.messages import HoldReason, OperatorMode, SupervisorCode

from .conftest import PSK


class _FdEvents(EventIO):
    """python-evdev's event reader/writer on a file descriptor (what InputDevice and UInput are)."""

    def __init__(self, fd: int, name: str = "virtual") -> None:
        self.fd = fd
        self.path = name

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.fixture
def virtual_device():
    """(writer, source): events written on one end arrive at the EvdevSource on the other."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ra, rb = a.detach(), b.detach()
    os.set_blocking(rb, False)
    writer = _FdEvents(ra, "writer")
    source = EvdevSource(_FdEvents(rb), DeviceInfo("3Dconnexion SpaceMouse Compact", "spacemouse"))
    yield writer, source
    writer.close()
    source.close()


def _frame(writer, *events):
    for t, c, v in events:
        writer.write(t, c, v)
    writer.syn()


def _wait_events(source, timeout=2.0):
    import select

    t_end = time.monotonic() + timeout
    out = []
    while time.monotonic() < t_end:
        if select.select([source], [], [], 0.05)[0]:
            out += source.read_events()
            if out and out[-1].type == ecodes.EV_SYN:
                return out
    return out


def test_events_cross_a_real_descriptor_and_drive_the_twist(virtual_device):
    writer, source = virtual_device
    assert source.read_events() == []  # nothing yet: never blocks
    _frame(writer, (ecodes.EV_KEY, ecodes.BTN_0, 1), (ecodes.EV_REL, ecodes.REL_Y, 350))
    evs = _wait_events(source)
    assert all(isinstance(e, InputEvent) for e in evs)
    assert [(e.type, e.code, e.value) for e in evs][:2] == [(ecodes.EV_KEY, ecodes.BTN_0, 1),
                                                            (ecodes.EV_REL, ecodes.REL_Y, 350)]
    m = DeviceMapper(SPACEMOUSE)
    m.feed(evs, t=10.0)
    assert m.clutch
    np.testing.assert_allclose(m.twist(10.0), [SPACEMOUSE.v_max_m_s, 0, 0, 0, 0, 0])  # cap pushed away: +x
    # the writer closes (a device's file ends): the source says the device is lost
    writer.close()
    with pytest.raises(DeviceLost, match="end of file"):
        _wait_events(source)


def test_dead_band_scaling_clutch_and_relative_axis_timeout():
    m = DeviceMapper(SPACEMOUSE)
    ev = lambda t, c, v: InputEvent(0, 0, t, c, v)  # noqa: E731
    syn = ev(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    # without the clutch nothing moves, however far the cap goes
    m.feed([ev(ecodes.EV_REL, ecodes.REL_X, 350), syn], 0.0)
    assert not m.clutch and not m.twist(0.0).any()
    m.feed([ev(ecodes.EV_KEY, ecodes.BTN_0, 1), ev(ecodes.EV_REL, ecodes.REL_X, 10), syn], 0.0)
    assert not m.twist(0.0).any()  # 10/350 = 0.03: inside the 5 % dead band
    m.feed([ev(ecodes.EV_REL, ecodes.REL_X, 175), ev(ecodes.EV_REL, ecodes.REL_RZ, -350), syn], 0.0)
    x = (0.5 - 0.05) / 0.95  # half deflection, rescaled from the dead band's edge
    np.testing.assert_allclose(m.twist(0.0), [0, -x * 0.05, 0, 0, 0, 0.5], atol=1e-12)  # right: -y; twist: yaw
    # relative axes not refreshed for 0.1 s: back at centre (the kernel drops zero REL events)
    assert not m.twist(0.2).any()
    # events before their SYN_REPORT are not applied yet
    m.feed([ev(ecodes.EV_REL, ecodes.REL_Z, 350)], 0.2)
    assert not m.twist(0.2).any()
    m.feed([syn], 0.2)
    np.testing.assert_allclose(m.twist(0.2), [0, 0, -0.05, 0, 0, 0])  # pressed down: -z
    # the clutch released: the twist stops at once
    m.feed([ev(ecodes.EV_KEY, ecodes.BTN_0, 0), syn], 0.21)
    assert not m.clutch and not m.twist(0.21).any()


def test_dropped_events_release_the_clutch_until_pressed_again():
    m = DeviceMapper(profile_for(DeviceInfo("pad", "gamepad", {ecodes.ABS_X: (0, 255), ecodes.ABS_Y: (0, 255)})))
    ev = lambda t, c, v: InputEvent(0, 0, t, c, v)  # noqa: E731
    syn = ev(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    m.feed([ev(ecodes.EV_KEY, ecodes.BTN_TR, 1), ev(ecodes.EV_ABS, ecodes.ABS_Y, 0), syn], 0.0)
    np.testing.assert_allclose(m.twist(0.0), [GAMEPAD.v_max_m_s, 0, 0, 0, 0, 0])  # stick up (fitted 0..255): +x
    m.feed([ev(ecodes.EV_ABS, ecodes.ABS_Y, 128), syn], 0.0)
    assert not m.twist(0.0).any()  # centred (within the 15 % dead band)
    m.feed([ev(ecodes.EV_ABS, ecodes.ABS_Y, 0), ev(ecodes.EV_SYN, ecodes.SYN_DROPPED, 0),
            ev(ecodes.EV_ABS, ecodes.ABS_X, 0), syn], 1.0)
    assert not m.clutch and not m.twist(1.0).any() and m.dropped == 1  # state unknown: stop
    m.feed([ev(ecodes.EV_ABS, ecodes.ABS_Y, 0), syn], 1.1)
    assert not m.twist(1.1).any()  # the stick alone does not move the robot again
    m.feed([ev(ecodes.EV_KEY, ecodes.BTN_TR, 1), syn], 1.2)
    np.testing.assert_allclose(m.twist(1.2), [GAMEPAD.v_max_m_s, 0, 0, 0, 0, 0])


def test_device_kinds_from_capabilities_and_bad_paths():
    e = ecodes
    ai = AbsInfo(0, -350, 350, 0, 0, 0)
    space = {e.EV_KEY: [e.BTN_0, e.BTN_1], e.EV_ABS: [(c, ai) for c in (e.ABS_X, e.ABS_Y, e.ABS_Z, e.ABS_RX,
                                                                        e.ABS_RY, e.ABS_RZ)]}
    assert device_kind(space, "3Dconnexion SpaceMouse Compact", 0x256F) == "spacemouse"
    old = {e.EV_KEY: [e.BTN_0, e.BTN_1], e.EV_REL: [e.REL_X, e.REL_Y, e.REL_Z, e.REL_RX, e.REL_RY, e.REL_RZ]}
    assert device_kind(old, "3Dconnexion SpaceNavigator", 0x046D) == "spacemouse"
    stick = AbsInfo(0, -32768, 32767, 16, 128, 0)
    pad = {e.EV_KEY: [e.BTN_SOUTH, e.BTN_EAST, e.BTN_TL, e.BTN_TR], e.EV_ABS: [(e.ABS_X, stick), (e.ABS_Y, stick)]}
    assert device_kind(pad, "Microsoft X-Box 360 pad", 0x045E) == "gamepad"
    assert device_kind({e.EV_KEY: [e.KEY_A]}, "keyboard") is None
    with pytest.raises(DeviceError, match="cannot open input device"):
        open_device("/dev/input/event99")
    if not os.path.isdir("/dev/input"):
        with pytest.raises(DeviceError, match="no /dev/input"):
            open_device("auto")
    with pytest.raises(DeviceError, match="kind"):
        open_device("/dev/input/event0", "joystick")


def test_device_drives_the_robot_and_its_loss_holds_it(virtual_device, server_process):
    """The device thread jogs a simulated robot through the authenticated link; when the device's
    file ends, the operator input goes to HOLD and the robot server holds the arm."""
    writer, source = virtual_device
    profile = profile_for(DeviceInfo("SpaceMouse Wireless", "spacemouse",
                                     {c: (-350, 350) for c in range(6)}), v_max_m_s=0.04)
    with TeleopClient(server_process, PSK, rate_hz=100) as cli:
        t_end = time.monotonic() + 5
        while cli.latest is None and time.monotonic() < t_end:
            time.sleep(0.01)
        p0 = np.array(cli.latest.p_base_tool)
        with DeviceTeleop(cli, source, profile, rate_hz=100) as drv:
            # a newer SpaceMouse: absolute axes; hold the left button and push the cap away, 0.5 s
            _frame(writer, (ecodes.EV_KEY, ecodes.BTN_0, 1), (ecodes.EV_ABS, ecodes.ABS_Y, 350))
            time.sleep(0.5)
            _frame(writer, (ecodes.EV_ABS, ecodes.ABS_Y, 0))
            time.sleep(0.6)
            assert "clutch HELD" in drv.status and drv.increments > 20
            moved = np.array(cli.latest.p_base_tool) - p0
            assert 0.008 < moved[0] < 0.03 and abs(moved[1]) < 0.003 and abs(moved[2]) < 0.003, moved
            assert cli.latest.supervisor == SupervisorCode.OK
            # the device goes away with the clutch held
            writer.close()
            t_end = time.monotonic() + 3
            while drv.lost is None and time.monotonic() < t_end:
                time.sleep(0.01)
            assert drv.lost and "end of file" in drv.lost and "LOST" in drv.status
            assert not cli.input.clutch and cli.input.mode == OperatorMode.HOLD
            t_end = time.monotonic() + 3
            while cli.latest.supervisor != SupervisorCode.HOLD and time.monotonic() < t_end:
                time.sleep(0.01)
            assert cli.latest.supervisor == SupervisorCode.HOLD and cli.latest.hold_reason == HoldReason.OPERATOR
            p_held = np.array(cli.latest.p_base_tool)
            time.sleep(0.3)
            assert np.linalg.norm(np.array(cli.latest.p_base_tool) - p_held) < 1e-3
