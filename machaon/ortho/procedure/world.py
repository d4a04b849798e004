"""The world of one procedure run: the simulated operating room and the robot's software in it.

``ProcedureWorld`` lays the room out from the anatomy (where the patient lies, the table, the
plates, the camera), builds it in ``machaon.sim.operating_room``, and holds the robot's software:
the chain with the drill bit, dynamics, the optical tracker, the supervisor, the joint impedance
controller, the control loop and (once calibrated and registered) the navigator.

World frame = the robot's base frame (the arm stands at the world origin). The image frame of
the phantom is LPS (x left, y posterior, z cranial); the patient lies prone, so image y points
up in the world and image z along the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np

from machaon.kinematics import Chain, Dynamics
from machaon.ortho.anatomy import SpineSegment, sdf_gradient
from machaon.ortho.drilling import DrillBit, ThrustModel
from machaon.ortho.execution import DrillPhysics, Navigator, PatientMotion
from machaon.ortho.live import ProcedureLive
from machaon.ortho.procedure.config import ProcedureConfig, ProcedureError
from machaon.ortho.tracking import CameraModel, MarkerPlate, NoiseModel, Tracker

if TYPE_CHECKING:  # the room is PyBullet's: imported when the world is built, not with this module
    from machaon.sim.operating_room import OperatingRoomLayout

# image (LPS, patient prone) -> world: image x (left) = -world x, image y (posterior) = world z (up),
# image z (cranial) = world y
R_WORLD_IMAGE = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def _look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera pose (z forward, x right, y down) at ``eye`` looking at ``target``."""
    up = np.asarray(up, dtype=np.float64)
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x, y, z])
    T[:3, 3] = eye
    return T


def facing(pos: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """A plate at ``pos`` whose face (+z) points at ``toward``, image upright (+y up in the world)."""
    z = toward - pos
    z = z / np.linalg.norm(z)
    x = np.cross(np.array([0.0, 0.0, 1.0]), z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    T[:3, 3] = pos
    return T


def _square_image(plate: MarkerPlate, px_per_square: int = 64) -> np.ndarray:
    """The plate's board padded (white) to a square, as the scene's square plates show it."""
    img = plate.image(px_per_square)
    h, w = img.shape
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    return cv2.copyMakeBorder(img, top, n - h - top, left, n - w - left, cv2.BORDER_CONSTANT, value=255)


class ProcedureWorld:
    """The simulated operating room and the robot's software, for one procedure run."""

    def __init__(self, cfg: ProcedureConfig, anatomy: SpineSegment, say: Callable[[str], None]) -> None:
        from machaon.control.impedance import JointImpedance
        from machaon.control.supervisor import SafetyConfig, Supervisor
        from machaon.robot.description import load_description
        from machaon.robot.loop import ControlLoop
        from machaon.sim import CollisionChecker
        from machaon.sim.operating_room import OperatingRoom

        self.cfg = cfg
        self.say = say
        self.rng = np.random.default_rng(cfg.seed)
        self.anatomy = anatomy
        desc = load_description("machaon_arm")
        tool = desc.tool("drill_guide")
        self.T_flange_tcp = np.array(tool.T_flange_tcp)
        self.T_tcp_tip = np.eye(4)
        self.T_tcp_tip[2, 3] = cfg.bit_extension_m
        self.T_flange_tip = self.T_flange_tcp @ self.T_tcp_tip
        self.chain_flange = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
        self.chain = self.chain_flange.with_tool(self.T_flange_tip)
        com_tip = np.linalg.solve(self.T_flange_tip, np.append(tool.com_flange, 1.0))[:3]
        self.dyn = Dynamics(self.chain, tool.mass, com_tip)
        self._place_things()
        amp = cfg.breathing_amplitude_m if cfg.breathing else 0.0
        self.motion = PatientMotion(self.T_world_image0, amp, cfg.breathing_hz)

        # -- the room ---------------------------------------------------------------------------
        self.q_home = self._home_pose()
        self.room = OperatingRoom(desc, self._layout(), self.motion.T_world_patient, tool="drill_guide",
                                  q0=self.q_home, dt=cfg.sim_dt, gui=cfg.gui)
        self.sim = self.room.sim
        model = ThrustModel.for_anatomy(30.0 * cfg.bone_density, 5.0 * cfg.bone_density)
        self.drill = DrillPhysics(
            self.sim, "guide_tcp", self.T_tcp_tip, self.motion.T_world_patient, anatomy.region, model, DrillBit(),
            rng=np.random.default_rng(cfg.seed + 1), bounds=anatomy.bounds(), skive_gain=cfg.skive_gain,
            normal_fn=lambda P: sdf_gradient(anatomy, P),
        )
        self.sim.add_step_hook(self.drill)
        self.checker = CollisionChecker(self.sim, ignore={"tool_plate", "floor"})

        # -- control ---------------------------------------------------------------------------
        safety = SafetyConfig.from_chain(
            self.chain, tau_max=np.array(desc.effort_limit), tool_speed_max=0.5, target_timeout_s=0.5,
        )
        self.supervisor = Supervisor(safety, self.chain, self.dyn)
        self.joint_ctl = JointImpedance(self.chain.dof, np.array(desc.joint_stiffness), desc.joint_damping_ratio,
                                        dynamics=self.dyn)
        self.joint_ctl.set_target(self.q_home)
        self.loop = ControlLoop(self.sim, self.joint_ctl, self.supervisor, rate_hz=self.cfg.control_hz)
        self.navigator: Navigator | None = None
        self.live = ProcedureLive()  # run_procedure's when bridges are on (machaon.ortho.live)

    # -- where things are ----------------------------------------------------------------------
    def _place_things(self) -> None:
        """The patient, the camera, the plates and the tracker (the room's layout in ortho terms)."""
        cfg, anatomy = self.cfg, self.anatomy
        self.T_world_image0 = np.eye(4)
        self.T_world_image0[:3, :3] = R_WORLD_IMAGE
        self.T_world_image0[:3, 3] = (0.45, 0.0, 0.20)
        lo, hi = anatomy.bounds()
        site = self.T_world_image0[:3, :3] @ (0.5 * (lo + hi)) + self.T_world_image0[:3, 3]
        self.site = site
        self.cam_pos = np.array([0.85, -0.45, 0.80])
        self.T_world_cam = _look_at(self.cam_pos, site + np.array([0.0, 0.02, 0.05]))
        self.camera = CameraModel.from_fov(1280, 960, 42.0)
        # marker plates with disjoint ids: reference (patient), tool (drill guide), pointer
        self.ref_plate = MarkerPlate("reference", 7, 5, 0.025, 0.019, first_id=0)
        self.tool_plate = MarkerPlate("tool", 6, 4, 0.02, 0.015, first_id=20)
        self.pointer_plate = MarkerPlate("pointer", 7, 5, 0.02, 0.015, first_id=40)
        self.tracker = Tracker(
            self.camera, (self.ref_plate, self.tool_plate, self.pointer_plate), NoiseModel(pixel_sigma=cfg.pixel_sigma)
        )
        ref_pos_world = self.T_world_image0[:3, :3] @ np.array([0.0, 0.10, hi[2] + 0.13]) + self.T_world_image0[:3, 3]
        # plates are tilted ~35 deg from the line of sight: a plate facing the camera squarely has
        # a poorly determined tilt (the planar-pose ambiguity), as ChArUco users know
        T_world_ref0 = facing(ref_pos_world, self.cam_pos + np.array([0.0, 0.55, 0.0]))
        self.T_image_ref = np.linalg.solve(self.T_world_image0, T_world_ref0)
        self.T_ref_image_true = np.linalg.inv(self.T_image_ref)  # ground truth, for TRE only
        # tool plate on the guide mount: beside the tube, facing sideways (-y) and back up the tube (-z)
        n = np.array([0.0, -1.0, -0.55])
        n /= np.linalg.norm(n)
        x = np.array([1.0, 0.0, 0.0])
        self.T_mount_toolplate = np.eye(4)
        self.T_mount_toolplate[:3, :3] = np.column_stack([x, np.cross(n, x), n])
        self.T_mount_toolplate[:3, 3] = (0.0, -0.085, 0.075)
        self._torso_half = np.array([0.15, 0.40, 0.05])

    def _layout(self) -> OperatingRoomLayout:
        """The ``OperatingRoomLayout``: the table under the torso, the torso a little below the lamina."""
        from machaon.sim.operating_room import OperatingRoomLayout

        lo, hi = self.anatomy.bounds()
        table_top = self.T_world_image0[2, 3] + 0.5 * (lo[1] + hi[1]) - 0.005 - 2 * self._torso_half[2]
        T_table = np.eye(4)
        T_table[:3, 3] = (self.T_world_image0[0, 3], 0.0, table_top)
        T_torso = np.eye(4)
        top = self.T_world_image0[2, 3] + 0.5 * (lo[1] + hi[1]) - 0.005  # a little below the lamina
        T_torso[:3, 3] = (self.T_world_image0[0, 3], self.T_world_image0[1, 3], top - self._torso_half[2])
        mesh = self.anatomy.mesh(2e-3)
        return OperatingRoomLayout(
            T_world_patient=self.T_world_image0,
            bone_mesh=(np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int32)),
            T_world_table=T_table,
            table_size=(0.5, 1.9, 0.06),
            torso_size=tuple(2 * self._torso_half),
            T_patient_torso=np.linalg.solve(self.T_world_image0, T_torso),
            reference_image=_square_image(self.ref_plate),
            reference_size=self.ref_plate.size_m[0],
            T_patient_reference=self.T_image_ref,
            tool_plate_image=_square_image(self.tool_plate),
            tool_plate_size=self.tool_plate.size_m[0],
            tool_plate_link="drill_guide_mount",
            T_link_toolplate=self.T_mount_toolplate,
            camera_K=self.camera.K,
            camera_size=(self.camera.width, self.camera.height),
            T_world_camera=self.T_world_cam,
            view_target=self.site,
        )

    def _home_pose(self) -> np.ndarray:
        r = self.chain.ik_axis(np.array([0.30, 0.0, 0.45]), np.array([0.0, 0.0, -1.0]), seed=self.cfg.seed)
        if not r.success:
            raise ProcedureError("home pose: IK failed")
        return r.q

    # -- tracking ---------------------------------------------------------------------------
    def true_T_cam(self, what: str, t: float | None = None) -> np.ndarray:
        """True pose of the ``"reference"`` or ``"tool"`` plate in the camera frame (for the tracker model)."""
        T_cam_world = np.linalg.inv(self.T_world_cam)
        if what == "reference":
            tt = self.sim.t if t is None else t
            return T_cam_world @ self.motion.T_world_patient(tt) @ self.T_image_ref
        if what == "tool":
            return T_cam_world @ self.sim.T_world_link("drill_guide_mount") @ self.T_mount_toolplate
        raise ValueError(what)

    def camera_frame(self) -> None:
        """Run the control loop for one camera period, then process one tracker frame."""
        self.loop.run_for(1.0 / self.cfg.camera_hz)
        if self.loop.error is not None:
            raise ProcedureError(f"control loop failed: {self.loop.error!r}")
        if self.supervisor.state.value != "run":
            raise ProcedureError(f"safety supervisor stopped the robot: {self.supervisor.last_fault}")
        self.live.on_world(self.sim.t, self)
        if self.live.tracker is not None:  # --tracker igtl: the poses come from an OpenIGTLink server
            m_ref, m_tool = self.live.tracking(self.sim.t)
        else:
            m_ref = self.tracker.measure("reference", self.true_T_cam("reference"), self.rng, self.sim.t)
            m_tool = self.tracker.measure("tool", self.true_T_cam("tool"), self.rng, self.sim.t)
        self.live.on_measured(self.sim.t, self, m_ref, m_tool, self.navigator)
        q = self.sim.read().q
        if self.navigator is not None:
            self.navigator.update(
                None if m_ref is None else m_ref.T_cam_plate,
                None if m_tool is None else m_tool.T_cam_plate,
                self.chain_flange.fk(q),
            )

    def render(self) -> np.ndarray:
        """The tracking camera's image now (RGB uint8)."""
        return self.room.render()

    def close(self) -> None:
        self.room.close()
