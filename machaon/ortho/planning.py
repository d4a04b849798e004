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

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from machaon._validate import finite_array
from machaon.ortho.anatomy import (
    MM,
    SIDES,
    Anatomy,
    AnatomyError,
    PedicleAxis,
    Region,
    SpineSegment,
    ray_exit,
    sdf_gradient,
)

log = logging.getLogger(__name__)

PLAN_FORMAT = "machaon.ortho.plan"
PLAN_VERSION = 1
#: standard pedicle-screw diameters, m
STANDARD_DIAMETERS = tuple(d * MM for d in (3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5))


class PlanError(ValueError):
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
        if not (
            isinstance(self.diameter, (int, float)) and math.isfinite(self.diameter) and self.diameter > 0
        ):
            raise PlanError(f"{self.name}.diameter: must be a positive length in m, got {self.diameter!r}")
        if not 0.5 * MM <= self.diameter <= 20 * MM:
            raise PlanError(
                f"{self.name}.diameter: {self.diameter} m is outside 0.5..20 mm (units must be m)"
            )
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
        """Inverse of ``to_dict`` (``length_mm`` is checked against entry/target to 0.01 mm)."""
        try:
            s = cls(
                str(d["name"]),
                str(d["level"]),
                str(d["side"]),
                np.asarray(d["entry_mm"], float) * MM,
                np.asarray(d["target_mm"], float) * MM,
                float(d["diameter_mm"]) * MM,
            )
        except (KeyError, TypeError) as exc:
            raise PlanError(f"screw: missing or malformed field ({exc})") from None
        if "length_mm" in d and abs(float(d["length_mm"]) - s.length / MM) > 0.01:
            raise PlanError(
                f"{s.name}: length_mm {d['length_mm']} disagrees with entry/target ({s.length / MM:.3f})"
            )
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
        return cls(tuple(ScrewPlan.from_dict(s) for s in screws), d.get("anatomy"), dict(d.get("meta") or {}))

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

    ``entry_zone`` is the first part of the screw (from the entry point) that crosses the dorsal
    cortex on purpose and is left out of the clearance; ``min_clearance`` the clearance required;
    ``max_axis_deviation`` the largest angle to the ground-truth pedicle axis (when known);
    ``medial_range``/``cranial_range`` the allowed medial (convergence) and cranial angles in the
    vertebra frame.
    """

    entry_zone: float = 5.0 * MM
    min_clearance: float = 0.0
    max_axis_deviation: float = math.radians(15.0)
    medial_range: tuple[float, float] = (math.radians(-5.0), math.radians(45.0))
    cranial_range: tuple[float, float] = (math.radians(-20.0), math.radians(20.0))


@dataclass(frozen=True)
class PlanCheck:
    """Result of ``check_plan`` for one screw (m, rad, image frame).

    ``min_clearance`` is the smallest distance from the screw (a cylinder, beyond the entry
    zone) to the bone surface: negative means the screw leaves the bone by that much.
    ``canal_clearance`` is the smallest distance from the screw to the spinal canal (negative:
    it enters the canal). ``breach`` is True when either is negative; ``breach_location`` names it
    ('canal', 'medial', 'lateral', 'superior', 'inferior', 'anterior', 'posterior') and
    ``breach_point`` is the screw-axis point where it is worst. ``regions`` are the Region codes
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
            "canal_clearance_mm": self.canal_clearance / MM,
            "breach": self.breach,
            "breach_location": self.breach_location,
            "medial_angle_deg": math.degrees(self.medial_angle),
            "cranial_angle_deg": math.degrees(self.cranial_angle),
            "axis_deviation_deg": None if self.axis_deviation is None else math.degrees(self.axis_deviation),
            "ok": self.ok,
            "messages": list(self.messages),
        }


def _axis_samples(screw: ScrewPlan, entry_zone: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances s along the axis (beyond the entry zone) and the points there."""
    L = screw.length
    s0 = min(entry_zone, L)
    n = max(2, int(math.ceil((L - s0) / step)) + 1)
    s = np.linspace(s0, L, n)
    return s, screw.entry + s[:, None] * screw.direction


def _tip_rim(screw: ScrewPlan, n: int = 12) -> np.ndarray:
    d = screw.direction
    a = np.cross(d, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 0.1:
        a = np.cross(d, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(d, a)
    th = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ring = np.cos(th)[:, None] * a + np.sin(th)[:, None] * b
    return screw.target + screw.radius * ring


def screw_clearance(
    anatomy: Anatomy, screw: ScrewPlan, entry_zone: float = 5.0 * MM, step: float = 0.5 * MM
) -> tuple[float, float, np.ndarray]:
    """(bone clearance, canal clearance, worst axis point) of the screw cylinder, m.

    The clearance of the cylinder beyond ``entry_zone`` is min over axis points p of
    (depth(p) - radius), which is exact for the cylinder's body with an exact SDF; the tip is
    covered by its rim. Cheaper than ``check_plan`` (used inside the optimiser).
    """
    s, pts = _axis_samples(screw, entry_zone, step)
    rim = _tip_rim(screw)
    d = anatomy.sdf(np.concatenate([pts, rim]))
    bone = np.concatenate([-d[: len(pts)] - screw.radius, -d[len(pts) :]])
    k = int(np.argmin(bone))
    worst = pts[k] if k < len(pts) else rim[k - len(pts)]
    canal_d = anatomy.canal_sdf(np.concatenate([pts, rim]))
    canal = float(min(canal_d[: len(pts)].min() - screw.radius, canal_d[len(pts) :].min()))
    return float(bone[k]), canal, worst


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
    bone, canal, worst = screw_clearance(anatomy, screw, limits.entry_zone, step)
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
            s, pts = _axis_samples(screw, 0.0, step)
            point = pts[int(np.argmin(anatomy.canal_sdf(pts)))]
        else:
            location = _classify(anatomy, screw, worst)
            point = worst
        msgs.append(f"{location} breach: screw leaves the bone by {-min(bone, canal) / MM:.2f} mm")
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
    """Shortest distance between segments p0-p1 and q0-q1 (m)."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e, f = d1 @ d1, d2 @ d2, d2 @ r
    c, b = d1 @ r, d1 @ d2
    den = a * e - b * b
    s = np.clip((b * f - c * e) / den, 0, 1) if den > 1e-18 else 0.0
    t = (b * s + f) / e
    if t < 0:
        t, s = 0.0, np.clip(-c / a, 0, 1)
    elif t > 1:
        t, s = 1.0, np.clip((b - c) / a, 0, 1)
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
    entry = ray_exit(anatomy, through, -d, max_dist=0.12)
    exit_ = ray_exit(anatomy, through, d, max_dist=0.2)
    return _Trajectory(entry, d, float(np.dot(exit_ - entry, d)))


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
    max_iter: int = 160,
) -> ScrewPlan:
    """The trajectory near ``start`` that maximises the screw's minimum clearance.

    The line is parametrised by a shift (two components, m) of the point where ``start`` crosses
    the pedicle and a tilt (two components, rad) of its direction; Nelder-Mead maximises the
    minimum depth along the path beyond the entry zone (= clearance + radius, so the optimum
    does not depend on the diameter), within ``max_shift``/``max_tilt`` of the start. The entry
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
    zone = limits.entry_zone
    step = 0.5 * MM

    def line(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = through + x[0] * MM * e1 + x[1] * MM * e2
        d = d0 + x[2] * e1 + x[3] * e2
        return p, d / np.linalg.norm(d)

    def depth_of(x: np.ndarray) -> tuple[float, _Trajectory | None]:
        p, d = line(x)
        if anatomy.sdf(p[None])[0] >= 0:
            return anatomy.sdf(p[None])[0], None
        try:
            tr = _trajectory(anatomy, p, d)
        except AnatomyError:
            return -1.0, None
        L = length_fraction * tr.chord
        s = np.arange(min(zone, L), L + step / 2, step)
        pts = tr.entry + s[:, None] * d
        return float(-anatomy.sdf(pts).max()), tr

    shift_max = max_shift / MM
    tilt_max = max_tilt

    def cost(x: np.ndarray) -> float:
        pen = max(0.0, math.hypot(x[0], x[1]) - shift_max) * 1e-3 + max(
            0.0, math.hypot(x[2], x[3]) - tilt_max
        )
        v, _ = depth_of(x)
        return -v + 10.0 * pen

    x0 = np.zeros(4)
    simplex = np.array([x0, [0.8, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 0.04, 0], [0, 0, 0, 0.04]])
    res = minimize(
        cost,
        x0,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxiter": max_iter, "xatol": 1e-3, "fatol": 1e-7},
    )
    x = res.x if res.fun <= cost(x0) else x0
    depth, tr = depth_of(x)
    if tr is None or depth <= 0:
        raise PlanError(f"{name}: no trajectory through bone near the start")
    if diameter is None:
        fits = [d for d in STANDARD_DIAMETERS if d <= diameter_fraction * 2 * depth]
        diameter = fits[-1] if fits else STANDARD_DIAMETERS[0]
    L = length_fraction * tr.chord
    log.debug(
        "planned %s: depth %.2f mm, diameter %.1f mm, length %.1f mm", name, depth / MM, diameter / MM, L / MM
    )
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
]
