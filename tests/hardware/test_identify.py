"""``machaon bench --identify`` on the emulated desk arm: the bench, a separate process, talks to
six emulated servos on a real pty; the servos drive the PyBullet desk arm under gravity and are
built to differ from their datasheet (torque constant x 0.9, gear friction x 1.4). The
identification must find what the emulator was given, within 10 %, and write an
``identified.toml`` that the backend loads."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from machaon.hardware.backend import ActuatorBackend, ActuatorConfig
from machaon.hardware.control_table import model_by_name
from machaon.hardware.identify import IdentificationResult, IdentifyOptions, JointIdentification, identified_toml

ROOT = Path(__file__).resolve().parents[2]
BAUD = 4_000_000
KT_SCALE, FRICTION_SCALE = 0.9, 1.4


def test_bench_identify_recovers_the_emulators_torque_constants_and_friction(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the emulated arm in its own process, as a real one is; its servos differ from their datasheet
    emu = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--sim", "--robot", "desk",
                            "--baud", str(BAUD), "--kt-scale", str(KT_SCALE), "--friction-scale", str(FRICTION_SCALE)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    try:
        port = emu.stdout.readline().strip()
        assert port.startswith("/dev/")
        out = tmp_path / "bench"
        cmd = [sys.executable, "-m", "machaon.cli.main", "bench", "--port", port, "--ids", "1-6", "--baud",
               str(BAUD), "--identify", "--robot", "desk", "--out", str(out), "--latency-samples", "20",
               "--step-duration", "0.1", "--latency-ms", "50", "--min-rate", "20", "--sweep-deg", "12",
               "--gravity-grid", "2"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert (out / "identified.toml").is_file(), proc.stdout + proc.stderr
        assert "identified parameters in" in proc.stdout

        data = tomllib.loads((out / "identified.toml").read_text())
        for j in data["joints"]:
            m = model_by_name(j["model"])  # what the emulator was given: the datasheet, scaled
            assert j["kt_nm_per_a"] == pytest.approx(m.kt_nm_per_a * KT_SCALE, rel=0.10), j["name"]
            assert j["coulomb_nm"] == pytest.approx(m.coulomb_friction * FRICTION_SCALE, rel=0.10), j["name"]
            assert j["viscous_nms_rad"] == pytest.approx(m.viscous_friction * FRICTION_SCALE, rel=0.10), j["name"]
            ident = data["identification"][j["name"]]
            assert ident["model_error_nm"] >= 0 and ident["model_error_pct"] < 30
            assert ident["kt_datasheet_nm_per_a"] == pytest.approx(m.kt_nm_per_a, rel=1e-3)
        # the gravity model matches the measured currents at the loaded joints
        assert data["identification"]["shoulder_lift"]["gravity_error_pct"] < 15
        report = json.loads((out / "report.json").read_text())
        checks = [c for c in report["checks"] if c["name"] in ("dynamics_fit", "gravity_model")]
        assert len([c for c in checks if c["name"] == "dynamics_fit"]) == 6 and all(c["passed"] for c in checks)
        assert "## Dynamics identification (desk)" in (out / "report.md").read_text()

        # the backend loads it (--hw-config) and runs the chain with the identified torque model
        cfg = ActuatorConfig.from_toml(out / "identified.toml", port=port)
        assert cfg.mode == "current" and cfg.start_hold
        with ActuatorBackend(dataclasses.replace(cfg, latency_s=0.05)) as be:
            assert be.read().ok
            for m, j in zip(be.motors, cfg.joints, strict=True):
                assert m.curve.kt_nm_per_a == pytest.approx(model_by_name(j.model).kt_nm_per_a * KT_SCALE, rel=0.10)
                assert m.coulomb_nm > 0 and m.viscous_nms_rad > 0
    finally:
        emu.terminate()
        emu.wait(timeout=10)


def test_identified_toml_round_trips_and_options_are_checked():
    cfg = ActuatorConfig.from_robot("desk", port="/dev/ttyUSB0")
    res = IdentificationResult(joints=[
        JointIdentification(j.name, j.id, 2.0 + k * 0.01, 0.1, 0.12, 2.409, 0.01, 3.0, 0.5, 0.2, 500)
        for k, j in enumerate(cfg.joints)])
    back = tomllib.loads(identified_toml(cfg, res))
    again = ActuatorConfig.from_dict(back, port="/dev/ttyUSB1")
    assert [j.kt_nm_per_a for j in again.joints] == pytest.approx([2.0 + k * 0.01 for k in range(6)])
    assert again.joints[2].direction == -1 and again.joints[5].zero_ticks == 1024  # the mounting survives
    assert again.max_temperature_c == 70.0 and again.port == "/dev/ttyUSB1"
    assert back["identification"]["elbow"]["kt_from"] == "gravity"
    assert np.isnan(res.gravity_error()[0]).all()
    with pytest.raises(ValueError, match="speeds"):
        IdentifyOptions(speeds_rad_s=(1.0,))
    with pytest.raises(ValueError, match="sweep_rad"):
        IdentifyOptions(sweep_rad=2.0)
    # the CLI says what is wrong, in one line, without a traceback
    proc = subprocess.run([sys.executable, "-m", "machaon.cli.main", "bench", "--port", "/dev/null", "--identify",
                           "--sweep-deg", "90"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "sweep_rad" in proc.stderr and "Traceback" not in proc.stderr
