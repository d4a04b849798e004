"""Serial ports by their stable /dev/serial/by-id names, and the listing of candidate ports."""

from __future__ import annotations

import os

import pytest

from machaon.cli.main import main
from machaon.hardware.dynamixel import Bus
from machaon.hardware.emulator import ChainEmulator
from machaon.hardware.ports import PortNotFound, candidate_ports, describe_candidates, resolve_port
from machaon.hardware.protocol import PortError

BY_ID_NAME = "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"


@pytest.fixture
def by_id(tmp_path):
    d = tmp_path / "serial" / "by-id"
    d.mkdir(parents=True)
    return d


def test_bus_and_scan_accept_a_by_id_link(by_id, capsys):
    link = by_id / BY_ID_NAME
    with ChainEmulator([1, 3], baudrate=1_000_000, return_delay_us=0) as em:
        os.symlink(em.port, link)  # as udev makes it: a link to the tty
        with Bus(str(link), 1_000_000, return_delay_s=0.0, latency_s=0.2) as bus:
            assert bus.ping(3).model_number == 1020
        ports = candidate_ports(by_id)
        assert any(p.by_id == str(link) and p.device == os.path.realpath(em.port) for p in ports)
        assert BY_ID_NAME in describe_candidates(by_id)
        assert main(["hw", "scan", "--port", str(link), "--baud", "1000000", "--max-id", "5"]) == 0
        out = capsys.readouterr().out
        assert "id   1" in out and "id   3" in out
    # the adapter is gone: the link dangles, and the error says so and lists what there is
    with pytest.raises(PortNotFound, match="points to no device"):
        resolve_port(str(link), by_id)
    with pytest.raises(PortError, match="points to no device"):
        Bus(str(link), 1_000_000)
    assert main(["hw", "scan", "--port", str(link), "--baud", "1000000"]) == 1
    assert "points to no device" in capsys.readouterr().err


def test_scan_without_port_lists_candidates(capsys):
    assert main(["hw", "scan"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("serial ports (pass one with --port):")
    assert describe_candidates() in out


def test_missing_port_is_named(by_id):
    with pytest.raises(PortNotFound, match="no such port"):
        resolve_port("/dev/ttyUSB_not_there", by_id)
    assert resolve_port("loop://", by_id) == "loop://"
