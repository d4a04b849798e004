"""Optical tracking with OpenCV ChArUco marker plates, and camera-to-robot (hand-eye) calibration.

Frames:
- camera frame ``cam``: OpenCV's (x right, y down, z forward along the optical axis), metres;
- plate frame ``plate``: origin at the centre of the printed board, x to the right of the
  printed image, y to its top, z out of the printed face (towards a camera that sees it).
  A texel ``(u, v)`` of :meth:`MarkerPlate.image` (column, row; rows downwards) sits at
  ``p_plate = ((u + 0.5) * s - W/2, H/2 - (v + 0.5) * s, 0)`` with ``s`` the texel size in
  metres and ``W x H`` the board size.

A tracker measures ``T_cam_plate`` either from an image (:meth:`Tracker.detect`: ArUco marker
detection, ChArUco corner interpolation, ``solvePnP`` + LM refinement) or, at camera rate
without rendering, from the exact pose through a corner-noise model
(:meth:`Tracker.measure`): the board corners are projected with the camera model, perturbed
with Gaussian pixel noise and fed to the same ``solvePnP`` path, so the pose noise has the
structure of a real camera's (large along the viewing ray, small across it).

Bad input: non-finite poses or intrinsics raise ``ValueError``; an image where a plate is
not found (too few corners, plate facing away, outside the view) gives ``None`` for that plate,
never an exception, and the reason is logged at DEBUG level.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from machaon._validate import finite_array, transform
from machaon.errors import OrthoError

log = logging.getLogger(__name__)

_DICTIONARIES = {
    "4X4_250": cv2.aruco.DICT_4X4_250,
    "5X5_250": cv2.aruco.DICT_5X5_250,
    "6X6_250": cv2.aruco.DICT_6X6_250,
}

# plate frame = board frame flipped about x and moved to the board centre (see module docstring)
_R_PLATE_BOARD = np.diag([1.0, -1.0, -1.0])


class TrackingError(OrthoError, RuntimeError):
    """A calibration could not be computed (too few or degenerate observations)."""


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera with OpenCV distortion ``(k1, k2, p1, p2, k3)``; pixels, metres.

    ``fx, fy, cx, cy`` in pixels, image ``width x height``.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    dist: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        vals = finite_array("camera", [self.fx, self.fy, self.cx, self.cy, *self.dist])
        if self.width <= 0 or self.height <= 0 or vals[0] <= 0 or vals[1] <= 0:
            raise ValueError("camera: width, height, fx, fy must be positive")

    @staticmethod
    def from_fov(width: int, height: int, fov_y_deg: float) -> CameraModel:
        """Square pixels, principal point at the image centre, vertical field of view in degrees."""
        f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2.0)
        return CameraModel(width, height, f, f, width / 2.0, height / 2.0)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def dist_coeffs(self) -> np.ndarray:
        return np.asarray(self.dist, dtype=np.float64)

    @property
    def fov_y_deg(self) -> float:
        return float(np.degrees(2.0 * np.arctan(0.5 * self.height / self.fy)))

    def project(self, p_cam: np.ndarray) -> np.ndarray:
        """Project (N,3) points in the camera frame to (N,2) pixels (with distortion)."""
        p = finite_array("p_cam", p_cam, (None, 3))
        uv, _ = cv2.projectPoints(p, np.zeros(3), np.zeros(3), self.K, self.dist_coeffs)
        return uv.reshape(-1, 2)

    def opengl_view_matrix(self, T_world_cam: np.ndarray) -> list[float]:
        """Column-major 4x4 view matrix (as PyBullet's ``getCameraImage`` takes) for an OpenCV camera pose."""
        T = transform("T_world_cam", T_world_cam)
        T_cam_world = np.linalg.inv(T)
        # OpenGL eye frame: x right, y up, z backwards = OpenCV camera rotated pi about x
        V = np.diag([1.0, -1.0, -1.0, 1.0]) @ T_cam_world
        return V.T.reshape(-1).tolist()

    def opengl_projection_matrix(self, near: float = 0.05, far: float = 5.0) -> list[float]:
        """Column-major 4x4 projection matrix matching K exactly (principal point included)."""
        w, h = float(self.width), float(self.height)
        P = np.zeros((4, 4))
        P[0, 0] = 2.0 * self.fx / w
        P[1, 1] = 2.0 * self.fy / h
        P[0, 2] = 1.0 - 2.0 * self.cx / w
        P[1, 2] = 2.0 * self.cy / h - 1.0
        P[2, 2] = -(far + near) / (far - near)
        P[2, 3] = -2.0 * far * near / (far - near)
        P[3, 2] = -1.0
        return P.T.reshape(-1).tolist()


@dataclass(frozen=True)
class MarkerPlate:
    """A ChArUco board printed on a rigid plate. Lengths in metres.

    ``first_id`` is the first ArUco id on the board; plates seen together must not share ids
    (use :func:`plate_set`).
    """

    name: str
    squares_x: int = 5
    squares_y: int = 4
    square_m: float = 0.016
    marker_m: float = 0.012
    dictionary: str = "5X5_250"
    first_id: int = 0

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError("plate: at least 3x3 squares")
        if not (0.0 < self.marker_m < self.square_m):
            raise ValueError("plate: need 0 < marker_m < square_m")
        if self.dictionary not in _DICTIONARIES:
            raise ValueError(f"plate: dictionary must be one of {sorted(_DICTIONARIES)}")

    @property
    def n_markers(self) -> int:
        return (self.squares_x * self.squares_y) // 2

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(_DICTIONARIES[self.dictionary])
        ids = np.arange(self.first_id, self.first_id + self.n_markers, dtype=np.int32)
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d, ids)

    def corners_plate(self) -> np.ndarray:
        """(N,3) ChArUco corners in the plate frame, in the order of their ids."""
        return board_to_plate(np.asarray(self.board().getChessboardCorners(), dtype=np.float64), self)

    def image(self, px_per_square: int = 64) -> np.ndarray:
        """The printable board as an 8-bit grey image, no margin (texel size = square_m / px_per_square)."""
        w, h = self.squares_x * px_per_square, self.squares_y * px_per_square
        return self.board().generateImage((w, h), marginSize=0, borderBits=1)


def plate_set(names: Sequence[str], **kwargs: object) -> tuple[MarkerPlate, ...]:
    """Plates with disjoint marker ids, one per name, same geometry."""
    plates: list[MarkerPlate] = []
    first = 0
    for name in names:
        p = MarkerPlate(name, first_id=first, **kwargs)  # type: ignore[arg-type]
        plates.append(p)
        first += p.n_markers
    return tuple(plates)


def board_to_plate(p_board: np.ndarray, plate: MarkerPlate) -> np.ndarray:
    W, H = plate.size_m
    return (np.asarray(p_board, dtype=np.float64).reshape(-1, 3) - (W / 2, H / 2, 0.0)) @ _R_PLATE_BOARD.T


def pose_from_rvec(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
    T[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return T


def render_plates(
    camera: CameraModel,
    plates: Sequence[tuple[MarkerPlate, np.ndarray]],
    *,
    background: int = 150,
    px_per_square: int = 64,
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render plates at poses ``T_cam_plate`` into an 8-bit grey image (ideal pinhole, no distortion).

    Each plate is warped with the homography of its plane; a plate facing away is not drawn.
    ``noise_sigma`` adds Gaussian grey-level noise (needs ``rng``).
    """
    img = np.full((camera.height, camera.width), background, dtype=np.float32)
    for plate, T in plates:
        T = transform("T_cam_plate", T)
        normal_cam = T[:3, 2]
        if float(normal_cam @ T[:3, 3]) >= 0.0:  # face points away from the camera
            continue
        tex = plate.image(px_per_square).astype(np.float32)
        s = plate.square_m / px_per_square
        W, H = plate.size_m
        # texel (u, v) -> plate (u*s - W/2 + s/2, H/2 - v*s - s/2, 0) -> camera -> pixels
        A = np.array([[s, 0.0, -W / 2 + s / 2], [0.0, -s, H / 2 - s / 2], [0.0, 0.0, 1.0]])
        Rt = np.column_stack([T[:3, 0], T[:3, 1], T[:3, 3]])
        Hm = camera.K @ Rt @ A
        warped = cv2.warpPerspective(
            tex, Hm, (camera.width, camera.height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
            borderValue=-1.0,
        )
        ones = np.ones_like(tex)
        mask = cv2.warpPerspective(ones, Hm, (camera.width, camera.height), flags=cv2.INTER_LINEAR)
        img = img * (1.0 - mask) + np.where(warped < 0, 0.0, warped) * mask
    if noise_sigma > 0.0:
        if rng is None:
            raise ValueError("render_plates: noise_sigma > 0 needs rng")
        img = img + rng.normal(0.0, noise_sigma, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PoseMeasurement:
    """One tracked plate: ``T_cam_plate``, the number of corners used and the RMS reprojection error (px)."""

    plate: str
    T_cam_plate: np.ndarray
    n_corners: int
    rms_px: float
    t: float = 0.0


@dataclass(frozen=True)
class NoiseModel:
    """Corner-level noise of the tracker: Gaussian pixel noise (px, 1 sigma) on every corner.

    ``min_corners`` corners must be visible for a pose; ``dropout`` is the probability that a
    frame misses a plate entirely (occlusion, motion blur).
    """

    pixel_sigma: float = 0.1
    min_corners: int = 6
    dropout: float = 0.0


@dataclass
class Tracker:
    """Pose estimation of known marker plates seen by one camera. Thread-unsafe; one per camera.

    ``detect(image)`` works on real or rendered images; ``measure(T_cam_plate_true, rng)`` is
    the camera-rate path of the noise model (no rendering). Both return ``PoseMeasurement`` or
    ``None`` per plate.
    """

    camera: CameraModel
    plates: tuple[MarkerPlate, ...]
    noise: NoiseModel = field(default_factory=NoiseModel)

    def __post_init__(self) -> None:
        ids: set[int] = set()
        for p in self.plates:
            r = set(range(p.first_id, p.first_id + p.n_markers))
            if ids & r:
                raise ValueError(f"tracker: plate {p.name!r} shares marker ids with another plate")
            ids |= r
        self._by_name = {p.name: p for p in self.plates}
        self._detectors = {}
        for p in self.plates:
            params = cv2.aruco.DetectorParameters()
            params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
            cparams = cv2.aruco.CharucoParameters()
            cparams.cameraMatrix = self.camera.K
            cparams.distCoeffs = self.camera.dist_coeffs
            cparams.minMarkers = 1
            self._detectors[p.name] = cv2.aruco.CharucoDetector(p.board(), cparams, params)
        self._corners = {p.name: p.corners_plate() for p in self.plates}

    def plate(self, name: str) -> MarkerPlate:
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"tracker: unknown plate {name!r}") from None

    # -- pose from 2-D/3-D correspondences ---------------------------------------------------
    def _solve(self, name: str, obj: np.ndarray, img: np.ndarray, t: float) -> PoseMeasurement | None:
        if len(obj) < max(4, self.noise.min_corners):
            log.debug("plate %s: %d corners, too few", name, len(obj))
            return None
        obj = np.ascontiguousarray(obj, dtype=np.float64).reshape(-1, 1, 3)
        img = np.ascontiguousarray(img, dtype=np.float64).reshape(-1, 1, 2)
        K, d = self.camera.K, self.camera.dist_coeffs
        ok, rvecs, tvecs, _ = cv2.solvePnPGeneric(obj, img, K, d, flags=cv2.SOLVEPNP_IPPE)
        if not ok or len(rvecs) == 0:
            log.debug("plate %s: solvePnP failed", name)
            return None
        # IPPE gives the two planar-pose candidates; keep the one that reprojects better, then refine it
        best = None
        for rv, tv in zip(rvecs, tvecs, strict=True):
            proj, _ = cv2.projectPoints(obj, rv, tv, K, d)
            rms = float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=-1))))
            if best is None or rms < best[0]:
                best = (rms, rv, tv)
        assert best is not None
        rv, tv = cv2.solvePnPRefineLM(obj, img, K, d, best[1].copy(), best[2].copy())
        proj, _ = cv2.projectPoints(obj, rv, tv, K, d)
        rms = float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=-1))))
        T = pose_from_rvec(rv, tv)
        if T[2, 3] <= 0.0 or not np.isfinite(T).all():
            return None
        return PoseMeasurement(name, T, int(len(obj)), rms, t)

    def detect(self, image: np.ndarray, t: float = 0.0) -> dict[str, PoseMeasurement | None]:
        """Detect every plate in an 8-bit grey or BGR/RGB(A) image; ``None`` for plates not found."""
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or img.size == 0:
            raise ValueError("image: expected an 8-bit grey or colour image")
        if img.ndim == 3:
            img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
        out: dict[str, PoseMeasurement | None] = {}
        for p in self.plates:
            ch_corners, ch_ids, _, _ = self._detectors[p.name].detectBoard(img)
            if ch_ids is None or len(ch_ids) == 0:
                log.debug("plate %s: not found", p.name)
                out[p.name] = None
                continue
            ids = ch_ids.reshape(-1)
            obj = self._corners[p.name][ids]
            out[p.name] = self._solve(p.name, obj, ch_corners.reshape(-1, 2), t)
        return out

    def measure(
        self, name: str, T_cam_plate_true: np.ndarray, rng: np.random.Generator, t: float = 0.0
    ) -> PoseMeasurement | None:
        """Noise-model measurement of one plate at its exact pose (camera-rate path, no rendering).

        Corners outside the image or on a plate facing away are not seen; visible corners get
        Gaussian pixel noise of ``noise.pixel_sigma``; the pose comes from the same PnP as
        :meth:`detect`.
        """
        T = transform("T_cam_plate_true", T_cam_plate_true)
        if self.noise.dropout > 0.0 and rng.random() < self.noise.dropout:
            return None
        obj = self._corners[self.plate(name).name]
        if float(T[:3, 2] @ T[:3, 3]) >= 0.0:
            return None
        p_cam = obj @ T[:3, :3].T + T[:3, 3]
        if (p_cam[:, 2] <= 0.0).any():
            return None
        uv = self.camera.project(p_cam)
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < self.camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < self.camera.height)
        uv = uv + rng.normal(0.0, self.noise.pixel_sigma, uv.shape)
        return self._solve(name, obj[inside], uv[inside], t)


# -- hand-eye (camera-to-robot) calibration ---------------------------------------------------


# Rotations smaller than this (rad) carry no usable axis; axes closer than this angle (rad) to
# parallel are one axis. Both solvers see the same check, so they fail on the same inputs.
_HAND_EYE_MIN_ROTATION = 1e-3
_HAND_EYE_MIN_AXIS_ANGLE = np.radians(2.0)


def calibrate_camera_to_base(
    T_base_flange: Sequence[np.ndarray],
    T_cam_plate: Sequence[np.ndarray],
    method: str = "park",
    solver: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Eye-to-hand calibration: a fixed camera sees a plate carried by the robot.

    Given robot poses ``T_base_flange[i]`` (forward kinematics) and plate observations
    ``T_cam_plate[i]`` at the same instants, returns ``(T_base_cam, T_flange_plate)``.

    ``solver``: ``"opencv"`` (``cv2.calibrateHandEye`` with ``method`` ``"park"`` or ``"tsai"``,
    robot poses inverted as its documentation says for the eye-to-hand case), ``"numpy"`` (Park
    & Martin's closed form computed here), or ``"auto"``: OpenCV when this build exposes it
    (OpenCV 5.0.0's Python package does not, opencv/opencv#29565), else NumPy.
    ``T_flange_plate`` is then the least-squares average.

    Bad input: fewer than 3 poses, or motions whose relative rotations do not span at least two
    distinct axes (pure translations, rotations about one axis), raise ``TrackingError`` before
    any solver runs; a solver result that is not finite or not a proper rotation raises
    ``TrackingError`` too, whichever solver ran. Malformed poses raise ``ValueError``; an
    unknown ``solver``/``method``, or ``"opencv"`` on a build without it, raises ``ValueError``.
    """
    A = [transform("T_base_flange", T) for T in T_base_flange]
    B = [transform("T_cam_plate", T) for T in T_cam_plate]
    if len(A) != len(B) or len(A) < 3:
        raise TrackingError("hand-eye: need >= 3 paired robot poses and plate observations")
    if method not in ("park", "tsai"):
        raise ValueError(f"hand-eye: unknown method {method!r} (park, tsai)")
    fn = getattr(cv2, "calibrateHandEye", None)
    if solver == "auto":
        solver = "opencv" if fn is not None else "numpy"
    if solver not in ("opencv", "numpy"):
        raise ValueError(f"hand-eye: unknown solver {solver!r} (auto, opencv, numpy)")
    if solver == "opencv" and fn is None:
        raise ValueError("hand-eye: this OpenCV build has no calibrateHandEye; use solver='numpy'")
    # eye-to-hand: feed "gripper2base" = base pose seen from the flange
    G = [np.linalg.inv(T) for T in A]
    _check_hand_eye_motion(G)
    if solver == "opencv":
        methods = {"park": cv2.CALIB_HAND_EYE_PARK, "tsai": cv2.CALIB_HAND_EYE_TSAI}
        try:
            R, t = fn(
                [g[:3, :3] for g in G], [g[:3, 3] for g in G], [b[:3, :3] for b in B], [b[:3, 3] for b in B],
                method=methods[method],
            )
        except cv2.error as exc:
            raise TrackingError(f"hand-eye: OpenCV could not solve ({exc.err})") from None
        X = np.eye(4)
        X[:3, :3], X[:3, 3] = R, np.asarray(t).reshape(3)
    else:
        X = _hand_eye_park(G, B)
    _check_solution("T_base_cam", X, solver)
    # X = T_base_cam; plate in flange: T_flange_plate_i = inv(T_base_flange_i) X T_cam_plate_i
    Ys = [np.linalg.inv(a) @ X @ b for a, b in zip(A, B, strict=True)]
    Y = np.eye(4)
    Y[:3, :3] = Rotation.from_matrix(np.array([y[:3, :3] for y in Ys])).mean().as_matrix()
    Y[:3, 3] = np.mean([y[:3, 3] for y in Ys], axis=0)
    _check_solution("T_flange_plate", Y, solver)
    return X, Y


def _check_hand_eye_motion(G: Sequence[np.ndarray]) -> None:
    """Raise ``TrackingError`` unless the relative robot rotations span two distinct axes.

    ``AX = XB`` fixes the rotation only when at least two motions rotate about non-parallel
    axes; fewer leave a free rotation about the one axis (OpenCV then returns NaN).
    """
    axes = []
    for i in range(len(G)):
        for j in range(i + 1, len(G)):
            rotvec = Rotation.from_matrix((np.linalg.inv(G[j]) @ G[i])[:3, :3]).as_rotvec()
            angle = float(np.linalg.norm(rotvec))
            if angle >= _HAND_EYE_MIN_ROTATION:
                axes.append(rotvec / angle)
    if not axes:
        raise TrackingError("hand-eye: the robot poses differ by translations only; rotate the plate between poses")
    a0 = axes[0]
    # axes are lines, not directions: an axis and its opposite are the same
    if all(abs(float(a0 @ a)) > np.cos(_HAND_EYE_MIN_AXIS_ANGLE) for a in axes):
        raise TrackingError("hand-eye: robot poses need rotations about at least two distinct axes")


def _check_solution(name: str, T: np.ndarray, solver: str) -> None:
    R = T[:3, :3]
    if (
        not np.isfinite(T).all()
        or not np.allclose(R @ R.T, np.eye(3), atol=1e-6)
        or abs(np.linalg.det(R) - 1.0) > 1e-6
    ):
        raise TrackingError(f"hand-eye: the {solver} solver returned an invalid {name} (not a finite proper rotation)")


def _hand_eye_park(G: Sequence[np.ndarray], C: Sequence[np.ndarray]) -> np.ndarray:
    """Solve ``A X = X B`` (Park & Martin 1994) with A = G_j^-1 G_i... in OpenCV's convention.

    ``G[i]`` = gripper2base, ``C[i]`` = target2cam; returns cam2gripper, as cv2.calibrateHandEye.
    """
    n = len(G)
    alphas, betas, As, Bs = [], [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            Aij = np.linalg.inv(G[j]) @ G[i]
            Bij = C[j] @ np.linalg.inv(C[i])
            a = Rotation.from_matrix(Aij[:3, :3]).as_rotvec()
            b = Rotation.from_matrix(Bij[:3, :3]).as_rotvec()
            if np.linalg.norm(a) < 1e-3 or np.linalg.norm(b) < 1e-3:
                continue  # nearly pure translations carry no rotation information
            alphas.append(a)
            betas.append(b)
            As.append(Aij)
            Bs.append(Bij)
    if len(alphas) < 2:
        raise TrackingError("hand-eye: robot poses need rotations about at least two axes")
    M = sum(np.outer(b, a) for a, b in zip(alphas, betas, strict=True))
    MtM = M.T @ M
    w, V = np.linalg.eigh(MtM)
    if w.min() <= 1e-12 * max(w.max(), 1e-300):
        raise TrackingError("hand-eye: rotation axes of the robot motions are degenerate")
    R = V @ np.diag(w**-0.5) @ V.T @ M.T
    U, _, Vt = np.linalg.svd(R)
    R = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    lhs = np.vstack([Aij[:3, :3] - np.eye(3) for Aij in As])
    rhs = np.concatenate([R @ Bij[:3, 3] - Aij[:3, 3] for Aij, Bij in zip(As, Bs, strict=True)])
    t, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    X = np.eye(4)
    X[:3, :3], X[:3, 3] = R, t
    return X


def pose_distance(T_a: np.ndarray, T_b: np.ndarray) -> tuple[float, float]:
    """Translation (m) and rotation angle (rad) between two poses of the same frame."""
    dT = np.linalg.inv(T_a) @ T_b
    return float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3])), float(Rotation.from_matrix(dT[:3, :3]).magnitude())


pose_error = pose_distance  # the old name, for one release (#16: control's pose_error is a 6-vector)
