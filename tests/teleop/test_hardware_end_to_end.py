"""End to end on the hardware backend: ``machaon teleop serve --backend hardware`` drives six emulated
XM430 servos (position mode) on a real pseudo-terminal; a scripted, authenticated operator clutches,
moves the master, then jogs from the keyboard; the servos' own present positions (read from the
emulator, not from the server's report) carry the tool in the commanded direction; cutting the
command stream puts the server in HOLD with the arm still.

The emulated servos start at tick 2048 (every joint at 0: the arm stretched straight up, the tool
outside the workspace box), so the server is started with ``--home``: it first moves the arm to the
description's home pose, then serves.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from machaon.hardware.backend import ActuatorConfig
from machaon.hardware.control_table import RAD_PER_TICK
from machaon.robot.description import load_description
from machaon.teleop.client import TeleopClient
from machaon.teleop.messages import HoldReason, SupervisorCode
from machaon.teleop.robot_setup import robot_model
from tests.hardware.emulator_process import EmulatorProcess
from tests.hardware.util import eventually, stop_process

from .conftest import PSK, free_port

CONFIG = "machaon/hardware/configs/xm430_chain_position.toml"
BAUD = 4_000_000


def _wait(pred, timeout=3.0) -> bool:
    return eventually(pred, timeout, poll_s=0.01)


@pytest.fixture
def emulated_chain():
    """Six emulated XM430-W350 on a pty at 4 Mbaud (each drives its rotor plus a rigid load), in their
    own process as ``machaon hw emulate`` runs them: this process's threads (the operator's client,
    the polling below) cannot hold their replies back past the bus deadline."""
    with EmulatorProcess(range(1, 7), model="XM430-W350", baudrate=BAUD) as em:
        yield em


def _measured_q(em: EmulatorProcess, cfg: ActuatorConfig) -> np.ndarray:
    """Joint angles (rad) from the servos' Present Position items, through the config's zero and direction."""
    ticks = np.array(em.items("present_position", [j.id for j in cfg.joints]), dtype=float)
    ticks = np.where(ticks >= 2**31, ticks - 2**32, ticks)  # the item is a signed 32-bit value
    return np.array([j.direction for j in cfg.joints]) * (ticks - [j.zero_ticks for j in cfg.joints]) * RAD_PER_TICK


def test_hardware_server_follows_and_holds(emulated_chain, key_file, tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # The shipped config, with a longer reply deadline, more lost cycles tolerated and a slower Bus
    # Watchdog: the emulator and the server are Python processes on a shared 2-core host (other test
    # suites run beside them). The scheduler lets a woken emulator wait for a busy core's time slice
    # (a few ms: past the shipped 2 ms deadline, cycle after cycle) and can keep either process off
    # the CPU for 10-50 ms at a time, which a real servo's microcontroller never is and a real server
    # host should not be. For the same reason the loop runs at 100 Hz (overrun limit 100 ms); the
    # 250 Hz default is held by tests/hardware/test_desk_torque_mode.py in one process.
    text = (root / CONFIG).read_text()
    text = (text.replace("latency_ms = 2.0", "latency_ms = 10.0").replace("lost_cycles = 3", "lost_cycles = 10")
            .replace("bus_watchdog_ms = 100", "bus_watchdog_ms = 400"))
    assert "latency_ms = 10.0" in text and "lost_cycles = 10" in text and "bus_watchdog_ms = 400" in text
    cfg_path = tmp_path / "chain.toml"
    cfg_path.write_text(text)
    cfg = ActuatorConfig.from_toml(cfg_path, port=emulated_chain.port)
    assert cfg.mode == "position"
    model = robot_model(load_description("machaon_arm"))
    em = emulated_chain

    q_start = _measured_q(em, cfg)
    np.testing.assert_allclose(q_start, 0.0, atol=2 * RAD_PER_TICK)  # stretched up: outside the box

    port = free_port()
    cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "hardware",
           "--hw-config", str(cfg_path), "--port", em.port, "--listen", f"127.0.0.1:{port}",
           "--key", str(key_file), "--rate-hz", "100", "--home", "--home-speed", "1.0", "--timeout-ms", "250",
           "--stats-s", "0", "--duration", "40"]
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, text=True, cwd=root)
    try:
        assert _wait(lambda: "teleop server (hardware) on" in log_path.read_text() or proc.poll() is not None, 20.0)
        assert proc.poll() is None, log_path.read_text()
        out = log_path.read_text()
        assert "homing to" in out

        # homed: the servos stand at the description's home pose, the tool inside the workspace box
        q_home = np.asarray(model.desc.q_home)
        np.testing.assert_allclose(_measured_q(em, cfg), q_home, atol=0.03)

        with TeleopClient(("127.0.0.1", port), PSK, rate_hz=100) as cli:
            assert _wait(lambda: cli.latest is not None)
            assert cli.latest.supervisor == SupervisorCode.HOLD  # nothing moves before the clutch
            p0 = model.chain.fk(_measured_q(em, cfg))[:3, 3]
            np.testing.assert_allclose(cli.latest.p_base_tool, p0, atol=2e-3)  # the server reports the servos

            # clutch in, then the master moves +30 mm in x and -15 mm in z (1:1)
            cli.input.motion_scale = 1.0
            cli.input.p = (0.0, 0.0, 0.0)
            cli.input.clutch = True
            assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK, 3.0), (cli.latest, log_path.read_text())
            goal = np.array([0.03, 0.0, -0.015])
            for i in range(1, 61):
                cli.input.p = tuple(goal * i / 60)
                time.sleep(0.01)

            def arrived() -> bool:
                return np.allclose(model.chain.fk(_measured_q(em, cfg))[:3, 3] - p0, goal, atol=1.5e-3)

            assert _wait(arrived, 6.0), (model.chain.fk(_measured_q(em, cfg))[:3, 3] - p0, log_path.read_text())
            moved = model.chain.fk(_measured_q(em, cfg))[:3, 3] - p0
            cos = moved @ goal / (np.linalg.norm(moved) * np.linalg.norm(goal))
            assert cos > 0.99, moved  # the tool went in the commanded direction
            assert cli.latest.supervisor == SupervisorCode.OK

            # keyboard jogging (base frame, clutch held): ten 2 mm steps along +y
            cli.input.master = False  # heartbeats instead of master poses, as the console does
            time.sleep(0.05)
            for _ in range(10):
                cli.jog(np.array([0.0, 0.002, 0.0, 0.0, 0.0, 0.0]))
                time.sleep(0.02)
            goal_jog = goal + [0.0, 0.02, 0.0]

            def jogged() -> bool:
                return np.allclose(model.chain.fk(_measured_q(em, cfg))[:3, 3] - p0, goal_jog, atol=1.5e-3)

            assert _wait(jogged, 6.0), (model.chain.fk(_measured_q(em, cfg))[:3, 3] - p0, log_path.read_text())
            assert cli.latest.supervisor == SupervisorCode.OK
            goal = goal_jog

            # cut the command stream (uplink) with the clutch still pressed; the master keeps moving.
            # The robot's state messages still arrive, so the HOLD is seen as it happens.
            q_cut = _measured_q(em, cfg)
            server_addr = cli.server
            cli.server = ("127.0.0.1", free_port())  # the operator's packets now go nowhere
            n_before = len(cli.history())
            for i in range(1, 51):
                cli.input.p = (0.03 + 0.001 * i, 0.0, -0.015)
                cli.input.master = True
                time.sleep(0.01)
            q_held = _measured_q(em, cfg)
            time.sleep(0.3)
            q_later = _measured_q(em, cfg)
            # the arm stands still in HOLD: no drift (a few ticks of settling at most), no motion toward
            # the master's new position
            assert np.max(np.abs(q_later - q_held)) < 4 * RAD_PER_TICK, q_later - q_held
            assert np.linalg.norm(model.chain.fk(q_later)[:3, 3] - model.chain.fk(q_cut)[:3, 3]) < 2e-3
            assert cli.latest.supervisor == SupervisorCode.HOLD, cli.latest
            assert cli.latest.hold_reason == HoldReason.COMMAND_GAP
            assert len(cli.history()) > n_before + 20  # the server kept reporting while it held
            # link back (clutch still pressed): no motion comes back by surprise
            cli.server = server_addr
            time.sleep(0.3)
            assert cli.latest.supervisor == SupervisorCode.HOLD
            assert np.max(np.abs(_measured_q(em, cfg) - q_held)) < 4 * RAD_PER_TICK

            # a stalled host: the server is stopped for longer than the servos' Bus Watchdog (400 ms);
            # they stop by themselves, and the server, once back, latches the fault (protective stop)
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.8)
            proc.send_signal(signal.SIGCONT)
            assert _wait(lambda: cli.latest.supervisor == SupervisorCode.FAULT, 5.0), cli.latest
            assert _wait(lambda: "stopped by its Bus Watchdog" in log_path.read_text(), 3.0), log_path.read_text()
            q_stopped = _measured_q(em, cfg)
            # the operator resets (repeating until the robot reports it cleared, as the console does):
            # the first reset sets the servos up again, the supervisor leaves the stop for a HOLD
            t_end = time.monotonic() + 6.0
            while cli.latest.supervisor == SupervisorCode.FAULT and time.monotonic() < t_end:
                cli.input.reset = True
                time.sleep(0.3)
            assert cli.latest.supervisor == SupervisorCode.HOLD, (cli.latest, log_path.read_text())
            assert "latched fault cleared (bus_watchdog" in log_path.read_text()
            assert np.max(np.abs(_measured_q(em, cfg) - q_stopped)) < 4 * RAD_PER_TICK  # no jump on reset
            # release and press the clutch: the operator drives the arm again
            cli.input.clutch = False
            time.sleep(0.2)
            cli.input.clutch = True
            assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK, 3.0), (cli.latest, log_path.read_text())
            p_back = model.chain.fk(_measured_q(em, cfg))[:3, 3]
            p_op = np.array(cli.input.p)
            for i in range(1, 31):
                cli.input.p = tuple(p_op + [0.0, 0.0, 0.01 * i / 30])
                time.sleep(0.01)
            assert _wait(lambda: model.chain.fk(_measured_q(em, cfg))[2, 3] - p_back[2] > 0.008, 6.0), \
                (model.chain.fk(_measured_q(em, cfg))[:3, 3] - p_back, log_path.read_text())
        assert proc.poll() is None, log_path.read_text()
    finally:
        stop_process(proc)


def test_hardware_server_refuses_an_arm_outside_the_workspace(emulated_chain, key_file):
    """Without --home, an arm whose tool is outside the workspace box is refused with a clear
    message (the supervisor would stop it at once), and no servo moves."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    em = emulated_chain
    cfg = ActuatorConfig.from_toml(root / CONFIG, port=em.port)
    cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "hardware",
           "--hw-config", str(root / CONFIG), "--port", em.port, "--listen", f"127.0.0.1:{free_port()}",
           "--key", str(key_file), "--stats-s", "0", "--duration", "5"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=root)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "outside the workspace box" in res.stderr and "--home" in res.stderr, res.stderr
    assert "teleop server (hardware) on" not in res.stdout
    np.testing.assert_allclose(_measured_q(em, cfg), 0.0, atol=2 * RAD_PER_TICK)
