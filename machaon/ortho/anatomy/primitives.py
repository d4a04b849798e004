"""Exact distance primitives of the phantom (points in the primitive's own frame), and the CSG program.

Elliptic cylinders (distance to the ellipse by an iterative closest-point solve, ~1e-10 m) and
boxes, combined by hard min/max. ``_program`` packs placed primitives for the compiled kernel
(``machaon.ortho._anatomy_sdf``); ``_Prim.sdf`` is the NumPy reference of the same mathematics.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

try:  # the compiled CSG kernel; the NumPy reference below computes the same values, slower
    from machaon.ortho._anatomy_sdf import csg_sdf as _csg_sdf
except ImportError:  # pragma: no cover - only when the extension was not built
    _csg_sdf = None
    log.warning("machaon.ortho._anatomy_sdf is not built; using the slower NumPy SDF")


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
