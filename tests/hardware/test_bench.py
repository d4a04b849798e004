"""The bench suite and the ``machaon hw``/``machaon bench`` commands against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from machaon.cli.hw import parse_ids
from machaon.cli.main import main
from machaon.hardware.bench import Bench, BenchOptions, step_metrics
from machaon.hardware.control_table import MODE_POSITION
from machaon.hardware.dynamixel import Bus
from machaon.hardware.emulator import ChainEmulator
from machaon.hardware.protocol import PortError
from tests.hardware.util import eventually

BAUD = 4_000_000


def _args(port: str, out: Path, *extra: str) -> list[str]:
    # --min-rate-hz 20: the loop-rate check times the host's own sync read + write cycle (median),
    # which a loaded shared test machine stretches past 5 ms (200 Hz) though the chain is healthy
    return ["bench", "--port", port, "--ids", "1-2", "--baud", str(BAUD), "--out", str(out),
            "--latency-samples", "40", "--step-duration", "0.3", "--latency-ms", "100", "--min-rate-hz", "20",
            *extra]


def test_step_metrics_of_a_known_response() -> None:
    t = np.linspace(0, 1, 1001)
    y = 1 - np.exp(-t / 0.1)  # first order, tau 0.1 s: 10-90 % rise = tau ln 9
    m = step_metrics(t, y, 0.0, 1.0)
    assert abs(m["rise_time_s"] - 0.1 * np.log(9)) < 2e-3
    assert m["overshoot_pct"] == 0.0 and abs(m["steady_state_error"]) < 1e-3
    m2 = step_metrics(t, 1 - np.exp(-5 * t) * np.cos(20 * t), 0.0, 1.0)
    assert m2["overshoot_pct"] > 10
    with pytest.raises(ValueError):
        BenchOptions(port="x", ids=(1,), step_rad=2.0)  # motions are bounded


def test_bench_passes_on_a_healthy_chain_and_writes_the_report(tmp_path: Path, capsys) -> None:
    with ChainEmulator([1, 2], baudrate=BAUD, return_delay_us=0) as em:
        rc = main(_args(em.port, tmp_path / "rep", "--scan-bauds", f"1000000,{BAUD}"))
        assert rc == 0
        # left as found: position mode, torque off (the factory state)
        assert [em.servo(i).mode for i in (1, 2)] == [MODE_POSITION] * 2
        assert not any(em.servo(i).torque_on for i in (1, 2))
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["passed"] and rep["scan"] == {"1000000": [], str(BAUD): [1, 2]}
    names = {c["name"] for c in rep["checks"]}
    assert {"scan", "identify", "latency", "loop_rate", "position_step", "current_step", "limit_position",
            "limit_current", "eeprom_locked", "absent_id_timeout"} <= names
    assert rep["latency"]["achievable_rate_hz"] > 20
    for png in ("latency.png", "position_step.png", "current_step.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.startswith("# Servo bench report: PASS") and "![latency.png](latency.png)" in md
    assert "PASSED" in capsys.readouterr().out


def test_bench_fails_on_missing_servo_and_dry_run_moves_nothing(tmp_path: Path) -> None:
    with ChainEmulator([1, 2], baudrate=BAUD, return_delay_us=0) as em:
        em.faults.missing_ids = {2}
        assert main(_args(em.port, tmp_path / "a")) == 1
        rep = json.loads((tmp_path / "a" / "report.json").read_text())
        assert not rep["passed"] and any(c["name"] == "scan" and not c["passed"] for c in rep["checks"])
        em.faults.missing_ids = set()
        q_before = em.plant_state()[0].copy()
        writes = em.stats["instructions"]
        assert main(_args(em.port, tmp_path / "b", "--dry-run")) == 0
        assert em.stats["instructions"] > writes
        np.testing.assert_array_equal(em.plant_state()[0], q_before)
        assert not any(em.servo(i).torque_on for i in (1, 2))
        rep = json.loads((tmp_path / "b" / "report.json").read_text())
        assert rep["plan"] and not rep["steps"]


def test_ctrl_c_leaves_servos_holding(tmp_path: Path) -> None:
    def progress(msg: str) -> None:
        if "current step" in msg:
            raise KeyboardInterrupt

    with ChainEmulator([1, 2], baudrate=BAUD, return_delay_us=0) as em, Bus(em.port, BAUD, latency_s=0.1) as bus:
        opts = BenchOptions(port=em.port, ids=(1, 2), baudrate=BAUD, latency_samples=20, step_duration_s=0.2,
                            out_dir=str(tmp_path), latency_s=0.1)
        report = Bench(bus, opts, progress=progress).run()
        assert report.interrupted and not report.passed
        for i in (1, 2):
            s = em.servo(i)
            assert s.mode == MODE_POSITION and s.torque_on
            # holding where it was stopped: a servo caught moving settles onto that goal (later on
            # a loaded machine, where the emulator's physics runs behind)
            assert eventually(lambda s=s: abs(s.goal_position - s.get("present_position")) <= 2), \
                (s.goal_position, s.get("present_position"))


def test_parse_ids() -> None:
    assert parse_ids("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(ValueError):
        parse_ids("250-260")


def test_hw_emulate_command_serves_a_pty_until_interrupted() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--ids", "1-3", "--baud",
                             str(BAUD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        with Bus(port, BAUD, latency_s=0.1) as bus:
            assert sorted(bus.broadcast_ping(max_id=5)) == [1, 2, 3]
            proc.send_signal(signal.SIGUSR1)  # unplug
            with pytest.raises(PortError):
                for _ in range(100):
                    bus.ping(1)
                    time.sleep(0.01)
        proc.send_signal(signal.SIGUSR2)  # plug a new adapter in
        port2 = proc.stdout.readline().strip()
        with Bus(port2, BAUD, latency_s=0.1) as bus:
            assert bus.ping(2).model_number == 1020
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
