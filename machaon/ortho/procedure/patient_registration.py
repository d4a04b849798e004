"""Registration of the patient to the plan's image: landmarks and surface points digitised with a tracked pointer.

Anatomical landmarks and posterior surface points are digitised relative to the reference plate
(tracker noise model), then paired-point registration and point-to-plane ICP
(``machaon.ortho.registration``) give ``T_ref_image``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from machaon.ortho import registration as reg
from machaon.ortho.anatomy import SpineSegment, surface_samples
from machaon.ortho.planning import Plan
from machaon.ortho.procedure.config import MM, ProcedureError
from machaon.ortho.procedure.world import ProcedureWorld, facing

log = logging.getLogger(__name__)


def _first_hit(anatomy: SpineSegment, start: np.ndarray, direction: np.ndarray, length: float = 0.15) -> np.ndarray:
    """First bone surface point on the segment from ``start`` along ``direction`` (image frame)."""
    s = np.arange(0.0, length, 2e-4)
    pts = start + np.outer(s, direction)
    d = anatomy.sdf(pts)
    k = int(np.argmax(d < 0.0))
    if d[k] >= 0.0:
        raise ProcedureError("landmark: ray does not hit the bone")
    lo, hi = s[max(k - 1, 0)], s[k]
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if anatomy.sdf((start + mid * direction)[None])[0] < 0.0:
            hi = mid
        else:
            lo = mid
    return start + hi * direction


def landmarks(anatomy: SpineSegment) -> np.ndarray:
    """Registration landmarks (image frame, m): spinous process tip and transverse process tips per level."""
    out = []
    dirs = [np.array([0.0, 0.94, -0.34]), np.array([0.95, 0.31, 0.0]), np.array([-0.95, 0.31, 0.0]),
            np.array([0.45, 0.85, 0.25]), np.array([-0.45, 0.85, 0.25])]
    for lv in anatomy.levels:
        T = anatomy.level_frame(lv)
        for d in dirs:
            d_i = T[:3, :3] @ d
            start = T[:3, 3] + 0.12 * d_i
            out.append(_first_hit(anatomy, start, -d_i))
    return np.array(out)


def _digitise(w: ProcedureWorld, p_image: np.ndarray, t: float, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Tracked-pointer digitisation of an image-frame point, returned in the reference frame (m).

    The pointer tip is placed on the point with the configured localisation error; each frame
    measures the pointer and the reference plate at the same instant (tracker noise model).
    """
    cfg = w.cfg
    p_true = p_image + rng.normal(0.0, cfg.fiducial_noise_m, 3)
    out = []
    dt = 1.0 / cfg.camera_hz
    T_cam_world = np.linalg.inv(w.T_world_cam)
    for k in range(frames):
        tk = t + k * dt
        T_wi = w.motion.T_world_patient(tk)
        tip_w = T_wi[:3, :3] @ p_true + T_wi[:3, 3]
        shaft = (w.cam_pos - tip_w) / np.linalg.norm(w.cam_pos - tip_w) + np.array([0.0, 0.0, 0.6])
        shaft /= np.linalg.norm(shaft)
        T_w_ptr = facing(tip_w + 0.10 * shaft, w.cam_pos + np.array([0.0, 0.5, 0.0]))
        tip_plate = np.linalg.solve(T_w_ptr, np.append(tip_w, 1.0))[:3]  # pointer calibration (pivoting)
        m_ptr = w.tracker.measure("pointer", T_cam_world @ T_w_ptr, rng, tk)
        m_ref = w.tracker.measure("reference", T_cam_world @ T_wi @ w.T_image_ref, rng, tk)
        if m_ptr is None or m_ref is None:
            continue
        tip_cam = m_ptr.T_cam_plate[:3, :3] @ tip_plate + m_ptr.T_cam_plate[:3, 3]
        T_ref_cam = np.linalg.inv(m_ref.T_cam_plate)
        out.append(T_ref_cam[:3, :3] @ tip_cam + T_ref_cam[:3, 3])
    if not out:
        raise ProcedureError("digitisation: pointer or reference not visible")
    return np.mean(out, axis=0)


def register_patient(w: ProcedureWorld, plan: Plan) -> dict:
    """Digitise landmarks and posterior surface points; paired-point then ICP; FRE/TRE (SI) in a dict."""
    cfg = w.cfg
    rng = np.random.default_rng(cfg.seed + 11)
    t0 = time.perf_counter()
    fid_img = landmarks(w.anatomy)
    t = 0.0
    fid_ref = []
    for pnt in fid_img:
        fid_ref.append(_digitise(w, pnt, t, 20, rng))
        t += 1.0
    fid_ref = np.array(fid_ref)
    paired = reg.register_paired(fid_img, fid_ref)  # T_ref_image
    lo, hi = w.anatomy.bounds()
    # the surgeon reaches the posterior elements: laminae, spinous and transverse processes, facets;
    # their surfaces face many ways, which ICP needs (a single flat patch lets it slide)
    y_cut = lo[1] + 0.35 * (hi[1] - lo[1])
    surf_img, _ = surface_samples(w.anatomy, cfg.n_surface_points, seed=cfg.seed + 3, spacing=2e-3,
                                  mask_fn=lambda P: P[:, 1] > y_cut)
    surf_ref = []
    for pnt in surf_img:
        surf_ref.append(_digitise(w, pnt, t, 10, rng))
        t += 0.3
    model_pts, model_n = surface_samples(w.anatomy, 20000, seed=cfg.seed + 5, spacing=2e-3,
                                         mask_fn=lambda P: P[:, 1] > y_cut - 0.005)
    icp = reg.icp_point_to_plane(np.array(surf_ref), model_pts, model_n, np.linalg.inv(paired.T_dst_src))
    T_ref_image = np.linalg.inv(icp.T_dst_src)
    # consistency check without ground truth: the refined transform must still fit the landmarks
    fre_icp = float(np.sqrt(np.mean(np.sum((reg.apply_transform(T_ref_image, fid_img) - fid_ref) ** 2, axis=1))))
    icp_used = fre_icp <= 1.5 * paired.fre + 0.05 * MM
    if not icp_used:
        log.warning("ICP moved the landmarks to %.3f mm RMS (paired %.3f mm): keeping the paired-point result",
                    fre_icp / MM, paired.fre / MM)
        T_ref_image = paired.T_dst_src
    targets = np.array([s.target for s in plan] + [s.entry for s in plan])
    fle = reg.estimate_fle(paired.fre, len(fid_img))
    tre_pred = reg.predicted_tre(fid_img, targets, fle)
    tre_paired = reg.target_registration_error(paired.T_dst_src, w.T_ref_image_true, targets)
    tre = reg.target_registration_error(T_ref_image, w.T_ref_image_true, targets)
    dt = time.perf_counter() - t0
    w.say(f"registration: {len(fid_img)} landmarks FRE {paired.fre / MM:.3f} mm, ICP on {len(surf_img)} points, "
          f"TRE at targets {tre.max() / MM:.3f} mm (paired only {tre_paired.max() / MM:.3f} mm)")
    return {
        "T_ref_image": T_ref_image, "fre": paired.fre, "tre_predicted": float(tre_pred.max()),
        "tre_measured": float(tre.max()), "tre_paired_only": float(tre_paired.max()), "icp_rms": icp.rms,
        "n_fiducials": len(fid_img), "n_surface_points": len(surf_img), "icp_inliers": icp.n_inliers,
        "icp_used": icp_used, "fre_after_icp": fre_icp, "time_s": dt,
    }
