"""Planning on real vertebra shapes (MyoSuite's myo_sim lumbar meshes, Apache-2.0; skipped when absent).

The meshes come from the OpenSim lumbar spine model that myo_sim converts (a real spine's
geometry, coarse: 424 triangles per vertebra). They are placed as a CT segmentation would be:
millimetres, LPS frame, each level 35 mm below the previous one, and (in one test) turned and
moved so that nothing relies on the model's own axes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from machaon.ortho.mesh_anatomy import analyse_vertebra
from machaon.ortho.mesh_planning import plan_mesh_files
from machaon.ortho.mesh_repair import load_bone_mesh
from machaon.ortho.planning import Plan, check_plan
from tests._realdata import myo_sim_vertebra

MM = 1e-3


def _pose(deg: tuple[float, float, float], t_mm: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", deg, degrees=True).as_matrix()
    T[:3, 3] = t_mm
    return T


@pytest.fixture(scope="module")
def spine_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("spine")
    out = []
    for i, lv in enumerate(("L2", "L3", "L4")):
        m = myo_sim_vertebra(lv, _pose((0, 0, 0), (12.0, -40.0, 900.0 - 35.0 * i)))
        m.export(d / f"{lv}.stl")
        out.append(d / f"{lv}.stl")
    return out


@pytest.fixture(scope="module")
def planned(spine_files):
    return plan_mesh_files(spine_files)


def _assert_screw_safe(rep, min_diameter=4.0 * MM):
    assert rep.breach is None, rep
    assert rep.cortex_clearance >= 0.5 * MM - 1e-9, rep  # the screw stays inside the cortex
    assert rep.canal_clearance >= 1.0 * MM, rep
    assert rep.tip_to_anterior_cortex >= 5 * MM, rep
    assert 0.0 <= rep.medial_angle <= math.radians(40), rep
    assert rep.diameter >= min_diameter and rep.length >= 20 * MM, rep
    assert rep.ok, rep


def test_both_pedicles_of_every_level_inside_bone(planned):
    names = [s.name for s in planned.plan.screws]
    assert names == ["L2-L", "L2-R", "L3-L", "L3-R", "L4-L", "L4-R"]
    for rep in planned.reports:
        _assert_screw_safe(rep)
    # the screws of a level converge and do not meet
    for lv in ("L2", "L3", "L4"):
        left, right = planned.plan.screw(f"{lv}-L"), planned.plan.screw(f"{lv}-R")
        assert left.target[0] < left.entry[0] and right.target[0] > right.entry[0]  # towards the midline


def test_anatomy_found_from_the_surface(planned):
    for lv, a in planned.anatomy.items():
        assert abs(a.midsagittal_normal @ np.array([1.0, 0.0, 0.0])) > math.cos(math.radians(2)), lv
        assert a.symmetry_rms < 1.5 * MM
        assert 8 * MM < a.canal_width < 25 * MM and 4 * MM < a.canal_depth < 20 * MM
        assert 25 * MM < a.body_depth < 45 * MM and 35 * MM < a.body_width < 60 * MM
        # body in front of the canal, pedicles either side of it, left at +x
        assert a.body_centre[1] < a.canal_centre[1]
        assert a.pedicles["left"].isthmus[0] > a.canal_centre[0] > a.pedicles["right"].isthmus[0]
        for p in a.pedicles.values():
            assert 6 * MM < 2 * p.inscribed_radius < 16 * MM


def test_plan_file_has_every_screw_report(tmp_path, planned):
    planned.save(tmp_path / "plan.json")
    d = json.loads((tmp_path / "plan.json").read_text())
    for s in d["screws"]:
        for k in ("entry_mm", "target_mm", "diameter_mm", "length_mm", "cortex_clearance_mm",
                  "canal_clearance_mm", "tip_to_anterior_cortex_mm", "ok"):
            assert k in s, k
    assert set(d["meta"]["levels"]) == {"L2", "L3", "L4"}
    back = Plan.load(tmp_path / "plan.json")
    assert [s.name for s in back] == [s.name for s in planned.plan]
    # the reports agree with an independent check of the saved screws on the same bone
    for s in back:
        c = check_plan(planned.bone, s)
        assert c.min_clearance == pytest.approx(planned.report(s.name).cortex_clearance, abs=0.05 * MM)


def test_turned_and_moved_vertebra(tmp_path):
    T = _pose((8.0, -6.0, 12.0), (-20.0, 35.0, 610.0))  # axial rotation 12 deg, tilts of 6-8 deg
    m = myo_sim_vertebra("L4", T)
    m.export(tmp_path / "L4.stl")
    mp = plan_mesh_files([tmp_path / "L4.stl"])
    a = mp.anatomy["L4"]
    expect = T[:3, :3] @ np.array([1.0, 0.0, 0.0])  # the model's own symmetry plane, turned
    assert math.degrees(math.acos(abs(float(a.midsagittal_normal @ expect)))) < 2.0
    for rep in mp.reports:
        _assert_screw_safe(rep)


def test_dense_mesh_gives_the_same_anatomy(tmp_path):
    coarse = myo_sim_vertebra("L3")
    dense = coarse.subdivide_to_size(0.8)  # mm: ~100k triangles on the same shape
    assert len(dense.faces) > 90_000
    dense.export(tmp_path / "L3.stl")
    coarse.export(tmp_path / "L3c.stl")
    a_d = analyse_vertebra(load_bone_mesh(tmp_path / "L3.stl").mesh, "L3")
    a_c = analyse_vertebra(load_bone_mesh(tmp_path / "L3c.stl").mesh, "L3")
    assert np.linalg.norm(a_d.canal_centre - a_c.canal_centre) < 1 * MM
    for s in ("left", "right"):
        assert np.linalg.norm(a_d.pedicles[s].isthmus - a_c.pedicles[s].isthmus) < 1.5 * MM
    mp = plan_mesh_files([tmp_path / "L3.stl"])
    for rep in mp.reports:
        _assert_screw_safe(rep)


def test_mesh_exported_in_ras_is_read_turned(tmp_path):
    """A mesh written in RAS (x and y negated) is recognised by where its body lies; the screws keep
    their sides (the patient's left is image -x in RAS)."""
    T = np.diag([-1.0, -1.0, 1.0, 1.0])
    myo_sim_vertebra("L3", T).export(tmp_path / "L3.stl")
    mp = plan_mesh_files([tmp_path / "L3.stl"])
    a = mp.anatomy["L3"]
    assert any("RAS" in n for n in a.notes)
    assert a.pedicles["left"].isthmus[0] < a.canal_centre[0] < a.pedicles["right"].isthmus[0]
    for rep in mp.reports:
        _assert_screw_safe(rep)
