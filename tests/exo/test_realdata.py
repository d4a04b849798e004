"""Validation on public recordings that installable packages ship (skipped when a package is absent).

- gaitkit's Parkinson's-disease trial (PhysioNet gait in PD via figshare, ODC-By; 150 Hz joint
  centres with annotated heel strikes and toe offs): the marker event detector through the CLI,
  and the assist controller's IMU gait-phase estimator on the shank rate those joints imply.
  gaitkit's healthy trial is not used for accuracy: its annotations contradict its own foot
  trajectories (a left "toe off" with the heel on the floor, a right "toe off" in mid-stance).
- novainstrumentation's surface EMG with the simultaneous force (1 kHz, mV): the envelope chain
  against the force, and the file quirks (unit inference, added mains hum and offset).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from machaon.cli.main import main
from machaon.exo.emg_signals import detect_mains_hz, envelope_force_agreement, infer_emg_scale, prepare_emg
from machaon.exo.events import match_events
from machaon.exo.imu import GaitPhaseEstimator
from tests._realdata import gaitkit_trial, package_file, virtual_shank_imu, write_gaitkit_c3d


def _annotated(trial: dict, side: str, kind: str) -> np.ndarray:
    return np.array(trial["hs" if kind == "heel_strike" else "to"][side], float) / trial["fps"]


def test_marker_events_on_the_parkinson_trial(tmp_path, capsys):
    tr = gaitkit_trial("parkinson")
    path = write_gaitkit_c3d(tr, tmp_path / "pd.c3d")
    assert main(["exo", "events", str(path), "--out", str(tmp_path / "ev")]) == 0
    assert "from markers" in capsys.readouterr().out
    rows = list(csv.DictReader(open(tmp_path / "ev" / "events.csv")))
    errors = {"heel_strike": [], "toe_off": []}
    missed = 0
    for side in ("left", "right"):
        for kind in errors:
            det = np.array([float(r["time_s"]) for r in rows if r["side"] == side and r["event"] == kind])
            err, _extra, m = match_events(det, _annotated(tr, side, kind), 0.1)
            errors[kind] += list(err)
            missed += m
    # 13 annotated events; the right toe off 0.2 s into the trial precedes the first full stride
    assert missed <= 1 and len(errors["heel_strike"]) + len(errors["toe_off"]) >= 12
    hs, to = np.abs(errors["heel_strike"]), np.abs(errors["toe_off"])
    assert hs.mean() < 0.04 and hs.max() < 0.06  # measured: 27 ms mean, 47 ms worst
    assert to.mean() < 0.025 and to.max() < 0.04  # measured: 12 ms mean, 20 ms worst


def test_imu_gait_phase_estimator_on_the_parkinson_trial():
    tr = gaitkit_trial("parkinson")
    fs = tr["fps"]
    errors = {"heel_strike": [], "toe_off": []}
    for side in ("left", "right"):
        thigh, omega = virtual_shank_imu(tr, side)
        est = GaitPhaseEstimator()
        for i in range(len(omega)):
            est.update(float(thigh[i]), float(omega[i]), i / fs)
        for kind, det in (("heel_strike", est.heel_strikes), ("toe_off", est.toe_offs)):
            err, extra, _ = match_events(np.array(det), _annotated(tr, side, kind), 0.2)
            assert extra == 0
            errors[kind] += list(err)
    hs, to = np.array(errors["heel_strike"]), np.array(errors["toe_off"])
    assert hs.size == 6 and to.size == 7
    # measured: heel strike 69 ms late (33..120), toe off 64 ms early (47..87)
    assert 0.0 < hs.mean() < 0.1 and np.abs(hs).max() < 0.15
    assert -0.1 < to.mean() < 0.0 and np.abs(to).max() < 0.12


def _emg_force():
    emg = np.loadtxt(package_file("novainstrumentation", "novainstrumentation/data/emg.txt"))
    force = np.loadtxt(package_file("novainstrumentation", "novainstrumentation/data/force.txt"))
    fs = 1.0 / float(np.median(np.diff(emg[0])))
    return emg[1], force[1], fs


def test_envelope_follows_the_recorded_force():
    raw, force, fs = _emg_force()
    scale, unit = infer_emg_scale(raw)
    assert unit == "mV"
    agree = envelope_force_agreement(raw * scale, force, fs)
    # measured: r = 0.945 at 208 ms (electromechanical delay + force build-up), 0.87 at zero lag
    assert agree.r > 0.92 and agree.r_zero_lag > 0.85
    assert 0.1 < agree.lag_s < 0.3


def test_real_emg_quirks_offset_and_mains_hum():
    raw, force, fs = _emg_force()
    x = raw * 1e-3
    assert detect_mains_hz(x, fs) is None  # this recording is clean
    t = np.arange(x.size) / fs
    hummed = x + 0.05 + 3e-4 * np.sin(2 * np.pi * 60 * t)  # 50 mV offset, 0.3 mV of 60 Hz
    prep = prepare_emg({"emg": hummed}, fs)
    assert prep.mains_hz == 60.0 and prep.checks["emg"].usable
    clean = envelope_force_agreement(x, force, fs)
    noisy = envelope_force_agreement(prep.emg_v["emg"], force, fs)
    assert noisy.r == pytest.approx(clean.r, abs=0.02)


def test_gait_report_of_the_parkinson_trial(tmp_path):
    import json

    tr = gaitkit_trial("parkinson")
    path = write_gaitkit_c3d(tr, tmp_path / "pd.c3d")
    assert main(["exo", "analyze", str(path), "--out", str(tmp_path / "an")]) == 0
    s = json.loads((tmp_path / "an" / "summary.json").read_text())
    # gaitkit's own cadence for this trial (from its annotated events): 94.7 steps/min
    assert s["cadence_steps_min"] == pytest.approx(94.7, rel=0.05)
    for side in ("left", "right"):
        assert 60.0 < s["stance_pct"][side]["mean"] < 72.0  # shuffling gait: long stance
        knee = s["joint_angles"]["knee"][side]
        assert knee["cycles"] == 2 and 28.0 < knee["rom_deg"] < 50.0  # measured 32 (left), 43 (right)
