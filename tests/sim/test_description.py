"""The arm and tool descriptions: URDFs load in pinocchio and PyBullet, inertias come from shapes."""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pinocchio as pin
import pybullet as p
import pybullet_data
import pytest

from machaon.robot.description import DESCRIPTIONS_DIR, DescriptionError, load_description


def _generator():
    spec = importlib.util.spec_from_file_location("gen_arm", DESCRIPTIONS_DIR / "generate_machaon_arm.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_arm"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_committed_urdfs_equal_generator_output():
    for fname, text in _generator().build_urdfs().items():
        assert (DESCRIPTIONS_DIR / fname).read_text() == text, fname


def test_hollow_tube_inertia_matches_closed_form():
    gen = _generator()
    ro, ri, L, rho = 0.05, 0.044, 0.24, gen.ALUMINIUM
    inert = gen.Cyl(ro, L, rho, r_inner=ri).inertia()
    m = rho * math.pi * (ro**2 - ri**2) * L
    assert inert.mass == pytest.approx(m, rel=1e-12)
    assert inert.inertia[2, 2] == pytest.approx(0.5 * m * (ro**2 + ri**2), rel=1e-12)
    assert inert.inertia[0, 0] == pytest.approx(m * (3 * (ro**2 + ri**2) + L**2) / 12, rel=1e-12)


def test_arm_description_loads_and_is_consistent():
    d = load_description("machaon_arm")
    assert d.dof == 6 and d.base_link == "base_link" and d.tip_link == "flange"
    model = pin.buildModelFromUrdf(str(d.urdf_path))
    assert tuple(model.names[1:]) == d.joint_names
    assert (d.lower >= model.lowerPositionLimit - 1e-12).all()
    assert (d.upper <= model.upperPositionLimit + 1e-12).all()
    masses = [model.inertias[i].mass for i in range(1, model.njoints)]
    assert all(m > 0.2 for m in masses)
    assert 8.0 < sum(masses) < 30.0  # a surgical-scale arm, not a toy
    for i in range(1, model.njoints):  # physically valid inertia: positive definite, triangle inequality
        ev = np.linalg.eigvalsh(model.inertias[i].inertia)
        assert (ev > 0).all() and ev[0] + ev[1] >= ev[2] - 1e-12
    data = model.createData()
    fid = model.getFrameId("flange")
    # Reach: stretched straight up, shoulder axis to flange is 0.85 m.
    pin.framesForwardKinematics(model, data, np.zeros(6))
    shoulder = data.oMi[2].translation
    assert np.linalg.norm(data.oMf[fid].translation - shoulder) == pytest.approx(0.85, abs=1e-9)


def test_spherical_wrist_axes_intersect():
    d = load_description("machaon_arm")
    model = pin.buildModelFromUrdf(str(d.urdf_path))
    data = model.createData()
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = rng.uniform(d.lower, d.upper)
        pin.forwardKinematics(model, data, q)
        p4, p5, p6 = (data.oMi[j].translation for j in (4, 5, 6))
        z4 = data.oMi[4].rotation[:, 2]
        # joint 5 and 6 origins sit on the joint 4 axis ... and coincide with the wrist centre
        assert np.linalg.norm(np.cross(p5 - p4, z4)) < 1e-12
        z6 = data.oMi[6].rotation[:, 2]
        assert np.linalg.norm(np.cross(p6 - p5, z6)) < 1e-12


def test_home_pose_is_well_conditioned():
    d = load_description("machaon_arm")
    model = pin.buildModelFromUrdf(str(d.urdf_path))
    data = model.createData()
    fid = model.getFrameId("flange")
    J = pin.computeFrameJacobian(model, data, d.q_home, fid, pin.LOCAL_WORLD_ALIGNED)
    sv = np.linalg.svd(J, compute_uv=False)
    assert sv[-1] > 0.1
    pin.framesForwardKinematics(model, data, d.q_home)
    # Flange z points down at home, and with each tool the TCP is inside the workspace box.
    assert data.oMf[fid].rotation[:, 2] == pytest.approx([0, 0, -1], abs=1e-9)
    for tool in d.tools:
        p_tcp = (data.oMf[fid].homogeneous @ d.T_flange_tool(tool))[:3, 3]
        assert (p_tcp > d.workspace_min).all() and (p_tcp < d.workspace_max).all()


def test_tools_have_tcp_and_payload():
    d = load_description("machaon_arm")
    guide = d.tool("drill_guide")
    assert guide.tcp_link == "guide_tcp"
    assert d.T_flange_tool("drill_guide")[:3, 3] == pytest.approx([0, 0, 0.165])
    drill = d.tool("drill")
    assert drill.tcp_link == "drill_tip" and drill.mass > guide.mass > 0.1
    assert 0.0 < drill.com_flange[0] < 0.06  # the handpiece hangs to the side of the flange
    with pytest.raises(DescriptionError, match="no tool"):
        d.tool("scalpel")


@pytest.mark.parametrize("tool", [None, "drill_guide", "drill"])
def test_urdfs_load_in_pybullet(tool):
    d = load_description("machaon_arm")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "arm.urdf"
        f.write_text(d.urdf_with_tool(tool))
        cid = p.connect(p.DIRECT)
        try:
            body = p.loadURDF(str(f), useFixedBase=True, physicsClientId=cid)
            names = [p.getJointInfo(body, i, physicsClientId=cid)[1].decode() for i in range(
                p.getNumJoints(body, physicsClientId=cid))]
            assert names[:6] == list(d.joint_names)
            if tool is not None:
                last = p.getJointInfo(body, len(names) - 1, physicsClientId=cid)
                assert last[12].decode() == d.tool(tool).tcp_link
        finally:
            p.disconnect(cid)


def test_any_urdf_arm_loads_the_same_way():
    d = load_description(Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf")
    assert d.dof == 7 and d.base_link == "lbr_iiwa_link_0" and d.tip_link == "lbr_iiwa_link_7"
    assert (d.q_home >= d.lower).all() and (d.q_home <= d.upper).all()


def test_bad_descriptions_raise(tmp_path):
    with pytest.raises(DescriptionError, match="unknown robot"):
        load_description("no_such_robot")
    for src in DESCRIPTIONS_DIR.glob("machaon_*.urdf"):
        shutil.copy(src, tmp_path / src.name)
    bad = (DESCRIPTIONS_DIR / "machaon_arm.toml").read_text()
    f = tmp_path / "arm.toml"
    f.write_text(bad.replace("home_deg = [0.0, 20.0, 70.0", "home_deg = [0.0, 20.0, 170.0"))
    with pytest.raises(DescriptionError, match="home pose"):
        load_description(f)
    f.write_text(bad.replace("tcp_xyz_m = [0.0, 0.0, 0.165]", "tcp_xyz_m = [0.0, 0.0, 0.17]"))
    with pytest.raises(DescriptionError, match="disagrees"):
        load_description(f)
    f.write_text(bad.replace('"elbow", "forearm_roll"', '"forearm_roll", "elbow"'))
    with pytest.raises(DescriptionError, match="joint_names"):
        load_description(f)


def test_safety_kwargs_build_a_supervisor_config(arm_desc):
    from machaon.control.supervisor import SafetyConfig

    cfg = SafetyConfig(**arm_desc.safety_kwargs())
    np.testing.assert_allclose(cfg.brake_damping, arm_desc.brake_damping)
    np.testing.assert_allclose(cfg.workspace_max, arm_desc.workspace_max)
    assert "workspace_min" not in arm_desc.safety_kwargs(workspace=False)
