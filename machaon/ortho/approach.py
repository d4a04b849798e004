"""Collision-free approach in joint space, from the home pose to a stand-off pose above the entry.

Two planners over the same validity check (any ``is_valid(q) -> bool``, typically PyBullet
collision queries of the arm against table, patient and bone through ``machaon.sim``):

- ``"ompl"``: OMPL's RRT-Connect with its path simplifier (the ``ompl`` PyPI package);
- ``"rrtconnect"``: our RRT-Connect (Kuffner & LaValle 2000) with random shortcutting, NumPy
  only, deterministic for a seed. Used when OMPL is not installed, and as the benchmark's peer.

Motions are checked by interpolating in joint space at ``resolution_rad`` (the largest joint
step between two checked states). Joint positions in rad; limits are ``lower``/``upper``.
Bad input (NaN, start or goal outside the limits or in collision) raises ``ValueError``; a
planner that finds nothing within ``timeout_s`` raises ``PlanningFailed``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array
from machaon.errors import OrthoError

log = logging.getLogger(__name__)

ValidityFn = Callable[[np.ndarray], bool]

# OMPL's random generator is process-global (its own state, not ours); remember that we seeded it
_OMPL_SEEDED: list[bool] = []


class PlanningFailed(OrthoError, RuntimeError):
    """No collision-free path was found within the time limit."""


@dataclass(frozen=True)
class ApproachPath:
    """A joint-space path: ``waypoints`` (N, dof) rad, straight segments between them."""

    waypoints: np.ndarray
    planner: str
    plan_time_s: float
    n_checks: int

    @property
    def length_rad(self) -> float:
        return float(np.sum(np.linalg.norm(np.diff(self.waypoints, axis=0), axis=1)))

    def dense(self, resolution_rad: float) -> np.ndarray:
        """The path interpolated so that no joint moves more than ``resolution_rad`` between rows."""
        return densify(self.waypoints, resolution_rad)


def ompl_available() -> bool:
    try:
        import ompl.geometric  # noqa: F401
    except ImportError:
        return False
    return True


def densify(waypoints: np.ndarray, resolution_rad: float) -> np.ndarray:
    out = [waypoints[0]]
    for a, b in zip(waypoints[:-1], waypoints[1:], strict=True):
        n = max(1, int(np.ceil(np.max(np.abs(b - a)) / resolution_rad)))
        for k in range(1, n + 1):
            out.append(a + (b - a) * (k / n))
    return np.array(out)


class _Checker:
    """Counts checks; validates states and straight motions at a fixed resolution."""

    def __init__(self, is_valid: ValidityFn, lower: np.ndarray, upper: np.ndarray, resolution: float):
        self.is_valid = is_valid
        self.lower, self.upper = lower, upper
        self.resolution = resolution
        self.n = 0

    def state(self, q: np.ndarray) -> bool:
        if np.any(q < self.lower) or np.any(q > self.upper):
            return False
        self.n += 1
        return bool(self.is_valid(q))

    def motion(self, a: np.ndarray, b: np.ndarray) -> bool:
        n = max(1, int(np.ceil(np.max(np.abs(b - a)) / self.resolution)))
        # check in bisection order so that a collision in the middle is found early
        order = _bisection_order(n)
        return all(self.state(a + (b - a) * (k / n)) for k in order)


def _bisection_order(n: int) -> list[int]:
    seen, out, queue = set(), [], [(1, n)]
    while queue:
        lo, hi = queue.pop(0)
        if lo > hi:
            continue
        mid = (lo + hi) // 2
        if mid not in seen:
            seen.add(mid)
            out.append(mid)
        queue.append((lo, mid - 1))
        queue.append((mid + 1, hi))
    return out


def check_path(
    waypoints: np.ndarray, is_valid: ValidityFn, lower: np.ndarray, upper: np.ndarray, resolution_rad: float = 0.02
) -> bool:
    """True when every straight segment of the path is valid at ``resolution_rad``."""
    wp = finite_array("waypoints", waypoints, (None, len(lower)))
    c = _Checker(is_valid, np.asarray(lower, float), np.asarray(upper, float), resolution_rad)
    return c.state(wp[0]) and all(c.motion(a, b) for a, b in zip(wp[:-1], wp[1:], strict=True))


def plan_approach(
    q_start: np.ndarray,
    q_goal: np.ndarray,
    is_valid: ValidityFn,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    planner: str = "auto",
    timeout_s: float = 10.0,
    resolution_rad: float = 0.02,
    seed: int = 0,
) -> ApproachPath:
    """Plan a collision-free joint path from ``q_start`` to ``q_goal`` (rad).

    ``planner``: ``"ompl"``, ``"rrtconnect"`` or ``"auto"`` (OMPL when installed). The returned
    path is simplified (shortcut) and every segment of it is valid at ``resolution_rad``.
    """
    lower = finite_array("lower", lower, (None,))
    upper = finite_array("upper", upper, (len(lower),))
    q_start = finite_array("q_start", q_start, (len(lower),))
    q_goal = finite_array("q_goal", q_goal, (len(lower),))
    if not (resolution_rad > 0 and timeout_s > 0):
        raise ValueError("plan_approach: resolution and timeout must be positive")
    checker = _Checker(is_valid, lower, upper, resolution_rad)
    for name, q in (("q_start", q_start), ("q_goal", q_goal)):
        if np.any(q < lower) or np.any(q > upper):
            raise ValueError(f"{name}: outside the joint limits")
        if not checker.state(q):
            raise ValueError(f"{name}: in collision")
    if planner == "auto":
        planner = "ompl" if ompl_available() else "rrtconnect"
    t0 = time.perf_counter()
    if checker.motion(q_start, q_goal):
        wp = np.array([q_start, q_goal])
    elif planner == "ompl":
        wp = _plan_ompl(q_start, q_goal, checker, timeout_s, seed)
    elif planner == "rrtconnect":
        rng = np.random.default_rng(seed)
        wp = _rrt_connect(q_start, q_goal, checker, timeout_s, rng)
        wp = _shortcut(wp, checker, rng, iterations=60)
    else:
        raise ValueError(f"planner: unknown {planner!r} (ompl, rrtconnect, auto)")
    dt = time.perf_counter() - t0
    log.info("approach: %s, %d waypoints, %.3f s, %d checks", planner, len(wp), dt, checker.n)
    return ApproachPath(np.asarray(wp, dtype=np.float64), planner, dt, checker.n)


# -- OMPL ---------------------------------------------------------------------------------


def _plan_ompl(q_start: np.ndarray, q_goal: np.ndarray, checker: _Checker, timeout_s: float, seed: int) -> np.ndarray:
    from ompl import base as ob
    from ompl import geometric as og
    from ompl import util as ou

    ou.setLogLevel(ou.LogLevel.LOG_ERROR)
    if not _OMPL_SEEDED:
        # OMPL's generator is process-wide and takes a seed only before its first number: the
        # first call seeds it (deterministic per process, not per call)
        ou.RNG.setSeed(int(seed) + 1)
        _OMPL_SEEDED.append(True)
    dof = len(q_start)
    space = ob.RealVectorStateSpace(dof)
    bounds = ob.RealVectorBounds(dof)
    for i in range(dof):
        bounds.setLow(i, float(checker.lower[i]))
        bounds.setHigh(i, float(checker.upper[i]))
    space.setBounds(bounds)
    # OMPL checks motions at a fraction of the space's extent; match our joint resolution
    space.setLongestValidSegmentFraction(checker.resolution / space.getMaximumExtent())
    ss = og.SimpleSetup(space)
    buf = np.empty(dof)

    def valid(state: object) -> bool:
        for i in range(dof):
            buf[i] = state[i]  # type: ignore[index]
        return checker.state(buf.copy())

    ss.setStateValidityChecker(valid)
    start, goal = space.allocState(), space.allocState()
    for i in range(dof):
        start[i] = float(q_start[i])
        goal[i] = float(q_goal[i])
    ss.setStartAndGoalStates(start, goal)
    ss.setPlanner(og.RRTConnect(ss.getSpaceInformation()))
    status = ss.solve(timeout_s)
    if not ss.haveExactSolutionPath():
        raise PlanningFailed(f"ompl RRTConnect: {status} within {timeout_s} s")
    ss.simplifySolution(min(0.1, timeout_s))  # a short budget, comparable to our 60 shortcut tries
    path = ss.getSolutionPath()
    wp = np.array([[path.getState(k)[i] for i in range(dof)] for k in range(path.getStateCount())])
    # our own motion check at our resolution: never hand back a path we have not verified
    if not all(checker.motion(a, b) for a, b in zip(wp[:-1], wp[1:], strict=True)):
        raise PlanningFailed("ompl: simplified path failed the motion check")
    return wp


# -- our RRT-Connect ----------------------------------------------------------------------


class _Tree:
    def __init__(self, root: np.ndarray, cap: int = 4096):
        self.q = np.empty((cap, len(root)))
        self.parent = np.empty(cap, dtype=np.int64)
        self.q[0], self.parent[0], self.n = root, -1, 1

    def add(self, q: np.ndarray, parent: int) -> int:
        if self.n == len(self.q):
            self.q = np.vstack([self.q, np.empty_like(self.q)])
            self.parent = np.concatenate([self.parent, np.empty_like(self.parent)])
        self.q[self.n], self.parent[self.n] = q, parent
        self.n += 1
        return self.n - 1

    def nearest(self, q: np.ndarray) -> int:
        return int(np.argmin(np.sum((self.q[: self.n] - q) ** 2, axis=1)))

    def branch(self, i: int) -> list[np.ndarray]:
        out = []
        while i >= 0:
            out.append(self.q[i].copy())
            i = int(self.parent[i])
        return out


def _extend(tree: _Tree, q: np.ndarray, step: float, checker: _Checker) -> tuple[str, int]:
    i = tree.nearest(q)
    d = q - tree.q[i]
    dist = float(np.linalg.norm(d))
    q_new = q if dist <= step else tree.q[i] + d * (step / dist)
    if checker.motion(tree.q[i], q_new):
        j = tree.add(q_new, i)
        return ("reached" if dist <= step else "advanced"), j
    return "trapped", -1


def _connect(tree: _Tree, q: np.ndarray, step: float, checker: _Checker) -> tuple[str, int]:
    while True:
        status, j = _extend(tree, q, step, checker)
        if status != "advanced":
            return status, j


def _rrt_connect(
    q_start: np.ndarray, q_goal: np.ndarray, checker: _Checker, timeout_s: float, rng: np.random.Generator
) -> np.ndarray:
    a, b = _Tree(q_start), _Tree(q_goal)
    step = max(0.1, 10 * checker.resolution)
    t_end = time.perf_counter() + timeout_s
    a_is_start = True
    while time.perf_counter() < t_end:
        q_rand = rng.uniform(checker.lower, checker.upper)
        status, j = _extend(a, q_rand, step, checker)
        if status != "trapped":
            status2, k = _connect(b, a.q[j], step, checker)
            if status2 == "reached":
                pa, pb = a.branch(j), b.branch(k)
                path = pa[::-1] + pb[1:]
                if not a_is_start:
                    path = path[::-1]
                return np.array(path)
        a, b = b, a
        a_is_start = not a_is_start
    raise PlanningFailed(f"rrtconnect: no path within {timeout_s} s")


def _shortcut(wp: np.ndarray, checker: _Checker, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Random shortcutting: join two random points of the path when the straight motion is valid."""
    path = [w for w in wp]
    for _ in range(iterations):
        if len(path) < 3:
            break
        i, j = sorted(rng.choice(len(path), 2, replace=False))
        if j - i < 2:
            continue
        if checker.motion(path[i], path[j]):
            path = path[: i + 1] + path[j:]
    return np.array(path)
