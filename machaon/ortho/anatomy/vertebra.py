"""The parametric vertebra phantom: ``VertebraParams`` (published morphometry presets) and ``Vertebra``.

Vertebra frame: origin at the centre of the vertebral body, x to the patient's left, y posterior,
z superior (DICOM LPS); ``T_image_vertebra`` places a vertebra in the image frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import trimesh

from machaon._validate import transform
from machaon.ortho.anatomy.base import MM, SIDES, Anatomy, AnatomyError, PedicleAxis, _points, region_from_sdf
from machaon.ortho.anatomy.mesh import marching_cubes_mesh
from machaon.ortho.anatomy.primitives import _csg_sdf, _Prim, _program, _rot_x, _run
from machaon.ortho.anatomy.queries import ray_exit


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
        self._local_lo, self._local_hi = self._local_box(sp_c + R_sp @ np.array([0.0, half_len, 0.0]), y_post)

    def _local_box(self, tip: np.ndarray, y_post: float) -> tuple[np.ndarray, np.ndarray]:
        """Conservative box (lo, hi) around the bone in the vertebra frame; ``tip`` of the spinous process."""
        P = self.params
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
        return np.array([-x_max, -P.body_semi_depth, -z_max - P.spinous_half_height]), np.array([x_max, y_max, z_max])

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
        return self.pedicle_axis_in(self, side)

    def pedicle_axis_in(self, anatomy: Anatomy, side: str) -> PedicleAxis:
        """This level's pedicle axis of ``side``, its entry and chord measured on ``anatomy`` (image frame).

        ``anatomy`` is this vertebra, or a model holding it (a ``SpineSegment``): the axis leaves
        the bone where that model's bone ends.
        """
        if side not in SIDES:
            raise AnatomyError(f"side: expected 'left' or 'right', got {side!r}")
        isth, d, _l_ant, _l_post = self._ped[side]
        isth_i = self.to_image(isth[None])[0]
        d_i = self._R @ d
        entry = ray_exit(anatomy, isth_i, -d_i)
        exit_ = ray_exit(anatomy, isth_i, d_i)
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
