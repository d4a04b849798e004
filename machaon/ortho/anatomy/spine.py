"""A spine segment: several phantom vertebrae along a sagittal curve, with scoliotic axial rotation.

Image frame, metres; its description (``to_dict``) in millimetres and degrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import trimesh

from machaon._validate import transform
from machaon.ortho.anatomy.base import MM, AnatomyError, PedicleAxis, _points, region_from_sdf
from machaon.ortho.anatomy.primitives import _rot_x
from machaon.ortho.anatomy.vertebra import Vertebra, VertebraParams


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
        heights = [2 * params[lv].body_half_height for lv in levels]
        placements = _arc_placements(heights, self.disc_height, self.curvature_deg, rot)
        self.vertebrae: dict[str, Vertebra] = {
            lv: Vertebra(params[lv], lv, T_seg @ T) for lv, T in zip(levels, placements, strict=True)
        }
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
        """Ground-truth pedicle axis of ``level``/``side`` in the image frame (entry on the segment's bone)."""
        return self.vertebra(level).pedicle_axis_in(self, side)

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


def _arc_placements(
    heights: list[float], disc_height: float, curvature_deg: float, rot_deg: np.ndarray
) -> list[np.ndarray]:
    """``T_segment_vertebra`` of each level: centres on a sagittal arc, cranial first (largest z).

    ``heights`` are the bodies' heights (m), ``curvature_deg`` the total endplate angle over the
    arc, ``rot_deg`` each level's axial rotation about its own z.
    """
    s = [0.0]
    for i in range(1, len(heights)):
        s.append(s[-1] - (heights[i - 1] + heights[i]) / 2 - disc_height)
    s = np.array(s)
    s -= 0.5 * (s[0] + s[-1])
    total = s[0] - s[-1]
    kappa = math.radians(curvature_deg) / total if total > 0 else 0.0
    out = []
    for si, rz in zip(s, rot_deg, strict=True):
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
        out.append(T)
    return out


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
