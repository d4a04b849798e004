"""Checking a trajectory against the anatomy: clearance, breach and where, angles, limits.

``check_plan`` measures the minimum clearance between the whole screw and the bone surface (which
includes the canal wall, the canal being outside the bone), reports breaches and where they are,
and the screw's angles in the vertebra frame against limits. Image frame, metres, radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array
from machaon.ortho.anatomy import MM, Anatomy, AnatomyError, Region, sdf_gradient
from machaon.ortho.planning.plan import Plan, PlanError, ScrewPlan


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


def _breach(
    anatomy: Anatomy, screw: ScrewPlan, bone: float, canal: float, worst: np.ndarray, canal_point: np.ndarray
) -> tuple[str, np.ndarray, list[str]]:
    """(where, the point farthest out of the bone or deepest in the canal, message) of a breach."""
    if canal < 0.0:
        return "canal", canal_point, [f"canal breach: the screw enters the spinal canal by {-canal / MM:.2f} mm"]
    location = _classify(anatomy, screw, worst)
    return location, worst, [f"{location} breach: the screw leaves the bone by {-bone / MM:.2f} mm"]


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
    breach = bone < 0.0 or canal < 0.0
    location, point, msgs = _breach(anatomy, screw, bone, canal, worst, canal_point) if breach else (None, None, [])
    if not breach and bone < limits.min_clearance:
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
