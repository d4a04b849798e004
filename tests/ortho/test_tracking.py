"""Tracking: ChArUco plates rendered with a known pose are detected and located; hand-eye calibration."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from machaon.ortho.tracking import (
    CameraModel,
    NoiseModel,
    Tracker,
    TrackingError,
    _hand_eye_park,
    calibrate_camera_to_base,
    plate_set,
    pose_distance,
    render_plates,
)

CAM = CameraModel.from_fov(1280, 960, 40.0)
PLATES = plate_set(["reference", "tool"], squares_x=7, squares_y=5, square_m=0.025, marker_m=0.019)


def pose(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def facing(tilt_x: float, tilt_y: float, t) -> np.ndarray:
    """A plate whose face (z) points back at the camera, tilted."""
    return pose(Rotation.from_euler("xyz", [np.pi + tilt_x, tilt_y, 0.3]).as_rotvec(), t)


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    return Tracker(CAM, PLATES, NoiseModel(pixel_sigma=0.1))


def test_detect_rendered_plates_matches_ground_truth(tracker: Tracker) -> None:
    rng = np.random.default_rng(3)
    T_ref = facing(0.4, 0.2, [0.08, 0.03, 0.75])
    T_tool = facing(-0.35, -0.3, [-0.12, -0.06, 0.85])
    img = render_plates(CAM, [(PLATES[0], T_ref), (PLATES[1], T_tool)], noise_sigma=2.0, rng=rng)
    found = tracker.detect(img)
    for name, T in (("reference", T_ref), ("tool", T_tool)):
        m = found[name]
        assert m is not None, name
        assert m.n_corners >= 20
        dp, dr = pose_distance(m.T_cam_plate, T)
        assert dp < 1.5e-3, (name, dp)
        assert dr < np.radians(0.5), (name, np.degrees(dr))
        assert m.rms_px < 1.0


def test_detect_reports_missing_plate_not_error(tracker: Tracker) -> None:
    img = render_plates(CAM, [(PLATES[0], facing(0.3, 0.0, [0.0, 0.0, 0.8]))])
    found = tracker.detect(img)
    assert found["reference"] is not None and found["tool"] is None
    # a plate seen from behind is not drawn and not found
    back = render_plates(CAM, [(PLATES[1], pose([0.0, 0.2, 0.0], [0.0, 0.0, 0.8]))])
    assert tracker.detect(back)["tool"] is None


def test_bad_images_raise_clear_errors(tracker: Tracker) -> None:
    with pytest.raises(ValueError, match="image"):
        tracker.detect(np.zeros((10, 10), dtype=np.float32))
    with pytest.raises(ValueError, match="T_cam_plate"):
        tracker.measure("tool", np.full((4, 4), np.nan), np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown plate"):
        tracker.measure("nope", np.eye(4), np.random.default_rng(0))


def test_noise_model_accuracy_statistics(tracker: Tracker) -> None:
    """Per-frame pose noise at 0.1 px: sub-millimetre at a point 12 cm from the plate, unbiased."""
    rng = np.random.default_rng(7)
    T = facing(0.5, 0.1, [0.05, 0.02, 0.8])
    p_plate = np.array([0.0, 0.12, -0.05, 1.0])
    errs = []
    for _ in range(100):
        m = tracker.measure("reference", T, rng)
        assert m is not None
        errs.append((m.T_cam_plate @ p_plate - T @ p_plate)[:3])
    errs = np.array(errs)
    rms = float(np.sqrt(np.mean(np.sum(errs**2, axis=1))))
    assert 0.02e-3 < rms < 0.6e-3  # noisy, but not absurdly so
    assert np.linalg.norm(errs.mean(axis=0)) < 0.15e-3  # unbiased
    # more pixel noise gives proportionally larger pose noise
    noisy = Tracker(CAM, PLATES, NoiseModel(pixel_sigma=0.5))
    errs5 = [noisy.measure("reference", T, rng).T_cam_plate @ p_plate - T @ p_plate for _ in range(100)]
    rms5 = float(np.sqrt(np.mean(np.sum(np.array(errs5)[:, :3] ** 2, axis=1))))
    assert 3.0 < rms5 / rms < 7.0


def test_plate_out_of_view_or_dropout_gives_none() -> None:
    tr = Tracker(CAM, PLATES, NoiseModel(dropout=1.0))
    assert tr.measure("tool", facing(0.2, 0.0, [0.0, 0.0, 0.8]), np.random.default_rng(0)) is None
    tr = Tracker(CAM, PLATES)
    assert tr.measure("tool", facing(0.2, 0.0, [2.0, 0.0, 0.8]), np.random.default_rng(0)) is None


def test_plates_must_have_disjoint_ids() -> None:
    a, _ = plate_set(["a", "b"])
    with pytest.raises(ValueError, match="shares marker ids"):
        Tracker(CAM, (a, a))


def test_opengl_matrices_reproduce_the_pinhole_projection() -> None:
    """The view/projection matrices for PyBullet put a point on the pixel OpenCV projects it to."""
    cam = CameraModel(640, 480, 600.0, 600.0, 330.0, 235.0)
    T_world_cam = pose([0.3, -0.2, 0.1], [0.4, 0.1, 1.2])
    V = np.array(cam.opengl_view_matrix(T_world_cam)).reshape(4, 4).T
    P = np.array(cam.opengl_projection_matrix()).reshape(4, 4).T
    p_cam = np.array([0.05, -0.03, 0.7])
    p_world = T_world_cam[:3, :3] @ p_cam + T_world_cam[:3, 3]
    clip = P @ V @ np.append(p_world, 1.0)
    ndc = clip[:3] / clip[3]
    u = (ndc[0] + 1) / 2 * cam.width
    v = (1 - ndc[1]) / 2 * cam.height
    np.testing.assert_allclose([u, v], cam.project(p_cam[None])[0], atol=1e-6)


# Both solvers run on the same cases; the OpenCV one only where this build exposes it.
SOLVERS = [
    "numpy",
    pytest.param(
        "opencv",
        marks=pytest.mark.skipif(
            not hasattr(cv2, "calibrateHandEye"), reason="this OpenCV build has no calibrateHandEye"
        ),
    ),
]


@pytest.mark.parametrize("solver", SOLVERS)
@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_hand_eye_recovers_camera_and_plate_exactly(solver: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = pose(rng.normal(0, 1.0, 3), rng.normal(0, 0.5, 3))  # T_base_cam
    Y = pose(rng.normal(0, 0.5, 3), rng.normal(0, 0.05, 3))  # T_flange_plate
    A = [pose(rng.normal(0, 0.7, 3), rng.normal(0, 0.3, 3)) for _ in range(6)]
    B = [np.linalg.inv(X) @ a @ Y for a in A]
    Xe, Ye = calibrate_camera_to_base(A, B, solver=solver)
    assert pose_distance(Xe, X)[0] < 1e-9 and pose_distance(Xe, X)[1] < 1e-9
    assert pose_distance(Ye, Y)[0] < 1e-9 and pose_distance(Ye, Y)[1] < 1e-9
    # the NumPy closed form agrees with itself through OpenCV's convention directly
    Xp = _hand_eye_park([np.linalg.inv(a) for a in A], B)
    assert pose_distance(Xp, X)[0] < 1e-9


def test_hand_eye_with_tracked_observations_is_accurate(tracker: Tracker) -> None:
    """Calibration from noisy tracked plate poses: camera pose within ~1 mm / 0.1 deg."""
    rng = np.random.default_rng(11)
    T_base_cam = pose(Rotation.from_euler("xyz", [-2.4, 0.0, 1.57]).as_rotvec(), [0.5, -0.9, 0.9])
    T_flange_plate = pose([0.0, 0.0, 0.0], [0.0, 0.06, 0.05])
    As, Bs = [], []
    for _ in range(12):
        # robot flange near the middle of the view, plate turned roughly towards the camera
        T_cam_plate = facing(rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), [*rng.uniform(-0.1, 0.1, 2), 0.8])
        As.append(T_base_cam @ T_cam_plate @ np.linalg.inv(T_flange_plate))
        m = tracker.measure("tool", T_cam_plate, rng)
        assert m is not None
        Bs.append(m.T_cam_plate)
    Xe, _ = calibrate_camera_to_base(As, Bs)
    dp, dr = pose_distance(Xe, T_base_cam)
    assert dp < 2e-3 and dr < np.radians(0.15)


def _degenerate_cases() -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    one_axis = [pose([0.0, 0.0, 0.1 * k], [0.1 * k, 0.0, 0.0]) for k in range(4)]  # rotations about z only
    flipped = [pose([0.0, 0.0, (-1) ** k * 0.2 * k], [0.0, 0.1 * k, 0.0]) for k in range(5)]  # +z and -z: one axis
    translations = [pose([0.3, 0.2, 0.1], [0.1 * k, 0.05 * k, 0.0]) for k in range(5)]
    tiny = [pose([1e-5 * k, 2e-5 * k, 0.0], [0.1 * k, 0.0, 0.0]) for k in range(5)]  # near-zero rotations
    cases = {}
    for name, A in {"one_axis": one_axis, "flipped_axis": flipped, "translations": translations, "tiny": tiny}.items():
        cases[name] = (A, [np.linalg.inv(A[0]) @ a for a in A])
    cases["two_poses"] = (one_axis[:2], cases["one_axis"][1][:2])
    return cases


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("case", sorted(_degenerate_cases()))
def test_hand_eye_rejects_degenerate_motion(solver: str, case: str) -> None:
    A, B = _degenerate_cases()[case]
    with pytest.raises(TrackingError):
        calibrate_camera_to_base(A, B, solver=solver)


def test_hand_eye_rejects_unknown_solver_and_method() -> None:
    A, B = _degenerate_cases()["one_axis"]
    with pytest.raises(ValueError, match="solver"):
        calibrate_camera_to_base(A, B, solver="magic")
    with pytest.raises(ValueError, match="method"):
        calibrate_camera_to_base(A, B, method="magic")
