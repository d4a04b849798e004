"""``machaon exo`` commands: replay of a recorded walk, argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from machaon.cli.main import main
from machaon.exo.frames import EMG_CHANNELS, IMU_SENSORS
from machaon.exo.recording import Recording, write_c3d, write_csv

from ._walker import SyntheticWalker


def _synthetic_recording(seconds: float) -> Recording:
    w = SyntheticWalker(stride_s=1.0, seed=3)
    w.advance(seconds - 1e-9)
    b = w.poll()
    return Recording(b.emg_v, 2000.0, EMG_CHANNELS, b.imu, 200.0, IMU_SENSORS)


@pytest.mark.parametrize("fmt", ["csv"])
def test_replay_writes_commands(tmp_path, capsys, fmt: str) -> None:
    rec = _synthetic_recording(3.5)
    path = tmp_path / f"walk.{fmt}"
    (write_csv if fmt == "csv" else write_c3d)(path, rec)
    out = tmp_path / "out"
    assert main(["exo", "replay", str(path), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cycles"] == 3500
    assert summary["mvc_normalisation"].startswith("peak dynamic")
    assert 0.0 < summary["assist_fraction"] < 0.6  # assists once the gait phase is locked
    assert summary["stride_time_s"]["l"] == pytest.approx(1.0, abs=0.02)
    rows = (out / "commands.csv").read_text().splitlines()
    assert len(rows) == 3501 and rows[0].startswith("t_s,tau_hip_l_nm")
    last = rows[-1].split(",")
    assert last[-4] == "assist" and np.isfinite([float(x) for x in last[1:5]]).all()
    assert (out / "commands.png").stat().st_size > 10_000
    assert "assist_fraction" in capsys.readouterr().out


def test_replay_c3d(tmp_path, capsys) -> None:
    write_c3d(tmp_path / "walk.c3d", _synthetic_recording(1.0))
    assert main(["exo", "replay", str(tmp_path / "walk.c3d")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cycles"] == 1000 and summary["imu_sensors"] == list(IMU_SENSORS)


def test_replay_without_imu_stays_transparent(tmp_path) -> None:
    rec = _synthetic_recording(0.5)
    rec = Recording(rec.emg_v, 2000.0, EMG_CHANNELS, np.zeros((0, 0, 6)), 0.0, ())
    write_csv(tmp_path / "emg_only.csv", rec)
    assert main(["exo", "replay", str(tmp_path / "emg_only.csv"), "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["assist_fraction"] == 0.0
    assert "imu_dropout" in summary["transparent_reasons"] or "warming_up" in summary["transparent_reasons"]


def test_cli_errors_are_clear(tmp_path, capsys) -> None:
    assert main(["exo", "replay", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["exo", "sim", "--report", str(tmp_path / "r")]) == 2
    assert "--headless" in capsys.readouterr().err
    assert main(["exo", "sim", "--headless", "--duration", "3", "--skip", "4"]) == 2
    with pytest.raises(SystemExit):
        main(["exo", "sim", "--weakness", "a,b"])


def test_sim_headless_report(tmp_path, capsys) -> None:
    out = tmp_path / "rep"
    log = tmp_path / "walk.mcap"
    assert main(["exo", "sim", "--headless", "--report", str(out), "--duration", "5.2", "--skip", "3.0",
                 "--record", str(log)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["symmetry_index_no_assist"] > 0.05
    assert data["symmetry_index_assist"] < data["symmetry_index_no_assist"]
    assert data["settings"]["weak_side"] == "r"
    for name in ("emg_envelopes", "gait_phase", "assist_torque", "joint_angles"):
        assert (out / data["plots"][name]).exists()
    assert "symmetry_index_assist" in capsys.readouterr().out
    _check_walk_log(log, tmp_path, capsys)


def _check_walk_log(log, tmp_path, capsys) -> None:
    """``--record``: the walk with assist, as the live view shows it (cycles at 100 Hz, the legs' /tf)."""
    from mcap.reader import make_reader
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from machaon.robot.runlog import read_run_log

    run = read_run_log(log)
    assert run.joint_names == ("hip_l", "knee_l", "hip_r", "knee_r") and run.metadata["assist"] == "true"
    assert len(run.t) == 520 and np.allclose(np.diff(run.t), 0.01) and np.isfinite(run.q).all()
    assert np.ptp(run.q[:, 1]) > 0.3  # the knee bends while walking
    with open(log, "rb") as f:
        children = {tf["child_frame_id"] for _s, ch, m in make_reader(f).iter_messages(topics=["/tf"])
                    for tf in json.loads(m.data)["transforms"]}
    assert {"thigh_l", "shank_l", "thigh_r", "shank_r"} <= children
    assert main(["log", "summary", str(log)]) == 0
    assert "(every 10)" in capsys.readouterr().out
    assert main(["log", "export-ros2", str(log), str(tmp_path / "bag")]) == 0
    store = get_typestore(Stores.ROS2_JAZZY)
    with Reader(tmp_path / "bag") as reader:
        topics = {c.topic for c, _t, raw in reader.messages() if store.deserialize_cdr(raw, c.msgtype) is not None}
    assert {"/joint_states", "/tf"} <= topics
