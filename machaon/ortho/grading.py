"""Gertzbein-Robbins grade of a placed pedicle screw, measured on the phantom's cortex.

Gertzbein & Robbins (Spine 15(1):11-14, 1990) grade a pedicle screw by how far it breaches the
pedicle's cortex: **A** fully inside the pedicle; **B** breach < 2 mm; **C** < 4 mm; **D**
< 6 mm; **E** >= 6 mm, or the screw outside the pedicle. Clinical studies report the share of
grade A (and A + B, "clinically acceptable").

Here the screw is a cylinder of its diameter from ``entry`` to ``tip`` (image frame, m); its
surface is sampled (``n_around`` points per ring, rings every ``step_m``) and the bone's signed
distance is evaluated there. The **breach** is the largest distance by which the screw surface
lies beyond the outer surface of the cortex, counted only where that surface is a wall of the
pedicle or body, i.e. where the bone's outward normal at the point is across the screw (more
than 45 deg from its axis): the posterior surface the screw enters through and the anterior
cortex at its tip are not wall breaches (an anterior perforation is reported apart, as
``anterior_mm``). The screw is **outside** the pedicle when at some depth its whole cross-section
lies out of the bone beside a wall (then grade E, whatever the breach distance).

The breach **direction** is that of the worst breach point from the screw axis, in the level's
vertebra frame: medial or lateral (towards or away from the midline, by the screw's side) when
the transverse component dominates, superior or inferior otherwise.

Bad input (non-finite points, entry == tip, diameter <= 0, unknown side) raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array
from machaon.ortho.anatomy import SIDES, Anatomy, sdf_gradient

GRADES = ("A", "B", "C", "D", "E")
# upper breach bound (mm, exclusive) of grades B, C, D; E is >= the last
BOUNDS_MM = (2.0, 4.0, 6.0)
_WALL_COS = math.cos(math.radians(45.0))


@dataclass(frozen=True)
class ScrewGrade:
    """Outcome of grading one screw. Distances in mm (a file-for-people quantity), grade A-E."""

    grade: str
    breach_mm: float
    direction: str | None
    outside: bool
    anterior_mm: float

    def to_dict(self) -> dict:
        return {"grade": self.grade, "breach_mm": self.breach_mm, "breach_direction": self.direction,
                "outside_pedicle": self.outside, "anterior_breach_mm": self.anterior_mm}


def grade_for_breach(breach_mm: float, outside: bool = False) -> str:
    """The Gertzbein-Robbins grade of a breach distance (mm; <= 0 means no breach)."""
    if not math.isfinite(breach_mm):
        raise ValueError(f"breach_mm: not finite ({breach_mm})")
    if outside:
        return "E"
    if breach_mm <= 0.0:
        return "A"
    for g, bound in zip(GRADES[1:4], BOUNDS_MM, strict=True):
        if breach_mm < bound:
            return g
    return "E"


def grade_screw(anatomy: Anatomy, level: str, side: str, entry: np.ndarray, tip: np.ndarray, diameter_m: float, *,
                n_around: int = 48, step_m: float = 0.25e-3) -> ScrewGrade:
    """Grade the screw of ``diameter_m`` from ``entry`` to ``tip`` (image frame, m) on ``anatomy``.

    ``level``/``side`` name the vertebra (its frame gives the directions) and the pedicle side.
    """
    e = finite_array("entry", entry, (3,))
    t = finite_array("tip", tip, (3,))
    if side not in SIDES:
        raise ValueError(f"side: expected one of {SIDES}, got {side!r}")
    if not (math.isfinite(diameter_m) and diameter_m > 0):
        raise ValueError(f"diameter_m: must be > 0, got {diameter_m}")
    length = float(np.linalg.norm(t - e))
    if length < 1e-6:
        raise ValueError("tip: coincides with entry")
    a = (t - e) / length
    T_iv = anatomy.level_frame(level)
    R_iv = T_iv[:3, :3]
    # an orthonormal frame around the axis: u horizontal in the vertebra (across), w the other
    up = R_iv[:, 2]
    u = np.cross(up, a)
    if np.linalg.norm(u) < 1e-9:
        u = np.cross(R_iv[:, 0], a)
    u /= np.linalg.norm(u)
    w = np.cross(a, u)
    r = 0.5 * diameter_m
    s = np.linspace(0.0, length, max(2, int(math.ceil(length / step_m)) + 1))
    th = np.arange(n_around) * (2.0 * math.pi / n_around)
    radial = np.outer(np.cos(th), u) + np.outer(np.sin(th), w)  # (K, 3)
    axis_pts = e + np.outer(s, a)  # (S, 3)
    pts = (axis_pts[:, None, :] + r * radial[None, :, :]).reshape(-1, 3)
    d = anatomy.sdf(pts)
    out = d > 0.0
    breach = 0.0
    anterior = 0.0
    direction = None
    if out.any():
        idx = np.nonzero(out)[0]
        n = sdf_gradient(anatomy, pts[idx])
        along = n @ a
        wall = np.abs(along) < _WALL_COS
        if wall.any():
            k = idx[wall][int(np.argmax(d[idx][wall]))]
            breach = float(d[k])
            direction = _direction(radial[k % n_around], R_iv, side)
        ant = along > _WALL_COS
        if ant.any():
            anterior = float(d[idx][ant].max())
    # a whole ring of the screw out of the bone, beside a wall: the screw runs outside the pedicle
    ring_out = np.nonzero((d.reshape(len(s), n_around) > 0.0).all(axis=1))[0]
    outside = False
    if ring_out.size:
        na = sdf_gradient(anatomy, axis_pts[ring_out])
        outside = bool((np.abs(na @ a) < _WALL_COS).any())
    grade = grade_for_breach(breach * 1e3, outside)
    return ScrewGrade(grade, breach * 1e3, direction, outside, anterior * 1e3)


def _direction(radial_i: np.ndarray, R_iv: np.ndarray, side: str) -> str:
    """medial / lateral / superior / inferior of an image-frame direction from the screw axis."""
    v = R_iv.T @ radial_i  # vertebra frame: x left, y posterior, z superior
    if abs(v[0]) >= abs(v[2]):
        outward = v[0] > 0 if side == "left" else v[0] < 0  # away from the midline
        return "lateral" if outward else "medial"
    return "superior" if v[2] > 0 else "inferior"
