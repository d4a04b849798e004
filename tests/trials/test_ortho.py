"""The ortho study: conditions drawn per screw, full-mode pairs, the clinical summary, one real screw."""

from __future__ import annotations

import json

import pytest

from machaon.ortho.grading import GRADES
from machaon.trials.ortho import NOISE_PROFILES, OrthoStudy, summarise_screws, write_ortho_report
from machaon.trials.study import RunRecord, run_seed


def test_plan_draws_each_screw_within_the_profile_and_pairs_full_mode_runs():
    s = OrthoStudy.create(screws=40, levels=("L2", "L3"), noise="clinical", compare=4)
    plan = s.plan(9)
    assert plan == s.plan(9) and plan != s.plan(10)
    trial, full = plan[:40], plan[40:]
    assert len(full) == 4 and all(p["mode"] == "full" for p in full)
    assert {p["level"] for p in trial} == {"L2", "L3"} and {p["side"] for p in trial} == {"left", "right"}
    prof = NOISE_PROFILES["clinical"]
    for p in trial:
        c = p["conditions"]
        for k in ("pixel_sigma_px", "fiducial_noise_mm", "breathing_mm", "breathing_per_min", "bone_density",
                  "skive_gain"):
            assert prof[k][0] <= c[k] <= prof[k][1], k
        assert c["bump_mm"] == 0.0 or prof["bump_mm"][0] <= c["bump_mm"] <= prof["bump_mm"][1]
        assert prof["calibration_poses"][0] <= c["calibration_poses"] <= prof["calibration_poses"][1]
    bumps = sum(p["conditions"]["bump_mm"] > 0 for p in trial)
    assert 3 <= bumps <= 25  # probability 0.3 of 40
    for p in full:  # same screw, same conditions, the trial run's seed
        twin = trial[p["screw"]]
        assert {k: v for k, v in p.items() if k not in ("mode", "procedure_seed")} == {
            k: v for k, v in twin.items() if k != "mode"}
        assert p["procedure_seed"] == run_seed(9, p["screw"])
    with pytest.raises(ValueError, match="noise"):
        OrthoStudy.create(noise="storm")
    with pytest.raises(ValueError, match="level"):
        OrthoStudy.create(levels=("L9",))
    assert OrthoStudy.create(screws=200).compare == 10 and OrthoStudy.create(screws=3).compare == 0


def _rec(i: int, grade: str, tip: float, stopped: str = "depth_stop", mode: str = "trial", screw: int | None = None,
         direction: str | None = None) -> RunRecord:
    cond = {"pixel_sigma_px": 0.05 + 0.01 * i, "fiducial_noise_mm": 0.3, "breathing_mm": 1.0,
            "breathing_per_min": 15.0, "bump_mm": 0.0, "bump_direction": [1.0, 0.0, 0.0], "bump_depth_mm": 10.0,
            "calibration_poses": 10, "bone_density": 1.0, "skive_gain": 0.1}
    res = {"entry_mm": tip / 2, "tip_mm": tip, "angle_deg": tip / 3, "grade": grade,
           "breach_mm": {"A": 0.0, "B": 1.0, "C": 3.0, "D": 5.0, "E": 7.0}[grade], "breach_direction": direction,
           "outside_pedicle": False, "anterior_breach_mm": 0.0, "depth_error_mm": 0.0, "stopped_by": stopped,
           "pauses": 0, "registration_tre_mm": 0.2, "hand_eye_error_mm": 1.0 + 0.1 * i, "diameter_mm": 6.5,
           "procedure_seed": 1000 + i}
    return RunRecord(i, 1000 + i, {"screw": i if screw is None else screw, "level": "L3", "side": "left",
                                   "mode": mode, "conditions": cond}, res)


def test_summary_counts_grades_and_reports_deviations_of_finished_screws(tmp_path):
    recs = [_rec(i, "A", 0.5 + 0.1 * i) for i in range(8)]
    recs += [_rec(8, "B", 1.5, direction="medial"), _rec(9, "C", 40.0, stopped="breach", direction="lateral"),
             RunRecord(10, 5, recs[0].params, None, "ProcedureError: stand-off pose")]
    recs += [_rec(11, "A", 0.6, mode="full", screw=0)]
    s = summarise_screws(recs)
    assert s["grades"] == {"A": 8, "B": 1, "C": 1, "D": 0, "E": 0}
    assert s["grade_a"]["k"] == 8 and s["grade_a"]["n"] == 10 and s["grade_ab"]["share"] == pytest.approx(0.9)
    assert s["completed"] == 9 and s["tip_mm"]["n"] == 9  # the breach-stopped screw's short hole is left out
    assert s["tip_mm"]["max"] == pytest.approx(1.5)
    assert s["breach_directions"] == {"medial": 1, "lateral": 1} and s["failed_screws"] == 1
    assert len(s["screws"]) == 10
    for scr in s["screws"]:
        assert {"entry_mm", "tip_mm", "angle_deg", "grade", "seed", "conditions"} <= set(scr)
        assert scr["grade"] in GRADES and "pixel_sigma_px" in scr["conditions"]
    assert s["mode_comparison"]["n"] == 1
    summary = {**s, "seed": 0, "settings": OrthoStudy.create(screws=10).settings(),
               "errors": [{"index": 10, "seed": 5, "params": recs[0].params, "error": "ProcedureError: stand-off"}]}
    paths = write_ortho_report(tmp_path, json.loads(json.dumps(summary)), recs)
    text = (tmp_path / "report.md").read_text()
    assert "TiRobot" in text and "95.3 %" in text and "| A | inside the pedicle | 8 |" in text
    assert all(p.exists() for p in paths)


def test_one_simulated_screw_in_trial_mode():
    s = OrthoStudy.create(screws=1, levels=("L3",), noise="ideal", compare=0)
    p = s.plan(2)[0]
    r = s.run(p, run_seed(2, 0))
    assert r["stopped_by"] == "depth_stop" and r["grade"] == "A"
    assert r["entry_mm"] < 1.0 and r["tip_mm"] < 1.5 and r["angle_deg"] < 1.5
    assert r["procedure_seed"] == run_seed(2, 0) and r["hand_eye_poses"] >= 4


def test_cli_settings_and_bad_input(tmp_path, capsys):
    from machaon.cli.main import build_parser, main

    args = build_parser().parse_args(["trial", "ortho", "--screws", "3", "--levels", "L2,L3", "L4", "--out", "d"])
    assert [lv for g in args.levels for lv in g] == ["L2", "L3", "L4"] and args.noise == "clinical"
    assert main(["trial", "ortho", "--screws", "3", "--levels", "L9", "--out", str(tmp_path / "a")]) == 2
    assert "L9" in capsys.readouterr().err
    assert main(["trial", "ortho", "--noise", "storm", "--out", str(tmp_path / "b")]) == 2
    assert "known: ideal, clinical, harsh" in capsys.readouterr().err
