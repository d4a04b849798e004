"""Pedicle screws planned on real bone surfaces, with no rough trajectory given.

For every vertebra (a closed surface, see ``mesh_repair``; its anatomy from ``mesh_anatomy``) and
each side, the planner chooses the screw as a surgeon would:

- **direction**: through the pedicle's isthmus, converging medially: medial angles 0-40 deg and
  cranial angles -20..20 deg in the vertebra frame are searched (2.5 deg grid, then a pattern
  search down to 0.5 deg with the through-point moved by up to 1.5 mm) for the line that stays
  deepest inside bone and away from the canal over the screw's length (the smallest of the bone
  depth and the canal distance along the axis, the entry hole counted as ``check_plan`` counts
  it), whose tip stays on its own side of the midsagittal plane, 2 mm clear of it (the two
  screws of a level converge without meeting); the search runs on the vertebra's voxel distance
  field, the exact surface checks the result;
- **entry**: where that line leaves the bone posteriorly;
- **diameter**: the largest standard diameter (``STANDARD_DIAMETERS``) not above 80 % of the
  isthmus' inscribed diameter whose checked clearance to the cortex is at least ``min_wall``
  (0.5 mm: the threads bite into the cortex from inside without breaching it);
- **length**: ``length_fraction`` (80 %) of the bone chord along the line (entry to anterior
  cortex), rounded down to 5 mm, so the tip stops short of the anterior cortex.

Each screw is then checked on the real surface (``check_all``: the exact clearance of the screw's
cylinder to the cortex and to the canal, breach and where, angles, collisions) and reported with
its clearances and the distance left from the tip to the anterior cortex. Everything is metres and
radians in the image (CT, LPS) frame; the plan file is the usual ``machaon.ortho.plan`` JSON in
millimetres, each screw carrying its report, ``meta.levels`` the anatomy found.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.ortho.anatomy import AnatomyError, BoneModel, ray_exits
from machaon.ortho.labelmap import meshes_from_labelmap
from machaon.ortho.mesh_anatomy import SIDES, MeshAnatomyError, VertebraAnatomy, analyse_vertebra
from machaon.ortho.mesh_repair import MeshRepair, load_bone_mesh, mesh_summary
from machaon.ortho.planning import STANDARD_DIAMETERS, Plan, PlanCheck, PlanError, ScrewPlan, check_all, check_plan

log = logging.getLogger(__name__)

MM = 1e-3
_SIGN = {"left": 1.0, "right": -1.0}
LENGTH_STEP = 5 * MM
MIN_LENGTH = 20 * MM


@dataclass(frozen=True)
class ScrewReport:
    """One planned screw on the real surface (m, rad): clearances, tip margin, angles, verdict."""

    name: str
    level: str
    side: str
    diameter: float
    length: float
    cortex_clearance: float
    canal_clearance: float
    tip_to_anterior_cortex: float
    medial_angle: float
    cranial_angle: float
    isthmus_diameter: float
    breach: str | None
    ok: bool
    messages: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready (mm, deg)."""
        return {
            "cortex_clearance_mm": round(self.cortex_clearance / MM, 3),
            "canal_clearance_mm": round(self.canal_clearance / MM, 3) if math.isfinite(self.canal_clearance) else None,
            "tip_to_anterior_cortex_mm": round(self.tip_to_anterior_cortex / MM, 2),
            "medial_angle_deg": round(math.degrees(self.medial_angle), 2),
            "cranial_angle_deg": round(math.degrees(self.cranial_angle), 2),
            "isthmus_diameter_mm": round(self.isthmus_diameter / MM, 2),
            "breach": self.breach,
            "ok": self.ok,
            "messages": list(self.messages),
        }


@dataclass(frozen=True)
class MeshPlan:
    """A plan made on surfaces: the plan, the bone model it was checked on, anatomy and reports."""

    plan: Plan
    bone: BoneModel
    anatomy: dict[str, VertebraAnatomy]
    reports: tuple[ScrewReport, ...]
    repairs: dict[str, MeshRepair]

    def report(self, name: str) -> ScrewReport:
        return next(r for r in self.reports if r.name == name)

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def to_dict(self) -> dict:
        d = self.plan.to_dict()
        for s in d["screws"]:
            s.update(self.report(s["name"]).to_dict())
        d["meta"] = {
            **d["meta"],
            "levels": {lv: {**a.to_dict(), "mesh": mesh_summary(self.repairs[lv].mesh),
                            "repairs": list(self.repairs[lv].notes)} for lv, a in self.anatomy.items()},
        }
        return d

    def save(self, path: str | Path) -> None:
        """Write the plan JSON atomically (a temporary file renamed over ``path``)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}-", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=2, allow_nan=False)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _directions(R: np.ndarray, sign: float, medial: np.ndarray, cranial: np.ndarray) -> np.ndarray:
    """Unit image-frame directions (anterior) for medial/cranial angle pairs (rad) in the vertebra frame."""
    m, c = np.meshgrid(medial, cranial, indexing="ij")
    m, c = m.ravel(), c.ravel()
    d_v = np.stack([-sign * np.sin(m) * np.cos(c), -np.cos(m) * np.cos(c), np.sin(c)], axis=1)
    return d_v @ R.T


class _SearchModel:
    """What the direction search asks of the bone: the voxel SDF of one vertebra and its canal as
    the analytic elliptic cylinder (both approximate to a fraction of a millimetre, fast)."""

    def __init__(self, anat: VertebraAnatomy) -> None:
        if anat.voxel_sdf is None:
            raise PlanError(f"{anat.level}: anatomy without its voxel distance field")
        self.anat = anat
        self._sdf = anat.voxel_sdf
        c = anat.to_vertebra(anat.canal_centre)
        self._c = c
        self._ab = np.array([0.5 * anat.canal_width, 0.5 * anat.canal_depth])

    def sdf(self, points: np.ndarray) -> np.ndarray:
        return self._sdf.sdf(points)

    def canal_sdf(self, points: np.ndarray) -> np.ndarray:
        q = self.anat.to_vertebra(points)
        x = (q[..., 0] - self._c[0]) / self._ab[0]
        y = (q[..., 1] - self._c[1]) / self._ab[1]
        return (np.sqrt(x * x + y * y) - 1.0) * self._ab.min()

    def closest_surface_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = 0.25 * MM
        d = self.sdf(points)
        g = np.stack([(self.sdf(points + e) - self.sdf(points - e)) / (2 * h) for e in np.eye(3) * h], axis=-1)
        g /= np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
        return d, points - d[..., None] * g


def _score_lines(
    bone: _SearchModel | BoneModel, anat: VertebraAnatomy, sign: float, through: np.ndarray, dirs: np.ndarray,
    length_fraction: float, exclusion: float, step: float = 0.5 * MM, tip_clear: float = 5.75 * MM,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, entry points, chords) of lines through ``through`` (m). Score: the smallest of bone
    depth and canal distance along the screw path, the entry hole left out (m); -inf if invalid.

    A sample counts unless its nearest bone surface lies within ``exclusion`` of the entry (that
    surface is the screw's own hole through the dorsal cortex), as ``check_plan`` counts them.
    """
    k = len(dirs)
    score = np.full(k, -np.inf)
    entries = np.zeros((k, 3))
    chords = np.zeros(k)
    if bone.sdf(through[None])[0] >= 0:
        return score, entries, chords
    try:
        back = ray_exits(bone, through, -dirs, max_dist=0.1)
        front = ray_exits(bone, through, dirs, max_dist=0.1)
    except AnatomyError:
        return score, entries, chords
    chord = np.einsum("ij,ij->i", front - back, dirs)
    lengths = length_fraction * chord  # the planned screw is this rounded down: never longer
    n = int(math.ceil(max(float(lengths.max()), step) / step))
    s = np.arange(1, n + 1) * step
    valid = s[None, :] <= lengths[:, None]
    pts = (back[:, None, :] + s[None, :, None] * dirs[:, None, :])[valid]
    owner = np.nonzero(valid)[0]
    sd = bone.sdf(pts)
    cd = bone.canal_sdf(pts)
    depth = np.minimum(-sd, cd)
    maybe = np.broadcast_to(s, valid.shape)[valid] < np.abs(sd) + exclusion
    if maybe.any():
        _, near = bone.closest_surface_points(pts[maybe])
        hole = np.linalg.norm(near - back[owner[maybe]], axis=1) < exclusion
        idx = np.flatnonzero(maybe)[hole]
        depth[idx] = np.minimum(np.inf, cd[idx])
    best = np.full(k, np.inf)
    np.minimum.at(best, owner, depth)
    R = anat.T_image_vertebra[:3, :3]
    tip = back + lengths[:, None] * dirs
    tip_u = (tip - anat.T_image_vertebra[:3, 3]) @ R[:, 0]
    # the whole tip stays on its own side, 2 mm clear of the midsagittal plane: the two screws of
    # a level converge without meeting
    ok = np.isfinite(best) & (chord > 0) & (lengths >= MIN_LENGTH) & (sign * tip_u > tip_clear)
    score = np.where(ok, best, -np.inf)
    return score, back, chord


def plan_screw(
    bone: BoneModel, anat: VertebraAnatomy, side: str, *, length_fraction: float = 0.8,
    min_wall: float = 0.5 * MM, name: str | None = None,
) -> tuple[ScrewPlan, float, float]:
    """(screw, bone chord along it, smallest axis depth) for one pedicle (see module doc).

    For each standard diameter within 80 % of the isthmus, largest first: a coarse search (2.5 deg
    grid of medial and cranial angles through the isthmus, on the voxel distance field, the entry
    hole counted as ``check_plan`` counts it for that diameter) refined by a pattern search over
    the two angles and a shift of the through-point (steps 2, 1, 0.5 deg and mm); the first
    diameter whose exact check keeps ``min_wall`` of bone wins. Raises ``PlanError`` when no line
    through the pedicle stays in bone.
    """
    ped = anat.pedicles[side]
    sign = _SIGN[side]
    R = anat.T_image_vertebra[:3, :3]
    name = name or f"{anat.level}-{side[0].upper()}"
    search = _SearchModel(anat)
    med = np.radians(np.arange(0.0, 40.1, 2.5))
    cra = np.radians(np.arange(-20.0, 20.1, 2.5))
    grid_dirs = np.vstack([_directions(R, sign, med, cra), ped.axis[None]])
    sizes = sorted((v for v in STANDARD_DIAMETERS if v <= 0.8 * 2 * ped.inscribed_radius + 1e-9), reverse=True)
    sizes = sizes or [STANDARD_DIAMETERS[0]]
    fallback = None
    for dia in sizes:
        exclusion = 0.5 * dia + 1.0 * MM  # the entry hole as check_plan leaves it out
        sc, _, _ = _score_lines(search, anat, sign, ped.isthmus, grid_dirs, length_fraction, exclusion)
        if not np.isfinite(sc).any():
            continue
        i = int(np.argmax(sc))
        if sc[i] - 0.5 * dia < min_wall - 0.5 * MM and dia != sizes[-1]:
            continue  # hopeless for this diameter even allowing for the search's approximation
        x = _refine(search, anat, sign, ped.isthmus, grid_dirs[i], sc[i], length_fraction, exclusion)
        d = _directions(R, sign, np.radians([x[0]]), np.radians([x[1]]))[0]
        through = ped.isthmus + x[2] * MM * R[:, 0] + x[3] * MM * R[:, 2]
        try:
            back, front = ray_exits(bone, through, np.stack([-d, d]), max_dist=0.1)
        except AnatomyError:
            continue
        chord = float(np.dot(front - back, d))
        length = max(MIN_LENGTH, math.floor(length_fraction * chord / LENGTH_STEP + 1e-9) * LENGTH_STEP)
        screw = ScrewPlan(name, anat.level, side, back, back + length * d, float(dia))
        c = check_plan(bone, screw)
        result = (screw, chord, c.min_clearance + 0.5 * dia)
        if not c.breach and c.min_clearance >= min_wall:
            return result
        if fallback is None or (not c.breach and fallback[1]):
            fallback = (result, c.breach)
    if fallback is None:
        raise PlanError(f"{name}: no line through the {side} pedicle of {anat.level} stays inside bone")
    return fallback[0]


def _refine(
    search: _SearchModel, anat: VertebraAnatomy, sign: float, isthmus: np.ndarray, d0: np.ndarray,
    score0: float, length_fraction: float, exclusion: float,
) -> np.ndarray:
    """Pattern search from direction ``d0`` through the isthmus: returns [medial deg, cranial deg,
    shift x mm, shift z mm] (vertebra frame) of the best line found."""
    R = anat.T_image_vertebra[:3, :3]
    d_v = R.T @ d0
    x = np.array([math.degrees(math.atan2(-sign * d_v[0], -d_v[1])),
                  math.degrees(math.atan2(d_v[2], math.hypot(d_v[0], d_v[1]))), 0.0, 0.0])
    best = (score0, x)
    for h in (2.0, 1.0, 0.5):
        for _ in range(6):
            cand = best[1] + np.array([[h, 0, 0, 0], [-h, 0, 0, 0], [0, h, 0, 0], [0, -h, 0, 0],
                                       [0, 0, h, 0], [0, 0, -h, 0], [0, 0, 0, h], [0, 0, 0, -h]])
            cand = cand[(np.abs(cand[:, 2]) <= 1.5) & (np.abs(cand[:, 3]) <= 1.5)]
            scores = np.full(len(cand), -np.inf)
            for shift in {(float(a), float(b)) for a, b in cand[:, 2:]}:
                rows = np.flatnonzero((cand[:, 2] == shift[0]) & (cand[:, 3] == shift[1]))
                p = isthmus + shift[0] * MM * R[:, 0] + shift[1] * MM * R[:, 2]
                dd = np.vstack([_directions(R, sign, np.radians([cand[r, 0]]), np.radians([cand[r, 1]]))
                                for r in rows])
                scores[rows] = _score_lines(search, anat, sign, p, dd, length_fraction, exclusion)[0]
            j = int(np.argmax(scores))
            if not scores[j] > best[0] + 1e-6:
                break
            best = (scores[j], cand[j])
    return best[1]


def _report(screw: ScrewPlan, check: PlanCheck, chord: float, anat: VertebraAnatomy, depth: float,
            min_wall: float) -> ScrewReport:
    msgs = list(check.messages)
    tip_margin = chord - screw.length
    ok = check.ok
    if tip_margin < 2 * MM:
        msgs.append(f"tip {tip_margin / MM:.1f} mm from the anterior cortex")
        ok = False
    if screw.diameter == STANDARD_DIAMETERS[0] and 2 * (depth - min_wall) < screw.diameter:
        msgs.append(f"pedicle too narrow for a {screw.diameter / MM:.1f} mm screw with {min_wall / MM:.1f} mm of wall")
    if not check.breach and check.min_clearance < 0.5 * min_wall:
        msgs.append(f"only {check.min_clearance / MM:.2f} mm of bone around the screw")
    return ScrewReport(
        screw.name, screw.level, screw.side, screw.diameter, screw.length, check.min_clearance,
        check.canal_clearance, tip_margin, check.medial_angle, check.cranial_angle,
        2 * anat.pedicles[screw.side].inscribed_radius, check.breach_location, ok, tuple(msgs))


def plan_on_surfaces(
    repairs: dict[str, MeshRepair], *, length_fraction: float = 0.8, min_wall: float = 0.5 * MM,
    sides: Sequence[str] = SIDES, source: dict | None = None,
) -> MeshPlan:
    """Analyse every vertebra surface and plan its pedicle screws (see the module docstring).

    ``repairs`` maps level names to repaired closed surfaces (metres, LPS image frame). Raises
    ``MeshAnatomyError`` / ``PlanError`` naming the level that cannot be planned.
    """
    if not 0.3 <= length_fraction <= 0.95:
        raise PlanError(f"length_fraction: must be within 0.3..0.95, got {length_fraction}")
    anatomy = {lv: analyse_vertebra(r.mesh, lv) for lv, r in repairs.items()}
    try:
        bone = BoneModel({lv: r.mesh for lv, r in repairs.items()},
                         canals={lv: a.canal_mesh() for lv, a in anatomy.items()},
                         level_frames={lv: a.T_image_vertebra for lv, a in anatomy.items()})
    except AnatomyError as exc:
        raise PlanError(str(exc)) from None
    screws, extra = [], {}
    for lv, a in anatomy.items():
        # the search sees this vertebra only (its neighbours are far from its pedicles); the
        # final check below sees them all
        own = BoneModel({lv: repairs[lv].mesh}, canals={lv: a.canal_mesh()}, level_frames={lv: a.T_image_vertebra})
        for side in sides:
            s, chord, depth = plan_screw(own, a, side, length_fraction=length_fraction, min_wall=min_wall)
            screws.append(s)
            extra[s.name] = (chord, depth)
    plan = Plan(tuple(screws), None, {"planner": "mesh", "length_fraction": length_fraction,
                                      "source": source or {}})
    checks = check_all(bone, plan)
    reports = tuple(_report(s, c, extra[s.name][0], anatomy[s.level], extra[s.name][1], min_wall)
                    for s, c in zip(plan.screws, checks, strict=True))
    return MeshPlan(plan, bone, anatomy, reports, dict(repairs))


def plan_mesh_files(paths: Sequence[str | Path], units: str = "mm", **kw: object) -> MeshPlan:
    """Plan on STL/OBJ/PLY files, one vertebra each, level = file stem (upper case)."""
    repairs: dict[str, MeshRepair] = {}
    for p in paths:
        rep = load_bone_mesh(p, units)
        level = Path(p).stem.upper()
        if level in repairs:
            raise PlanError(f"two meshes for level {level}")
        repairs[level] = MeshRepair(level, rep.mesh, rep.faces_in, rep.notes)
    return plan_on_surfaces(repairs, source={"meshes": [str(p) for p in paths], "units": units}, **kw)


def plan_labelmap(path: str | Path, labels: dict[str, int], **kw: object) -> MeshPlan:
    """Plan on the surfaces of a label map's labels (``labelmap.meshes_from_labelmap``)."""
    repairs = meshes_from_labelmap(path, labels)
    return plan_on_surfaces(repairs, source={"labelmap": str(path), "labels": dict(labels)}, **kw)


__all__ = [
    "MeshAnatomyError",
    "MeshPlan",
    "ScrewReport",
    "plan_labelmap",
    "plan_mesh_files",
    "plan_on_surfaces",
    "plan_screw",
]
