"""``machaon exo run`` end to end: emulated Dynamixel exo actuators + emulated EMG/IMU board, both on ptys."""

from __future__ import annotations

import json

from machaon.cli.main import main
from machaon.exo.acquisition import BoardEmulator
from machaon.exo.reference import DESCRIPTIONS
from machaon.hardware.emulator import ChainEmulator

from ._walker import SyntheticWalker


def test_exo_run_live_on_emulators(tmp_path, capsys) -> None:
    w = SyntheticWalker(stride_s=1.0, seed=5)
    w.advance(1.5)
    b = w.poll()
    # The shipped actuator config, with a generous adapter latency for a loaded test machine.
    text = (DESCRIPTIONS / "exo_actuators.toml").read_text().replace("latency_ms = 2.0", "latency_ms = 100.0")
    cfg = tmp_path / "exo_actuators.toml"
    cfg.write_text(text)
    board = BoardEmulator(b.emg_v, b.imu, realtime=True)
    with ChainEmulator([1, 2, 3, 4], model="XM540-W270", baudrate=4_000_000) as em, board.closing():
        board.start()
        rc = main(["exo", "run", "--port", em.port, "--acq-port", board.port, "--config", str(cfg),
                   "--duration", "2.0", "--calibrate", "0.6", "--rate", "100"])
        out = capsys.readouterr().out
    assert rc == 0
    s = json.loads(out)
    assert s["cycles"] == 200
    # A loaded test machine may stall the loop beyond the supervisor's period watchdog, which then
    # (correctly) stops the exo; any other fault is a failure.
    assert s["supervisor_state"] == "run" or s["supervisor_last_fault"][0] == "overrun", s["supervisor_last_fault"]
    assert s["acquisition"]["frames_ok"] > 500 and s["acquisition"]["frames_corrupt"] == 0
    # Not enough strides to lock the gait phase: transparent, and once the board's 1.5 s of data
    # are over, the controller reports the EMG dropout.
    assert s["assist_fraction"] == 0.0
    assert "emg_dropout" in s["transparent_reasons"]
    assert s["fallbacks"] >= 1


def test_exo_run_missing_ports_fail_cleanly(tmp_path, capsys) -> None:
    rc = main(["exo", "run", "--port", str(tmp_path / "nope"), "--acq-port", str(tmp_path / "nada")])
    assert rc == 2
    assert "cannot open acquisition port" in capsys.readouterr().err
