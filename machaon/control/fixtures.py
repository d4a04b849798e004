"""Virtual fixtures: composable constraints on the tool, as wrenches (torque control) or projections.

Every fixture works on the tool frame ``T_base_tool`` (4x4) and its twist ``v_tool = [v; w]``
(base frame, at the tool origin) and offers:

- ``wrench(T_base_tool, v_tool) -> (6,)``: the restoring wrench ``[f; m]`` (N, N m; base frame,
  at the tool origin), a spring-damper acting only while the constraint is violated (guidance:
  always toward the line). ``CartesianImpedance(fixtures=...)`` adds it as a feed-forward wrench.
- ``constrain(T_base_tool) -> T``: the nearest allowed pose (for position/admittance control,
  where a position can be corrected directly).
- ``violation(T_base_tool) -> float``: how far outside the allowed set the tool is (m; 0 inside).

Terms combine with ``+`` into a ``FixtureSet`` (wrenches add; projections apply in order).

- ``LineGuide``: stay on a line (a planned drill axis); optionally align the tool z axis with it.
- ``PlaneBoundary``: stay on the positive side of a plane.
- ``ForbiddenSphere`` / ``ForbiddenCylinder``: stay out of a sphere / finite cylinder.
- ``DepthStop``: never go deeper than ``max_depth`` along an axis from an entry point.

Geometry is in metres in the base frame; stiffness N/m (N m/rad), damping N s/m (N m s/rad).
NaN or degenerate geometry (zero-length axis, negative radius) raises ``ValueError``.
"""

from __future__ import annotations

import math

import numpy as np

from machaon._validate import finite_array
from machaon._validate import nonnegative as _gain
from machaon._validate import unit_vector as _unit
from machaon.kinematics.so3 import rotation_between

__all__ = [
    "DepthStop",
    "Fixture",
    "FixtureSet",
    "ForbiddenCylinder",
    "ForbiddenSphere",
    "LineGuide",
    "PlaneBoundary",
]


def _rotate_z_to(R: np.ndarray, a: np.ndarray) -> np.ndarray:
    """R turned by the smallest rotation that brings its z column onto the unit vector a
    (antiparallel: half a circle about the tool x axis)."""
    return rotation_between(R[:, 2], a, flip_axis=R[:, 0]) @ R


class Fixture:
    """Base of the fixture terms; ``a + b`` builds a ``FixtureSet``."""

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def violation(self, T_base_tool: np.ndarray) -> float:
        raise NotImplementedError

    def __add__(self, other: Fixture) -> FixtureSet:
        left = self.terms if isinstance(self, FixtureSet) else [self]
        right = other.terms if isinstance(other, FixtureSet) else [other]
        return FixtureSet(left + right)


class FixtureSet(Fixture):
    """Several fixtures acting together."""

    def __init__(self, terms: list[Fixture]) -> None:
        self.terms = list(terms)

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        w = np.zeros(6)
        for term in self.terms:
            w += term.wrench(T_base_tool, v_tool)
        return w

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        T = np.array(T_base_tool, dtype=np.float64)
        for term in self.terms:
            T = term.constrain(T)
        return T

    def violation(self, T_base_tool: np.ndarray) -> float:
        return max((term.violation(T_base_tool) for term in self.terms), default=0.0)


class LineGuide(Fixture):
    """Keep the tool origin on the line through ``point`` along ``direction``.

    Force: ``k`` times the perpendicular offset minus ``d`` times the perpendicular velocity
    (motion along the line is free). With ``k_rot > 0`` a moment also turns the tool z axis onto
    the line direction (``d_rot`` damps rotation other than about the tool axis).
    """

    def __init__(self, point: np.ndarray, direction: np.ndarray, k: float, d: float = 0.0,
                 k_rot: float = 0.0, d_rot: float = 0.0) -> None:
        self.point = finite_array("point", point, (3,)).copy()
        self.axis = _unit("direction", direction)
        self.k, self.d = _gain("k", k), _gain("d", d)
        self.k_rot, self.d_rot = _gain("k_rot", k_rot), _gain("d_rot", d_rot)
        self._P = np.eye(3) - np.outer(self.axis, self.axis)

    def offset(self, p: np.ndarray) -> np.ndarray:
        """Vector from p to its nearest point on the line (m)."""
        return self._P @ (self.point - p)

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        p = T_base_tool[:3, 3]
        f = self.k * self.offset(p) - self.d * (self._P @ v_tool[:3])
        m = np.zeros(3)
        if self.k_rot > 0 or self.d_rot > 0:
            z = T_base_tool[:3, 2]
            a = self.axis if z @ self.axis >= 0 else -self.axis  # either direction along the line
            c = float(np.clip(z @ a, -1.0, 1.0))
            cross = np.cross(z, a)
            s = float(np.linalg.norm(cross))
            rotvec = cross * (math.atan2(s, c) / s) if s > 1e-12 else np.zeros(3)
            w = v_tool[3:]
            m = self.k_rot * rotvec - self.d_rot * (w - (w @ z) * z)
        return np.concatenate([f, m])

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        T = np.array(T_base_tool, dtype=np.float64)
        T[:3, 3] = T[:3, 3] + self.offset(T[:3, 3])
        if self.k_rot > 0:
            z = T[:3, 2]
            T[:3, :3] = _rotate_z_to(T[:3, :3], self.axis if z @ self.axis >= 0 else -self.axis)
        return T

    def violation(self, T_base_tool: np.ndarray) -> float:
        return float(np.linalg.norm(self.offset(np.asarray(T_base_tool)[:3, 3])))


class PlaneBoundary(Fixture):
    """Keep the tool origin on the side of the plane (``point``, ``normal``) the normal points to."""

    def __init__(self, point: np.ndarray, normal: np.ndarray, k: float, d: float = 0.0) -> None:
        self.point = finite_array("point", point, (3,)).copy()
        self.normal = _unit("normal", normal)
        self.k, self.d = _gain("k", k), _gain("d", d)

    def distance(self, p: np.ndarray) -> float:
        """Signed distance (m), positive on the allowed side."""
        return float(self.normal @ (p - self.point))

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        s = self.distance(T_base_tool[:3, 3])
        w = np.zeros(6)
        if s < 0:
            vn = float(self.normal @ v_tool[:3])
            w[:3] = max(self.k * (-s) - self.d * min(vn, 0.0), 0.0) * self.normal
        return w

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        T = np.array(T_base_tool, dtype=np.float64)
        s = self.distance(T[:3, 3])
        if s < 0:
            T[:3, 3] -= s * self.normal
        return T

    def violation(self, T_base_tool: np.ndarray) -> float:
        return max(-self.distance(np.asarray(T_base_tool)[:3, 3]), 0.0)


class _ForbiddenRegion(Fixture):
    """A region the tool origin must stay out of; subclasses give ``_normal_depth(p)``: the outward
    normal at the nearest boundary point and the penetration depth (> 0 inside), in m."""

    k: float
    d: float

    def _normal_depth(self, p: np.ndarray) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        """Spring out along the normal, damping only inward motion, never pulling inward."""
        n, pen = self._normal_depth(T_base_tool[:3, 3])
        w = np.zeros(6)
        if pen > 0:
            w[:3] = max(self.k * pen - self.d * min(float(n @ v_tool[:3]), 0.0), 0.0) * n
        return w

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        """The pose moved out to the nearest boundary point when inside."""
        T = np.array(T_base_tool, dtype=np.float64)
        n, pen = self._normal_depth(T[:3, 3])
        if pen > 0:
            T[:3, 3] += pen * n
        return T

    def violation(self, T_base_tool: np.ndarray) -> float:
        return max(self._normal_depth(np.asarray(T_base_tool)[:3, 3])[1], 0.0)


class ForbiddenSphere(_ForbiddenRegion):
    """Keep the tool origin out of the sphere (``center``, ``radius``)."""

    def __init__(self, center: np.ndarray, radius: float, k: float, d: float = 0.0) -> None:
        self.center = finite_array("center", center, (3,)).copy()
        self.radius = _gain("radius", radius)
        self.k, self.d = _gain("k", k), _gain("d", d)

    def _normal_depth(self, p: np.ndarray) -> tuple[np.ndarray, float]:
        r = p - self.center
        dist = float(np.linalg.norm(r))
        n = r / dist if dist > 1e-12 else np.array([0.0, 0.0, 1.0])
        return n, self.radius - dist

class ForbiddenCylinder(_ForbiddenRegion):
    """Keep the tool origin out of a cylinder: axis through ``point`` along ``direction``, ``radius``,
    extending ``half_length`` (m, default infinite) either side of ``point``. Pushes radially out."""

    def __init__(self, point: np.ndarray, direction: np.ndarray, radius: float, k: float, d: float = 0.0,
                 half_length: float = math.inf) -> None:
        self.point = finite_array("point", point, (3,)).copy()
        self.axis = _unit("direction", direction)
        self.radius = _gain("radius", radius)
        self.k, self.d = _gain("k", k), _gain("d", d)
        self.half_length = float(half_length)
        if math.isnan(self.half_length) or self.half_length <= 0:
            raise ValueError("half_length: must be > 0")

    def _normal_depth(self, p: np.ndarray) -> tuple[np.ndarray, float]:
        rel = p - self.point
        along = float(rel @ self.axis)
        if abs(along) > self.half_length:
            return np.zeros(3), -math.inf
        radial = rel - along * self.axis
        dist = float(np.linalg.norm(radial))
        if dist > 1e-12:
            n = radial / dist
        else:  # on the axis: any perpendicular direction
            n = np.cross(self.axis, [1.0, 0.0, 0.0])
            if np.linalg.norm(n) < 1e-6:
                n = np.cross(self.axis, [0.0, 1.0, 0.0])
            n /= np.linalg.norm(n)
        return n, self.radius - dist


class DepthStop(Fixture):
    """Never deeper than ``max_depth`` (m) along ``direction`` (pointing into the material) from ``entry``."""

    def __init__(self, entry: np.ndarray, direction: np.ndarray, max_depth: float, k: float,
                 d: float = 0.0) -> None:
        self.entry = finite_array("entry", entry, (3,)).copy()
        self.axis = _unit("direction", direction)
        self.max_depth = float(max_depth)
        if not math.isfinite(self.max_depth):
            raise ValueError("max_depth: must be finite")
        self.k, self.d = _gain("k", k), _gain("d", d)

    def depth(self, p: np.ndarray) -> float:
        """Depth of p along the axis from the entry point (m; negative before the entry)."""
        return float(self.axis @ (p - self.entry))

    def wrench(self, T_base_tool: np.ndarray, v_tool: np.ndarray) -> np.ndarray:
        over = self.depth(T_base_tool[:3, 3]) - self.max_depth
        w = np.zeros(6)
        if over > 0:
            va = float(self.axis @ v_tool[:3])
            w[:3] = -max(self.k * over + self.d * max(va, 0.0), 0.0) * self.axis
        return w

    def constrain(self, T_base_tool: np.ndarray) -> np.ndarray:
        T = np.array(T_base_tool, dtype=np.float64)
        over = self.depth(T[:3, 3]) - self.max_depth
        if over > 0:
            T[:3, 3] -= over * self.axis
        return T

    def violation(self, T_base_tool: np.ndarray) -> float:
        return max(self.depth(np.asarray(T_base_tool)[:3, 3]) - self.max_depth, 0.0)
