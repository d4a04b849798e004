"""Named simulation scenarios: the scene around the arm and the planned tool path it follows.

A scenario builds its extra scene objects into an ``ArmSim`` and returns a ``TrajectorySequence``
of ``CartesianTrajectory`` segments (base frame, starting at the current tool pose) or ``None``
to hold still. All share the operating-room scene (floor, operating table, bone phantom, a
tracker marker plate on the bone and one on the forearm) built by ``build_or_scene``.

Trajectory files (``load_trajectory``) are JSON, meant for people, so angles are in degrees::

    {"kind": "cartesian", "v_max_m_s": 0.05, "a_max_m_s2": 0.2,
     "waypoints": [{"xyz_m": [0.5, 0.0, 0.4], "rpy_deg": [180, 0, 0]}, ...]}   # rpy optional
    {"kind": "joint", "v_max_deg_s": 10, "a_max_deg_s2": 60, "waypoints_deg": [[...], ...]}

Cartesian waypoints are tool (TCP) poses in the base frame; a missing ``rpy_deg`` keeps the
orientation of the previous waypoint. Bad files raise ``ScenarioError``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from machaon.control.trajectory import CartesianTrajectory, JointTrajectory, TrajectorySequence
from machaon.errors import SimError
from machaon.sim.arm import ArmSim

__all__ = [
    "SCENARIOS",
    "Scenario",
    "ScenarioError",
    "build_or_scene",
    "load_trajectory",
    "aruco_image",
]


class ScenarioError(SimError, ValueError):
    """Unknown scenario, or a trajectory file that cannot be used."""


def aruco_image(marker_id: int, pixels: int = 200, border: int = 40) -> np.ndarray:
    """An ArUco DICT_4X4_50 marker image (uint8, white margin) for tracker plates."""
    import cv2

    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    img = cv2.aruco.generateImageMarker(d, int(marker_id), pixels)
    return cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT, value=255)


def build_or_scene(sim: ArmSim) -> None:
    """Floor, operating table, primitive bone phantom, tracker plates on the bone and the forearm."""
    sc = sim.scene
    sc.add_floor()
    sc.add_operating_table()
    sc.add_bone_phantom()
    T_bone_plate = np.eye(4)
    T_bone_plate[:3, 3] = (0.12, 0.0, 0.05)  # on a post near the bone's end, facing up
    sc.add_marker_plate("bone_tracker", aruco_image(3), 0.06, sc.pose("bone") @ T_bone_plate)
    T_link_plate = np.eye(4)
    T_link_plate[:3, :3] = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    T_link_plate[:3, 3] = (0.045, 0.0, 0.08)
    sc.add_marker_plate("arm_tracker", aruco_image(5), 0.05, T_link_plate, parent="arm", parent_link="forearm_link")


class _Pause:
    """Stay at pose ``T`` for ``duration`` s (a segment for ``TrajectorySequence``)."""

    def __init__(self, T: np.ndarray, duration: float) -> None:
        self.T = np.array(T, dtype=np.float64)
        self.duration = float(duration)
        self.t0 = 0.0

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.T.copy(), np.zeros(6), np.zeros(6)


class _EndSafe:
    """A ``CartesianTrajectory`` whose last instants cannot raise.

    Within a few microseconds of its end the minimum-jerk profile can round ``s`` to one ulp above
    1, which SciPy's ``Slerp`` rejects with ``ValueError``; inside a ``TrajectoryTracker`` that
    would trip a protective stop. Here such a sample returns the end pose at rest instead.
    """

    def __init__(self, inner: CartesianTrajectory) -> None:
        self.inner = inner

    @property
    def t0(self) -> float:
        return self.inner.t0

    @t0.setter
    def t0(self, value: float) -> None:
        self.inner.t0 = value

    @property
    def duration(self) -> float:
        return self.inner.duration

    @property
    def t_end(self) -> float:
        return self.inner.t_end

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return self.inner.sample(t)
        except ValueError:
            return self.inner.sample(self.inner.t_end + 1.0)[0], np.zeros(6), np.zeros(6)


def _cart(T0: np.ndarray, T1: np.ndarray, v: float = 0.05, a: float = 0.2) -> _EndSafe:
    return _EndSafe(CartesianTrajectory(T0, T1, v, a, w_max=0.5, alpha_max=2.0))


def _offset(T: np.ndarray, dxyz: tuple[float, float, float]) -> np.ndarray:
    out = T.copy()
    out[:3, 3] += dxyz
    return out


def _hold(sim: ArmSim, T0: np.ndarray) -> TrajectorySequence | None:
    return None


def _square(sim: ArmSim, T0: np.ndarray) -> TrajectorySequence:
    s = 0.06
    corners = [T0, _offset(T0, (s, 0, 0)), _offset(T0, (s, s, 0)), _offset(T0, (0, s, 0)), T0]
    up = _offset(T0, (0, 0, 0.04))
    segs = [_cart(T0, up)]
    prev = up
    for c in corners[1:]:
        nxt = _offset(c, (0, 0, 0.04))
        segs.append(_cart(prev, nxt))
        prev = nxt
    segs.append(_cart(prev, T0))
    return TrajectorySequence(segs)


def _step(sim: ArmSim, T0: np.ndarray) -> TrajectorySequence:
    # 5 cm moves along y and back, each a fast minimum-jerk segment with a pause at each end.
    far = _offset(T0, (0.0, 0.05, 0.0))
    segs = []
    for _ in range(3):
        segs += [_cart(T0, far, 0.2, 2.0), _Pause(far, 1.0), _cart(far, T0, 0.2, 2.0), _Pause(T0, 1.0)]
    return TrajectorySequence(segs)


def _wall(sim: ArmSim, T0: np.ndarray) -> TrajectorySequence:
    # A rigid block 2 cm below the tool tip; the target goes 2 cm into it, so the tool presses on
    # it with stiffness * 2 cm, then lifts off again.
    top = T0[2, 3] - 0.02
    block = np.eye(4)
    block[:3, 3] = (T0[0, 3], T0[1, 3], top - 0.04)
    sim.scene.add_box("wall_block", (0.12, 0.12, 0.08), sim.T_world_base @ block, rgba=(0.3, 0.6, 0.3, 1.0))
    into = _offset(T0, (0.0, 0.0, -0.04))
    return TrajectorySequence([_cart(T0, into, 0.02, 0.1), _Pause(into, 1.5), _cart(into, T0, 0.02, 0.1)])


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    build: Callable[[ArmSim, np.ndarray], TrajectorySequence | None]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("hold", "hold the home pose under Cartesian impedance", _hold),
        Scenario("square", "trace a 6 cm square 4 cm above the home pose, then return", _square),
        Scenario("step", "5 cm fast moves sideways and back (step response)", _step),
        Scenario("wall", "press 2 cm into a rigid block below the tool, then lift off", _wall),
    )
}


def load_trajectory(path: str | os.PathLike[str], T_start: np.ndarray, q_start: np.ndarray) -> TrajectorySequence:
    """Read a trajectory file (module doc) into a sequence starting from the current pose."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{path}: cannot read trajectory ({exc})") from None
    kind = spec.get("kind") if isinstance(spec, dict) else None
    try:
        if kind == "cartesian":
            v = float(spec.get("v_max_m_s", 0.05))
            a = float(spec.get("a_max_m_s2", 0.2))
            poses = [np.array(T_start, dtype=np.float64)]
            for wp in spec["waypoints"]:
                T = poses[-1].copy()
                T[:3, 3] = np.asarray(wp["xyz_m"], dtype=np.float64).reshape(3)
                if "rpy_deg" in wp:
                    rpy = np.radians(np.asarray(wp["rpy_deg"], dtype=np.float64).reshape(3))
                    T[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix()
                if not np.isfinite(T).all():
                    raise ValueError("waypoint is not finite")
                poses.append(T)
            if len(poses) < 2:
                raise ValueError("no waypoints")
            return TrajectorySequence([_cart(A, B, v, a) for A, B in zip(poses[:-1], poses[1:], strict=True)])
        if kind == "joint":
            v = math.radians(float(spec.get("v_max_deg_s", 10.0)))
            a = math.radians(float(spec.get("a_max_deg_s2", 60.0)))
            qs = [np.asarray(q_start, dtype=np.float64)]
            qs += [np.radians(np.asarray(w, dtype=np.float64)) for w in spec["waypoints_deg"]]
            if len(qs) < 2 or any(q.shape != qs[0].shape or not np.isfinite(q).all() for q in qs):
                raise ValueError(f"waypoints_deg must be finite lists of {len(qs[0])} angles")
            return TrajectorySequence([JointTrajectory(A, B, v, a) for A, B in zip(qs[:-1], qs[1:], strict=True)])
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: bad {kind} trajectory ({exc})") from None
    raise ScenarioError(f"{path}: 'kind' must be 'cartesian' or 'joint', got {kind!r}")
