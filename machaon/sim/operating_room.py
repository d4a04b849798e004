"""The simulated operating room of a navigated procedure: arm, table, moving patient, marker plates, camera.

``OperatingRoom`` builds an ``ArmSim`` and, in its scene, a floor, an operating table, the
patient (a torso block and a bone phantom mesh), a marker plate fixed on the patient (the
tracker's reference), a marker plate on a link of the arm (the tool's) and a tracking camera
that renders what it sees. What stands where is data, an :class:`OperatingRoomLayout` the
application computes (``machaon.ortho`` does, from its anatomy); the room only puts it into
PyBullet, so that PyBullet stays inside ``machaon.sim``.

The patient moves: ``patient_pose(t)`` gives its true pose at sim time ``t`` and, before every
physics step, the bone, the torso and the reference plate follow its translation (breathing,
bumps; their orientation stays that of the layout), and the tool plate follows its link.

World frame = the arm's base frame; poses ``T_a_b`` 4x4 in metres. Bad layouts (NaN, wrong
shapes, non-rigid transforms) raise ``ValueError`` naming the field; the arm is closed again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pybullet as p

from machaon._validate import finite_array, transform
from machaon.kinematics.so3 import pq_from_transform, quat_from_matrix
from machaon.robot.description import RobotDescription
from machaon.sim.arm import ArmSim
from machaon.sim.scene import Camera

__all__ = ["OperatingRoom", "OperatingRoomLayout"]


@dataclass(frozen=True)
class OperatingRoomLayout:
    """Where everything stands (world frame = the arm's base frame; m, 4x4 poses).

    ``T_world_patient`` is the patient's rest pose: the frame of ``bone_mesh`` (vertices (N, 3) m,
    faces (M, 3) int), e.g. a CT image frame. The torso (a box of ``torso_size``) and the
    reference plate sit at ``T_patient_torso``/``T_patient_reference`` on the patient; the tool
    plate at ``T_link_toolplate`` on the arm's link ``tool_plate_link``. Plates are square, of
    edge ``*_size`` (m), and show ``*_image`` (uint8 grey or RGB). The camera has intrinsics
    ``camera_K`` (3x3, px), ``camera_size`` (width, height px) and pose ``T_world_camera``
    (OpenCV convention). ``view_target`` is where the GUI's viewpoint looks.
    """

    T_world_patient: np.ndarray
    bone_mesh: tuple[np.ndarray, np.ndarray]
    T_world_table: np.ndarray
    table_size: tuple[float, float, float]
    torso_size: tuple[float, float, float]
    T_patient_torso: np.ndarray
    reference_image: np.ndarray
    reference_size: float
    T_patient_reference: np.ndarray
    tool_plate_image: np.ndarray
    tool_plate_size: float
    tool_plate_link: str
    T_link_toolplate: np.ndarray
    camera_K: np.ndarray
    camera_size: tuple[int, int]
    T_world_camera: np.ndarray
    view_target: np.ndarray


class OperatingRoom:
    """An ``ArmSim`` furnished as an operating room (module doc); a context manager that closes it.

    ``desc``/``tool``/``q0``/``dt``/``gui`` are those of the ``ArmSim`` (``realtime`` off);
    ``patient_pose(t)`` the patient's true world pose at sim time ``t`` (4x4). ``sim`` is the arm,
    ``camera`` the tracking camera.
    """

    def __init__(
        self,
        desc: RobotDescription,
        layout: OperatingRoomLayout,
        patient_pose: Callable[[float], np.ndarray],
        *,
        tool: str | None,
        q0: np.ndarray,
        dt: float,
        gui: bool = False,
    ) -> None:
        self.layout = layout
        self.patient_pose = patient_pose
        self.sim = ArmSim(desc, tool=tool, gui=gui, realtime=False, q0=q0, dt=dt)
        try:
            self._furnish(layout)
        except Exception:
            self.sim.close()
            raise
        self.sim.add_step_hook(self.move_patient)
        if gui:
            cid = self.sim.client
            p.configureDebugVisualizer(p.COV_ENABLE_SHADOWS, 0, physicsClientId=cid)
            p.configureDebugVisualizer(p.COV_ENABLE_GUI, 0, physicsClientId=cid)
            p.resetDebugVisualizerCamera(0.9, 50.0, -35.0, np.asarray(layout.view_target, float).tolist(),
                                         physicsClientId=cid)

    def _furnish(self, L: OperatingRoomLayout) -> None:
        T_wp = transform("T_world_patient", L.T_world_patient)
        T_pt = transform("T_patient_torso", L.T_patient_torso)
        T_pr = transform("T_patient_reference", L.T_patient_reference)
        T_lt = transform("T_link_toolplate", L.T_link_toolplate)
        sc = self.sim.scene
        sc.add_floor()
        sc.add_operating_table(T_world_table=L.T_world_table, size=L.table_size)
        sc.add_box("torso", L.torso_size, T_wp @ T_pt, rgba=(0.85, 0.7, 0.62, 1.0))
        V, F = L.bone_mesh
        sc.add_bone_phantom((np.asarray(V), np.asarray(F, dtype=np.int32)), T_wp, name="spine")
        sc.add_marker_plate("reference", L.reference_image, L.reference_size, T_wp @ T_pr)
        # the tool plate follows its link; it is moved by this room's own step hook with PyBullet's
        # quaternion maths, before each step, as the patient is
        sc.add_marker_plate("tool_plate", L.tool_plate_image, L.tool_plate_size,
                            self.sim.T_world_link(L.tool_plate_link) @ T_lt)
        cid, arm = self.sim.client, self.sim.body
        for link in range(-1, p.getNumJoints(arm, physicsClientId=cid)):
            p.setCollisionFilterPair(sc.objects["tool_plate"], arm, -1, link, 0, physicsClientId=cid)
        self._cid = cid
        self._objects = sc.objects
        self._plate_link = self.sim.link_index(L.tool_plate_link)
        self._plate_pq = pq_from_transform(T_lt)
        self._patient_q = quat_from_matrix(T_wp[:3, :3])
        self._ref_pq = pq_from_transform(T_pr)
        self._torso_pq = pq_from_transform(T_pt)
        K = finite_array("camera_K", L.camera_K, (3, 3))
        width, height = L.camera_size
        self.camera = Camera(K, width, height, L.T_world_camera)

    def move_patient(self) -> None:
        """Step hook: the patient's bodies follow ``patient_pose``; the tool plate follows its link."""
        cid = self._cid
        objs = self._objects
        pos = self.patient_pose(self.sim.t)[:3, 3].tolist()
        p.resetBasePositionAndOrientation(objs["spine"], pos, self._patient_q, physicsClientId=cid)
        for name, (p_rel, q_rel) in (("reference", self._ref_pq), ("torso", self._torso_pq)):
            pw, qw = p.multiplyTransforms(pos, self._patient_q, p_rel, q_rel)
            p.resetBasePositionAndOrientation(objs[name], pw, qw, physicsClientId=cid)
        st = p.getLinkState(self.sim.body, self._plate_link, computeForwardKinematics=True, physicsClientId=cid)
        pw, qw = p.multiplyTransforms(st[4], st[5], *self._plate_pq)
        p.resetBasePositionAndOrientation(objs["tool_plate"], pw, qw, physicsClientId=cid)

    def render(self) -> np.ndarray:
        """What the tracking camera sees now: (height, width, 3) uint8 RGB (the patient synced first)."""
        self.move_patient()
        return self.camera.render(self.sim.client)

    def draw_line(self, a_world: np.ndarray, b_world: np.ndarray, rgb: tuple[float, float, float] = (0.9, 0.1, 0.1),
                  width: float = 2.0) -> None:
        """A line from ``a_world`` to ``b_world`` (m) in the GUI window (e.g. a planned trajectory)."""
        a = finite_array("a_world", a_world, (3,))
        b = finite_array("b_world", b_world, (3,))
        p.addUserDebugLine(a.tolist(), b.tolist(), list(rgb), width, physicsClientId=self.sim.client)

    def close(self) -> None:
        """Close the arm's simulation (idempotent)."""
        self.sim.close()

    def __enter__(self) -> OperatingRoom:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
