"""The exo study: wearers drawn within the published ranges, their own gait, and the summary's rules."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.cli.trial import sim_legs
from machaon.exo.reference import load_reference_gait
from machaon.trials.exo import (
    CADENCE_STEPS_MIN,
    HIP_EXCURSION_DEG,
    KNEE_PEAK_SWING_DEG,
    ExoStudy,
    draw_wearer,
    intended_gait,
    summarise_exo,
    write_exo_report,
)
from machaon.trials.study import RunRecord


def test_wearers_are_drawn_from_the_study_seed_and_meet_every_gain():
    s = ExoStudy(sim_legs, wearers=20, gains=(0.5, 1.0))
    plan = s.plan(4)
    assert plan == s.plan(4) and plan != s.plan(5)
    assert [p["gain"] for p in plan[:3]] == [0.0, 0.5, 1.0]
    assert plan[0]["person"] == plan[1]["person"] == plan[2]["person"] != plan[3]["person"]
    ref = load_reference_gait()
    for p in plan[::3]:
        w = p["person"]
        assert CADENCE_STEPS_MIN[0] <= w["cadence_steps_min"] <= CADENCE_STEPS_MIN[1]
        assert w["stride_time_s"] == pytest.approx(120.0 / w["cadence_steps_min"])
        # the wearer's own gait has exactly the drawn hip excursion and peak knee flexion
        a = np.degrees(intended_gait(w, ref).angles(np.linspace(0, 1, 4001)))
        assert np.ptp(a[:, 0]) == pytest.approx(w["hip_excursion_deg"], abs=0.01)
        assert a[:, 1].max() == pytest.approx(w["knee_peak_swing_deg"], abs=0.01)
        assert HIP_EXCURSION_DEG[0] <= w["hip_excursion_deg"] <= HIP_EXCURSION_DEG[1]
        assert KNEE_PEAK_SWING_DEG[0] <= w["knee_peak_swing_deg"] <= KNEE_PEAK_SWING_DEG[1]
    with pytest.raises(ValueError):
        ExoStudy(sim_legs, gains=(0.0,))


def test_the_simulated_wearer_walks_their_own_gait():
    # a wearer with no weak side whose gait is far from the normative reference: without assist,
    # they follow their own pattern, not the reference
    ref = load_reference_gait()
    w = draw_wearer(np.random.default_rng(0), ref)
    w.update(weak_side="l", strength_hip=1.0, strength_knee=1.0, spasticity_nm_s=0.0, cadence_steps_min=120.0,
             stride_time_s=1.0, hip_excursion_deg=48.0, knee_peak_swing_deg=66.0)
    hip_ref = np.ptp(np.degrees(ref.angles(np.linspace(0, 1, 1001)))[:, 0])
    a = np.degrees(ref.angles(np.linspace(0, 1, 1001)))[:, 1]
    w["gait_rom_scale"] = [48.0 / hip_ref, (66.0 - a.min()) / (a.max() - a.min()), 1.0]
    s = ExoStudy(sim_legs, wearers=1, gains=(1.0,), duration_s=7.0, skip_s=2.5)
    r = s.run({"wearer": 0, "gain": 0.0, "person": w}, seed=1)
    assert r["deviation_intended_deg"]["both"] < r["deviation_reference_deg"]["both"]
    for side in ("l", "r"):  # the walked excursions are the wearer's, not the reference's (40 / 58 deg)
        assert abs(r["hip_excursion_deg"][side] - 48.0) < 0.5 * abs(r["hip_excursion_deg"][side] - hip_ref)
        assert abs(r["knee_peak_deg"][side] - 66.0) < 0.5 * abs(r["knee_peak_deg"][side] - a.max())
    assert r["cadence_steps_min"] == pytest.approx(120.0, rel=0.03)
    assert r["assist_power_mean_w"] == 0.0 and r["symmetry_index"] < 0.05


def _rec(i: int, w: int, gain: float, si: float, dev: float) -> RunRecord:
    person = {"strength_hip": 0.3 + 0.1 * w, "strength_knee": 0.5, "spasticity_nm_s": 2.0 * w,
              "cadence_steps_min": 110.0, "hip_excursion_deg": 40.0, "knee_peak_swing_deg": 60.0}
    res = {"symmetry_index": si, "rom_si": 0.1, "deviation_intended_deg": {"both": dev},
           "deviation_reference_deg": {"both": dev + 1}, "assist_torque_rms_nm": {"hip_l": 3.0 * gain},
           "assist_power_mean_w": 10.0 * gain, "assist_power_positive_w": 5.0 * gain, "cadence_steps_min": 110.0,
           "stride_length_m": 1.0}
    return RunRecord(i, i, {"wearer": w, "gain": gain, "person": person}, res)


def test_a_gain_helps_only_when_symmetry_improves_without_leaving_the_intended_gait():
    recs = [_rec(0, 0, 0.0, 0.10, 3.0), _rec(1, 0, 1.0, 0.05, 3.2), _rec(2, 0, 2.0, 0.02, 5.0),  # 2.0 imposes
            _rec(3, 1, 0.0, 0.10, 3.0), _rec(4, 1, 1.0, 0.12, 2.0), _rec(5, 1, 2.0, 0.08, 3.4)]
    ex = summarise_exo(recs)
    w0, w1 = ex["wearers"]
    assert w0["gains"]["1.0"]["helps"] and not w0["gains"]["2.0"]["helps"] and w0["best_gain"] == 1.0
    assert not w1["gains"]["1.0"]["helps"] and w1["gains"]["2.0"]["helps"] and w1["best_gain"] == 2.0
    g1 = next(g for g in ex["by_gain"] if g["gain"] == 1.0)
    assert g1["helps"] == 1 and g1["change_vs_off"]["symmetry_index"]["mean"] == pytest.approx(-0.015)


def test_the_report_has_a_row_per_gain_and_per_wearer_and_the_figure(tmp_path):
    recs = [_rec(0, 0, 0.0, 0.10, 3.0), _rec(1, 0, 1.0, 0.05, 3.2), _rec(2, 0, 2.0, 0.02, 5.0),
            _rec(3, 1, 0.0, 0.10, 3.0), _rec(4, 1, 1.0, 0.12, 2.0), _rec(5, 1, 2.0, 0.08, 3.4)]
    for r in recs:
        r.params["person"]["weak_side"] = "l"
    summary = {"seed": 3, "runs": {"done": 6, "errors": 1}, "exo": summarise_exo(recs),
               "errors": [{"index": 6, "seed": 6, "error": "LegSimError: fell"}]}
    paths = write_exo_report(tmp_path, summary)
    assert [p.name for p in paths] == ["report.md", "exo_gains.png"] and all(p.stat().st_size > 0 for p in paths)
    text = paths[0].read_text()
    assert "# Exoskeleton study (seed 3)" in text and "6 walks (1 failed): 2 simulated wearers" in text
    assert "| 1 | 2 | " in text and "| 1/2 |" in text          # gain 1: two walks, helps one wearer of two
    assert "| 0 | l | 0.30/0.50 |" in text and "| 0.050 ✓ | 0.020 | 1 |" in text  # wearer 0: gain 1 helps, best
    assert "| 1 | l | 0.40/0.50 |" in text and "| 0.120 | 0.080 ✓ | 2 |" in text
    assert "## Failed runs" in text and "LegSimError: fell" in text
