"""Execution pieces without the full procedure: patient motion, navigation filter, axis hold, drilled path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from machaon.ortho.execution import (
    AxisGains,
    AxisHoldController,
    HoleSample,
    Navigator,
    PatientMotion,
    Phase,
    drilled_path,
)
from machaon.ortho.tracking import CameraModel, MarkerPlate, NoiseModel, Tracker

MM = 1e-3


def pose(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def test_patient_motion_breathing_and_bump() -> None:
    m = PatientMotion(np.eye(4), amplitude_m=0.003, frequency_hz=0.25, direction=(0.0, 0.0, 1.0))
    assert np.allclose(m.offset(1.0), [0, 0, 0.003])  # a quarter period
    assert np.allclose(m.offset(2.0), 0.0, atol=1e-12)
    T = m.T_world_patient(1.0)
    assert np.allclose(T[:3, 3], [0, 0, 0.003])
    still = PatientMotion(np.eye(4), amplitude_m=0.0)
    still.add_bump(2.0, np.array([0.0, 0.004, 0.0]), duration_s=0.1)
    assert np.allclose(still.offset(2.0), 0.0, atol=1e-12)
    assert np.allclose(still.offset(2.1), [0.0, 0.004, 0.0], atol=1e-12)  # stays shifted
    assert 0.0 < still.offset(2.05)[1] < 0.004
    with pytest.raises(ValueError):
        PatientMotion(np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        m.add_bump(3.0, np.array([np.nan, 0.0, 0.0]))


def _nav_setup(seed: int = 0):
    cam = CameraModel.from_fov(1280, 960, 42.0)
    ref = MarkerPlate("reference", 7, 5, 0.025, 0.019, first_id=0)
    tool = MarkerPlate("tool", 6, 4, 0.02, 0.015, first_id=20)
    tracker = Tracker(cam, (ref, tool), NoiseModel(pixel_sigma=0.1))
    T_base_cam = pose([2.3, 0.0, 0.4], [0.8, -0.45, 0.8])
    T_cam_ref = pose(Rotation.from_euler("xy", [np.pi + 0.5, 0.2]).as_rotvec(), [0.05, 0.0, 0.8])
    T_ref_image = pose([0.1, 0.0, 0.0], [0.0, -0.1, 0.12])
    T_flange_plate = pose([0.0, 0.0, 0.0], [0.0, -0.08, 0.07])
    T_flange_tip = pose([0.0, 0.0, 0.0], [0.0, 0.0, 0.245])
    return tracker, T_base_cam, T_cam_ref, T_ref_image, T_flange_plate, T_flange_tip, np.random.default_rng(seed)


def test_navigator_static_estimate_is_accurate_and_filtered() -> None:
    tracker, T_base_cam, T_cam_ref, T_ref_image, T_fp, T_ft, rng = _nav_setup()
    nav = Navigator(T_base_cam, T_ref_image, T_fp, T_ft, 50.0)
    truth = T_base_cam @ T_cam_ref @ T_ref_image
    for _ in range(100):
        m = tracker.measure("reference", T_cam_ref, rng)
        nav.update(m.T_cam_plate, None, np.eye(4))
    assert nav.valid
    assert np.linalg.norm(nav.T_base_image[:3, 3] - truth[:3, 3]) < 0.3 * MM
    assert np.linalg.norm(nav.v_image) < 5 * MM  # no motion estimated from noise alone
    assert nav.innovation < 1.5 * MM  # below the bump threshold


def test_navigator_tool_plate_corrects_a_hand_eye_error() -> None:
    """A wrong camera pose shifts the estimate; the tracked tool plate pulls it back to the truth."""
    tracker, T_base_cam, T_cam_ref, T_ref_image, T_fp, T_ft, rng = _nav_setup(1)
    T_err = pose([0.0, 0.002, 0.0], [0.002, -0.001, 0.0015])
    nav = Navigator(T_err @ T_base_cam, T_ref_image, T_fp, T_ft, 50.0)
    truth = T_base_cam @ T_cam_ref @ T_ref_image
    # the robot's flange where the tool plate is seen by the camera (plate facing it, tilted)
    T_cam_toolplate = pose(Rotation.from_euler("xy", [np.pi - 0.5, -0.3]).as_rotvec(), [-0.05, 0.05, 0.75])
    T_base_flange = T_base_cam @ T_cam_toolplate @ np.linalg.inv(T_fp)
    for _ in range(150):
        nav.update(tracker.measure("reference", T_cam_ref, rng).T_cam_plate,
                   tracker.measure("tool", T_cam_toolplate, rng).T_cam_plate, T_base_flange)
    p_entry = np.array([0.0, 0.04, 0.0])
    est = nav.T_base_image[:3, :3] @ p_entry + nav.T_base_image[:3, 3]
    tru = truth[:3, :3] @ p_entry + truth[:3, 3]
    assert np.linalg.norm(est - tru) < 0.4 * MM
    uncorrected = T_err @ truth
    assert np.linalg.norm(uncorrected[:3, :3] @ p_entry + uncorrected[:3, 3] - tru) > 2 * MM


def test_navigator_detects_a_bump_and_tolerates_dropouts() -> None:
    tracker, T_base_cam, T_cam_ref, T_ref_image, T_fp, T_ft, rng = _nav_setup(2)
    nav = Navigator(T_base_cam, T_ref_image, T_fp, T_ft, 50.0)
    for _ in range(50):
        nav.update(tracker.measure("reference", T_cam_ref, rng).T_cam_plate, None, np.eye(4))
    quiet = nav.innovation
    shifted = T_cam_ref.copy()
    shifted[:3, 3] += [0.0, 0.004, 0.0]
    jumps = []
    for _ in range(3):
        nav.update(tracker.measure("reference", shifted, rng).T_cam_plate, None, np.eye(4))
        jumps.append(nav.innovation)
    assert max(jumps) > 1.5 * MM > quiet
    for _ in range(5):
        nav.update(None, None, np.eye(4))
    assert nav.valid and nav.missed == 5
    nav.update(None, None, np.eye(4))
    assert not nav.valid


class _StubImpedance:
    """Records what the axis controller asks of a Cartesian impedance (the real one is exercised in the procedure)."""

    def __init__(self) -> None:
        from machaon.kinematics import Chain
        from machaon.robot.description import load_description

        d = load_description("machaon_arm")
        self.chain = Chain.from_urdf(d.urdf_path, d.base_link, d.tip_link)
        self.fixtures = None
        self.target = None
        self.gains = []

    def set_target(self, T, v_d=None, w_ff=None):
        self.target = (T, v_d)

    def set_gains(self, g, ramp_s=None):
        self.gains.append(g)

    def on_activate(self, state, t):
        pass

    def update(self, state, t):
        return None


def test_axis_hold_feeds_to_the_depth_stop_and_fixtures_follow_the_axis() -> None:
    from machaon.types import JointState

    imp = _StubImpedance()
    ctl = AxisHoldController(imp, AxisGains(), 0.01, feed_m_s=0.005, standoff_m=0.02)
    entry, axis = np.array([0.45, 0.0, 0.25]), np.array([0.0, 0.0, -1.0])
    ctl.set_axis(entry, axis)
    q = np.zeros(imp.chain.dof)
    st = JointState(0.0, q, np.zeros_like(q), np.zeros_like(q), wrench_tool=np.zeros(6))
    ctl.on_activate(st, 0.0)
    ctl.update(st, 0.0)
    assert ctl.s_cmd == pytest.approx(-0.02)
    T, _ = imp.target
    assert np.allclose(T[:3, 2], axis) and np.allclose(T[:3, 3], entry - 0.02 * axis)
    ctl.set_phase(Phase.DRILL)
    assert imp.gains and imp.gains[-1].stiffness[2] == AxisGains().k_along_drill
    t = 0.0
    for _ in range(2500):
        t += 0.002
        ctl.update(JointState(t, q, np.zeros_like(q), np.zeros_like(q), wrench_tool=np.zeros(6)), t)
    assert ctl.s_cmd == pytest.approx(0.01 + ctl.preload_m)  # never beyond the stop (plus its preload)
    stop = imp.fixtures.terms[1]
    assert stop.max_depth == pytest.approx(0.01)
    # the axis moves with the patient: the target blends over, the fixtures follow at the next frame
    ctl.set_axis(entry + [0.0, 0.002, 0.0], axis)
    for _ in range(100):
        t += 0.002
        ctl.update(JointState(t, q, np.zeros_like(q), np.zeros_like(q), wrench_tool=np.zeros(6)), t)
    assert np.allclose(imp.target[0][:3, 3], entry + [0.0, 0.002, 0.0] + ctl.s_cmd * axis, atol=1e-5)
    ctl.set_axis(entry + [0.0, 0.002, 0.0], axis)
    assert np.allclose(imp.fixtures.terms[0].point, entry + [0.0, 0.002, 0.0], atol=1e-5)
    with pytest.raises(ValueError):
        ctl.set_axis(np.full(3, np.nan), axis)
    with pytest.raises(ValueError):
        ctl.set_phase("drill")


def test_drilled_path_measures_entry_tip_and_deviation() -> None:
    entry, target = np.zeros(3), np.array([0.0, 0.0, 0.04])
    z = np.array([0.0, 0.0, 1.0])
    pts = [np.array([0.0003, 0.0, s]) for s in np.linspace(-0.005, 0.0405, 200)]
    samples = [HoleSample(0.01 * k, p, z, 5.0, 0.002) for k, p in enumerate(pts)]
    path = drilled_path(samples, entry, target)
    assert np.allclose(path.entry, [0.0003, 0.0, 0.0], atol=1e-9)
    assert np.allclose(path.tip, [0.0003, 0.0, 0.0405])
    assert path.depth == pytest.approx(0.0405)
    assert path.max_lateral == pytest.approx(0.0003)
    with pytest.raises(ValueError):
        drilled_path([], entry, target)


class _OneLinkSim:
    """Only what ``DrillPhysics.__init__`` asks of a sim: a link index by name."""

    def link_index(self, name: str) -> int:
        return 0


def test_skiving_pushes_down_an_inclined_entry_cortex_only_at_the_entry() -> None:
    from machaon.ortho.drilling import DrillBit, ThrustModel
    from machaon.ortho.execution import DrillPhysics

    tilt = np.radians(30.0)
    n_out = np.array([np.sin(tilt), 0.0, np.cos(tilt)])  # bone surface inclined 30 deg about y
    d = DrillPhysics(_OneLinkSim(), "tip", np.eye(4), lambda t: np.eye(4), lambda P: np.zeros(len(P), int),
                     ThrustModel({1: 30.0}), DrillBit(), skive_gain=0.5, normal_fn=lambda P: n_out[None])
    down = np.array([0.0, 0.0, -1.0])  # drilling straight down
    f = d._skive(np.zeros(3), down, 20.0)
    assert np.allclose(f, 0.5 * 20.0 * np.tan(tilt) * np.array([1.0, 0.0, 0.0]))  # down the slope, +x
    assert np.allclose(d._skive(np.array([0.0, 0.0, -1.0e-3]), down, 20.0), f)  # still within 1.5 mm
    assert np.allclose(d._skive(np.array([0.0, 0.0, -2.0e-3]), down, 20.0), 0.0)  # past the entry: it bites
    d.start_hole()  # a new hole starts a new entry
    square = DrillPhysics(_OneLinkSim(), "tip", np.eye(4), lambda t: np.eye(4), lambda P: np.zeros(len(P), int),
                          ThrustModel({1: 30.0}), DrillBit(), skive_gain=1.0,
                          normal_fn=lambda P: np.array([[0.0, 0.0, 1.0]]))
    assert np.allclose(square._skive(np.zeros(3), down, 20.0), 0.0)  # square to the surface: no push
    with pytest.raises(ValueError, match="skive_gain"):
        DrillPhysics(_OneLinkSim(), "tip", np.eye(4), lambda t: np.eye(4), lambda P: P, ThrustModel({1: 1.0}),
                     DrillBit(), skive_gain=1.5)
