"""Hand-eye calibration of the tracking camera to the robot, from rendered camera images, and a tracking check.

The robot shows its tool plate to the camera in several poses; the rendered images are detected
(``machaon.ortho.tracking``) and ``calibrate_camera_to_base`` gives ``T_base_cam`` and
``T_flange_plate``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from machaon.ortho.procedure.config import MM, ProcedureError
from machaon.ortho.procedure.world import ProcedureWorld
from machaon.ortho.tracking import calibrate_camera_to_base, pose_distance


def _pose_with_axis(p: np.ndarray, z: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    z = z / np.linalg.norm(z)
    y = y_hint - (y_hint @ z) * z
    y /= np.linalg.norm(y)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(y, z), y, z])
    T[:3, 3] = p
    return T


def calibrate_hand_eye(w: ProcedureWorld, directory: Path | None) -> tuple[dict, dict]:
    """Hand-eye calibration from rendered images of the tool plate in several robot poses.

    Returns the calibration and the tracking check (both plates detected in the rendered image of
    the first calibration pose, compared with their true poses).
    """
    cfg = w.cfg
    rng = np.random.default_rng(cfg.seed + 7)
    A, B = [], []
    tracking: dict = {"rendered": False}  # no tracking check: no image to check the noise model against
    to_cam = w.cam_pos - w.site
    y_hint = -np.array([to_cam[0], to_cam[1], 0.0])
    q = w.q_home
    tries = 0
    t0 = time.perf_counter()
    while len(A) < cfg.calibration_poses and tries < 4 * cfg.calibration_poses:
        tries += 1
        tilt = Rotation.from_rotvec(rng.uniform(-0.6, 0.6, 3)).as_matrix()
        p = w.site + np.array([-0.03, 0.0, 0.12]) + rng.uniform(-0.04, 0.04, 3)
        T = _pose_with_axis(p, tilt @ np.array([0.0, 0.0, -1.0]), tilt @ y_hint)
        r = w.chain.ik(T, q0=q, seed=cfg.seed + tries)
        if not r.success or w.checker.in_collision(r.q, margin=0.005):
            continue
        w.sim.reset(r.q)
        if not A and cfg.tracking_check:
            tracking = tracking_check(w, directory)
            if not tracking.get("tool_found"):
                continue  # this pose hides the plate from the camera; the check needs both plates
        if cfg.calibration_from_images:
            m = w.tracker.detect(w.render()).get("tool")
        else:
            m = w.tracker.measure("tool", w.true_T_cam("tool"), rng)
        if m is None:
            continue
        # a plate seen squarely (or very obliquely) gives a poorly determined tilt: skip that view,
        # judged from the measured pose itself
        Tm = m.T_cam_plate
        view = math.degrees(math.acos(float(np.clip(-Tm[:3, 2] @ Tm[:3, 3] / np.linalg.norm(Tm[:3, 3]), -1, 1))))
        if not 20.0 <= view <= 65.0:
            continue
        A.append(w.chain_flange.fk(r.q))
        B.append(m.T_cam_plate)
        q = r.q
    w.sim.reset(w.q_home)
    if not A:
        raise ProcedureError("hand-eye calibration: the tool plate was never seen")
    if len(A) < 4:
        raise ProcedureError(f"hand-eye calibration: only {len(A)} usable poses")
    T_base_cam, T_flange_plate = calibrate_camera_to_base(A, B)
    e_m, e_rad = pose_distance(T_base_cam, w.T_world_cam)
    T_flange_plate_true = w.T_mount_toolplate  # the mount link is the flange frame
    pe_m, pe_rad = pose_distance(T_flange_plate, T_flange_plate_true)
    w.say(f"hand-eye: {len(A)} poses, camera pose error {e_m / MM:.2f} mm / {math.degrees(e_rad):.3f} deg")
    return {
        "T_base_cam": T_base_cam, "T_flange_plate": T_flange_plate, "n_poses": len(A),
        "error_m": e_m, "error_rad": e_rad, "plate_error_m": pe_m, "plate_error_rad": pe_rad,
        "time_s": time.perf_counter() - t0, "from_images": cfg.calibration_from_images,
    }, tracking


def tracking_check(w: ProcedureWorld, directory: Path | None) -> dict:
    """Detect both plates in a rendered camera image and compare with the true poses."""
    img = w.render()
    found = w.tracker.detect(img)
    out: dict[str, object] = {}
    for name, key in (("reference", "reference"), ("tool", "tool")):
        m = found.get(name)
        if m is None:
            out[f"{key}_found"] = False
            continue
        e_m, e_rad = pose_distance(m.T_cam_plate, w.true_T_cam(key))
        out[f"{key}_found"] = True
        out[f"{key}_error_mm"] = e_m / MM
        out[f"{key}_error_deg"] = math.degrees(e_rad)
        out[f"{key}_corners"] = m.n_corners
        rvec = cv2.Rodrigues(np.ascontiguousarray(m.T_cam_plate[:3, :3]))[0]
        cv2.drawFrameAxes(img, w.camera.K, w.camera.dist_coeffs, rvec, m.T_cam_plate[:3, 3].copy(), 0.05, 3)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(directory / "camera_view.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return out
