"""Serial latency of a USB-serial adapter: the FTDI latency timer and the kernel's low-latency flag.

A USB-RS485 adapter (ROBOTIS U2D2 and most others are FTDI FT232 parts, driver ``ftdi_sio``)
holds received bytes until its latency timer expires or its buffer fills, then sends them to the
host in one USB packet. The timer defaults to 16 ms, which alone limits a request-answer bus to
about 60 cycles a second; at 1 ms a six-servo chain at 4 Mbaud runs at 250-500 Hz. The kernel
exposes the timer as ``/sys/bus/usb-serial/devices/<ttyUSBn>/latency_timer`` (ms). Separately, the
tty layer's ``ASYNC_LOW_LATENCY`` flag (``setserial low_latency``; pyserial's
``set_low_latency_mode``) asks the driver to push received bytes to readers at once; the
:class:`~machaon.hardware.dynamixel.Bus` sets it when it opens a port that supports it.

:func:`latency_timer_ms` reads the timer (None when the port has none: a pty, a native UART, a
CDC-ACM adapter); :func:`latency_warning` is the message ``machaon hw scan``, ``machaon bench`` and
``teleop serve --backend hardware`` print when it is above 1 ms, with the udev rule that sets it
at every plug-in. ``sysfs_root`` is a parameter so that tests can use a fake tree.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UDEV_RULE", "latency_timer_ms", "latency_warning", "usb_serial_name"]

MAX_LATENCY_MS = 1
UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"'
UDEV_FILE = "/etc/udev/rules.d/99-usb-serial-low-latency.rules"


def usb_serial_name(port: str) -> str:
    """The kernel's name of the tty behind ``port`` (symlinks such as /dev/serial/by-id/... resolved)."""
    return os.path.basename(os.path.realpath(port))


def latency_timer_ms(port: str, sysfs_root: str | os.PathLike[str] = "/sys") -> int | None:
    """The latency timer (ms) of the USB-serial adapter behind ``port``; None when it has none or it
    cannot be read (no such sysfs attribute, not a number)."""
    name = usb_serial_name(port)
    root = Path(sysfs_root)
    for path in (root / "bus" / "usb-serial" / "devices" / name / "latency_timer",
                 root / "class" / "tty" / name / "device" / "latency_timer"):
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def latency_warning(port: str, sysfs_root: str | os.PathLike[str] = "/sys") -> str | None:
    """A warning with the fix when the adapter's latency timer is above 1 ms, else None."""
    ms = latency_timer_ms(port, sysfs_root)
    if ms is None or ms <= MAX_LATENCY_MS:
        return None
    name = usb_serial_name(port)
    return (f"{port} ({name}) has a USB latency timer of {ms} ms: every bus answer waits up to "
            f"{ms} ms in the adapter, so control loops stall. Set it to 1 ms now with\n"
            f"  echo 1 | sudo tee /sys/bus/usb-serial/devices/{name}/latency_timer\n"
            f"and at every plug-in with the udev rule\n"
            f"  {UDEV_RULE}\n"
            f"in {UDEV_FILE} (then: sudo udevadm control --reload-rules, and re-plug the adapter).")
