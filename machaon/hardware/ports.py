"""Serial port names as Linux users write them: ``/dev/ttyUSB0`` or the stable ``/dev/serial/by-id/...``.

udev names every USB-serial adapter in ``/dev/serial/by-id/`` after its vendor, model and serial
number (``usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 -> ../../ttyUSB0``), a path that survives
re-plugging and re-ordering, unlike ``ttyUSB0``. ``Bus`` and ``machaon hw scan`` take either.

- ``candidate_ports()`` lists the ports worth trying (pyserial's ``serial.tools.list_ports``, USB
  adapters first, each with its by-id alias when it has one).
- ``resolve_port(path)`` checks a path before it is opened: a by-id link that points nowhere (the
  adapter is unplugged) or a missing device raises ``PortNotFound`` whose message lists the
  candidates, so the user sees what to type instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from machaon.errors import HardwareError

BY_ID_DIR = Path("/dev/serial/by-id")


class PortNotFound(HardwareError, FileNotFoundError):
    """The serial port does not exist (the message lists the ports that do)."""


@dataclass(frozen=True)
class PortInfo:
    """A serial port: ``device`` (e.g. ``/dev/ttyUSB0``), its by-id alias if any, pyserial's description
    and hardware id (``USB VID:PID=0403:6001 SER=...`` for USB adapters)."""

    device: str
    by_id: str | None
    description: str
    hwid: str

    @property
    def is_usb(self) -> bool:
        return self.hwid.startswith("USB")

    def label(self) -> str:
        alias = f"  ({self.by_id})" if self.by_id else ""
        return f"{self.device}{alias}  {self.description} [{self.hwid}]"


def _by_id_links(by_id_dir: Path) -> dict[str, str]:
    """Real device path -> by-id link path."""
    out: dict[str, str] = {}
    try:
        entries = sorted(by_id_dir.iterdir())
    except OSError:
        return out
    for link in entries:
        try:
            out[os.path.realpath(link)] = str(link)
        except OSError:
            continue
    return out


def candidate_ports(by_id_dir: Path = BY_ID_DIR) -> list[PortInfo]:
    """Serial ports on this machine (pyserial's listing), USB adapters first, with their by-id aliases."""
    from serial.tools import list_ports

    links = _by_id_links(by_id_dir)
    ports = [PortInfo(p.device, links.get(os.path.realpath(p.device)), p.description or "n/a", p.hwid or "n/a")
             for p in list_ports.comports()]
    listed = {os.path.realpath(p.device) for p in ports}
    for real, link in links.items():  # by-id links pyserial did not list (e.g. a pty behind a link)
        if real not in listed and os.path.exists(real):
            ports.append(PortInfo(real, link, "n/a", "n/a"))
    return sorted(ports, key=lambda p: (not p.is_usb, p.by_id is None, p.device))


def describe_candidates(by_id_dir: Path = BY_ID_DIR) -> str:
    """One line per candidate port, or a hint when there is none."""
    ports = candidate_ports(by_id_dir)
    if not ports:
        return "no serial ports found (is the adapter plugged in? see dmesg)"
    return "\n".join("  " + p.label() for p in ports)


def resolve_port(path: str, by_id_dir: Path = BY_ID_DIR) -> str:
    """``path`` itself if it names an existing device (a by-id link is followed to check it);
    ``PortNotFound`` listing the candidate ports otherwise. URLs pyserial handles (``rfc2217://``,
    ``loop://``) pass through unchecked."""
    if "://" in path:
        return path
    if not os.path.exists(path):  # exists() follows links: a dangling by-id link fails here
        what = "by-id link points to no device (adapter unplugged?)" if os.path.islink(path) else "no such port"
        raise PortNotFound(f"{path}: {what}; serial ports here:\n{describe_candidates(by_id_dir)}")
    return path
