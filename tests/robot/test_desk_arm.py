"""The desk arm's description: generated URDF, servo map, and servos that can hold the arm.

The sizing check is the issue's: peak gravity torque at every joint within 60 % of its servo's
stall torque across the workspace (every configuration inside the joint limits, with the rated
payload at the flange), computed with the chain's dynamics.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tomllib

import numpy as np
import pinocchio as pin
import pytest

from machaon.hardware.backend import ActuatorConfig
from machaon.hardware.control_table import model_by_name
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import DESCRIPTIONS_DIR, load_description


def _generator():
    spec = importlib.util.spec_from_file_location("gen_desk", DESCRIPTIONS_DIR / "generate_desk_arm.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_desk"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def desk():
    return load_description("desk")


@pytest.fixture(scope="module")
def servo_map():
    return ActuatorConfig.from_robot("desk", port="/dev/null")


def test_committed_urdf_equals_generator_output():
    for fname, text in _generator().build_urdfs().items():
        assert (DESCRIPTIONS_DIR / fname).read_text() == text, fname


def test_servo_housings_carry_the_datasheet_masses():
    gen = _generator()
    for spec in (gen.XM540_W270, gen.XM430_W350):
        box = gen.housing(spec, "y", 0.1, "z")
        assert box.inertia().mass == pytest.approx(spec.mass, rel=1e-12)
        assert spec.stall_torque_nm == model_by_name(spec.name).stall_torque_nm
        assert spec.gear_ratio == model_by_name(spec.name).gear_ratio


def test_description_and_servo_map_agree(desk, servo_map):
    assert desk.dof == 6 and desk.tip_link == "flange"
    assert tuple(j.name for j in servo_map.joints) == desk.joint_names
    assert [j.id for j in servo_map.joints] == [1, 2, 3, 4, 5, 6]
    assert servo_map.mode == "current" and servo_map.baudrate == 4_000_000
    model = pin.buildModelFromUrdf(str(desk.urdf_path))
    moving = sum(model.inertias[i].mass for i in range(1, model.njoints))
    assert 0.5 < moving < 1.5  # desk scale: under a kilogram and a half beyond the base
    for k, j in enumerate(servo_map.joints):
        m = model_by_name(j.model)
        # the map's torque constant is the e-Manual's (stall torque / stall current), its gear ratio too
        assert j.kt_nm_per_a == pytest.approx(m.stall_torque_nm / m.stall_current_a, rel=2e-3)
        assert j.gear_ratio == m.gear_ratio
        # the description's armature is the servo's reflected rotor inertia
        assert desk.armature[k] == pytest.approx(m.rotor_inertia_out)
        # the software torque limit is 60 % of stall, and the current cap makes about that torque
        assert desk.effort_limit[k] <= 0.6 * m.stall_torque_nm + 1e-9
        assert j.current_limit_a * j.kt_nm_per_a == pytest.approx(desk.effort_limit[k], rel=0.05)
    assert servo_map.start_hold  # the arm does not drop between opening the port and the first command


def test_peak_gravity_torque_within_60_percent_of_stall(desk, servo_map):
    payload = tomllib.loads((DESCRIPTIONS_DIR / "desk.toml").read_text())["simulation"]["payload_kg"]
    chain = Chain.from_urdf(desk.urdf_path, desk.base_link, desk.tip_link)
    dyn = Dynamics(chain, payload_mass=payload, payload_com=(0.0, 0.0, 0.03))
    stall = np.array([model_by_name(j.model).stall_torque_nm for j in servo_map.joints])
    rng = np.random.default_rng(12)
    lo, hi = np.asarray(desk.lower), np.asarray(desk.upper)
    samples = list(rng.uniform(lo, hi, size=(4000, 6)))
    # and the worst cases: every combination of the pitch joints at their limits and mid-points,
    # with the rolls turning the wrist's offset sideways
    pitch = [np.linspace(lo[k], hi[k], 9) for k in (1, 2, 4)]
    for q2, q3, q5 in itertools.product(*pitch):
        for q4 in (0.0, np.pi / 2):
            samples.append(np.array([0.0, q2, q3, q4, q5, 0.0]))
    g_max = np.max(np.abs([dyn.gravity(q) for q in samples]), axis=0)
    ratio = g_max / stall
    assert (ratio <= 0.6).all(), dict(zip(desk.joint_names, np.round(ratio, 3), strict=True))
    assert ratio[1] > 0.1  # the shoulder does carry the arm (a sanity check of the sampling)
    # the controller's torque saturation leaves the gravity load headroom
    assert (g_max < np.asarray(desk.effort_limit)).all()


def test_home_pose_inside_the_workspace_and_pointing_down(desk):
    chain = Chain.from_urdf(desk.urdf_path, desk.base_link, desk.tip_link)
    T = chain.fk(np.asarray(desk.q_home))
    assert (T[:3, 3] > desk.workspace_min).all() and (T[:3, 3] < desk.workspace_max).all()
    np.testing.assert_allclose(T[:3, 2], [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(T[:3, 3], [0.26, 0.0, 0.147], atol=0.01)
    # 6 cm moves around home (the sim's square scenario, a teleop session) stay inside the limits
    for off in [(0.06, 0.06, 0.04), (0.0, 0.06, 0.04), (0.06, 0.0, -0.04), (-0.05, -0.05, 0.0)]:
        T_goal = T.copy()
        T_goal[:3, 3] += off
        res = chain.ik(T_goal, q0=np.asarray(desk.q_home))
        assert res.success and (res.q > desk.lower + 0.2).all() and (res.q < desk.upper - 0.2).all(), off
    assert np.linalg.svd(chain.jacobian(np.asarray(desk.q_home)), compute_uv=False)[-1] > 0.02


def test_dynamics_carry_the_armature(desk):
    import pickle

    chain = Chain.from_urdf(desk.urdf_path, desk.base_link, desk.tip_link)
    bare = Dynamics(chain)
    full = Dynamics(chain, armature=desk.armature)
    q = np.asarray(desk.q_home) + 0.1
    dq, ddq = np.linspace(-0.5, 0.5, 6), np.linspace(1.0, -1.0, 6)
    np.testing.assert_allclose(np.diag(full.mass_matrix(q) - bare.mass_matrix(q)), desk.armature, atol=1e-12)
    np.testing.assert_allclose(full.gravity(q), bare.gravity(q), atol=1e-12)
    # the compiled chain against pinocchio with the same armature
    model = pin.buildModelFromUrdf(str(desk.urdf_path))
    model.armature[:] = desk.armature
    data = model.createData()
    M = pin.crba(model, data, q)
    np.testing.assert_allclose(full.chain.mass_matrix(q), np.triu(M) + np.triu(M, 1).T, atol=1e-10)
    np.testing.assert_allclose(full.chain.rnea(q, dq, ddq), pin.rnea(model, data, q, dq, ddq), atol=1e-10)
    # kept through a tool, a payload and pickling (studies ship chains to Ray workers)
    arm_chain = full.chain.with_tool(np.eye(4)).with_payload(0.2, (0.0, 0.0, 0.02))
    np.testing.assert_allclose(arm_chain.armature, desk.armature)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(full.chain)).armature, desk.armature)
    assert not bare.chain.armature.any()  # the chain given to Dynamics is left as it was
    with pytest.raises(ValueError, match="armature"):
        Dynamics(chain, armature=[-1.0] * 6)
