"""Gait-lab files: reading (C3D/CSV), event detection from force plates, markers and IMUs, bad files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from machaon.errors import MachaonError
from machaon.exo.events import (
    detect_events,
    match_events,
    read_events_csv,
    write_events_csv,
)
from machaon.exo.gaitfile import GaitFileError, fill_gaps, read_gait_file
from tests.exo._gaitlab import SynthWalk


@pytest.fixture(scope="module")
def walk() -> SynthWalk:
    return SynthWalk()


def _errors(det, walk, tol=0.1):
    out = {}
    for (side, kind), ref in walk.events.items():
        err, extra, missed = match_events(det.times(side, kind), ref, tol)
        out[(side, kind)] = (err, extra, missed)
    return out


def test_markers_give_every_event_within_80_ms(tmp_path, walk):
    trial = read_gait_file(walk.write_c3d(tmp_path / "w.c3d"))
    det = detect_events(trial)
    assert det.source == "markers"
    for key, (err, extra, missed) in _errors(det, walk).items():
        assert extra == 0, key
        assert missed <= 1, key  # an event in the first half stride can precede the first peak
        assert err.size >= 4 and np.abs(err).max() < 0.08, (key, err)


def test_force_plates_are_exact_and_markers_fill_the_other_steps(tmp_path, walk):
    trial = read_gait_file(walk.write_c3d(tmp_path / "w.c3d", plate_steps=[("left", 1), ("right", 2)]))
    assert len(trial.force_plates) == 2
    det = detect_events(trial)
    assert det.source == "force_plates+markers"
    plate = [e for e in det.events if e.source == "force_plates"]
    assert {(e.side, e.event) for e in plate} == {(s, k) for s in ("left", "right") for k in ("heel_strike", "toe_off")}
    for e in plate:
        ref = walk.events[(e.side, e.event)]
        assert np.abs(ref - e.time_s).min() < 0.015  # a 20 N threshold on a 700 N half-sine
    # no marker event duplicates a plate event
    for e in plate:
        same = det.times(e.side, e.event)
        assert np.sum(np.abs(same - e.time_s) < 0.15) == 1


def test_plates_without_foot_markers_fall_back_to_imu(tmp_path, walk):
    path = walk.write_c3d(tmp_path / "w.c3d", markers=False, plate_steps=[("left", 1)], imu=True)
    det = detect_events(read_gait_file(path))
    assert det.source == "imu"
    errs = _errors(det, walk, tol=0.15)
    for key, (err, extra, _missed) in errs.items():
        assert err.size >= 4 and extra == 0, key
        assert np.abs(err).max() < 0.1, (key, err)


def test_events_csv_round_trip_and_exact_columns(tmp_path, walk):
    det = detect_events(read_gait_file(walk.write_c3d(tmp_path / "w.c3d")))
    write_events_csv(tmp_path / "events.csv", det.events)
    rows = list(csv.reader(open(tmp_path / "events.csv")))
    assert rows[0] == ["side", "event", "time_s"]
    assert {r[0] for r in rows[1:]} == {"left", "right"} and {r[1] for r in rows[1:]} == {"heel_strike", "toe_off"}
    times = [float(r[2]) for r in rows[1:]]
    assert times == sorted(times)
    back = read_events_csv(tmp_path / "events.csv")
    assert len(back) == len(det.events)


def test_csv_trial_with_markers_and_emg(tmp_path, walk):
    m = walk.markers_m()
    emg = walk.emg_v()
    path = tmp_path / "w.csv"
    k = int(walk.analog_rate / walk.rate)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time_s", *[f"{n}_{a}" for n in m for a in "XYZ"], *emg])
        for i, t in enumerate(walk.ta[: walk.t.size * k]):
            row = [f"{t:.4f}"]
            row += [f"{v * 1000:.3f}" for n in m for v in m[n][i // k]] if i % k == 0 else [""] * (3 * len(m))
            row += [f"{emg[c][i] * 1e6:.3f}" for c in emg]  # microvolts, no unit in the file
            w.writerow(row)
    trial = read_gait_file(path)
    # markers are on every k-th row only: the rows in between are EMG-only samples, not gaps
    assert trial.analog_rate_hz == pytest.approx(walk.analog_rate)
    assert trial.emg_units == {"VL_L": "uV", "VL_R": "uV"}
    assert np.abs(trial.emg_v["VL_L"]).max() < 2e-3
    assert detect_events(trial).source == "markers"


def test_short_gaps_are_filled_long_gaps_are_a_clear_error(tmp_path, walk):
    ok = read_gait_file(walk.write_c3d(tmp_path / "a.c3d", nan_frames=(("LHEE", 200, 205),)))
    assert np.isfinite(ok.markers_m["LHEE"]).all()
    assert any("LHEE" in n and "filled" in n for n in ok.notes)
    bad = read_gait_file(walk.write_c3d(tmp_path / "b.c3d", nan_frames=(("LHEE", 200, 260),)))
    with pytest.raises(GaitFileError, match="LHEE is missing from 2.00 s"):
        detect_events(bad, "markers")


def test_fill_gaps_interpolates_only_short_interior_gaps():
    x = np.stack([np.arange(20.0), np.arange(20.0) ** 2], axis=1)
    y = x.copy()
    y[[0, 5, 6, 12, 13, 14, 15]] = np.nan
    out, n = fill_gaps(y, 2)
    assert n == 2 and np.allclose(out[5:7], x[5:7])
    assert np.isnan(out[0]).all() and np.isnan(out[12:16]).all()


def test_wrong_units_by_a_factor_1000(tmp_path, walk):
    with pytest.raises(GaitFileError, match="factor of 1000"):
        read_gait_file(walk.write_c3d(tmp_path / "m.c3d", scale_mm=1.0))  # metres written as mm
    with pytest.raises(GaitFileError, match="factor of 1000"):
        read_gait_file(walk.write_c3d(tmp_path / "u.c3d", scale_mm=1e6))


def test_emg_declared_in_the_wrong_unit(tmp_path):
    import ezc3d

    walk = SynthWalk(duration=3.0)
    path = walk.write_c3d(tmp_path / "w.c3d", emg_unit="mV")
    c = ezc3d.c3d(str(path))
    c["parameters"]["ANALOG"]["UNITS"]["value"] = ["V"] * len(c["parameters"]["ANALOG"]["LABELS"]["value"])
    c.write(str(tmp_path / "v.c3d"))  # millivolt samples now declared as volts
    trial = read_gait_file(tmp_path / "v.c3d")
    assert trial.emg_units["VL_L"] == "mV"
    assert np.allclose(trial.emg_v["VL_L"], read_gait_file(path).emg_v["VL_L"])
    assert any("VL_L" in n and "read as mV" in n for n in trial.notes)


def test_missing_markers_are_named(tmp_path, walk):
    drop = ("LHEE", "LTOE", "LANK", "RHEE", "RTOE", "RANK")
    trial = read_gait_file(walk.write_c3d(tmp_path / "w.c3d", drop=drop))
    with pytest.raises(GaitFileError, match="missing markers"):
        detect_events(trial, "markers")
    with pytest.raises(GaitFileError, match="no gait events"):
        detect_events(trial)
    no_pelvis = read_gait_file(walk.write_c3d(tmp_path / "p.c3d", drop=("LASI", "RASI", "LPSI", "RPSI")))
    with pytest.raises(GaitFileError, match="pelvis"):
        detect_events(no_pelvis, "markers")


def test_not_a_gait_file(tmp_path):
    (tmp_path / "x.c3d").write_bytes(b"not a c3d")
    with pytest.raises(GaitFileError, match="not a readable C3D"):
        read_gait_file(tmp_path / "x.c3d")
    with pytest.raises(GaitFileError, match="no such file"):
        read_gait_file(tmp_path / "missing.c3d")
    (tmp_path / "x.txt").write_text("1,2")
    with pytest.raises(GaitFileError, match="unknown gait file type"):
        read_gait_file(tmp_path / "x.txt")
    assert issubclass(GaitFileError, MachaonError) and issubclass(GaitFileError, ValueError)


def test_nan_in_emg_is_a_clear_error(tmp_path):
    path = tmp_path / "n.csv"
    with open(path, "w") as f:
        f.write("time_s,EMG1\n")
        for i in range(2000):
            f.write(f"{i / 1000:.3f},{'nan' if i == 700 else '0.0001'}\n")
    with pytest.raises(GaitFileError, match="EMG channel EMG1 has 1 NaN/Inf sample"):
        read_gait_file(path)


def test_match_events_is_one_to_one():
    err, extra, missed = match_events(np.array([1.0, 1.02, 3.0]), np.array([1.01, 2.0]), 0.05)
    assert err.size == 1 and extra == 2 and missed == 1


def test_file_events_are_read_and_compared(tmp_path, walk):
    import ezc3d

    from machaon.exo.events import agreement

    path = walk.write_c3d(tmp_path / "w.c3d")
    c = ezc3d.c3d(str(path))
    for (side, kind), times in walk.events.items():
        for t in times:
            c.add_event([0, float(t)], context=side.capitalize(),
                        label="Foot Strike" if kind == "heel_strike" else "Foot Off")
    c.write(str(tmp_path / "e.c3d"))
    trial = read_gait_file(tmp_path / "e.c3d")
    assert len(trial.file_events) == sum(len(v) for v in walk.events.values())
    assert {(e.side, e.event) for e in trial.file_events} == set(walk.events)
    agree = agreement(detect_events(trial), trial.file_events)
    assert agree["heel_strike"]["matched"] >= 9 and abs(agree["heel_strike"]["mean_error_ms"] + 60) < 15
