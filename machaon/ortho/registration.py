"""Patient registration: paired-point (SVD/Umeyama), predicted TRE, point-to-plane ICP.

Conventions: ``register_paired(points_src, points_dst)`` returns ``T_dst_src`` with
``p_dst ≈ T_dst_src @ p_src``. For image-to-patient registration ``src`` is the image (CT) frame
and ``dst`` the tracker's patient-reference frame, so the result is ``T_ref_image``.
All lengths in metres. Bad input (NaN, wrong shape, too few or degenerate points) raises
``RegistrationError`` (a ``ValueError``) naming the argument.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from machaon._validate import finite_array, transform
from machaon.errors import OrthoError

log = logging.getLogger(__name__)


class RegistrationError(OrthoError, ValueError):
    """Registration input is unusable (too few, collinear or non-finite points)."""


def _pts(name: str, value: object, min_n: int = 1) -> np.ndarray:
    try:
        p = finite_array(name, value, (None, 3))
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None
    if len(p) < min_n:
        raise RegistrationError(f"{name}: need at least {min_n} points, got {len(p)}")
    return p


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) mapped by the 4x4 transform T."""
    return points @ T[:3, :3].T + T[:3, 3]


@dataclass(frozen=True)
class PairedRegistration:
    """Result of ``register_paired``.

    ``T_dst_src`` maps source points onto destination points; ``scale`` is 1 unless scaling was
    asked for (then T's rotation block is R, and p_dst ≈ scale·R·p_src + t, see ``apply``).
    ``fre`` is the RMS fiducial registration error (m), ``residuals`` the per-fiducial distances.
    """

    T_dst_src: np.ndarray
    scale: float
    fre: float
    residuals: np.ndarray
    n_points: int

    def apply(self, points_src: np.ndarray) -> np.ndarray:
        """Map source points (N, 3) into the destination frame (with the scale, if any)."""
        p = _pts("points_src", points_src)
        return self.scale * (p @ self.T_dst_src[:3, :3].T) + self.T_dst_src[:3, 3]


def register_paired(
    points_src: np.ndarray,
    points_dst: np.ndarray,
    weights: np.ndarray | None = None,
    with_scale: bool = False,
) -> PairedRegistration:
    """Closed-form least-squares rigid (or similarity) transform from paired points (Umeyama 1991).

    Minimises sum w_i |p_dst_i - (s R p_src_i + t)|² with a proper rotation (det R = +1: the SVD
    reflection case is corrected). Needs >= 3 non-collinear pairs (``RegistrationError`` otherwise).
    """
    src = _pts("points_src", points_src, 3)
    dst = _pts("points_dst", points_dst, 3)
    if src.shape != dst.shape:
        raise RegistrationError(f"points_dst: expected {src.shape} to pair with points_src, got {dst.shape}")
    n = len(src)
    if weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = finite_array("weights", weights, (n,))
        if (w < 0).any() or w.sum() <= 0:
            raise RegistrationError("weights: must be non-negative with a positive sum")
        w = w / w.sum()
    mu_s = w @ src
    mu_d = w @ dst
    xs = src - mu_s
    xd = dst - mu_d
    with np.errstate(over="ignore", invalid="ignore"):
        var_s = float(w @ np.einsum("ij,ij->i", xs, xs))
        cov = (xd * w[:, None]).T @ xs
    if not (math.isfinite(var_s) and np.isfinite(cov).all()):
        # finite inputs whose squares overflow (coordinates ~1e200): SVD would not converge
        raise RegistrationError("points: coordinates too large to register (wrong units?)")
    # collinearity: the second singular value of the centred source must be clearly non-zero
    sv = np.linalg.svd(xs * np.sqrt(w)[:, None], compute_uv=False)
    if sv[0] < 1e-9 or sv[1] < 1e-6 * sv[0]:
        raise RegistrationError("points_src: points are coincident or collinear; rotation is undetermined")
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - scale * R @ mu_s
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    res = np.linalg.norm(scale * src @ R.T + t - dst, axis=1)
    return PairedRegistration(T, scale, float(np.sqrt(np.mean(res**2))), res, n)


def predicted_tre(fiducials: np.ndarray, targets: np.ndarray, fle_rms: float) -> np.ndarray:
    """Expected RMS target registration error at each target (m), Fitzpatrick, West & Maurer 1998.

    TRE²(r) ≈ FLE²/N · (1 + 1/3 Σ_k d_k²/f_k²), with d_k the distance of the target from the
    k-th principal axis of the fiducial configuration and f_k the RMS distance of the fiducials
    from that axis. ``fle_rms`` is the RMS (3-D) fiducial localisation error, m.
    """
    f = _pts("fiducials", fiducials, 3)
    r = _pts("targets", targets)
    if not (math.isfinite(fle_rms) and fle_rms >= 0):
        raise RegistrationError(f"fle_rms: must be a finite length >= 0, got {fle_rms}")
    n = len(f)
    c = f.mean(axis=0)
    X = f - c
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    axes = Vt  # rows: principal axes
    Xa = X @ axes.T  # fiducial coordinates in the principal frame
    Ra = (r - c) @ axes.T
    ratio = np.zeros(len(r))
    for k in range(3):
        others = [j for j in range(3) if j != k]
        fk2 = np.mean(np.sum(Xa[:, others] ** 2, axis=1))
        if fk2 < 1e-18:
            raise RegistrationError("fiducials: configuration is degenerate (collinear)")
        dk2 = np.sum(Ra[:, others] ** 2, axis=1)
        ratio += dk2 / fk2
    return np.sqrt(fle_rms**2 / n * (1.0 + ratio / 3.0))


def expected_fre(fle_rms: float, n: int) -> float:
    """Expected RMS FRE for ``n`` fiducials with RMS localisation error ``fle_rms``: sqrt(1 - 2/N)·FLE."""
    if n < 3:
        raise RegistrationError("n: need at least 3 fiducials")
    return float(fle_rms * math.sqrt(1.0 - 2.0 / n))


def estimate_fle(fre: float, n: int) -> float:
    """FLE (RMS, m) estimated from an observed RMS FRE with ``n`` fiducials (inverse of expected_fre)."""
    if n < 3:
        raise RegistrationError("n: need at least 3 fiducials")
    return float(fre / math.sqrt(1.0 - 2.0 / n))


def target_registration_error(T_est: np.ndarray, T_true: np.ndarray, targets_src: np.ndarray) -> np.ndarray:
    """Distances (m) between targets mapped by the estimated and by the true transform."""
    T_est = transform("T_est", T_est)
    T_true = transform("T_true", T_true)
    r = _pts("targets_src", targets_src)
    return np.linalg.norm(apply_transform(T_est, r) - apply_transform(T_true, r), axis=1)


@dataclass(frozen=True)
class ICPResult:
    """Result of ``icp_point_to_plane``.

    ``T_dst_src`` maps the digitised points (src, e.g. the tracker frame) onto the surface (dst,
    e.g. the image frame). ``rms`` is the RMS point-to-plane distance of the inliers (m),
    ``inliers`` a boolean mask over the input points, ``iterations`` the iterations used,
    ``converged`` whether the update fell below the tolerances.
    """

    T_dst_src: np.ndarray
    rms: float
    inliers: np.ndarray
    iterations: int
    converged: bool

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def icp_point_to_plane(
    points_src: np.ndarray,
    surface_points: np.ndarray,
    surface_normals: np.ndarray,
    T_init: np.ndarray | None = None,
    *,
    max_iterations: int = 60,
    max_distance: float = 5e-3,
    outlier_k: float = 3.0,
    min_inlier_distance: float = 0.3e-3,
    tol_translation: float = 1e-7,
    tol_rotation: float = 1e-7,
    min_inliers: int = 6,
) -> ICPResult:
    """Refine ``T_dst_src`` so that digitised points lie on a surface (point-to-plane ICP).

    ``surface_points``/``surface_normals`` (M, 3) sample the surface in the dst frame (normals
    unit, any orientation). Each iteration matches every transformed source point to its nearest
    surface sample (``cKDTree``), rejects outliers — pairs farther than ``max_distance`` or whose
    point-to-plane residual exceeds ``outlier_k`` robust sigmas (1.4826·MAD, floored at
    ``min_inlier_distance``) — and solves the linearised least-squares update (small rotation,
    translation), applied through the exact rotation. Raises ``RegistrationError`` when fewer than
    ``min_inliers`` pairs survive.
    """
    src = _pts("points_src", points_src, 3)
    sp = _pts("surface_points", surface_points, 3)
    sn = _unit_normals(surface_normals, sp.shape)
    T = np.eye(4) if T_init is None else transform("T_init", T_init).copy()
    tree = cKDTree(sp)
    converged = False
    inl = np.ones(len(src), dtype=bool)
    rms = math.inf
    it = 0
    while it < max_iterations:
        it += 1
        x, inl, rms = _point_to_plane_step(T, src, tree, sp, sn, max_distance, outlier_k, min_inlier_distance,
                                           min_inliers)
        T = _rigid_update(x) @ T
        if np.linalg.norm(x[:3]) < tol_rotation and np.linalg.norm(x[3:]) < tol_translation:
            converged = True
            break
    # final residual with the final pose
    p = apply_transform(T, src)
    dist, idx = tree.query(p)
    r = np.einsum("ij,ij->i", p - sp[idx], sn[idx])
    if inl.any():
        rms = float(np.sqrt(np.mean(r[inl] ** 2)))
    return ICPResult(T, rms, inl, it, converged)


def _unit_normals(surface_normals: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The surface normals scaled to unit length; ``RegistrationError`` for bad or zero-length ones."""
    try:
        sn = finite_array("surface_normals", surface_normals, shape)
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None
    nn = np.linalg.norm(sn, axis=1, keepdims=True)
    if (nn < 1e-12).any():
        raise RegistrationError("surface_normals: zero-length normal")
    return sn / nn


def _point_to_plane_step(
    T: np.ndarray, src: np.ndarray, tree: cKDTree, sp: np.ndarray, sn: np.ndarray, max_distance: float,
    outlier_k: float, min_inlier_distance: float, min_inliers: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """One ICP iteration at pose ``T``: match each source point to its nearest surface sample,
    reject outliers (see ``icp_point_to_plane``), solve the linearised least-squares update.

    Returns the update ``x = [omega; v]`` (small rotation rad, translation m), the inlier mask and
    the RMS of the inliers' point-to-plane residuals (m).
    """
    p = apply_transform(T, src)
    dist, idx = tree.query(p)
    q = sp[idx]
    n = sn[idx]
    r = np.einsum("ij,ij->i", p - q, n)
    mad = float(np.median(np.abs(r - np.median(r))))
    thr = max(outlier_k * 1.4826 * mad, min_inlier_distance)
    inl = (dist <= max_distance) & (np.abs(r) <= thr)
    if inl.sum() < min_inliers:
        raise RegistrationError(f"icp: only {int(inl.sum())} inlier pairs (need {min_inliers}); bad initial pose?")
    pi, ni, ri = p[inl], n[inl], r[inl]
    A = np.hstack([np.cross(pi, ni), ni])  # d r / d [omega, v]
    x, *_ = np.linalg.lstsq(A, -ri, rcond=None)
    return x, inl, float(np.sqrt(np.mean(ri**2)))


def _rigid_update(x: np.ndarray) -> np.ndarray:
    """The 4x4 transform of an ICP update ``[omega; v]``, applied through the exact rotation."""
    dT = np.eye(4)
    dT[:3, :3] = Rotation.from_rotvec(x[:3]).as_matrix()
    dT[:3, 3] = x[3:]
    return dT


__all__ = [
    "RegistrationError",
    "PairedRegistration",
    "ICPResult",
    "register_paired",
    "predicted_tre",
    "expected_fre",
    "estimate_fle",
    "target_registration_error",
    "icp_point_to_plane",
    "apply_transform",
]
