"""Every link's pose from joint angles, for ``/tf``: what a live view and a run log draw the arm with.

``LinkFrames.from_chain(chain)`` finds, with pinocchio's URDF parser, every link between the
chain's base and tip (moving links and the links fixed to them, e.g. ``flange``), and
``frames(q)`` returns their poses as ``FramePose(base_link, link, T_base_link)`` from one compiled
``Chain.fk_all`` call, plus the chain's tool frame (``tool_frame``, ``T_base_tool = Chain.fk(q)``)
and, when given, the base link's pose in ``world``. All frames hang directly from the base link
(a flat tree), so ``T_base_link`` can be read off ``/tf`` without composing transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from machaon._validate import transform
from machaon.robot.topics import FramePose


@dataclass(frozen=True)
class _Link:
    name: str
    row: int  # row of Chain.fk_all it hangs from; -1: fixed to the base link
    T_joint_link: np.ndarray


class LinkFrames:
    """Link poses of a ``machaon.kinematics.Chain`` (module docstring); build with ``from_chain``."""

    def __init__(self, chain: object, links: tuple[_Link, ...], tool_frame: str | None,
                 T_world_base: np.ndarray | None) -> None:
        self.chain = chain
        self.base_link = str(chain.base_link)
        self._links = links
        self.tool_frame = tool_frame
        self.T_world_base = None if T_world_base is None else transform("T_world_base", T_world_base)
        self.link_names = tuple(link.name for link in links)
        self._fk_all = np.zeros((chain.dof + 1, 4, 4))
        self._T_tool = np.zeros((4, 4))

    @classmethod
    def from_chain(cls, chain: object, *, tool_frame: str | None = "tool",
                   T_world_base: np.ndarray | None = None) -> LinkFrames:
        """Links of ``chain`` read from its URDF. ``tool_frame``: the name the chain's tip frame (tool
        centre point) gets on ``/tf`` (None: not published). ``T_world_base``: publish the base link
        under ``world`` too."""
        import pinocchio as pin

        model = pin.buildModelFromUrdf(str(chain.urdf_path))
        rows = {}
        for k, name in enumerate(chain.joint_names):
            rows[model.getJointId(name)] = k
        base = model.frames[model.getFrameId(chain.base_link, pin.FrameType.BODY)]
        T_base_parent = np.linalg.inv(base.placement.homogeneous)
        links = []
        for fr in model.frames:
            if fr.type != pin.FrameType.BODY or fr.name == chain.base_link:
                continue
            T = np.asarray(fr.placement.homogeneous, dtype=np.float64)
            if fr.parentJoint in rows:
                links.append(_Link(fr.name, rows[fr.parentJoint], T.copy()))
            elif fr.parentJoint == base.parentJoint:
                links.append(_Link(fr.name, -1, T_base_parent @ T))
        return cls(chain, tuple(links), tool_frame, T_world_base)

    def frames(self, q: np.ndarray) -> list[FramePose]:
        """``FramePose`` of every link (parent: the base link), the tool, and the base in ``world``.

        ``q`` (dof,) rad or m; NaN or a wrong length raise ``ValueError`` (from the chain).
        """
        fk = self.chain.fk_all(q, self._fk_all)
        base = self.base_link
        out = []
        if self.T_world_base is not None:
            out.append(FramePose("world", base, self.T_world_base))
        for link in self._links:
            T = link.T_joint_link if link.row < 0 else fk[link.row] @ link.T_joint_link
            out.append(FramePose.trusted(base, link.name, T))
        if self.tool_frame is not None:
            out.append(FramePose.trusted(base, self.tool_frame, self.chain.fk(q, self._T_tool).copy()))
        return out


class TreeFrames:
    """Link frames of a tree of chains sharing one base and one joint vector (e.g. two legs from the
    pelvis): ``parts`` pairs each ``LinkFrames`` with the indices of its joints in ``q``."""

    def __init__(self, parts: list[tuple[LinkFrames, tuple[int, ...]]]) -> None:
        if not parts or len({lf.base_link for lf, _ in parts}) != 1:
            raise ValueError("parts: at least one chain, all from the same base link")
        self._parts = [(lf, np.asarray(idx, dtype=np.intp)) for lf, idx in parts]
        self.base_link = parts[0][0].base_link
        self.link_names = tuple(n for lf, _ in parts for n in lf.link_names)

    def frames(self, q: np.ndarray) -> list[FramePose]:
        q = np.asarray(q, dtype=np.float64)
        return [f for lf, idx in self._parts for f in lf.frames(q[idx])]
