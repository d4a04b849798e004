"""The gait report: timing and symmetry, angles and EMG per cycle, atomic output; EMG file quirks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from machaon.exo.emg_signals import (
    EMGSignalError,
    check_channel,
    check_declared_units,
    detect_mains_hz,
    infer_emg_scale,
    prepare_emg,
)
from machaon.exo.events import detect_events
from machaon.exo.gait_analysis import analyze_trial, emg_side, staged_dir, write_gait_report
from machaon.exo.gaitfile import read_gait_file
from tests.exo._gaitlab import SynthWalk


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    walk = SynthWalk(duration=8.0)
    path = walk.write_c3d(tmp_path_factory.mktemp("g") / "w.c3d", emg_unit="mV")
    trial = read_gait_file(path)
    return walk, analyze_trial(trial, detect_events(trial))


def test_timing_matches_the_walk(report):
    walk, rep = report
    s = rep.summary
    for side in ("left", "right"):
        assert s["stride_time_s"][side]["mean"] == pytest.approx(walk.stride, abs=0.015)
        assert s["step_time_s"][side]["mean"] == pytest.approx(walk.stride / 2, abs=0.02)
        # the marker detector sees HS ~60 ms early and TO ~60 ms late on this walk: stance 60 % + ~11 %
        assert 60.0 < s["stance_pct"][side]["mean"] < 75.0
        assert s["stance_pct"][side]["mean"] + s["swing_pct"][side]["mean"] == pytest.approx(100.0)
    assert s["cadence_steps_min"] == pytest.approx(120.0 / walk.stride, rel=0.03)
    assert all(v is not None and v < 0.05 for v in s["symmetry_index"].values())


def test_angles_and_emg_are_normalised_per_cycle(report):
    walk, rep = report
    s = rep.summary
    knee = s["joint_angles"]["knee"]["left"]
    assert len(knee["mean_deg"]) == 101 and knee["cycles"] >= 5
    assert knee["source"] == "markers" and knee["rom_deg"] > 10
    assert "Bell regression" in s["joint_angles"]["hip"]["left"]["source"]
    emg = s["emg"]["VL_L"]
    assert emg["side"] == "left" and len(emg["mean_pct_of_peak"]) == 101
    curve = np.array(emg["mean_pct_of_peak"])
    # the synthetic muscle is on in stance (first ~60 % after heel strike) and quiet in swing
    assert curve[10:50].mean() > 3 * curve[80:95].mean()
    assert s["emg_channels"]["VL_L"]["unit"] == "mV" and s["emg_channels"]["VL_L"]["status"] == "ok"


def test_report_files_and_nothing_half_written(tmp_path, report):
    _, rep = report
    written = write_gait_report(tmp_path / "out", rep)
    assert {p.name for p in written} == {"summary.json", "events.csv", "timing.png", "angles.png", "emg.png"}
    json.loads((tmp_path / "out" / "summary.json").read_text())
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "out2") as d:
        (d / "a.txt").write_text("x")
        raise RuntimeError("boom")
    assert not (tmp_path / "out2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_emg_side_from_labels():
    assert emg_side("VL_L") == "left" and emg_side("RF_R") == "right"
    assert emg_side("L_TibAnt") == "left" and emg_side("Right Soleus") == "right"
    assert emg_side("LTA") == "left" and emg_side("RSOL") == "right"
    assert emg_side("EMG1") is None


# -- EMG quirks on a synthetic signal (the real recording is in test_realdata) --------------------

def _emg(fs=2000.0, seconds=4.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    return t, 3e-4 * rng.standard_normal(t.size) * (1 + np.sin(2 * np.pi * 0.8 * t))


def test_units_are_inferred_or_checked():
    _, x = _emg()
    assert infer_emg_scale(x)[1] == "V"
    assert infer_emg_scale(x * 1e3)[1] == "mV"
    assert infer_emg_scale(x * 1e6)[1] == "uV"
    check_declared_units("ok", x, "V")
    with pytest.raises(EMGSignalError, match="factor of 1000"):
        check_declared_units("VL", x * 1e3, "V")  # millivolts declared as volts


def test_mains_offset_saturation_and_disconnection():
    fs = 2000.0
    t, x = _emg(fs)
    hum60 = x + 2e-4 * np.sin(2 * np.pi * 60 * t)
    assert detect_mains_hz(hum60, fs) == 60.0
    assert detect_mains_hz(x + 2e-4 * np.sin(2 * np.pi * 50 * t), fs) == 50.0
    assert detect_mains_hz(x, fs) is None
    prep = prepare_emg({"a": hum60 + 0.01, "b": np.clip(x, -2e-4, 2e-4), "c": np.zeros_like(x),
                        "d": 1e-3 * np.sin(2 * np.pi * 60 * t) + 1e-8 * x}, fs)
    assert prep.mains_hz == 60.0
    assert prep.checks["a"].status == "ok" and abs(prep.checks["a"].dc_offset_v - 0.01) < 1e-4
    assert abs(np.median(prep.emg_v["a"])) < 1e-5
    assert prep.checks["b"].status == "saturated"
    assert prep.checks["c"].status == "flat"
    assert prep.checks["d"].status == "mains_only"
    assert set(prep.usable()) == {"a"}
    assert check_channel("x", x, fs, 50.0).usable
    with pytest.raises(EMGSignalError, match="at least 0.5 s"):
        prepare_emg({"short": x[:100]}, fs)


def test_angles_from_the_file_when_it_has_them(tmp_path):
    walk = SynthWalk(duration=6.0)
    trial = read_gait_file(walk.write_c3d(tmp_path / "a.c3d", angles=True, emg=False))
    assert set(trial.angles_rad) >= {"LKneeAngles", "RHipAngles"} and "LKneeAngles" not in trial.markers_m
    rep = analyze_trial(trial, detect_events(trial))
    knee = rep.summary["joint_angles"]["knee"]["left"]
    assert knee["source"] == "file"
    # a 30 deg sine over the stride, normalised to the detected cycles: its range survives
    assert 50.0 < knee["rom_deg"] < 62.0
