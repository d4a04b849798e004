"""GUI overlays drawn with PyBullet debug items: target frame, planned path, tool force, workspace, status.

Items are created once and then replaced in place (``replaceItemUniqueId``), so redrawing every
frame does not pile up debug items. Poses are base-frame 4x4 transforms; the overlay converts them
to the world with ``T_world_base``. Only meaningful in a GUI session (DIRECT has no debug drawing).
"""

from __future__ import annotations

import numpy as np
import pybullet as p

__all__ = ["Overlays"]

_AXIS_COLORS = ((1.0, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.3, 1.0))


class Overlays:
    """Debug drawing in PyBullet client ``client`` for an arm whose base is at ``T_world_base``."""

    def __init__(self, client: int, T_world_base: np.ndarray) -> None:
        self.client = client
        self.T_wb = np.array(T_world_base, dtype=np.float64)
        self._frame: list[int] = []
        self._force = -1
        self._status: list[int] = []
        self._path: list[int] = []

    def _w(self, p_base: np.ndarray) -> list[float]:
        return (self.T_wb[:3, :3] @ np.asarray(p_base, dtype=np.float64) + self.T_wb[:3, 3]).tolist()

    def _line(self, a: np.ndarray, b: np.ndarray, color, width: float, replace: int = -1) -> int:
        return p.addUserDebugLine(
            self._w(a), self._w(b), lineColorRGB=color, lineWidth=width,
            replaceItemUniqueId=replace, physicsClientId=self.client,
        )

    def target_frame(self, T_base_target: np.ndarray, length: float = 0.06) -> None:
        """Three axes (x red, y green, z blue) at the target pose."""
        o = T_base_target[:3, 3]
        ids = []
        for k in range(3):
            rep = self._frame[k] if len(self._frame) == 3 else -1
            ids.append(self._line(o, o + length * T_base_target[:3, k], _AXIS_COLORS[k], 3.0, rep))
        self._frame = ids

    def planned_path(self, points_base: np.ndarray, color=(1.0, 0.6, 0.0)) -> None:
        """The planned path as a dotted line through ``points_base`` (N, 3); replaces the previous one.

        One ``addUserDebugPoints`` call: each debug item costs a round trip to the GUI thread.
        """
        for i in self._path:
            p.removeUserDebugItem(i, physicsClientId=self.client)
        pts = np.asarray(points_base, dtype=np.float64)
        if len(pts) >= 2:  # densify to about 2 mm between dots
            seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            s = np.concatenate([[0.0], np.cumsum(seg)])
            if s[-1] > 0:
                u = np.linspace(0.0, s[-1], int(min(2000, max(2, s[-1] / 0.002))))
                pts = np.stack([np.interp(u, s, pts[:, k]) for k in range(3)], axis=1)
        world = [self._w(x) for x in pts]
        self._path = [p.addUserDebugPoints(world, [list(color)] * len(world), pointSize=3.0,
                                           physicsClientId=self.client)]

    def tool_force(self, p_tcp_base: np.ndarray, f_base: np.ndarray, m_per_n: float = 0.004) -> None:
        """An arrow from the tool centre point along the measured force (4 mm per N by default)."""
        end = np.asarray(p_tcp_base) + m_per_n * np.asarray(f_base)
        self._force = self._line(p_tcp_base, end, (1.0, 0.0, 1.0), 4.0, self._force)

    def workspace_box(self, lo: np.ndarray, hi: np.ndarray, color=(0.2, 0.7, 0.9)) -> None:
        """The 12 edges of the workspace box (drawn once)."""
        c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        for i in range(8):
            for j in range(i + 1, 8):
                if np.count_nonzero(c[i] != c[j]) == 1:
                    self._line(c[i], c[j], color, 1.0)

    def status(self, text: str, p_world: tuple[float, float, float] = (0.32, -0.68, 1.2),
               line_step: float = 0.09) -> None:
        """Status text floating above the scene; each newline-separated line ``line_step`` (m) below the last.

        Keep lines short (about 45 characters): the window's side panels cover the 3D view's edges.
        """
        lines = text.split("\n")
        for i, line in enumerate(lines):
            at = [p_world[0], p_world[1], p_world[2] - i * line_step]
            old = self._status[i] if i < len(self._status) else -1
            uid = p.addUserDebugText(
                line, at, textColorRGB=(0.05, 0.05, 0.05), textSize=1.3,
                replaceItemUniqueId=old, physicsClientId=self.client,
            )
            if i < len(self._status):
                self._status[i] = uid
            else:
                self._status.append(uid)
        for uid in self._status[len(lines):]:
            p.removeUserDebugItem(uid, physicsClientId=self.client)
        del self._status[len(lines):]
