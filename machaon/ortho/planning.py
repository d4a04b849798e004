"""Screw / guide-pin trajectories: plan data, plan checks, automatic proposals, JSON files.

A ``ScrewPlan`` is a straight cylinder from ``entry`` (on the bone surface) to ``target`` (the
tip), with a diameter, in the image frame, metres. ``check_plan`` measures the minimum clearance
between the whole screw and the bone surface (which includes the canal wall, the canal being
outside the bone), reports breaches and where they are, and the screw's angles in the vertebra
frame against limits. ``auto_plan`` proposes one screw per pedicle that maximises that minimum
clearance (SciPy Nelder-Mead over entry offset and direction, started on the anatomical axis),
with a length set to a fraction of the bone chord along the trajectory.

Files (``Plan.save``/``Plan.load``) are JSON in millimetres; everything inside is SI.
Bad input (NaN, wrong shapes, unknown level/side, malformed files) raises ``PlanError`` (a
``ValueError``) naming the field.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from machaon._validate import finite_array
from machaon.errors import OrthoError
from machaon.ortho.anatomy import (
    MM,
    SIDES,
    Anatomy,
    AnatomyError,
    BoneModel,
    PedicleAxis,
    Region,
    SpineSegment,
    Vertebra,
    VertebraParams,
    load_mesh,
    ray_exits,
    sdf_gradient,
    surface_samples,
)

log = logging.getLogger(__name__)

PLAN_FORMAT = "machaon.ortho.plan"
PLAN_VERSION = 1
#: standard pedicle-screw diameters, m
STANDARD_DIAMETERS = tuple(d * MM for d in (3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5))


class PlanError(OrthoError, ValueError):
    """A plan, a screw or a plan file is invalid."""


@dataclass(frozen=True)
class ScrewPlan:
    """One straight screw / guide-pin trajectory, image frame, metres.

    ``entry`` is where the screw enters the bone, ``target`` where its tip ends; ``diameter`` is
    the screw's outer diameter. ``length`` and ``direction`` (unit, entry -> target) are derived.
    """

    name: str
    level: str
    side: str
    entry: np.ndarray
    target: np.ndarray
    diameter: float

    def __post_init__(self) -> None:
        entry = _vec(f"{self.name}.entry", self.entry)
        target = _vec(f"{self.name}.target", self.target)
        object.__setattr__(self, "entry", entry)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "level", str(self.level).upper())
        if self.side not in SIDES:
            raise PlanError(f"{self.name}.side: expected 'left' or 'right', got {self.side!r}")
        if not (isinstance(self.diameter, (int, float)) and math.isfinite(self.diameter) and self.diameter > 0):
            raise PlanError(f"{self.name}.diameter: must be a positive length in m, got {self.diameter!r}")
        if not 0.5 * MM <= self.diameter <= 20 * MM:
            raise PlanError(f"{self.name}.diameter: {self.diameter} m is outside 0.5..20 mm (units must be m)")
        if np.linalg.norm(target - entry) < 1 * MM:
            raise PlanError(f"{self.name}: entry and target closer than 1 mm")

    @property
    def length(self) -> float:
        """Distance from entry to tip, m."""
        return float(np.linalg.norm(self.target - self.entry))

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from entry to target (image frame)."""
        d = self.target - self.entry
        return d / np.linalg.norm(d)

    @property
    def radius(self) -> float:
        return 0.5 * self.diameter

    def point_at(self, s: float | np.ndarray) -> np.ndarray:
        """Point(s) at distance ``s`` (m) from the entry along the axis."""
        s = np.asarray(s, dtype=float)
        return self.entry + s[..., None] * self.direction

    def with_length(self, length: float) -> ScrewPlan:
        """Same entry and direction, new length (m)."""
        return ScrewPlan(
            self.name, self.level, self.side, self.entry, self.entry + length * self.direction, self.diameter
        )

    def to_dict(self) -> dict:
        """JSON-ready dict in mm."""
        return {
            "name": self.name,
            "level": self.level,
            "side": self.side,
            "entry_mm": (self.entry / MM).tolist(),
            "target_mm": (self.target / MM).tolist(),
            "diameter_mm": self.diameter / MM,
            "length_mm": self.length / MM,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ScrewPlan:
        """Inverse of ``to_dict`` (``length_mm`` is checked against entry/target to 0.01 mm).

        Any malformed field raises ``PlanError`` naming it.
        """
        if not isinstance(d, dict):
            raise PlanError("screw: expected an object")
        for key in ("name", "level", "side"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise PlanError(f"screw: {key!r} must be a non-empty string")
        name = d["name"]

        def number(key: str) -> float:
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise PlanError(f"{name}: {key!r} must be a finite number, got {v!r}")
            return float(v)

        def point(key: str) -> np.ndarray:
            v = d.get(key)
            if (
                not isinstance(v, list)
                or len(v) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            ):
                raise PlanError(f"{name}: {key!r} must be a list of 3 numbers (mm), got {v!r}")
            return np.asarray(v, dtype=float) * MM

        s = cls(name, d["level"], d["side"], point("entry_mm"), point("target_mm"), number("diameter_mm") * MM)
        if "length_mm" in d:
            length = number("length_mm")
            if abs(length - s.length / MM) > 0.01:
                raise PlanError(f"{name}: length_mm {length} disagrees with entry/target ({s.length / MM:.3f})")
        return s


def _vec(name: str, v: object) -> np.ndarray:
    try:
        out = finite_array(name, v, (3,)).copy()
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Plan:
    """A multi-level plan: screws (unique names) plus an optional anatomy description.

    ``anatomy`` is a JSON-ready description (e.g. ``SpineSegment.to_dict()``) so that a plan
    file is enough to rebuild the phantom it was made on; ``meta`` holds free-form notes.
    """

    screws: tuple[ScrewPlan, ...]
    anatomy: dict | None = field(default=None, compare=False)
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "screws", tuple(self.screws))
        names = [s.name for s in self.screws]
        if len(set(names)) != len(names):
            raise PlanError(f"plan: duplicate screw names in {names}")
        for s in self.screws:
            if not isinstance(s, ScrewPlan):
                raise PlanError("plan: screws must be ScrewPlan objects")

    def __len__(self) -> int:
        return len(self.screws)

    def __iter__(self):
        return iter(self.screws)

    def screw(self, name: str) -> ScrewPlan:
        for s in self.screws:
            if s.name == name:
                return s
        raise PlanError(f"plan: no screw named {name!r}")

    @property
    def levels(self) -> tuple[str, ...]:
        out: list[str] = []
        for s in self.screws:
            if s.level not in out:
                out.append(s.level)
        return tuple(out)

    def to_dict(self) -> dict:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "units": "mm",
            "frame": "image",
            "screws": [s.to_dict() for s in self.screws],
            "anatomy": self.anatomy,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        if not isinstance(d, dict) or d.get("format") != PLAN_FORMAT:
            raise PlanError(f"plan: not a {PLAN_FORMAT} document")
        if d.get("version") != PLAN_VERSION:
            raise PlanError(f"plan: unsupported version {d.get('version')!r}")
        if d.get("units") != "mm":
            raise PlanError(f"plan: units must be 'mm', got {d.get('units')!r}")
        screws = d.get("screws")
        if not isinstance(screws, list):
            raise PlanError("plan: 'screws' must be a list")
        anatomy = d.get("anatomy")
        if anatomy is not None and not isinstance(anatomy, dict):
            raise PlanError("plan: 'anatomy' must be an object or null")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise PlanError("plan: 'meta' must be an object")
        return cls(tuple(ScrewPlan.from_dict(s) for s in screws), anatomy, dict(meta))

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON (mm)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan JSON file (``PlanError`` if unreadable or malformed)."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: cannot read plan ({exc})") from None
        return cls.from_dict(d)

    def build_anatomy(self) -> SpineSegment:
        """Rebuild the phantom this plan was made on (``PlanError`` if the plan has none)."""
        if not self.anatomy:
            raise PlanError("plan: no anatomy description stored")
        try:
            return SpineSegment.from_dict(self.anatomy)
        except AnatomyError as exc:
            raise PlanError(str(exc)) from None


# --------------------------------------------------------------------------------------------
# checking
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLimits:
    """Acceptance limits for a trajectory (m, rad).

    ``entry_margin``: the bone surface within (screw radius + entry_margin) of the entry point is
    the screw's own entry hole through the dorsal cortex and is left out of the clearance;
    ``min_clearance`` is the clearance required;
    ``max_axis_deviation`` the largest angle to the ground-truth pedicle axis (when known);
    ``medial_range``/``cranial_range`` the allowed medial (convergence) and cranial angles in the
    vertebra frame.
    """

    entry_margin: float = 1.0 * MM
    min_clearance: float = 0.0
    max_axis_deviation: float = math.radians(15.0)
    medial_range: tuple[float, float] = (math.radians(-5.0), math.radians(45.0))
    cranial_range: tuple[float, float] = (math.radians(-20.0), math.radians(20.0))


@dataclass(frozen=True)
class PlanCheck:
    """Result of ``check_plan`` for one screw (m, rad, image frame).

    ``min_clearance`` is the smallest distance from the screw (a cylinder) to the bone surface,
    leaving out the entry hole (see ``PlanLimits.entry_margin``): negative means the screw leaves
    the bone by that much.
    ``canal_clearance`` is the smallest distance from the screw to the spinal canal (negative:
    it enters the canal). ``breach`` is True when either is negative; ``breach_location`` names it
    ('canal', 'medial', 'lateral', 'superior', 'inferior', 'anterior', 'posterior') and
    ``breach_point`` is the point of the screw's surface that is farthest out of the bone (or
    deepest in the canal). ``regions`` are the Region codes
    along the axis sampled at ``s`` (m from the entry). Angles are in the vertebra frame:
    ``medial_angle`` (positive when the tip points towards the midline) and ``cranial_angle``
    (positive when the tip points up); ``axis_deviation`` is the angle to the ground-truth
    pedicle axis (None when unknown). ``ok`` is the overall verdict against the limits.
    """

    name: str
    min_clearance: float
    canal_clearance: float
    worst_point: np.ndarray
    breach: bool
    breach_location: str | None
    breach_point: np.ndarray | None
    medial_angle: float
    cranial_angle: float
    axis_deviation: float | None
    within_angle_limits: bool
    s: np.ndarray
    regions: np.ndarray
    ok: bool
    messages: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready summary (mm, deg)."""
        return {
            "name": self.name,
            "min_clearance_mm": self.min_clearance / MM,
            # a model without a canal has an infinite canal clearance: JSON null
            "canal_clearance_mm": self.canal_clearance / MM if math.isfinite(self.canal_clearance) else None,
            "breach": self.breach,
            "breach_location": self.breach_location,
            "medial_angle_deg": math.degrees(self.medial_angle),
            "cranial_angle_deg": math.degrees(self.cranial_angle),
            "axis_deviation_deg": None if self.axis_deviation is None else math.degrees(self.axis_deviation),
            "ok": self.ok,
            "messages": list(self.messages),
        }


def _tip_rim(entry: np.ndarray, d: np.ndarray, length: float, radius: float, n: int = 12) -> np.ndarray:
    a = np.cross(d, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 0.1:
        a = np.cross(d, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ring = np.cos(th)[:, None] * a + np.sin(th)[:, None] * b
    return entry + length * d + radius * ring


def _depth_profile(
    anatomy: Anatomy, entry: np.ndarray, d: np.ndarray, length: float, exclusion: float, step: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(axis points, depth = -sdf, counted mask, outward gradient) along a straight path.

    A sample is not counted when its nearest bone-surface point (p - sdf * gradient) lies within
    ``exclusion`` of the entry point: that surface is the path's own entry hole.
    """
    n = max(2, int(math.ceil(length / step)) + 1)
    s = np.linspace(0.0, length, n)[1:]
    pts = entry + s[:, None] * d
    sd = anatomy.sdf(pts)
    # the nearest surface point q satisfies |q - entry| >= s - |sd|, so only samples with
    # s < |sd| + exclusion can be near the entry hole: the gradient is needed only there
    g = np.zeros_like(pts)
    check = s < np.abs(sd) + exclusion
    counted = np.ones(len(s), dtype=bool)
    if check.any():
        if hasattr(anatomy, "closest_surface_points"):  # meshes know their closest points
            _, near = anatomy.closest_surface_points(pts[check])
            diff = pts[check] - near
            nd = np.linalg.norm(diff, axis=1, keepdims=True)
            g[check] = np.sign(sd[check])[:, None] * diff / np.where(nd > 0, nd, 1.0)
        else:
            g[check] = sdf_gradient(anatomy, pts[check])
            near = pts[check] - sd[check, None] * g[check]
        counted[check] = np.linalg.norm(near - entry, axis=1) >= exclusion
    return pts, -sd, counted, g


def screw_clearance(
    anatomy: Anatomy, screw: ScrewPlan, entry_margin: float = 1.0 * MM, step: float = 0.5 * MM
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(bone clearance, canal clearance, worst surface point, deepest canal point) of the screw, m.

    For an axis point p, depth(p) - radius is the exact distance from the screw's cross-section
    ball there to the bone surface (exact SDF), so the minimum over axis samples is the
    clearance of the cylinder's body; the tip disc is covered by its rim. Axis samples whose
    nearest surface is the entry hole (within radius + ``entry_margin`` of the entry) are left
    out. The worst points are on the screw's surface (axis point moved by the radius along the
    distance gradient). Used by ``check_plan`` and inside the optimiser.
    """
    r = screw.radius
    pts, depth, counted, g = _depth_profile(anatomy, screw.entry, screw.direction, screw.length, r + entry_margin, step)
    rim = _tip_rim(screw.entry, screw.direction, screw.length, r)
    rim_depth = -anatomy.sdf(rim)
    body = np.where(counted, depth - r, np.inf)
    k = int(np.argmin(body))
    if body[k] <= rim_depth.min():
        gk = g[k] if np.any(g[k]) else sdf_gradient(anatomy, pts[k][None])[0]
        bone, worst = float(body[k]), pts[k] + r * gk
    else:
        j = int(np.argmin(rim_depth))
        bone, worst = float(rim_depth[j]), rim[j]
    cd = anatomy.canal_sdf(pts)
    kc = int(np.argmin(cd))
    canal = float(min(cd[kc] - r, anatomy.canal_sdf(rim).min()))
    gc = _canal_gradient(anatomy, pts[kc])
    return bone, canal, worst, pts[kc] - r * gc


def _canal_gradient(anatomy: Anatomy, p: np.ndarray, h: float = 1e-5) -> np.ndarray:
    g = np.zeros(3)
    for i in range(3):
        e = np.zeros(3)
        e[i] = h
        pair = anatomy.canal_sdf(np.stack([p + e, p - e]))
        if not np.isfinite(pair).all():  # no canal in this model
            return np.zeros(3)
        g[i] = pair[0] - pair[1]
    n = np.linalg.norm(g)
    return g / n if n > 0 and np.isfinite(n) else np.zeros(3)


def screw_angles(anatomy: Anatomy, screw: ScrewPlan) -> tuple[float, float]:
    """(medial angle, cranial angle) of the screw in its level's vertebra frame, rad.

    Medial angle: angle of the direction's projection on the transverse plane from the
    anterior axis (-y), positive towards the midline; cranial: elevation above that plane.
    """
    T = anatomy.level_frame(screw.level)
    d = T[:3, :3].T @ screw.direction
    lateral = 1.0 if screw.side == "left" else -1.0  # +x is the left side
    medial = math.atan2(-lateral * d[0], -d[1])
    cranial = math.atan2(d[2], math.hypot(d[0], d[1]))
    return medial, cranial


def _classify(anatomy: Anatomy, screw: ScrewPlan, point: np.ndarray) -> str:
    g = sdf_gradient(anatomy, point[None])[0]
    T = anatomy.level_frame(screw.level)
    gl = T[:3, :3].T @ g
    k = int(np.argmax(np.abs(gl)))
    if k == 0:
        lateral = 1.0 if screw.side == "left" else -1.0
        return "lateral" if gl[0] * lateral > 0 else "medial"
    if k == 1:
        return "posterior" if gl[1] > 0 else "anterior"
    return "superior" if gl[2] > 0 else "inferior"


def check_plan(
    anatomy: Anatomy, screw: ScrewPlan, limits: PlanLimits | None = None, step: float = 0.25 * MM
) -> PlanCheck:
    """Check one screw against the anatomy: clearance, breach and where, angles, limits.

    ``anatomy`` must know ``screw.level`` (``PlanError`` otherwise). Never raises for a bad
    trajectory: a screw in the canal or out of the bone comes back as a breach.
    """
    limits = limits or PlanLimits()
    try:
        anatomy.level_frame(screw.level)
    except AnatomyError as exc:
        raise PlanError(f"{screw.name}: {exc}") from None
    bone, canal, worst, canal_point = screw_clearance(anatomy, screw, limits.entry_margin, step)
    s_all = np.arange(0.0, screw.length + step / 2, step)
    regions = anatomy.region(screw.entry + s_all[:, None] * screw.direction)
    medial, cranial = screw_angles(anatomy, screw)
    axis = anatomy.pedicle_axis(screw.level, screw.side)
    dev = None
    if axis is not None:
        dev = float(math.acos(float(np.clip(np.dot(axis.direction, screw.direction), -1.0, 1.0))))
    msgs: list[str] = []
    breach = bone < 0.0 or canal < 0.0
    location = None
    point = None
    if breach:
        if canal < 0.0:
            location = "canal"
            point = canal_point
        else:
            location = _classify(anatomy, screw, worst)
            point = worst
        if location == "canal":
            msgs.append(f"canal breach: the screw enters the spinal canal by {-canal / MM:.2f} mm")
        else:
            msgs.append(f"{location} breach: the screw leaves the bone by {-bone / MM:.2f} mm")
    elif bone < limits.min_clearance:
        msgs.append(f"clearance {bone / MM:.2f} mm below the required {limits.min_clearance / MM:.2f} mm")
    in_angles = (
        limits.medial_range[0] <= medial <= limits.medial_range[1]
        and limits.cranial_range[0] <= cranial <= limits.cranial_range[1]
        and (dev is None or dev <= limits.max_axis_deviation)
    )
    if not in_angles:
        msgs.append(
            f"angles out of limits: medial {math.degrees(medial):.1f} deg, cranial "
            f"{math.degrees(cranial):.1f} deg"
            + ("" if dev is None else f", {math.degrees(dev):.1f} deg from the pedicle axis")
        )
    if regions[-1] in (Region.OUTSIDE, Region.CANAL):
        msgs.append("tip is outside the bone")
    ok = (not breach) and bone >= limits.min_clearance and in_angles
    return PlanCheck(
        screw.name,
        bone,
        canal,
        worst,
        breach,
        location,
        point,
        medial,
        cranial,
        dev,
        in_angles,
        s_all,
        regions,
        ok,
        tuple(msgs),
    )


def check_all(anatomy: Anatomy, plan: Plan, limits: PlanLimits | None = None) -> list[PlanCheck]:
    """``check_plan`` for every screw, plus a message when two screws come closer than their radii."""
    checks = [check_plan(anatomy, s, limits) for s in plan.screws]
    out = []
    for i, (s, c) in enumerate(zip(plan.screws, checks, strict=True)):
        msgs = list(c.messages)
        ok = c.ok
        for j, o in enumerate(plan.screws):
            if j != i and segment_distance(s.entry, s.target, o.entry, o.target) < s.radius + o.radius:
                msgs.append(f"collides with screw {o.name}")
                ok = False
        out.append(PlanCheck(**{**c.__dict__, "messages": tuple(msgs), "ok": ok}))
    return out


def segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Shortest distance between segments p0-p1 and q0-q1 (m); degenerate segments are points."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e, f = float(d1 @ d1), float(d2 @ d2), float(d2 @ r)
    eps = 1e-18
    if a <= eps and e <= eps:
        return float(np.linalg.norm(r))
    if a <= eps:
        s, t = 0.0, float(np.clip(f / e, 0.0, 1.0))
    else:
        c = float(d1 @ r)
        if e <= eps:
            t, s = 0.0, float(np.clip(-c / a, 0.0, 1.0))
        else:
            b = float(d1 @ d2)
            den = a * e - b * b
            s = float(np.clip((b * f - c * e) / den, 0.0, 1.0)) if den > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t, s = 0.0, float(np.clip(-c / a, 0.0, 1.0))
            elif t > 1.0:
                t, s = 1.0, float(np.clip((b - c) / a, 0.0, 1.0))
    return float(np.linalg.norm(p0 + d1 * s - (q0 + d2 * t)))


def trajectory_regions(
    anatomy: Anatomy, entry: np.ndarray, direction: np.ndarray, length: float, step: float = 0.1 * MM
) -> tuple[np.ndarray, np.ndarray]:
    """(s, Region codes) along a straight path from ``entry`` (image frame, m), for drill models."""
    entry = finite_array("entry", entry, (3,))
    direction = finite_array("direction", direction, (3,))
    n = np.linalg.norm(direction)
    if n < 1e-12 or not (length > 0 and math.isfinite(length)):
        raise ValueError("direction must be non-zero and length positive")
    s = np.arange(0.0, length + step / 2, step)
    return s, anatomy.region(entry + s[:, None] * (direction / n))


# --------------------------------------------------------------------------------------------
# automatic planning
# --------------------------------------------------------------------------------------------


def _basis(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.cross(d, [0.0, 0.0, 1.0])
    if np.linalg.norm(a) < 0.1:
        a = np.cross(d, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    return a, np.cross(d, a)


@dataclass(frozen=True)
class _Trajectory:
    entry: np.ndarray
    direction: np.ndarray
    chord: float


def _trajectory(anatomy: Anatomy, through: np.ndarray, d: np.ndarray) -> _Trajectory:
    """Entry (posterior exit of the line through ``through`` along -d) and the bone chord."""
    back, front = ray_exits(anatomy, through, np.stack([-d, d]), max_dist=0.1)
    return _Trajectory(back, d, float(np.dot(front - back, d)))


_TILT_UNIT = 0.01  # rad per optimiser unit, so that shifts (mm) and tilts have similar scales


def optimize_screw(
    anatomy: Anatomy,
    start: ScrewPlan | PedicleAxis,
    *,
    name: str | None = None,
    length_fraction: float = 0.8,
    diameter: float | None = None,
    diameter_fraction: float = 0.7,
    limits: PlanLimits | None = None,
    max_shift: float = 4.0 * MM,
    max_tilt: float = math.radians(12.0),
    max_iter: int = 80,
) -> ScrewPlan:
    """The trajectory near ``start`` that maximises the screw's minimum clearance.

    The line is parametrised by a shift (two components, m) of the point where ``start`` crosses
    the pedicle and a tilt (two components, rad) of its direction; Nelder-Mead maximises the
    minimum depth along the path outside the entry hole (= clearance + radius, so the optimum
    hardly depends on the diameter), within ``max_shift``/``max_tilt`` of the start. The entry
    is where the line leaves the bone posteriorly; the length is ``length_fraction`` of the bone
    chord along the line. ``diameter`` None picks the largest ``STANDARD_DIAMETERS`` value not
    above ``diameter_fraction`` x twice the achieved depth.
    Raises ``PlanError`` if no trajectory through bone is found near the start.
    """
    limits = limits or PlanLimits()
    if not 0.1 <= length_fraction <= 1.0:
        raise PlanError(f"length_fraction: must be in [0.1, 1], got {length_fraction}")
    if isinstance(start, PedicleAxis):
        level, side = start.level, start.side
        through = np.asarray(start.isthmus, float)
        d0 = np.asarray(start.direction, float)
    else:
        level, side = start.level, start.side
        d0 = start.direction
        # cross the pedicle where the start path is narrowest: the least-deep inside point of
        # the first half of the path (the pedicle isthmus for a pedicle screw)
        s = np.linspace(0.0, start.length, 201)
        dd = anatomy.sdf(start.point_at(s))
        half = (s <= 0.6 * start.length) & (dd < 0)
        if not half.any():
            raise PlanError(f"{start.name}: the start trajectory does not pass through bone")
        through = start.point_at(s[int(np.argmax(np.where(half, dd, -np.inf)))])
        if not anatomy.sdf(through[None])[0] < 0:
            raise PlanError(f"{start.name}: the start trajectory does not pass through bone")
    name = name or f"{level}-{side[0].upper()}"
    e1, e2 = _basis(d0)
    if diameter is not None:
        r_nom = 0.5 * diameter
    elif isinstance(start, PedicleAxis):
        r_nom = diameter_fraction * min(start.semi_width, start.semi_height)
    else:
        r_nom = start.radius
    exclusion = r_nom + limits.entry_margin
    step = 0.5 * MM

    def line(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = through + x[0] * MM * e1 + x[1] * MM * e2
        d = d0 + x[2] * _TILT_UNIT * e1 + x[3] * _TILT_UNIT * e2
        return p, d / np.linalg.norm(d)

    def depth_of(x: np.ndarray) -> tuple[float, _Trajectory | None]:
        p, d = line(x)
        sd = float(anatomy.sdf(p[None])[0])
        if sd >= 0:
            return -sd, None
        try:
            tr = _trajectory(anatomy, p, d)
        except AnatomyError:
            return -1.0, None
        L = length_fraction * tr.chord
        _, depth, counted, _ = _depth_profile(anatomy, tr.entry, d, L, exclusion, step)
        if not counted.any():
            return -1.0, None
        return float(depth[counted].min()), tr

    shift_max = max_shift / MM
    tilt_max = max_tilt / _TILT_UNIT

    def cost(x: np.ndarray) -> float:
        pen = max(0.0, math.hypot(x[0], x[1]) - shift_max) * 1e-3 + max(0.0, math.hypot(x[2], x[3]) - tilt_max)
        v, _ = depth_of(x)
        return -v + 10.0 * pen

    x0 = np.zeros(4)
    simplex = np.array([x0, [0.8, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 4.0]])
    res = minimize(
        cost,
        x0,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxiter": max_iter, "xatol": 1e-2, "fatol": 1e-6},
    )
    x = res.x if res.fun <= cost(x0) else x0
    depth, tr = depth_of(x)
    if tr is None or depth <= 0:
        raise PlanError(f"{name}: no trajectory through bone near the start")
    if diameter is None:
        fits = [d for d in STANDARD_DIAMETERS if d <= diameter_fraction * 2 * depth]
        diameter = fits[-1] if fits else STANDARD_DIAMETERS[0]
    L = length_fraction * tr.chord
    log.debug("planned %s: depth %.2f mm, diameter %.1f mm, length %.1f mm", name, depth / MM, diameter / MM, L / MM)
    return ScrewPlan(name, level, side, tr.entry, tr.entry + L * tr.direction, float(diameter))


def auto_plan(
    anatomy: Anatomy,
    *,
    levels: Sequence[str] | None = None,
    sides: Sequence[str] = SIDES,
    length_fraction: float = 0.8,
    diameter: float | None = None,
    diameter_fraction: float = 0.7,
    starts: Plan | None = None,
    limits: PlanLimits | None = None,
) -> Plan:
    """One screw per pedicle, each maximising its minimum clearance (see ``optimize_screw``).

    Starts from the anatomy's ground-truth pedicle axes, or from ``starts`` (required for a mesh
    model without axes: one rough trajectory per screw). Screws are named '<level>-L'/'<level>-R'
    (or keep the start's names). The plan stores ``anatomy.to_dict()`` when the model has it.
    Raises ``PlanError`` when a pedicle has no start or no trajectory through bone.
    """
    screws: list[ScrewPlan] = []
    if starts is not None:
        for st in starts.screws:
            if levels is not None and st.level not in [lv.upper() for lv in levels]:
                continue
            screws.append(
                optimize_screw(
                    anatomy,
                    st,
                    name=st.name,
                    length_fraction=length_fraction,
                    diameter=diameter,
                    diameter_fraction=diameter_fraction,
                    limits=limits,
                )
            )
    else:
        for lv in levels if levels is not None else anatomy.levels:
            for side in sides:
                try:
                    axis = anatomy.pedicle_axis(lv, side)
                except AnatomyError as exc:
                    raise PlanError(str(exc)) from None
                if axis is None:
                    raise PlanError(f"{lv} {side}: the anatomy has no pedicle axis; pass starts=")
                screws.append(
                    optimize_screw(
                        anatomy,
                        axis,
                        length_fraction=length_fraction,
                        diameter=diameter,
                        diameter_fraction=diameter_fraction,
                        limits=limits,
                    )
                )
    desc = anatomy.to_dict() if hasattr(anatomy, "to_dict") else None
    return Plan(tuple(screws), desc, {"length_fraction": length_fraction})


# --------------------------------------------------------------------------------------------
# planning on meshes: atlas fit of the phantom gives the starting trajectories
# --------------------------------------------------------------------------------------------


def fit_phantom_to_mesh(
    mesh: trimesh.Trimesh, level: str, params: VertebraParams | None = None, n_points: int = 1500, seed: int = 0
) -> tuple[Vertebra, float]:
    """Place the phantom vertebra of ``level`` on a bone mesh (image frame, m); returns it and the RMS fit.

    Rigid point-to-plane ICP (``registration.icp_point_to_plane``) of phantom surface samples onto
    the mesh surface, started from the identity and from the proper rotations that map the
    phantom's principal axes onto the mesh's within 90 deg of the identity (the mesh must be in
    an LPS image frame, as CT-derived meshes are); the best fit (robust score over all points,
    misfits capped at 3 mm) wins. The placed phantom's pedicle axes are starting
    trajectories for ``optimize_screw`` on the mesh (an atlas approach: the phantom is a
    template, the mesh is the truth). Raises ``PlanError`` when the mesh is empty.
    """
    from machaon.ortho.registration import RegistrationError, icp_point_to_plane

    if len(mesh.faces) == 0:
        raise PlanError("mesh: no triangles")
    v0 = Vertebra(params, level)
    src, _ = surface_samples(v0, n_points, seed=seed, spacing=1.5e-3)
    dst, fidx = trimesh.sample.sample_surface(mesh, 8 * n_points, seed=seed)
    dst = np.asarray(dst, dtype=float)
    dst_n = np.asarray(mesh.face_normals, dtype=float)[fidx]
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    _, _, Vs = np.linalg.svd(src - cs, full_matrices=False)
    _, _, Vd = np.linalg.svd(dst - cd, full_matrices=False)
    tree = cKDTree(dst)

    def score(T: np.ndarray) -> float:
        # robust fit score over all points (misfits count, capped at 3 mm, so that rejecting a
        # mismatched part as outliers cannot make a wrong pose look good)
        d, _ = tree.query(src @ T[:3, :3].T + T[:3, 3])
        return float(np.mean(np.minimum(d, 3 * MM) ** 2))

    inits = [np.eye(3)]
    for perm in itertools.permutations(range(3)):
        for sx in (1.0, -1.0):
            for sy in (1.0, -1.0):
                M = np.zeros((3, 3))
                for k, j in enumerate(perm):
                    M[j, k] = (sx, sy, 1.0)[k]
                R = Vd.T @ M @ Vs
                if np.linalg.det(R) < 0:
                    R = Vd.T @ (M @ np.diag([1.0, 1.0, -1.0])) @ Vs
                # the mesh is in an LPS image frame: keep orientations within 90 deg of it
                if np.trace(R) > 1.0 - 1e-9:
                    inits.append(R)
    best: tuple[float, np.ndarray] | None = None
    for R in inits:
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = cd - R @ cs
        try:
            r = icp_point_to_plane(src, dst, dst_n, T, max_iterations=25, max_distance=0.02, outlier_k=4.0)
        except RegistrationError:
            continue
        sc = score(r.T_dst_src)
        if best is None or sc < best[0]:
            best = (sc, r.T_dst_src)
    if best is None:
        raise PlanError(f"mesh: could not fit the {level} phantom to it")
    r = icp_point_to_plane(src, dst, dst_n, best[1], max_iterations=60, max_distance=0.01)
    log.info("phantom %s fitted to mesh: rms %.2f mm, %d/%d inliers", level, r.rms / MM, r.n_inliers, len(src))
    return Vertebra(v0.params, level, r.T_dst_src), r.rms


def plan_mesh(
    paths: str | Path | Sequence[str | Path],
    levels: Sequence[str],
    *,
    units: str = "mm",
    starts: Plan | None = None,
    length_fraction: float = 0.8,
    diameter: float | None = None,
    sides: Sequence[str] = SIDES,
) -> tuple[Plan, BoneModel]:
    """Auto-plan pedicle screws on bone meshes (STL/OBJ/PLY; ``units`` in the files).

    One file with several closed parts is split into parts assigned to ``levels`` from the most
    cranial (largest image z) down; several files are taken in the order of ``levels``. Without
    ``starts`` the phantom of each level is fitted to its part (``fit_phantom_to_mesh``) and its
    pedicle axes start the optimisation; the clearances are then those of the mesh. Raises
    ``PlanError`` when the parts and levels do not match.
    """
    levels = [str(lv).upper() for lv in levels]
    files = [paths] if isinstance(paths, (str, Path)) else list(paths)
    try:
        meshes = [load_mesh(f, {"mm": MM, "m": 1.0}[units]) for f in files]
    except KeyError:
        raise PlanError(f"units: expected 'mm' or 'm', got {units!r}") from None
    except AnatomyError as exc:
        raise PlanError(str(exc)) from None
    if len(meshes) == 1 and len(levels) > 1:
        parts = [m for m in meshes[0].split(only_watertight=False) if len(m.faces) > 100]
        parts.sort(key=lambda m: -float(m.centroid[2]))
    else:
        parts = meshes
    if len(parts) != len(levels):
        raise PlanError(f"mesh: {len(parts)} bone part(s) but {len(levels)} level(s) given ({levels})")
    frames, axes = {}, {}
    if starts is None:
        for lv, part in zip(levels, parts, strict=True):
            v, rms = fit_phantom_to_mesh(part, lv)
            if rms > 1.5 * MM:
                log.warning("phantom %s fits the mesh poorly (rms %.2f mm); check the plan", lv, rms / MM)
            frames[lv] = v.T_image_vertebra
            for side in SIDES:
                axes[(lv, side)] = v.pedicle_axis(lv, side)
    try:
        bone = BoneModel(dict(zip(levels, parts, strict=True)), level_frames=frames, pedicle_axes=axes)
    except AnatomyError as exc:
        raise PlanError(str(exc)) from None
    plan = auto_plan(bone, starts=starts, length_fraction=length_fraction, diameter=diameter, sides=sides)
    return Plan(plan.screws, None, {**plan.meta, "mesh": [str(f) for f in files]}), bone


def plan_from_cli(
    levels: Sequence[str] = ("L3", "L4"), mesh_path: str | Path | None = None, length_fraction: float = 0.8
) -> Plan:
    """What ``machaon ortho plan`` does: auto-plan the phantom of ``levels``, or the mesh file."""
    if mesh_path is None:
        try:
            seg = SpineSegment(levels)
        except AnatomyError as exc:
            raise PlanError(str(exc)) from None
        return auto_plan(seg, length_fraction=length_fraction)
    return plan_mesh(mesh_path, levels, length_fraction=length_fraction)[0]


__all__ = [
    "PLAN_FORMAT",
    "STANDARD_DIAMETERS",
    "PlanError",
    "ScrewPlan",
    "Plan",
    "PlanLimits",
    "PlanCheck",
    "check_plan",
    "check_all",
    "screw_clearance",
    "screw_angles",
    "segment_distance",
    "trajectory_regions",
    "optimize_screw",
    "auto_plan",
    "fit_phantom_to_mesh",
    "plan_mesh",
    "plan_from_cli",
]
