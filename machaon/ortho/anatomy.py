"""Bone anatomy for planning: a parametric vertebra phantom, a spine segment, and meshes.

Every model answers the same questions about points given in the **image frame** (metres):

- ``sdf(points)``: signed distance to the outer bone surface, negative inside bone;
- ``canal_sdf(points)``: signed distance to the spinal canal, negative inside the canal;
- ``region(points)``: ``Region`` codes (OUTSIDE, CORTICAL, CANCELLOUS, CANAL);
- ``mesh()``: a ``trimesh.Trimesh`` of the bone surface (for display and PyBullet collision);
- ``pedicle_axis(level, side)``: the ground-truth pedicle axis where the model knows it.

Vertebra frame (each level's own frame, also the frame of ``VertebraParams``): origin at the
centre of the vertebral body, x to the patient's left, y posterior, z superior (cranial), i.e. the
DICOM LPS convention. ``T_image_vertebra`` places a vertebra in the image frame.

The phantom is a constructive-solid-geometry composition (hard min/max) of exact distance
primitives: elliptic cylinders (distance to the ellipse computed by an iterative closest-point
solve, accurate to ~1e-10 m) and boxes. Its zero level set (the surface, hence every in/out and
region answer) is exact; the magnitude is the exact distance at most points and a lower bound
near the seams of unions and where the canal is carved out, so clearances computed from it are
never over-estimated. ``SpineSegment`` evaluates each level exactly within
``exact_band_m`` of its bounding box and returns a lower bound (>= the band) farther away.

Bad input (NaN, Inf, wrong shape) raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from machaon._validate import finite_array, transform
from machaon.errors import OrthoError

log = logging.getLogger(__name__)

try:  # the compiled CSG kernel; the NumPy reference below computes the same values, slower
    from machaon.ortho._anatomy_sdf import csg_sdf as _csg_sdf
except ImportError:  # pragma: no cover - only when the extension was not built
    _csg_sdf = None
    log.warning("machaon.ortho._anatomy_sdf is not built; using the slower NumPy SDF")

MM = 1e-3  # metres per millimetre: the one place mm enter this module (presets and mesh files)

SIDES = ("left", "right")


class Region(enum.IntEnum):
    """What a point is in. Codes are stable (they go into arrays and files)."""

    OUTSIDE = 0
    CORTICAL = 1
    CANCELLOUS = 2
    CANAL = 3


class AnatomyError(OrthoError, ValueError):
    """An anatomy model was asked something it cannot answer (unknown level, bad mesh, ...)."""


# --------------------------------------------------------------------------------------------
# exact distance primitives (points in the primitive's own frame)
# --------------------------------------------------------------------------------------------


def ellipse_sdf(x: np.ndarray, y: np.ndarray, a: float, b: float, iterations: int = 6) -> np.ndarray:
    """Signed distance (same units as inputs) from points (x, y) to the ellipse x²/a² + y²/b² = 1.

    Negative inside. The closest point is found by an iterative evolute-based update of the
    ellipse parameter (a few iterations reach ~1e-12 relative accuracy for the aspect ratios
    used here); the returned value is the Euclidean distance to that closest point.
    """
    px = np.abs(x)
    py = np.abs(y)
    tx = np.full(px.shape, math.sqrt(0.5))
    ty = np.full(px.shape, math.sqrt(0.5))
    a2b2 = a * a - b * b
    for _ in range(iterations):
        ex = a2b2 * tx**3 / a
        ey = -a2b2 * ty**3 / b
        rx = a * tx - ex
        ry = b * ty - ey
        qx = px - ex
        qy = py - ey
        r = np.hypot(rx, ry)
        q = np.hypot(qx, qy)
        q = np.where(q < 1e-300, 1e-300, q)
        tx = np.clip((qx * r / q + ex) / a, 0.0, 1.0)
        ty = np.clip((qy * r / q + ey) / b, 0.0, 1.0)
        t = np.hypot(tx, ty)
        tx /= t
        ty /= t
    d = np.hypot(px - a * tx, py - b * ty)
    inside = (px / a) ** 2 + (py / b) ** 2 < 1.0
    return np.where(inside, -d, d)


def _extrude(d2: np.ndarray, z: np.ndarray, half: float) -> np.ndarray:
    """Exact SDF of a 2-D shape with SDF ``d2`` extruded over |z| <= half."""
    wz = np.abs(z) - half
    out = np.hypot(np.maximum(d2, 0.0), np.maximum(wz, 0.0))
    return out + np.minimum(np.maximum(d2, wz), 0.0)


def box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Exact SDF of an axis-aligned box of half sizes ``half`` centred at the origin; p is (N, 3)."""
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass(frozen=True)
class _Prim:
    """A primitive placed in the vertebra frame: p_prim = R^T (p_vert - c)."""

    kind: str  # "ecyl" (elliptic cylinder along prim z, half length h) or "box"
    c: np.ndarray
    R: np.ndarray
    size: np.ndarray  # ecyl: (a, b, h); box: half sizes

    def sdf(self, p_vert: np.ndarray) -> np.ndarray:
        p = (p_vert - self.c) @ self.R
        if self.kind == "box":
            return box_sdf(p, self.size)
        a, b, h = self.size
        d2 = ellipse_sdf(p[:, 0], p[:, 1], a, b)
        if math.isinf(h):
            return d2
        return _extrude(d2, p[:, 2], h)


def _program(prims: list[_Prim], n_union: int) -> tuple:
    """Arrays for the compiled kernel: (kind, R (P, 9), centre (P, 3), size (P, 3), n_union)."""
    kind = np.array([1 if p.kind == "box" else 0 for p in prims], dtype=np.int32)
    R = np.ascontiguousarray(np.stack([p.R.reshape(9) for p in prims]), dtype=np.float64)
    c = np.ascontiguousarray(np.stack([p.c for p in prims]), dtype=np.float64)
    size = np.ascontiguousarray(np.stack([p.size for p in prims]), dtype=np.float64)
    radius = np.array([float(np.linalg.norm(p.size)) for p in prims])  # box corner / capped cylinder rim
    return kind, R, c, size, radius, n_union


def _run(prog: tuple, p: np.ndarray) -> np.ndarray:
    kind, R, c, size, radius, n_union = prog
    out = np.empty(len(p), dtype=np.float64)
    return _csg_sdf(np.ascontiguousarray(p, dtype=np.float64), kind, R, c, size, radius, n_union, out)


# --------------------------------------------------------------------------------------------
# parametric vertebra
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VertebraParams:
    """Dimensions of the phantom vertebra, metres and radians, in the vertebra frame.

    The body is an elliptic cylinder (semi-axes ``body_semi_width`` along x, ``body_semi_depth``
    along y, half height along z). The canal is an elliptic cylinder along z just behind the body
    (centre y = body_semi_depth + canal_semi_depth). Each pedicle is an elliptic cylinder whose
    axis lies in the transverse plane at ``pedicle_convergence`` from the sagittal plane (tip
    towards the midline), crossing the canal's mid-depth at x = ±(canal_semi_width +
    pedicle_medial_gap + pedicle_semi_width); it runs from the body centre plane (y = 0) back to
    the posterior surface of the lamina. The lamina is a box joining the pedicles behind the
    canal; the spinous process a box tilted caudally by ``spinous_tilt``; the transverse
    processes boxes going laterally from the pedicles.
    """

    body_semi_width: float = 22.0 * MM
    body_semi_depth: float = 16.5 * MM
    body_half_height: float = 13.0 * MM
    canal_semi_width: float = 11.5 * MM
    canal_semi_depth: float = 8.5 * MM
    pedicle_semi_width: float = 5.0 * MM
    pedicle_semi_height: float = 7.5 * MM
    pedicle_medial_gap: float = 1.5 * MM
    pedicle_convergence: float = math.radians(14.0)
    lamina_half_thickness: float = 3.5 * MM
    lamina_half_height: float = 10.0 * MM
    spinous_length: float = 30.0 * MM
    spinous_half_width: float = 3.0 * MM
    spinous_half_height: float = 9.0 * MM
    spinous_tilt: float = math.radians(20.0)
    transverse_length: float = 22.0 * MM
    transverse_half_thickness: float = 3.0 * MM
    transverse_half_height: float = 5.0 * MM
    cortical_thickness: float = 1.0 * MM

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not math.isfinite(value):
                raise ValueError(f"VertebraParams.{name}: not finite")
            if name not in ("pedicle_convergence", "spinous_tilt") and value <= 0.0:
                raise ValueError(f"VertebraParams.{name}: must be > 0, got {value}")
        if not 0.0 <= self.pedicle_convergence < math.radians(60.0):
            raise ValueError("VertebraParams.pedicle_convergence: must be in [0, 60) deg")
        if self.cortical_thickness >= self.pedicle_semi_width:
            raise ValueError("VertebraParams.cortical_thickness: must be < pedicle_semi_width")

    # Published morphometry (Zindrick 1987, Panjabi 1991/1992), rounded; mm and degrees.
    # level: body w/2, body d/2, body h/2, canal w/2, canal d/2, pedicle w/2, pedicle h/2, convergence
    _LUMBAR = {
        "L1": (20.0, 15.0, 12.5, 11.0, 8.5, 4.4, 7.8, 11.0),
        "L2": (21.0, 15.5, 13.0, 11.0, 8.5, 4.5, 7.5, 12.0),
        "L3": (22.0, 16.5, 13.0, 11.5, 8.5, 5.1, 7.5, 14.0),
        "L4": (23.0, 17.0, 13.0, 12.0, 8.5, 6.4, 7.0, 18.0),
        "L5": (24.5, 17.5, 12.5, 13.0, 8.5, 8.0, 7.0, 26.0),
    }
    _THORACIC = {
        "T1": (13.5, 8.0, 7.0, 10.0, 7.0, 3.8, 4.8, 27.0),
        "T4": (13.0, 11.0, 8.5, 8.0, 7.5, 2.6, 5.8, 14.0),
        "T8": (14.5, 13.5, 10.0, 8.0, 7.8, 3.0, 6.2, 8.0),
        "T12": (19.5, 14.5, 12.0, 10.5, 8.2, 4.0, 7.5, 6.0),
    }

    @classmethod
    def lumbar(cls, level: str = "L3") -> VertebraParams:
        """Preset for a lumbar level ``L1``..``L5`` (unknown level: ``AnatomyError``)."""
        level = level.upper()
        if level not in cls._LUMBAR:
            raise AnatomyError(f"unknown lumbar level {level!r}; expected L1..L5")
        bw, bd, bh, cw, cd, pw, ph, conv = cls._LUMBAR[level]
        return cls(
            body_semi_width=bw * MM,
            body_semi_depth=bd * MM,
            body_half_height=bh * MM,
            canal_semi_width=cw * MM,
            canal_semi_depth=cd * MM,
            pedicle_semi_width=pw * MM,
            pedicle_semi_height=ph * MM,
            pedicle_convergence=math.radians(conv),
        )

    @classmethod
    def thoracic(cls, level: str = "T8") -> VertebraParams:
        """Preset for a thoracic level ``T1``..``T12`` (interpolated between tabulated levels)."""
        level = level.upper()
        try:
            n = int(level[1:]) if level.startswith("T") else -1
        except ValueError:
            n = -1
        if not 1 <= n <= 12:
            raise AnatomyError(f"unknown thoracic level {level!r}; expected T1..T12")
        keys = sorted((int(k[1:]), v) for k, v in cls._THORACIC.items())
        xs = [k for k, _ in keys]
        vals = [np.interp(n, xs, [v[i] for _, v in keys]) for i in range(8)]
        bw, bd, bh, cw, cd, pw, ph, conv = (float(v) for v in vals)
        return cls(
            body_semi_width=bw * MM,
            body_semi_depth=bd * MM,
            body_half_height=bh * MM,
            canal_semi_width=cw * MM,
            canal_semi_depth=cd * MM,
            pedicle_semi_width=pw * MM,
            pedicle_semi_height=ph * MM,
            pedicle_convergence=math.radians(conv),
            lamina_half_thickness=3.0 * MM,
            lamina_half_height=min(9.0, bh) * MM,
            spinous_length=32.0 * MM,
            spinous_half_width=2.5 * MM,
            spinous_half_height=5.0 * MM,
            spinous_tilt=math.radians(45.0),
            transverse_length=18.0 * MM,
            transverse_half_thickness=3.5 * MM,
            transverse_half_height=min(5.0, 0.7 * ph) * MM,
            cortical_thickness=min(1.0, 0.3 * pw) * MM,
        )

    @classmethod
    def for_level(cls, level: str) -> VertebraParams:
        """Preset for ``L1``..``L5`` or ``T1``..``T12``."""
        level = level.upper()
        if level.startswith("L"):
            return cls.lumbar(level)
        if level.startswith("T"):
            return cls.thoracic(level)
        raise AnatomyError(f"unknown level {level!r}; expected L1..L5 or T1..T12")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready dict: lengths in mm, angles in degrees."""
        out = {}
        for k, v in asdict(self).items():
            out[k + ("_deg" if k in ("pedicle_convergence", "spinous_tilt") else "_mm")] = (
                math.degrees(v) if k in ("pedicle_convergence", "spinous_tilt") else v / MM
            )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> VertebraParams:
        """Inverse of ``to_dict``; unknown or missing keys raise ``AnatomyError``."""
        kw = {}
        for f in cls.__dataclass_fields__:
            ang = f in ("pedicle_convergence", "spinous_tilt")
            key = f + ("_deg" if ang else "_mm")
            if key not in d:
                raise AnatomyError(f"vertebra params: missing {key!r}")
            kw[f] = math.radians(float(d[key])) if ang else float(d[key]) * MM
        extra = set(d) - {
            f + ("_deg" if f in ("pedicle_convergence", "spinous_tilt") else "_mm") for f in cls.__dataclass_fields__
        }
        if extra:
            raise AnatomyError(f"vertebra params: unknown keys {sorted(extra)}")
        return cls(**kw)


@dataclass(frozen=True)
class PedicleAxis:
    """Ground-truth pedicle axis of one level and side, image frame, metres.

    ``entry`` is where the axis leaves the bone posteriorly (the anatomical entry point);
    ``direction`` is the unit vector from entry towards the body (anterior); ``isthmus`` is the
    axis point at the canal's mid-depth (inside the pedicle); ``chord_length`` is the distance
    along the axis from ``entry`` to where it leaves the body anteriorly; ``semi_width`` and
    ``semi_height`` are the pedicle's elliptic cross-section semi-axes (transverse, cranio-caudal).
    """

    level: str
    side: str
    entry: np.ndarray
    direction: np.ndarray
    isthmus: np.ndarray
    chord_length: float
    semi_width: float
    semi_height: float
    convergence: float


@runtime_checkable
class Anatomy(Protocol):
    """What planning, registration and execution need from a bone model (image frame, metres)."""

    cortical_thickness: float

    @property
    def levels(self) -> tuple[str, ...]: ...

    def sdf(self, points: np.ndarray) -> np.ndarray: ...

    def canal_sdf(self, points: np.ndarray) -> np.ndarray: ...

    def region(self, points: np.ndarray) -> np.ndarray: ...

    def mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh: ...

    def bounds(self) -> np.ndarray: ...

    def level_frame(self, level: str) -> np.ndarray: ...

    def pedicle_axis(self, level: str, side: str) -> PedicleAxis | None: ...


def _points(points: object, name: str = "points") -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, 3) float64 view of ``points`` (any leading shape ending in 3) and the leading shape."""
    arr = np.asarray(points, dtype=np.float64) if not isinstance(points, np.ndarray) else points
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (..., 3), got {np.shape(arr)}")
    lead = arr.shape[:-1]
    flat = finite_array(name, arr.reshape(-1, 3), (None, 3))
    return flat, lead


def region_from_sdf(d_bone: np.ndarray, d_canal: np.ndarray, cortical_thickness: float) -> np.ndarray:
    """Region codes from bone and canal signed distances (int8 array)."""
    out = np.full(d_bone.shape, Region.OUTSIDE, dtype=np.int8)
    out[d_bone <= 0.0] = Region.CORTICAL
    out[d_bone < -cortical_thickness] = Region.CANCELLOUS
    out[(d_canal < 0.0) & (d_bone > 0.0)] = Region.CANAL
    return out


def marching_cubes_mesh(sdf_fn, lo: np.ndarray, hi: np.ndarray, spacing: float, level: float = 0.0) -> trimesh.Trimesh:
    """Mesh the ``level`` set of ``sdf_fn`` (points (N,3) -> (N,)) over the box [lo, hi] (m).

    Uses ``skimage.measure.marching_cubes``; the result has outward normals, metres.
    """
    from skimage.measure import marching_cubes

    if not (spacing > 0.0 and math.isfinite(spacing)):
        raise ValueError(f"spacing: must be a positive finite length, got {spacing}")
    # the odd offset keeps flat faces of the phantom (box sides, caps) off the grid planes, where
    # marching cubes would produce degenerate, non-manifold triangles
    lo = np.asarray(lo, float) - 2.3719 * spacing
    hi = np.asarray(hi, float) + 2 * spacing
    n = np.ceil((hi - lo) / spacing).astype(int) + 1
    if int(np.prod(n)) > 40_000_000:
        raise ValueError(f"spacing: {spacing} m gives a grid of {tuple(n)} points; use a coarser spacing")
    axes = [lo[i] + spacing * np.arange(n[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    vol = sdf_fn(grid).reshape(tuple(n))
    vol[np.abs(vol) < 1e-12] = 1e-12
    verts, faces, _normals, _ = marching_cubes(vol, level=level, spacing=(spacing,) * 3)
    mesh = trimesh.Trimesh(vertices=verts + lo, faces=faces, process=True)
    # skimage orients faces so that normals point towards increasing values, i.e. outward for an
    # SDF that is negative inside; make sure of it (volume must come out positive).
    if mesh.volume < 0:
        mesh.invert()
    return mesh


class Vertebra:
    """A parametric vertebra phantom placed in the image frame by ``T_image_vertebra``.

    ``params`` are in the vertebra frame (see module docstring). All public methods take and
    return image-frame quantities in metres.
    """

    def __init__(
        self,
        params: VertebraParams | None = None,
        level: str = "L3",
        T_image_vertebra: np.ndarray | None = None,
    ) -> None:
        self.level = level.upper()
        self.params = params if params is not None else VertebraParams.for_level(self.level)
        T = np.eye(4) if T_image_vertebra is None else transform("T_image_vertebra", T_image_vertebra)
        self.T_image_vertebra = T.copy()
        self.T_image_vertebra.flags.writeable = False
        self.cortical_thickness = self.params.cortical_thickness
        self._R = T[:3, :3].copy()
        self._t = T[:3, 3].copy()
        self._meshes: dict[float, trimesh.Trimesh] = {}
        self._build()

    # geometry --------------------------------------------------------------------------------
    def _build(self) -> None:
        P = self.params
        eye = np.eye(3)
        self._canal_y = P.body_semi_depth + P.canal_semi_depth
        self._pedicle_x = P.canal_semi_width + P.pedicle_medial_gap + P.pedicle_semi_width
        self._lamina_y = self._canal_y + P.canal_semi_depth + P.lamina_half_thickness
        y_post = self._lamina_y + P.lamina_half_thickness
        body = _Prim("ecyl", np.zeros(3), eye, np.array([P.body_semi_width, P.body_semi_depth, P.body_half_height]))
        prims = [body]
        self._ped: dict[str, tuple[np.ndarray, np.ndarray, float, float]] = {}
        c, s = math.cos(P.pedicle_convergence), math.sin(P.pedicle_convergence)
        for side, sx in (("left", 1.0), ("right", -1.0)):
            d = np.array([-sx * s, -c, 0.0])  # anterior, towards the midline
            isth = np.array([sx * self._pedicle_x, self._canal_y, 0.0])
            l_ant = self._canal_y / c  # to the y = 0 plane
            l_post = (y_post - self._canal_y) / c
            mid = isth + d * (l_ant - l_post) / 2.0
            # primitive frame: z along d, x horizontal across (in the transverse plane), y = z_vert
            ez = d
            ey = np.array([0.0, 0.0, 1.0])
            ex = np.cross(ey, ez)
            R = np.column_stack([ex, ey, ez])
            prims.append(
                _Prim(
                    "ecyl",
                    mid,
                    R,
                    np.array([P.pedicle_semi_width, P.pedicle_semi_height, (l_ant + l_post) / 2]),
                )
            )
            self._ped[side] = (isth, d, l_ant, l_post)
            tp_c = np.array([sx * (self._pedicle_x + P.transverse_length / 2), self._canal_y + 3.0 * MM, 0.0])
            tp_half = np.array([P.transverse_length / 2, P.transverse_half_thickness, P.transverse_half_height])
            prims.append(_Prim("box", tp_c, eye, tp_half))
        lam_half = np.array([self._pedicle_x, P.lamina_half_thickness, P.lamina_half_height])
        prims.append(_Prim("box", np.array([0.0, self._lamina_y, 0.0]), eye, lam_half))
        R_sp = _rot_x(-P.spinous_tilt)  # y axis of the process tilted down (caudal)
        half_len = P.spinous_length / 2 + P.lamina_half_thickness
        sp_c = np.array([0.0, self._lamina_y, 0.0]) + R_sp @ np.array([0.0, half_len, 0.0])
        prims.append(_Prim("box", sp_c, R_sp, np.array([P.spinous_half_width, half_len, P.spinous_half_height])))
        self._prims = prims
        canal_h = P.body_half_height * 1.6
        self._canal = _Prim(
            "ecyl",
            np.array([0.0, self._canal_y, 0.0]),
            eye,
            np.array([P.canal_semi_width, P.canal_semi_depth, canal_h]),
        )
        self._bone_prog = _program(self._prims + [self._canal], n_union=len(self._prims))
        self._canal_prog = _program([self._canal], n_union=1)
        # local bounding box (conservative)
        tip = sp_c + R_sp @ np.array([0.0, half_len, 0.0])
        x_max = max(
            P.body_semi_width,
            self._pedicle_x + P.transverse_length,
            self._pedicle_x + 0.5 * (y_post - self._canal_y),
        )
        z_max = max(
            P.body_half_height,
            P.pedicle_semi_height + 1e-3,
            P.lamina_half_height,
            abs(tip[2]) + P.spinous_half_height,
        )
        y_max = max(tip[1] + P.spinous_half_height, y_post)
        self._local_lo = np.array([-x_max, -P.body_semi_depth, -z_max - P.spinous_half_height])
        self._local_hi = np.array([x_max, y_max, z_max])

    # frames ---------------------------------------------------------------------------------
    def to_local(self, points: np.ndarray) -> np.ndarray:
        """Image-frame points (N, 3) to vertebra-frame points (no checks)."""
        return (points - self._t) @ self._R

    def to_image(self, points_local: np.ndarray) -> np.ndarray:
        """Vertebra-frame points (N, 3) to image-frame points (no checks)."""
        return points_local @ self._R.T + self._t

    @property
    def levels(self) -> tuple[str, ...]:
        return (self.level,)

    def level_frame(self, level: str) -> np.ndarray:
        """``T_image_vertebra`` of ``level`` (this vertebra's own level only)."""
        if level.upper() != self.level:
            raise AnatomyError(f"unknown level {level!r}; this vertebra is {self.level}")
        return self.T_image_vertebra.copy()

    def local_bounds(self) -> np.ndarray:
        """(2, 3) box [lo, hi] enclosing the bone in the vertebra frame, m."""
        return np.stack([self._local_lo, self._local_hi])

    def bounds(self) -> np.ndarray:
        """(2, 3) axis-aligned box [lo, hi] enclosing the bone in the image frame, m."""
        lo, hi = self._local_lo, self._local_hi
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        c = self.to_image(corners)
        return np.stack([c.min(axis=0), c.max(axis=0)])

    # fields ---------------------------------------------------------------------------------
    def sdf_local(self, p: np.ndarray) -> np.ndarray:
        """Bone SDF for vertebra-frame points (N, 3) (no checks)."""
        if _csg_sdf is not None:
            return _run(self._bone_prog, p)
        return self.sdf_local_reference(p)

    def sdf_local_reference(self, p: np.ndarray) -> np.ndarray:
        """NumPy reference of ``sdf_local`` (same mathematics as the compiled kernel)."""
        d = self._prims[0].sdf(p)
        for prim in self._prims[1:]:
            d = np.minimum(d, prim.sdf(p))
        return np.maximum(d, -self._canal.sdf(p))

    def canal_sdf_local(self, p: np.ndarray) -> np.ndarray:
        """Canal SDF for vertebra-frame points (N, 3) (no checks)."""
        if _csg_sdf is not None:
            return _run(self._canal_prog, p)
        return self._canal.sdf(p)

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) from image-frame points (..., 3) to the bone surface; < 0 in bone."""
        p, lead = _points(points)
        return self.sdf_local(self.to_local(p)).reshape(lead)

    def canal_sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) from image-frame points (..., 3) to the canal; < 0 inside it."""
        p, lead = _points(points)
        return self.canal_sdf_local(self.to_local(p)).reshape(lead)

    def region(self, points: np.ndarray) -> np.ndarray:
        """``Region`` codes (int8, shape (...)) of image-frame points (..., 3)."""
        p, lead = _points(points)
        q = self.to_local(p)
        return region_from_sdf(self.sdf_local(q), self.canal_sdf_local(q), self.cortical_thickness).reshape(lead)

    def mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh:
        """Marching-cubes mesh of the bone surface in the image frame (m), grid ``spacing`` m.

        Meshes are remembered per spacing (the vertebra is immutable); each call returns a copy.
        """
        key = float(spacing)
        if key not in self._meshes:
            m = marching_cubes_mesh(self.sdf_local, self._local_lo, self._local_hi, spacing)
            m.apply_transform(self.T_image_vertebra)
            self._meshes[key] = m
        return self._meshes[key].copy()

    def canal_mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh:
        """Marching-cubes mesh of this level's spinal canal (image frame, m), for display or files."""
        c = self._canal
        half = np.array([c.size[0], c.size[1], c.size[2]])
        m = marching_cubes_mesh(self.canal_sdf_local, c.c - half, c.c + half, spacing)
        m.apply_transform(self.T_image_vertebra)
        return m

    def pedicle_axis(self, level: str, side: str) -> PedicleAxis:
        """Ground-truth pedicle axis (image frame) of ``side`` ('left'/'right')."""
        self.level_frame(level)
        if side not in SIDES:
            raise AnatomyError(f"side: expected 'left' or 'right', got {side!r}")
        isth, d, _l_ant, _l_post = self._ped[side]
        isth_i = self.to_image(isth[None])[0]
        d_i = self._R @ d
        entry = ray_exit(self, isth_i, -d_i)
        exit_ = ray_exit(self, isth_i, d_i)
        return PedicleAxis(
            level=self.level,
            side=side,
            entry=entry,
            direction=d_i,
            isthmus=isth_i,
            chord_length=float(np.linalg.norm(exit_ - entry)),
            semi_width=self.params.pedicle_semi_width,
            semi_height=self.params.pedicle_semi_height,
            convergence=self.params.pedicle_convergence,
        )


def ray_exit(
    anatomy: Anatomy, start: np.ndarray, direction: np.ndarray, max_dist: float = 0.2, step: float = 1e-3
) -> np.ndarray:
    """First point where the ray ``start + s*direction`` (s > 0) leaves the bone (image frame, m).

    ``start`` should be inside bone. Marches in ``step`` increments (features thinner than the
    step can be jumped), then refines the bracket to ~1e-10 m. Raises ``AnatomyError`` if the
    ray never leaves the bone within ``max_dist``.
    """
    direction = finite_array("direction", direction, (3,))
    return ray_exits(anatomy, start, direction[None], max_dist, step)[0]


def ray_exits(
    anatomy: Anatomy, start: np.ndarray, directions: np.ndarray, max_dist: float = 0.2, step: float = 1e-3
) -> np.ndarray:
    """``ray_exit`` for several directions from one start at once; returns (K, 3) points."""
    start = finite_array("start", start, (3,))
    dirs = finite_array("directions", directions, (None, 3))
    n = np.linalg.norm(dirs, axis=1, keepdims=True)
    if (n < 1e-12).any():
        raise ValueError("direction: zero vector")
    dirs = dirs / n
    k_rays = len(dirs)
    inside = getattr(anatomy, "inside", None)

    def outside(q: np.ndarray) -> np.ndarray:
        return ~inside(q) if inside is not None else anatomy.sdf(q) > 0.0

    s = np.arange(0.0, max_dist + step, step)
    out = outside((start + s[None, :, None] * dirs[:, None, :]).reshape(-1, 3)).reshape(k_rays, len(s))
    if not out.any(axis=1).all():
        raise AnatomyError("ray does not leave the bone within max_dist")
    k = np.argmax(out, axis=1)
    lo = np.where(k > 0, s[np.maximum(k - 1, 0)], 0.0)
    hi = s[k]
    rows = np.arange(k_rays)
    for _ in range(2):  # each round shrinks the bracket 32-fold: ~1 um after 2
        ss = np.linspace(lo, hi, 33, axis=1)  # (K, 33)
        oo = outside((start + ss[:, :, None] * dirs[:, None, :]).reshape(-1, 3)).reshape(k_rays, 33)
        j = np.argmax(oo, axis=1)
        j = np.where(oo[rows, j], j, 32)
        jm = np.maximum(j - 1, 0)
        lo, hi = ss[rows, jm], ss[rows, j]
    # the distance field is smooth across the surface: one secant step lands within ~1e-10 m,
    # and a final check keeps the point just outside (or on) the surface
    d_lo = anatomy.sdf(start + lo[:, None] * dirs)
    d_hi = anatomy.sdf(start + hi[:, None] * dirs)
    den = d_hi - d_lo
    frac = np.where(den > 0, -d_lo / np.where(den > 0, den, 1.0), 1.0)
    sx = lo + np.clip(frac, 0.0, 1.0) * (hi - lo)
    return start + sx[:, None] * dirs


# --------------------------------------------------------------------------------------------
# spine segment
# --------------------------------------------------------------------------------------------


def _level_key(level: str) -> tuple[int, int]:
    region = {"C": 0, "T": 1, "L": 2, "S": 3}.get(level[:1].upper(), 9)
    try:
        n = int(level[1:])
    except ValueError:
        n = 99
    return region, n


class SpineSegment:
    """Several phantom vertebrae placed along a sagittal curve in the image frame.

    Levels are ordered cranial to caudal. Vertebra centres lie on a circular arc in the image
    y-z plane; ``curvature_deg`` is the total angle between the first and last level's endplates,
    positive for lordosis (ends posterior, apex anterior: lumbar), negative for kyphosis
    (thoracic). ``disc_height`` is the gap between adjacent bodies. ``axial_rotation_deg`` turns
    each level about its own z axis, as in scoliosis (positive turns x, the patient's left,
    towards y, posterior: counter-clockwise seen from above). ``T_image_segment`` places the whole segment (its
    origin is the middle of the arc, on the apex vertebra's axis).
    """

    def __init__(
        self,
        levels: Sequence[str] = ("L1", "L2", "L3", "L4", "L5"),
        curvature_deg: float | None = None,
        disc_height: float = 9.0 * MM,
        params: dict[str, VertebraParams] | None = None,
        T_image_segment: np.ndarray | None = None,
        exact_band_m: float = 0.02,
        axial_rotation_deg: Sequence[float] | None = None,
    ) -> None:
        levels = tuple(str(lv).upper() for lv in levels)
        if not levels:
            raise AnatomyError("levels: at least one level is needed")
        if len(set(levels)) != len(levels):
            raise AnatomyError(f"levels: duplicates in {levels}")
        params = dict(params or {})
        for lv in levels:
            if lv not in params:
                params[lv] = VertebraParams.for_level(lv)
        if curvature_deg is None:
            curvature_deg = (10.0 if levels[0].startswith("L") else -8.0) * (len(levels) - 1) / 1.0
        if not math.isfinite(curvature_deg) or abs(curvature_deg) > 120:
            raise ValueError(f"curvature_deg: must be finite and within +-120, got {curvature_deg}")
        if not (disc_height > 0 and math.isfinite(disc_height)):
            raise ValueError(f"disc_height: must be a positive length, got {disc_height}")
        T_seg = np.eye(4) if T_image_segment is None else transform("T_image_segment", T_image_segment)
        rot = np.zeros(len(levels)) if axial_rotation_deg is None else np.asarray(axial_rotation_deg, float)
        if rot.shape != (len(levels),) or not np.isfinite(rot).all() or np.abs(rot).max() > 45.0:
            raise ValueError("axial_rotation_deg: one finite angle within +-45 deg per level")
        self.axial_rotation_deg = tuple(float(r) for r in rot)
        self.curvature_deg = float(curvature_deg)
        self.disc_height = float(disc_height)
        self.T_image_segment = T_seg.copy()
        self.exact_band_m = float(exact_band_m)
        # arc positions of centres (cranial first => largest z)
        heights = [2 * params[lv].body_half_height for lv in levels]
        s = [0.0]
        for i in range(1, len(levels)):
            s.append(s[-1] - (heights[i - 1] + heights[i]) / 2 - disc_height)
        s = np.array(s)
        s -= 0.5 * (s[0] + s[-1])
        total = s[0] - s[-1]
        kappa = math.radians(self.curvature_deg) / total if total > 0 else 0.0
        self.vertebrae: dict[str, Vertebra] = {}
        for lv, si, rz in zip(levels, s, rot, strict=True):
            phi = kappa * si
            if abs(kappa) > 1e-12:
                R = 1.0 / kappa
                pos = np.array([0.0, R * (1 - math.cos(phi)), R * math.sin(phi)])
            else:
                pos = np.array([0.0, 0.0, si])
            T = np.eye(4)
            c, sn = math.cos(math.radians(rz)), math.sin(math.radians(rz))
            T[:3, :3] = _rot_x(-phi) @ np.array([[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, 1.0]])
            T[:3, 3] = pos
            self.vertebrae[lv] = Vertebra(params[lv], lv, T_seg @ T)
        self._levels = levels
        self.cortical_thickness = min(v.cortical_thickness for v in self.vertebrae.values())
        centres, radii = [], []
        for v in self.vertebrae.values():
            mid = 0.5 * (v._local_lo + v._local_hi)
            centres.append(v.to_image(mid[None])[0])
            radii.append(0.5 * float(np.linalg.norm(v._local_hi - v._local_lo)))
        self._sphere_c = np.array(centres)
        self._sphere_r = np.array(radii)

    # description -----------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[str, ...]:
        return self._levels

    def vertebra(self, level: str) -> Vertebra:
        """The ``Vertebra`` of ``level`` (``AnatomyError`` if absent)."""
        try:
            return self.vertebrae[level.upper()]
        except KeyError:
            raise AnatomyError(f"unknown level {level!r}; segment has {self._levels}") from None

    def level_frame(self, level: str) -> np.ndarray:
        """``T_image_vertebra`` of ``level`` (4x4, m)."""
        return self.vertebra(level).T_image_vertebra.copy()

    def T_image_vertebra(self, level: str) -> np.ndarray:
        """Alias of ``level_frame``."""
        return self.level_frame(level)

    def pedicle_axis(self, level: str, side: str) -> PedicleAxis:
        """Ground-truth pedicle axis of ``level``/``side`` in the image frame."""
        v = self.vertebra(level)
        if side not in SIDES:
            raise AnatomyError(f"side: expected 'left' or 'right', got {side!r}")
        isth, d, _, _ = v._ped[side]
        isth_i = v.to_image(isth[None])[0]
        d_i = v._R @ d
        entry = ray_exit(self, isth_i, -d_i)
        exit_ = ray_exit(self, isth_i, d_i)
        P = v.params
        return PedicleAxis(
            level=v.level,
            side=side,
            entry=entry,
            direction=d_i,
            isthmus=isth_i,
            chord_length=float(np.linalg.norm(exit_ - entry)),
            semi_width=P.pedicle_semi_width,
            semi_height=P.pedicle_semi_height,
            convergence=P.pedicle_convergence,
        )

    def bounds(self) -> np.ndarray:
        """(2, 3) image-frame box enclosing all levels, m."""
        b = np.stack([v.bounds() for v in self.vertebrae.values()])
        return np.stack([b[:, 0].min(axis=0), b[:, 1].max(axis=0)])

    def to_dict(self) -> dict:
        """JSON-ready description (mm, degrees) from which ``from_dict`` rebuilds the segment."""
        return {
            "kind": "spine_segment",
            "levels": list(self._levels),
            "curvature_deg": self.curvature_deg,
            "disc_height_mm": self.disc_height / MM,
            "T_image_segment": _T_to_mm_list(self.T_image_segment),
            "axial_rotation_deg": list(self.axial_rotation_deg),
            "params": {lv: v.params.to_dict() for lv, v in self.vertebrae.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> SpineSegment:
        """Rebuild from ``to_dict`` output; malformed input raises ``AnatomyError``."""
        try:
            if d.get("kind") != "spine_segment":
                raise AnatomyError("anatomy: kind must be 'spine_segment'")
            params = {lv: VertebraParams.from_dict(p) for lv, p in d["params"].items()}
            return cls(
                levels=d["levels"],
                curvature_deg=float(d["curvature_deg"]),
                disc_height=float(d["disc_height_mm"]) * MM,
                params=params,
                T_image_segment=_T_from_mm_list(d["T_image_segment"]),
                axial_rotation_deg=d.get("axial_rotation_deg"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnatomyError(f"anatomy: malformed spine segment description ({exc})") from None

    # fields ---------------------------------------------------------------------------------
    def _eval(self, p: np.ndarray, canal: bool) -> tuple[np.ndarray, np.ndarray]:
        """(sdf, index of the level giving it) for image-frame points p (N, 3)."""
        best = np.full(p.shape[0], np.inf)
        idx = np.full(p.shape[0], -1, dtype=np.int64)
        band = self.exact_band_m
        # one vectorised bounding-sphere test first: a level farther than the band is not
        # evaluated at all (its distance is at least the sphere distance, a valid lower bound)
        sphere = np.linalg.norm(p[:, None, :] - self._sphere_c[None], axis=2) - self._sphere_r[None]
        for i, v in enumerate(self.vertebrae.values()):
            cand = np.nonzero(sphere[:, i] < band)[0]
            val = np.maximum(sphere[:, i], 0.0)
            if cand.size:
                q = v.to_local(p[cand])
                gap = np.maximum(np.maximum(v._local_lo - q, q - v._local_hi), 0.0)
                box_d = np.linalg.norm(gap, axis=1)
                val[cand] = box_d  # lower bound of the distance for points outside the band
                near = box_d < band
                if near.any():
                    qn = q[near]
                    val[cand[near]] = v.canal_sdf_local(qn) if canal else v.sdf_local(qn)
            better = val < best
            best[better] = val[better]
            idx[better] = i
        return best, idx

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) from image-frame points (..., 3) to the nearest bone; < 0 in bone."""
        p, lead = _points(points)
        return self._eval(p, canal=False)[0].reshape(lead)

    def canal_sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) to the nearest level's canal; < 0 inside a canal."""
        p, lead = _points(points)
        return self._eval(p, canal=True)[0].reshape(lead)

    def level_of(self, points: np.ndarray) -> np.ndarray:
        """Index into ``levels`` of the bone nearest each image-frame point (..., 3)."""
        p, lead = _points(points)
        return self._eval(p, canal=False)[1].reshape(lead)

    def region(self, points: np.ndarray) -> np.ndarray:
        """``Region`` codes (int8, shape (...)) of image-frame points (..., 3)."""
        p, lead = _points(points)
        return region_from_sdf(self._eval(p, False)[0], self._eval(p, True)[0], self.cortical_thickness).reshape(lead)

    def meshes(self, spacing: float = 1e-3) -> dict[str, trimesh.Trimesh]:
        """One marching-cubes mesh per level (image frame, m)."""
        return {lv: v.mesh(spacing) for lv, v in self.vertebrae.items()}

    def mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh:
        """All levels' meshes concatenated (image frame, m)."""
        return trimesh.util.concatenate(list(self.meshes(spacing).values()))


def _T_to_mm_list(T: np.ndarray) -> list[list[float]]:
    out = np.array(T, dtype=float)
    out[:3, 3] /= MM
    return out.tolist()


def _T_from_mm_list(rows: object) -> np.ndarray:
    T = np.array(rows, dtype=float)
    if T.shape != (4, 4):
        raise AnatomyError("transform: expected a 4x4 list")
    T[:3, 3] *= MM
    return transform("T", T)


# --------------------------------------------------------------------------------------------
# bone model from meshes
# --------------------------------------------------------------------------------------------


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on triangles (a, b, c) to p (all (M, 3)); returns (points, barycentric (M, 3))."""
    ab = b - a
    ac = c - a
    ap = p - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-300, 1e-300, denom)
    v = vb / denom  # face interior by default
    w = vc / denom
    done = np.zeros(len(p), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = np.clip(d1 / (d1 - d3), 0, 1)
        t_ac = np.clip(d2 / (d2 - d6), 0, 1)
        t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
    # Voronoi regions in priority order: vertex a, b, c, edge ab, ac, bc (Ericson 2005, 5.1.5)
    regions = (
        ((d1 <= 0) & (d2 <= 0), 0.0, 0.0),
        ((d3 >= 0) & (d4 <= d3), 1.0, 0.0),
        ((d6 >= 0) & (d5 <= d6), 0.0, 1.0),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), t_ab, 0.0),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), 0.0, t_ac),
        ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), 1.0 - t_bc, t_bc),
    )
    for mask, vv, ww in regions:
        m = mask & ~done
        if m.any():
            v = np.where(m, vv, v)
            w = np.where(m, ww, w)
            done |= m
    bary = np.stack([1.0 - v - w, v, w], axis=1)
    pts = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:3] * c
    return pts, bary


class MeshSDF:
    """Exact unsigned distance to a triangle mesh, signed by interpolated vertex normals.

    Candidate triangles come from a ``cKDTree`` over triangle centroids; a candidate set is
    certified complete when the next centroid is farther than the best distance plus the largest
    triangle circumradius, otherwise a ball query completes it. That makes the distance exact
    within ``exact_band`` of the surface; farther away it may exceed the truth by up to the
    largest triangle's size (the sign is still that of the nearest triangle found). The mesh must
    be watertight with outward normals (``AnatomyError`` otherwise). Points and distances in the
    mesh's units.
    """

    def __init__(self, mesh: trimesh.Trimesh, k: int = 8, exact_band: float = 0.01) -> None:
        if not mesh.is_watertight:
            raise AnatomyError("mesh: not watertight; signed distance needs a closed surface")
        if mesh.volume < 0:
            mesh = mesh.copy()
            mesh.invert()
        self.mesh = mesh
        tri = mesh.triangles
        self._a, self._b, self._c = tri[:, 0].copy(), tri[:, 1].copy(), tri[:, 2].copy()
        cen = tri.mean(axis=1)
        self._rtri = np.linalg.norm(tri - cen[:, None], axis=2).max(axis=1)
        self._rmax = float(self._rtri.max())
        self._cen = cen
        self._tree = cKDTree(cen)
        self._vn = np.asarray(mesh.vertex_normals, dtype=float)
        self._faces = np.asarray(mesh.faces)
        self._k = int(min(k, len(cen)))
        self.exact_band = float(exact_band)

    def __call__(self, p: np.ndarray, exact: bool = True) -> np.ndarray:
        """Signed distances of points p (N, 3); ``exact=False`` skips the certification (the sign
        and an upper bound of the distance from the k nearest triangles: much faster)."""
        return self._query(p, exact)[0]

    def closest(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance (N,), closest surface points (N, 3)) for points p (N, 3)."""
        return self._query(p, True)

    def _query(self, p: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(p, dtype=float)
        n = len(p)
        dk, ik = self._tree.query(p, k=self._k)
        if self._k == 1:
            dk, ik = dk[:, None], ik[:, None]
        # all k candidates of all points in one vectorised call
        f_all = ik.reshape(-1)
        p_rep = np.repeat(p, self._k, axis=0)
        q_all, bary_all = _closest_on_triangles(p_rep, self._a[f_all], self._b[f_all], self._c[f_all])
        d_all = np.linalg.norm(p_rep - q_all, axis=1).reshape(n, self._k)
        j = np.argmin(d_all, axis=1)
        flat = np.arange(n) * self._k + j
        best = d_all[np.arange(n), j]
        best_pt = q_all[flat]
        best_bary = bary_all[flat]
        best_f = f_all[flat]
        # a triangle outside the k nearest centroids is at least dk[-1] - rmax away: points
        # where that could still beat the best get a complete ball query (vectorised)
        unsure = np.nonzero((dk[:, -1] - self._rmax < best) & (best < self.exact_band))[0]
        if unsure.size and exact:
            lists = self._tree.query_ball_point(p[unsure], best[unsure] + self._rmax)
            lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            if lens.sum() > 0:
                cand = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lens.sum()))
                owner = np.repeat(unsure, lens)
                # a triangle is at least |p - centroid| - its circumradius away: keep only those
                # that could beat the best found so far
                lb = np.linalg.norm(p[owner] - self._cen[cand], axis=1) - self._rtri[cand]
                keep = lb < best[owner]
                cand, owner = cand[keep], owner[keep]
            if lens.sum() > 0 and cand.size:
                q, bary = _closest_on_triangles(p[owner], self._a[cand], self._b[cand], self._c[cand])
                dd = np.linalg.norm(p[owner] - q, axis=1)
                order = np.lexsort((dd, owner))
                firsts = order[np.concatenate([[0], np.nonzero(np.diff(owner[order]))[0] + 1])]
                i = owner[firsts]
                better = dd[firsts] < best[i]
                i, f = i[better], firsts[better]
                best[i], best_pt[i], best_bary[i], best_f[i] = dd[f], q[f], bary[f], cand[f]
        nrm = np.einsum("ij,ijk->ik", best_bary, self._vn[self._faces[best_f]])
        sign = np.where(np.einsum("ij,ij->i", p - best_pt, nrm) < 0.0, -1.0, 1.0)
        return sign * best, best_pt


class BoneModel:
    """Bone from surface meshes in the image frame (files in mm, metres inside).

    ``bones`` maps a level name to a watertight ``trimesh.Trimesh`` in metres; ``canals``
    optionally maps a level to a closed canal mesh (else ``canal_sdf`` is +inf everywhere).
    ``pedicle_axes`` optionally gives ground truth (``PedicleAxis``) keyed by (level, side);
    without it ``pedicle_axis`` returns None and planning needs starting trajectories.
    """

    def __init__(
        self,
        bones: dict[str, trimesh.Trimesh],
        canals: dict[str, trimesh.Trimesh] | None = None,
        cortical_thickness: float = 1.0 * MM,
        level_frames: dict[str, np.ndarray] | None = None,
        pedicle_axes: dict[tuple[str, str], PedicleAxis] | None = None,
    ) -> None:
        if not bones:
            raise AnatomyError("bones: at least one mesh is needed")
        self._bones = {k.upper(): v for k, v in bones.items()}
        self._bone_sdf = {k: MeshSDF(v) for k, v in self._bones.items()}
        self._canals = {k.upper(): v for k, v in (canals or {}).items()}
        self._canal_sdf = {k: MeshSDF(v) for k, v in self._canals.items()}
        if not (cortical_thickness > 0 and math.isfinite(cortical_thickness)):
            raise ValueError("cortical_thickness: must be a positive length")
        self.cortical_thickness = float(cortical_thickness)
        self._frames = {k.upper(): transform(f"level_frames[{k}]", v) for k, v in (level_frames or {}).items()}
        self._axes = {(lv.upper(), s): a for (lv, s), a in (pedicle_axes or {}).items()}

    @classmethod
    def from_files(
        cls,
        paths: dict[str, str | Path] | Iterable[str | Path],
        units: str = "mm",
        canals: dict[str, str | Path] | None = None,
        **kwargs: object,
    ) -> BoneModel:
        """Load STL/OBJ/PLY meshes; ``paths`` maps level -> file (or a list: levels named by stem).

        ``units`` is the length unit in the files ('mm' or 'm'). Unreadable or non-mesh files raise
        ``AnatomyError``.
        """
        scale = {"mm": MM, "m": 1.0}.get(units)
        if scale is None:
            raise ValueError(f"units: expected 'mm' or 'm', got {units!r}")
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not isinstance(paths, dict):
            paths = {Path(p).stem: p for p in paths}
        bones = {lv: load_mesh(p, scale) for lv, p in paths.items()}
        cmeshes = {lv: load_mesh(p, scale) for lv, p in (canals or {}).items()}
        return cls(bones, cmeshes, **kwargs)  # type: ignore[arg-type]

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self._bones)

    def level_frame(self, level: str) -> np.ndarray:
        """Frame given for ``level`` (identity if none was given)."""
        lv = level.upper()
        if lv not in self._bones:
            raise AnatomyError(f"unknown level {level!r}; model has {self.levels}")
        return self._frames.get(lv, np.eye(4)).copy()

    def pedicle_axis(self, level: str, side: str) -> PedicleAxis | None:
        """Ground truth if it was given, else None."""
        self.level_frame(level)
        return self._axes.get((level.upper(), side))

    def bounds(self) -> np.ndarray:
        b = np.stack([m.bounds for m in self._bones.values()])
        return np.stack([b[:, 0].min(axis=0), b[:, 1].max(axis=0)])

    def _min_sdf(self, fns: dict[str, MeshSDF], p: np.ndarray) -> np.ndarray:
        out = np.full(len(p), np.inf)
        for fn in fns.values():
            out = np.minimum(out, fn(p))
        return out

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) to the nearest bone mesh; < 0 inside."""
        p, lead = _points(points)
        return self._min_sdf(self._bone_sdf, p).reshape(lead)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """True where image-frame points (..., 3) are inside bone (fast: no distance certification)."""
        p, lead = _points(points)
        out = np.zeros(len(p), dtype=bool)
        for fn in self._bone_sdf.values():
            out |= fn(p, exact=False) < 0.0
        return out.reshape(lead)

    def closest_surface_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance (...), nearest bone-surface point (..., 3)) of image-frame points."""
        p, lead = _points(points)
        best = np.full(len(p), np.inf)
        near = np.zeros_like(p)
        for fn in self._bone_sdf.values():
            d, q = fn.closest(p)
            m = d < best
            best[m], near[m] = d[m], q[m]
        return best.reshape(lead), near.reshape(lead + (3,))

    def canal_sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (m) to the canal meshes (+inf without canal meshes)."""
        p, lead = _points(points)
        return self._min_sdf(self._canal_sdf, p).reshape(lead)

    def region(self, points: np.ndarray) -> np.ndarray:
        """``Region`` codes (cortical = within ``cortical_thickness`` inside the surface)."""
        p, lead = _points(points)
        return region_from_sdf(
            self._min_sdf(self._bone_sdf, p), self._min_sdf(self._canal_sdf, p), self.cortical_thickness
        ).reshape(lead)

    def mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh:
        """The bone meshes concatenated (``spacing`` is ignored: the meshes are the model)."""
        return trimesh.util.concatenate(list(self._bones.values()))

    def meshes(self, spacing: float = 1e-3) -> dict[str, trimesh.Trimesh]:
        return dict(self._bones)


def load_mesh(path: str | Path, scale: float = MM) -> trimesh.Trimesh:
    """Load one mesh file and scale it to metres (``scale`` = metres per file unit)."""
    try:
        m = trimesh.load(str(path), force="mesh")
    except Exception as exc:  # trimesh raises many types for bad files
        raise AnatomyError(f"{path}: cannot read mesh ({exc})") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise AnatomyError(f"{path}: no triangles")
    if not np.isfinite(m.vertices).all():
        raise AnatomyError(f"{path}: non-finite vertices")
    m = m.copy()
    m.apply_scale(scale)
    return m


def save_mesh(mesh: trimesh.Trimesh, path: str | Path, scale: float = 1.0 / MM) -> None:
    """Write ``mesh`` (m) to STL/OBJ/PLY scaled by ``scale`` (default: to mm)."""
    m = mesh.copy()
    m.apply_scale(scale)
    m.export(str(path))


def surface_samples(
    anatomy: Anatomy, n: int, seed: int = 0, spacing: float = 1e-3, mask_fn=None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on the bone surface with outward unit normals (image frame, m).

    Sampled uniformly by area from ``anatomy.mesh(spacing)`` and projected onto the zero level
    set along the SDF gradient (so phantom samples lie on the exact surface to ~1e-7 m).
    ``mask_fn(points) -> bool array`` keeps only some of the surface (e.g. the posterior side a
    surgeon can reach); samples are drawn until ``n`` are kept (``AnatomyError`` if impossible).
    """
    if n <= 0:
        raise ValueError("n: must be positive")
    rng = np.random.default_rng(seed)
    mesh = anatomy.mesh(spacing)
    kept: list[np.ndarray] = []
    total = 0
    for _ in range(50):
        pts, _ = trimesh.sample.sample_surface(mesh, 4 * n, seed=int(rng.integers(2**31)))
        pts = np.asarray(pts, dtype=float)
        if mask_fn is not None:
            pts = pts[np.asarray(mask_fn(pts), dtype=bool)]
        kept.append(pts)
        total += len(pts)
        if total >= n:
            break
    if total < n:
        raise AnatomyError("surface_samples: the mask keeps too little of the surface")
    pts = np.concatenate(kept)[:n]
    for _ in range(3):
        g = sdf_gradient(anatomy, pts)
        pts = pts - anatomy.sdf(pts)[:, None] * g
    return pts, sdf_gradient(anatomy, pts)


def sdf_gradient(anatomy: Anatomy, points: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Unit SDF gradient (outward normal direction) by central differences, (..., 3).

    One ``sdf`` call on the 6N offset points. Where the gradient vanishes (a medial point of
    the shape) the result is zero.
    """
    p, lead = _points(points)
    off = np.concatenate([np.eye(3) * h, -np.eye(3) * h])  # (6, 3)
    d = anatomy.sdf((p[:, None, :] + off[None]).reshape(-1, 3)).reshape(len(p), 6)
    g = d[:, :3] - d[:, 3:]
    n = np.linalg.norm(g, axis=1, keepdims=True)
    g = np.where(n > 1e-300, g / np.where(n > 1e-300, n, 1.0), 0.0)
    return g.reshape(lead + (3,))


__all__ = [
    "MM",
    "SIDES",
    "Region",
    "AnatomyError",
    "Anatomy",
    "VertebraParams",
    "PedicleAxis",
    "Vertebra",
    "SpineSegment",
    "BoneModel",
    "MeshSDF",
    "ellipse_sdf",
    "box_sdf",
    "ray_exit",
    "region_from_sdf",
    "marching_cubes_mesh",
    "ray_exits",
    "load_mesh",
    "save_mesh",
    "surface_samples",
    "sdf_gradient",
]
