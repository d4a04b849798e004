"""Per-screw outcome: errors against the plan, achieved clearance, report.json and pictures."""

from __future__ import annotations

import json
import math

import matplotlib.image as mpimg
import numpy as np
import pytest

from machaon.ortho.anatomy import SpineSegment
from machaon.ortho.planning import Plan, ScrewPlan, auto_plan
from machaon.ortho.report import (
    ReportError,
    evaluate_screw,
    load_report,
    make_report,
    render_pictures,
    screw_errors,
    write_report,
)

MM = 1e-3


@pytest.fixture(scope="module")
def seg() -> SpineSegment:
    return SpineSegment(("L3", "L4"))


@pytest.fixture(scope="module")
def plan(seg: SpineSegment) -> Plan:
    return auto_plan(seg, levels=["L4"], sides=["left"])


def _perp(d: np.ndarray) -> np.ndarray:
    a = np.cross(d, [0.0, 0.0, 1.0])
    return a / np.linalg.norm(a)


def test_errors_of_a_known_deviation(plan: Plan) -> None:
    s = plan.screws[0]
    d, n = s.direction, _perp(s.direction)
    entry = s.entry + 0.4 * MM * n
    # achieved direction tilted by exactly 1 degree about an axis through the achieved entry
    ang = math.radians(1.0)
    d_ach = math.cos(ang) * d + math.sin(ang) * n
    tip = entry + (s.length + 0.3 * MM) * d_ach
    e = screw_errors(s, entry, tip)
    assert e["entry_error"] == pytest.approx(0.4 * MM, abs=1e-12)
    assert e["angle_error"] == pytest.approx(ang, abs=1e-12)
    expected_tip = np.linalg.norm(tip - s.target)
    assert e["tip_error"] == pytest.approx(expected_tip, abs=1e-12)
    along = (s.length + 0.3 * MM) * math.cos(ang)
    assert e["depth_error"] == pytest.approx(along - s.length, abs=1e-12)
    assert e["lateral_tip_error"] == pytest.approx(0.4 * MM + (s.length + 0.3 * MM) * math.sin(ang), abs=1e-12)
    with pytest.raises(ValueError, match="achieved_tip"):
        screw_errors(s, entry, np.array([np.nan, 0.0, 0.0]))


def test_perfect_execution_has_zero_error_and_the_planned_clearance(seg: SpineSegment, plan: Plan) -> None:
    for s in plan:
        r = evaluate_screw(seg, s, s.entry, s.target, times={"drill": 12.5})
        assert r.entry_error == 0 and r.tip_error == 0 and r.angle_error == pytest.approx(0, abs=1e-7)
        assert r.min_clearance == pytest.approx(r.planned_min_clearance, abs=1e-12)
        assert not r.breach


def test_a_medially_drifted_hole_is_reported_as_canal_breach(seg: SpineSegment, plan: Plan) -> None:
    s = plan.screw("L4-L")
    T = seg.level_frame("L4")
    medial = T[:3, :3] @ np.array([-1.0, 0.0, 0.0])  # left screw: medial is -x
    tip = s.target + 9 * MM * medial
    r = evaluate_screw(seg, s, s.entry, tip)
    assert r.breach and r.breach_location == "canal"
    assert r.min_clearance < 0 < r.planned_min_clearance
    assert r.tip_error == pytest.approx(9 * MM)


def test_report_files_round_trip_and_pictures(tmp_path, seg: SpineSegment, plan: Plan) -> None:
    rng = np.random.default_rng(0)
    results = [
        evaluate_screw(
            seg,
            s,
            s.entry + rng.normal(0, 0.2 * MM, 3),
            s.target + rng.normal(0, 0.4 * MM, 3),
            times={"align": 2.0, "drill": 10.0},
            stopped_by="depth_stop",
        )
        for s in plan
    ]
    rep = make_report(
        results, {"fre": 0.12 * MM, "tre_predicted": 0.08 * MM, "n_fiducials": 6}, seg, times={"total": 60.0}
    )
    path = write_report(tmp_path / "run", rep, seg)
    doc = json.loads(path.read_text())
    assert [e["name"] for e in doc["screws"]] == [s.name for s in plan]
    for e, r in zip(doc["screws"], results, strict=True):
        for key in ("entry_error_mm", "tip_error_mm", "angle_error_deg", "min_clearance_mm", "breach"):
            assert key in e
        assert e["entry_error_mm"] == pytest.approx(r.entry_error / MM)
        assert e["angle_error_deg"] == pytest.approx(math.degrees(r.angle_error))
        assert e["stopped_by"] == "depth_stop"
    assert doc["registration"]["fre_mm"] == pytest.approx(0.12)
    assert doc["registration"]["n_fiducials"] == 6
    assert doc["summary"]["max_tip_error_mm"] == pytest.approx(max(r.tip_error for r in results) / MM)
    pngs = sorted((tmp_path / "run").glob("*.png"))
    assert [p.name for p in pngs] == sorted([f"screw_{s.name}.png" for s in plan] + ["level_L4.png"])
    img = mpimg.imread(pngs[0])
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # not a blank picture
    # pictures can be re-drawn from report.json alone (the anatomy is stored in it)
    again = render_pictures(tmp_path / "again", load_report(tmp_path / "run"))
    assert len(again) == len(plan) + 1


def test_bad_reports_are_rejected(tmp_path) -> None:
    with pytest.raises(ReportError):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ReportError):
        load_report(tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ReportError):
        load_report(tmp_path)
    with pytest.raises(ReportError, match="anatomy"):
        s = ScrewPlan("a", "L3", "left", np.zeros(3), np.array([0.0, -0.04, 0.0]), 6.5 * MM)
        render_pictures(tmp_path, {"screws": [{"name": "a", "planned": s.to_dict()}], "anatomy": None})


def test_a_hole_barely_started_reports_no_clearance_and_stays_valid_json(tmp_path, seg, plan) -> None:
    s = plan.screws[0]
    r = evaluate_screw(seg, s, s.entry, s.entry + 0.3 * MM * s.direction, stopped_by="bump")
    assert r.tip_error == pytest.approx(s.length - 0.3 * MM)
    d = r.to_dict()
    assert d["min_clearance_mm"] is None  # JSON has no infinity: null means "nothing drilled"
    path = write_report(tmp_path, make_report([r], anatomy=seg), seg, pictures=False)
    assert json.loads(path.read_text())["screws"][0]["stopped_by"] == "bump"
