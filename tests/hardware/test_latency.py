"""The USB adapter's latency timer, read from a fake sysfs tree; the warnings of ``hw scan`` and
``bench``; low-latency mode on a port that does not support it (a pty)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from machaon.hardware.dynamixel import Bus
from machaon.hardware.emulator import ChainEmulator
from machaon.hardware.latency import UDEV_RULE, latency_timer_ms, latency_warning, usb_serial_name

ROOT = Path(__file__).resolve().parents[2]
BAUD = 4_000_000


def _fake_sysfs(root: Path, name: str, ms: int | str) -> Path:
    d = root / "bus" / "usb-serial" / "devices" / name
    d.mkdir(parents=True)
    (d / "latency_timer").write_text(f"{ms}\n")
    return root


def test_latency_timer_is_read_through_symlinks(tmp_path):
    sysfs = _fake_sysfs(tmp_path / "sys", "ttyUSB0", 16)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyUSB0").write_text("")  # stands for the device node
    by_id = dev / "usb-FTDI_USB__-__Serial_Converter_FT4TFSV0-if00-port0"
    by_id.symlink_to(dev / "ttyUSB0")  # as /dev/serial/by-id/... points at ../../ttyUSB0
    assert usb_serial_name(str(by_id)) == "ttyUSB0"
    assert latency_timer_ms(str(by_id), sysfs) == 16
    msg = latency_warning(str(by_id), sysfs)
    assert "16 ms" in msg and UDEV_RULE in msg and "/sys/bus/usb-serial/devices/ttyUSB0/latency_timer" in msg
    (sysfs / "bus/usb-serial/devices/ttyUSB0/latency_timer").write_text("1\n")
    assert latency_timer_ms(str(by_id), sysfs) == 1 and latency_warning(str(by_id), sysfs) is None
    # no such attribute (a native UART, a CDC-ACM adapter, a pty), or garbage: no number, no warning
    assert latency_timer_ms("/dev/ttyACM0", sysfs) is None and latency_warning("/dev/ttyACM0", sysfs) is None
    _fake_sysfs(tmp_path / "sys2", "ttyUSB1", "x")
    assert latency_timer_ms("/dev/ttyUSB1", tmp_path / "sys2") is None
    # the tty class path is the fallback
    alt = tmp_path / "sys3" / "class" / "tty" / "ttyUSB2" / "device"
    alt.mkdir(parents=True)
    (alt / "latency_timer").write_text("8")
    assert latency_timer_ms("/dev/ttyUSB2", tmp_path / "sys3") == 8


def test_scan_and_bench_warn_about_a_slow_adapter(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the emulator in its own process, as a servo chain is: this process's other threads cannot delay it
    emu = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--ids", "1,2", "--baud",
                            str(BAUD)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        port = emu.stdout.readline().strip()
        assert port.startswith("/dev/")
        # the emulator's pty stands for the adapter: give its kernel name a slow latency timer
        name = os.path.basename(os.path.realpath(port))
        sysfs = _fake_sysfs(tmp_path / "sys", name, 16)
        scan = subprocess.run([sys.executable, "-m", "machaon.cli.main", "hw", "scan", "--port", port, "--baud",
                               str(BAUD), "--max-id", "3", "--sysfs-root", str(sysfs)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert scan.returncode == 0, scan.stderr
        assert "latency timer of 16 ms" in scan.stderr and UDEV_RULE in scan.stderr
        assert "id   1" in scan.stdout and "id   2" in scan.stdout
        bench = subprocess.run([sys.executable, "-m", "machaon.cli.main", "bench", "--port", port, "--ids", "1,2",
                                "--baud", str(BAUD), "--dry-run", "--latency-samples", "10", "--out",
                                str(tmp_path / "b"), "--sysfs-root", str(sysfs)],
                               capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert "latency timer of 16 ms" in bench.stderr, bench.stderr
        assert "## Warnings" in (tmp_path / "b" / "report.md").read_text()
        # a fast adapter: no warning
        (sysfs / "bus/usb-serial/devices" / name / "latency_timer").write_text("1")
        scan = subprocess.run([sys.executable, "-m", "machaon.cli.main", "hw", "scan", "--port", port, "--baud",
                               str(BAUD), "--max-id", "3", "--sysfs-root", str(sysfs)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert "latency timer" not in scan.stderr
    finally:
        emu.terminate()
        emu.wait(timeout=10)


def test_low_latency_mode_is_tried_and_a_pty_is_fine_without_it():
    with ChainEmulator([1], baudrate=BAUD) as em, Bus(em.port, BAUD, latency_s=0.1) as bus:
        assert bus.low_latency is False  # a pty has no serial_struct: TIOCSSERIAL is refused
        assert bus.ping(1).model_number == 1020
