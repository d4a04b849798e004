"""Automatic proposals: one screw per pedicle that maximises its minimum clearance.

SciPy Nelder-Mead over entry offset and direction, started on the anatomical axis (or a rough
trajectory), with a length set to a fraction of the bone chord along the trajectory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from machaon.ortho.anatomy import MM, SIDES, Anatomy, AnatomyError, PedicleAxis, ray_exits
from machaon.ortho.planning.check import PlanLimits, _depth_profile
from machaon.ortho.planning.plan import STANDARD_DIAMETERS, Plan, PlanError, ScrewPlan

log = logging.getLogger(__name__)

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


def _start_line(anatomy: Anatomy, start: ScrewPlan | PedicleAxis) -> tuple[str, str, np.ndarray, np.ndarray]:
    """(level, side, point where the start crosses the pedicle, start direction) of a start.

    A pedicle axis crosses at its isthmus; a rough trajectory where it is narrowest: the least-deep
    inside point of the first part of the path. ``PlanError`` if it does not pass through bone.
    """
    if isinstance(start, PedicleAxis):
        return start.level, start.side, np.asarray(start.isthmus, float), np.asarray(start.direction, float)
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
    return start.level, start.side, through, start.direction


_TILT_UNIT = 0.01  # rad per optimiser unit, so that shifts (mm) and tilts have similar scales


@dataclass(frozen=True)
class _DepthObjective:
    """The optimiser's view of a line: a shift (``x[:2]``, mm along e1, e2) of the point ``through``
    and a tilt (``x[2:]``, ``_TILT_UNIT`` rad along e1, e2) of the direction ``d0``."""

    anatomy: Anatomy
    through: np.ndarray
    d0: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    length_fraction: float
    exclusion: float  # m around the entry left out of the depth (the entry hole)
    step: float = 0.5 * MM

    def line(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.through + x[0] * MM * self.e1 + x[1] * MM * self.e2
        d = self.d0 + x[2] * _TILT_UNIT * self.e1 + x[3] * _TILT_UNIT * self.e2
        return p, d / np.linalg.norm(d)

    def depth_of(self, x: np.ndarray) -> tuple[float, _Trajectory | None]:
        """(minimum depth along the path outside the entry hole, m; its trajectory or None)."""
        p, d = self.line(x)
        sd = float(self.anatomy.sdf(p[None])[0])
        if sd >= 0:
            return -sd, None
        try:
            tr = _trajectory(self.anatomy, p, d)
        except AnatomyError:
            return -1.0, None
        L = self.length_fraction * tr.chord
        _, depth, counted, _ = _depth_profile(self.anatomy, tr.entry, d, L, self.exclusion, self.step)
        if not counted.any():
            return -1.0, None
        return float(depth[counted].min()), tr


def _nominal_radius(start: ScrewPlan | PedicleAxis, diameter: float | None, diameter_fraction: float) -> float:
    """The screw radius (m) the entry hole is sized for while optimising: half of ``diameter``, else
    ``diameter_fraction`` of the pedicle's smaller semi-axis, else the start screw's own radius."""
    if diameter is not None:
        return 0.5 * diameter
    if isinstance(start, PedicleAxis):
        return diameter_fraction * min(start.semi_width, start.semi_height)
    return start.radius


def _best_offset(objective: _DepthObjective, max_shift: float, max_tilt: float, max_iter: int) -> np.ndarray:
    """Nelder-Mead on ``objective`` (optimiser units, see ``_DepthObjective``): the offset that
    maximises the minimum depth, penalised beyond ``max_shift`` (m) and ``max_tilt`` (rad); the
    start (zeros) when the optimiser finds nothing better."""
    shift_max = max_shift / MM
    tilt_max = max_tilt / _TILT_UNIT

    def cost(x: np.ndarray) -> float:
        pen = max(0.0, math.hypot(x[0], x[1]) - shift_max) * 1e-3 + max(0.0, math.hypot(x[2], x[3]) - tilt_max)
        v, _ = objective.depth_of(x)
        return -v + 10.0 * pen

    x0 = np.zeros(4)
    simplex = np.array([x0, [0.8, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 4.0, 0], [0, 0, 0, 4.0]])
    res = minimize(
        cost,
        x0,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxiter": max_iter, "xatol": 1e-2, "fatol": 1e-6},
    )
    return res.x if res.fun <= cost(x0) else x0


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
    level, side, through, d0 = _start_line(anatomy, start)
    name = name or f"{level}-{side[0].upper()}"
    r_nom = _nominal_radius(start, diameter, diameter_fraction)
    objective = _DepthObjective(anatomy, through, d0, *_basis(d0), length_fraction, r_nom + limits.entry_margin)
    x = _best_offset(objective, max_shift, max_tilt, max_iter)
    depth, tr = objective.depth_of(x)
    if tr is None or depth <= 0:
        raise PlanError(f"{name}: no trajectory through bone near the start")
    if diameter is None:
        fits = [d for d in STANDARD_DIAMETERS if d <= diameter_fraction * 2 * depth]
        diameter = fits[-1] if fits else STANDARD_DIAMETERS[0]
    L = length_fraction * tr.chord
    log.debug("planned %s: depth %.2f mm, diameter %.1f mm, length %.1f mm", name, depth / MM, diameter / MM, L / MM)
    return ScrewPlan(name, level, side, tr.entry, tr.entry + L * tr.direction, float(diameter))


def _screw_starts(
    anatomy: Anatomy, levels: Sequence[str] | None, sides: Sequence[str], starts: Plan | None,
) -> Iterator[tuple[ScrewPlan | PedicleAxis, str | None]]:
    """(start, name) per screw to plan, in order: the ``starts`` on ``levels`` under their own names,
    or else the anatomy's pedicle axis of each level and side (name None: '<level>-L/R'). Raises
    ``PlanError`` when the anatomy has no axis for a pedicle (lazily, as the screws are planned)."""
    if starts is not None:
        for st in starts.screws:
            if levels is None or st.level in [lv.upper() for lv in levels]:
                yield st, st.name
        return
    for lv in levels if levels is not None else anatomy.levels:
        for side in sides:
            try:
                axis = anatomy.pedicle_axis(lv, side)
            except AnatomyError as exc:
                raise PlanError(str(exc)) from None
            if axis is None:
                raise PlanError(f"{lv} {side}: the anatomy has no pedicle axis; pass starts=")
            yield axis, None


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

    >>> from machaon.ortho.anatomy import SpineSegment
    >>> from machaon.ortho.planning import check_plan
    >>> spine = SpineSegment(("L4",))               # a lumbar vertebra phantom (image frame, m)
    >>> plan = auto_plan(spine, sides=["left"])
    >>> [s.name for s in plan], round(plan.screws[0].length * 1e3)
    (['L4-L'], 48)
    >>> check = check_plan(spine, plan.screws[0])
    >>> check.breach, check.ok, check.min_clearance > 2e-3   # metres
    (False, True, True)
    """
    screws = [
        optimize_screw(anatomy, start, name=name, length_fraction=length_fraction, diameter=diameter,
                       diameter_fraction=diameter_fraction, limits=limits)
        for start, name in _screw_starts(anatomy, levels, sides, starts)
    ]
    desc = anatomy.to_dict() if hasattr(anatomy, "to_dict") else None
    return Plan(tuple(screws), desc, {"length_fraction": length_fraction})
