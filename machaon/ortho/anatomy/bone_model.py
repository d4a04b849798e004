"""``BoneModel``: bone from surface meshes (e.g. CT segmentations) in the image frame.

Files in millimetres by default, metres inside.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import trimesh

from machaon._validate import transform
from machaon.ortho.anatomy.base import MM, AnatomyError, PedicleAxis, _points, region_from_sdf
from machaon.ortho.anatomy.mesh import MeshSDF, load_mesh


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
