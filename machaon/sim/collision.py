"""Collision checks between the arm (with its tool) and the scene, for planners.

``CollisionChecker(sim)`` answers "is configuration q in collision?" and "how far is the arm from
each obstacle?" with PyBullet's ``getClosestPoints`` on the sim's own bodies. It poses the arm at
``q`` kinematically for the query and puts the joints back (positions and velocities) afterwards,
so it can be called between control steps; do not call it from another thread while the sim steps.

Distances are in m (negative: penetration depth). Self-collision is checked between arm links
that are not parent and child (adjacent links overlap at their joints by design). Bad input (NaN,
wrong length) raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pybullet as p

from machaon._validate import finite_array

if TYPE_CHECKING:
    from machaon.sim.arm import ArmSim

__all__ = ["ClosestPoint", "CollisionChecker"]


@dataclass(frozen=True)
class ClosestPoint:
    """The closest pair of points between an arm link and another object (world frame, m)."""

    arm_link: str
    other: str
    distance: float
    p_arm_world: np.ndarray
    p_other_world: np.ndarray


class CollisionChecker:
    """Arm-vs-scene and arm self-collision queries on an ``ArmSim`` (see module doc).

    ``obstacles``: scene object names to check against (default: every object in ``sim.scene``
    at query time). ``ignore``: names to skip (e.g. the bone the drill is meant to touch).
    ``self_collision``: also check non-adjacent arm link pairs.
    """

    def __init__(
        self,
        sim: ArmSim,
        obstacles: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
        self_collision: bool = True,
    ) -> None:
        self.sim = sim
        self._obstacles = None if obstacles is None else tuple(obstacles)
        self.ignore = set(ignore)
        self.self_collision = self_collision
        cid, body = sim.client, sim.body
        nj = p.getNumJoints(body, physicsClientId=cid)
        parent = {j: p.getJointInfo(body, j, physicsClientId=cid)[16] for j in range(nj)}
        links = list(range(-1, nj))
        self._static_links = {-1}
        for j in range(nj):  # links joined to the base by fixed joints only
            info = p.getJointInfo(body, j, physicsClientId=cid)
            if info[2] == p.JOINT_FIXED and info[16] in self._static_links:
                self._static_links.add(j)
        # Links rigidly joined (fixed joints) to a neighbour move together: treat them as one group.
        self._pairs = [
            (a, b)
            for i, a in enumerate(links)
            for b in links[i + 1 :]
            if parent.get(b) != a and parent.get(a) != b and not self._same_or_adjacent_rigid(a, b, parent)
        ]

    def _same_or_adjacent_rigid(self, a: int, b: int, parent: dict[int, int]) -> bool:
        """True when a and b are separated only by fixed joints plus at most one movable joint."""
        cid, body = self.sim.client, self.sim.body

        def movable_to_root(link: int) -> list[int]:
            chain = []
            while link != -1:
                chain.append(link)
                link = parent[link]
            return chain

        ca, cb = movable_to_root(a), movable_to_root(b)
        path = set(ca) ^ set(cb)  # links on the path between a and b (excluding the common ancestor)
        moving = [j for j in path if p.getJointInfo(body, j, physicsClientId=cid)[2] != p.JOINT_FIXED]
        return len(moving) <= 1

    def obstacles(self) -> list[str]:
        names = self.sim.scene.objects if self._obstacles is None else self._obstacles
        return [n for n in names if n not in self.ignore]

    def _with_q(self, q: np.ndarray | None, fn):
        sim = self.sim
        if q is None:
            return fn()
        q = finite_array("q", q, (sim.dof,))
        cid, body = sim.client, sim.body
        idx = sim.joint_indices
        saved = p.getJointStates(body, idx, physicsClientId=cid)
        try:
            for k, j in enumerate(idx):
                p.resetJointState(body, j, float(q[k]), 0.0, physicsClientId=cid)
            p.performCollisionDetection(physicsClientId=cid)
            return fn()
        finally:
            for k, j in enumerate(idx):
                p.resetJointState(body, j, saved[k][0], saved[k][1], physicsClientId=cid)

    def closest_points(self, q: np.ndarray | None = None, max_distance: float = 0.1) -> list[ClosestPoint]:
        """Per (arm link, obstacle) the closest pair within ``max_distance`` m, at ``q`` (None: now).

        The cost grows with ``max_distance`` for concave meshes (the bone): keep it to what the
        caller needs. Links fixed to the base are not checked against the scene.
        """

        def query() -> list[ClosestPoint]:
            sim = self.sim
            cid, body = sim.client, sim.body
            best: dict[tuple[int, str], ClosestPoint] = {}
            for name in self.obstacles():
                other = sim.scene.objects[name]
                for c in p.getClosestPoints(body, other, max_distance, physicsClientId=cid):
                    if c[3] in self._static_links:
                        continue  # the base and what is bolted to it cannot move out of the way
                    key = (c[3], name)
                    if key not in best or c[8] < best[key].distance:
                        best[key] = ClosestPoint(
                            sim.link_names[c[3]], name, float(c[8]), np.asarray(c[5]), np.asarray(c[6])
                        )
            if self.self_collision:
                for a, b in self._pairs:
                    for c in p.getClosestPoints(body, body, max_distance, a, b, physicsClientId=cid):
                        key = (a, f"self:{sim.link_names[b]}")
                        if key not in best or c[8] < best[key].distance:
                            best[key] = ClosestPoint(
                                sim.link_names[a], key[1], float(c[8]), np.asarray(c[5]), np.asarray(c[6])
                            )
            return sorted(best.values(), key=lambda cp: cp.distance)

        return self._with_q(q, query)

    def min_distance(self, q: np.ndarray | None = None, max_distance: float = 0.1) -> float:
        """Smallest arm-to-obstacle (or self) distance at ``q`` (m); ``max_distance`` if none closer."""
        pts = self.closest_points(q, max_distance)
        return pts[0].distance if pts else float(max_distance)

    def in_collision(self, q: np.ndarray | None = None, margin: float = 0.0) -> bool:
        """True if any arm link is within ``margin`` m of an obstacle or a non-adjacent arm link at ``q``."""
        if not margin >= 0:
            raise ValueError("margin: must be >= 0")
        return self.min_distance(q, max_distance=max(margin, 1e-4) + 1e-4) <= margin
