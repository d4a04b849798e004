"""What a procedure run tells 3D Slicer and Foxglove, and where it takes tracking from (``ortho run``).

``ProcedureLive`` is handed to ``run_procedure``; the procedure calls it at five places:

- ``on_plan(t, anatomy, plan, T_world_image)``: the vertebra surfaces (POLYDATA ``<LEVEL>`` and
  ``/scene`` meshes, each in its level's frame) and the planned screws (POINT ``<SCREW>`` with
  ``entry``/``target``, and ``/scene`` lines), once;
- ``on_phase(t, phase, screw=None)``: STRING ``Status`` and a ``/log`` line;
- ``on_registered(t, T_ref_image, anatomy)``: ``<LEVEL>ToReference`` for every level;
- ``on_world(t, world)`` then ``on_measured(t, world, m_ref, m_tool, navigator)``: every camera
  frame, first the true scene frames on ``/tf`` (``camera``, ``reference_plate``, ``tool_plate``, each
  vertebra, in ``world``), then what the tracker measured: the raw tracking (``ReferenceToTracker``,
  ``ToolToTracker``), the navigated tool tip in the reference frame (``ToolToReference``) and the
  robot base (``RobotBaseToReference``, once calibrated);
- ``tracking(t, names)``: with ``--tracker igtl:``, the camera measurements come from the
  OpenIGTLink client instead of the simulated camera.

All poses in metres inside; the OpenIGTLink server converts to millimetres on the wire. Nothing here
blocks on a client: the servers queue for their publisher threads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from machaon.bridges.igtl import PlannedScrew
from machaon.robot.topics import LOG_INFO, LOG_WARNING, Cylinder, FramePose, Mesh, Polyline, SceneEntity

_log = logging.getLogger(__name__)

# devices a PLUS-like tracker server sends (``--tracker igtl:``)
TRACKER_DEVICES = {"reference": "ReferenceToTracker", "tool": "ToolToTracker"}


@dataclass(frozen=True)
class ExternalMeasurement:
    """A pose from the external tracker, shaped like the simulated tracker's measurement."""

    T_cam_plate: np.ndarray
    t: float


class ProcedureLive:
    """The live outputs and the tracker input of one procedure run (module docstring). With no
    argument it does nothing (a run without bridges).

    ``observers``: an observer (``Observers`` of a Foxglove live view and/or a run log) or None;
    ``igtl``: an ``IgtlServer`` or None; ``tracker``: an ``IgtlTrackerClient`` or None;
    ``realtime``: pace the simulation at real time (a viewer cannot follow a faster run);
    ``tracker_wait_s``: how long a camera frame waits for fresh tracker poses; ``mesh_spacing_m``:
    resolution of the vertebra surfaces sent to the viewers.
    """

    def __init__(self, *, observers: object | None = None, igtl: object | None = None,
                 tracker: object | None = None, realtime: bool = False, tracker_wait_s: float = 0.04,
                 mesh_spacing_m: float = 1.5e-3) -> None:
        self.realtime = bool(realtime)
        self.observers = observers
        self.igtl = igtl
        self.tracker = tracker
        self.tracker_wait_s = tracker_wait_s
        self.mesh_spacing_m = mesh_spacing_m
        self._levels: tuple[str, ...] = ()
        self._T_image_level: dict[str, np.ndarray] = {}
        self.frames_sent = 0
        self.last_sent: dict[str, np.ndarray] = {}  # the latest pose sent per OpenIGTLink device (m)

    @property
    def active(self) -> bool:
        return self.observers is not None or self.igtl is not None

    def _obs(self, method: str, *args: object) -> None:
        fn = getattr(self.observers, method, None) if self.observers is not None else None
        if fn is not None:
            fn(*args)

    # -- procedure hooks -------------------------------------------------------------------------

    def attach(self, world: object, tool_frame: str = "drill_tip") -> None:
        """Hook into a procedure's world: the observers and the OpenIGTLink server become its control
        loop's recorder (the observers learn the arm's joints and links; the server turns supervisor
        stops into STATUS), and its simulation is paced at real time when ``realtime``."""
        from machaon.robot.observers import Observers

        if self.observers is not None:
            from machaon.robot.link_frames import LinkFrames

            frames = LinkFrames.from_chain(world.chain, tool_frame=tool_frame)
            for obs in getattr(self.observers, "observers", [self.observers]):
                describe = getattr(obs, "describe_robot", None)
                if describe is not None:
                    describe(world.sim.joint_names, frames)
            bit = float(world.cfg.bit_extension_m)
            T_bit = np.eye(4)
            T_bit[2, 3] = -0.5 * bit  # from the guide's end to the tip, along the tip frame's z
            drill = SceneEntity("drill", tool_frame, (Cylinder(T_bit, 0.003, bit, (0.75, 0.75, 0.8, 1.0)),),
                                metadata={"what": "drill bit (tip at the frame origin)"})
            self._obs("record_scene", world.sim.t, [drill])
        recorders = [o for o in (self.observers, self.igtl) if o is not None]
        if recorders:  # supervisor transitions reach Slicer as STATUS, cycles reach Foxglove
            world.loop.recorder = Observers(*recorders)
        if self.realtime:
            world.sim.clock.realtime = True

    def on_plan(self, t: float, anatomy: object, plan: object, T_world_image: np.ndarray) -> None:
        """The anatomy and the plan, once: meshes and screws in each level's own frame."""
        self._levels = tuple(anatomy.levels)
        self._T_image_level = {lv: np.asarray(anatomy.level_frame(lv), dtype=np.float64) for lv in self._levels}
        if not self.active:
            return
        meshes = {}
        level_meshes = anatomy.meshes(self.mesh_spacing_m)  # image frame; a phantom's or real bone surfaces
        for lv in self._levels:
            m = level_meshes[lv]
            V_img = np.asarray(m.vertices, dtype=np.float64)
            T_level_image = np.linalg.inv(self._T_image_level[lv])
            V_lv = V_img @ T_level_image[:3, :3].T + T_level_image[:3, 3]
            meshes[lv] = (V_lv, np.asarray(m.faces, dtype=np.int64))
        screws = []
        for s in plan:
            T_level_image = np.linalg.inv(self._T_image_level[s.level])
            e = T_level_image[:3, :3] @ s.entry + T_level_image[:3, 3]
            g = T_level_image[:3, :3] @ s.target + T_level_image[:3, 3]
            screws.append(PlannedScrew(s.name, s.level, e, g))
        if self.igtl is not None:
            self.igtl.send_anatomy(meshes)
            self.igtl.send_plan(screws)
        entities = [SceneEntity(lv, lv, (Mesh(V, F),), metadata={"what": f"vertebra {lv}"})
                    for lv, (V, F) in meshes.items()]
        entities += [SceneEntity(s.name, s.level, (Polyline(np.vstack([s.entry_m, s.target_m]), thickness_m=0.002),),
                                 metadata={"what": "planned screw (entry -> target)"}) for s in screws]
        self._obs("record_scene", t, entities)
        self.on_frames(t, [FramePose("world", "image", T_world_image)]
                       + [FramePose("world", lv, T_world_image @ self._T_image_level[lv]) for lv in self._levels])

    def on_phase(self, t: float, phase: str, screw: str | None = None) -> None:
        """The procedure's phase (``plan``, ``calibrate``, ``register``, ``approach``, ``drill``, ``done``)."""
        if self.igtl is not None:
            self.igtl.send_status(phase, screw)
        self._obs("record_log", t, phase if not screw else f"{phase} {screw}", LOG_INFO)

    def on_fault(self, t: float, message: str) -> None:
        """The procedure cannot go on (also reported by the supervisor's events when the robot stopped)."""
        if self.igtl is not None:
            self.igtl.send_fault("procedure", message)
        self._obs("record_log", t, message, LOG_WARNING)

    def on_registered(self, t: float, T_ref_image: np.ndarray) -> None:
        """The registration: ``<LEVEL>ToReference`` = ``T_ref_image @ T_image_level``."""
        if self.igtl is not None and self._T_image_level:
            self.igtl.send_registration({lv: T_ref_image @ T for lv, T in self._T_image_level.items()})

    def on_frames(self, t: float, frames: list[FramePose]) -> None:
        self._obs("record_transforms", t, frames)

    def on_world(self, t: float, world: object) -> None:
        """Before a camera frame is measured: where things truly are (``/tf`` in ``world``)."""
        if self.observers is None:
            return
        T_world_patient = world.motion.T_world_patient(t)
        T_world_toolplate = world.sim.T_world_link("drill_guide_mount") @ world.T_mount_toolplate
        pose = FramePose.trusted  # the world's own rigid transforms, every camera frame: not re-checked
        frames = [pose("world", "camera", world.T_world_cam),
                  pose("world", "reference_plate", T_world_patient @ world.T_image_ref),
                  pose("world", "tool_plate", T_world_toolplate)]
        frames += [pose("world", lv, T_world_patient @ self._T_image_level[lv]) for lv in self._levels]
        self.on_frames(t, frames)

    def on_measured(self, t: float, world: object, m_ref: object | None, m_tool: object | None,
                    navigator: object | None) -> None:
        """A measured camera frame for Slicer: raw tracking, the navigated tool tip in the reference frame
        and, once calibrated, the robot base; a plate not seen is not sent."""
        if self.igtl is None:
            return
        self.frames_sent += 1
        T_cam_ref = None if m_ref is None else np.asarray(m_ref.T_cam_plate)
        T_cam_tool = None if m_tool is None else np.asarray(m_tool.T_cam_plate)
        T_ref_tip = T_ref_base = None
        if T_cam_ref is not None:
            T_ref_cam = np.linalg.inv(T_cam_ref)
            if T_cam_tool is not None:
                T_ref_tip = T_ref_cam @ T_cam_tool @ np.linalg.inv(world.T_mount_toolplate) @ world.T_flange_tip
            if navigator is not None:
                T_ref_base = T_ref_cam @ np.linalg.inv(navigator.T_base_cam)
        self.igtl.send_tracking(T_tracker_reference=T_cam_ref, T_tracker_tool=T_cam_tool,
                                T_reference_tool=T_ref_tip, T_reference_robotbase=T_ref_base)
        for dev, T in (("ReferenceToTracker", T_cam_ref), ("ToolToTracker", T_cam_tool), ("ToolToReference", T_ref_tip),
                       ("RobotBaseToReference", T_ref_base)):
            if T is not None:
                self.last_sent[dev] = T

    def tracking(self, t: float) -> tuple[ExternalMeasurement | None, ExternalMeasurement | None]:
        """(reference, tool) from the external tracker: waits up to ``tracker_wait_s`` for new poses; a pose
        not refreshed since the last frame counts as not seen."""
        trk = self.tracker
        trk.wait_update(TRACKER_DEVICES.values(), self.tracker_wait_s)
        out = []
        for name in ("reference", "tool"):
            p = trk.take_fresh(TRACKER_DEVICES[name])
            out.append(None if p is None else ExternalMeasurement(p.T, t))
        return out[0], out[1]
