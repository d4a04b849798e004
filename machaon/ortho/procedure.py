"""The whole robot-guided pedicle-screw procedure in simulation.

``run_procedure(ProcedureConfig(...))`` builds an operating-room scene in PyBullet
(``machaon.sim.ArmSim``: table, patient with a multi-level spine phantom from
``machaon.ortho.anatomy``, a ChArUco reference plate on the patient, a tool plate on the drill
guide, a tracking camera) and then, as a navigated robot does:

1. **plan** the screws (``machaon.ortho.planning.auto_plan``, or a plan file);
2. **calibrate** camera to robot: the robot shows its tool plate to the camera in several poses;
   rendered camera images are detected (``machaon.ortho.tracking``) and
   ``calibrate_camera_to_base`` gives ``T_base_cam`` and ``T_flange_plate``;
3. **register** image to patient: anatomical landmarks and posterior surface points are
   digitised with a tracked pointer relative to the reference plate (tracker noise model), then
   paired-point registration and point-to-plane ICP (``machaon.ortho.registration``);
4. per screw: **approach** from the current pose to a stand-off above the entry along a
   collision-free joint path (``machaon.ortho.approach`` over ``machaon.sim.CollisionChecker``),
   the goal from ``Chain.ik_axis``; **align and hold** on the axis under Cartesian impedance with
   motion compensation at camera rate; **drill** against the bone's thrust with the depth stop
   and breach detection; a patient bump pauses drilling; **retract**;
5. **report**: per-screw errors against the plan measured on the hole actually drilled in the
   true bone frame (``machaon.ortho.report``), registration FRE/TRE, times, and pictures.

World frame = the robot's base frame (the arm stands at the world origin). The image frame of
the phantom is LPS (x left, y posterior, z cranial); the patient lies prone, so image y points
up in the world and image z along the table.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pybullet as pb
from scipy.spatial.transform import Rotation

from machaon.kinematics import Chain, Dynamics
from machaon.ortho import registration as reg
from machaon.ortho import report as rep
from machaon.ortho.anatomy import SpineSegment, sdf_gradient, surface_samples
from machaon.ortho.approach import ApproachPath, check_path, plan_approach
from machaon.ortho.drilling import BreachDetector, DrillBit, ThrustModel
from machaon.ortho.execution import (
    AxisGains,
    AxisHoldController,
    DrilledPath,
    DrillPhysics,
    Navigator,
    PatientMotion,
    Phase,
    drilled_path,
)
from machaon.ortho.planning import Plan, ScrewPlan, auto_plan, check_plan
from machaon.ortho.tracking import (
    CameraModel,
    MarkerPlate,
    NoiseModel,
    Tracker,
    calibrate_camera_to_base,
    pose_error,
)

log = logging.getLogger(__name__)

MM = 1e-3
# image (LPS, patient prone) -> world: image x (left) = -world x, image y (posterior) = world z (up),
# image z (cranial) = world y
R_WORLD_IMAGE = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


class ProcedureError(RuntimeError):
    """The procedure cannot go on (unreachable plan, tracking lost, no collision-free approach)."""


@dataclass(frozen=True)
class ProcedureConfig:
    """Settings of a simulated procedure (SI units).

    ``levels``: phantom levels; ``plan_path``: a plan JSON to execute instead of auto-planning;
    ``plan_mode``: ``"auto"`` (clearance-maximising auto-plan) or ``"axis"`` (screws on the
    phantom's ground-truth pedicle axes, faster). ``breathing``: amplitude (m) and frequency (Hz)
    of the patient's motion; ``bump``: a bump of ``bump_m`` (world displacement) during the first
    screw's drilling at ``bump_depth_m``. ``pixel_sigma``: tracker corner noise (px).
    ``fiducial_noise_m``: RMS localisation error of the pointer on a landmark, per axis.
    ``control_hz``/``sim_dt``: control-loop rate and physics step (defaults 500 Hz, 2 ms: the
    impedance gains here are stable at that rate and a run is twice as fast as at 1 kHz).
    ``bone_density``: scale of the bone's thrust coefficients (1 = the phantom's nominal bone);
    ``skive_gain``: how much the drill point slips on an inclined entry cortex (0 = it bites,
    ``machaon.ortho.execution.DrillPhysics``); ``return_home``: move home after the last screw;
    ``tracking_check``: detect both plates in one rendered camera image and compare with the truth.
    With ``calibration_from_images=False`` and ``tracking_check=False`` nothing is rendered (the
    tracker noise model stands in for the camera), as virtual trials run it.
    """

    levels: tuple[str, ...] = ("L3", "L4")
    seed: int = 0
    gui: bool = False
    plan_path: str | None = None
    plan_mode: str = "auto"
    breathing: bool = True
    breathing_amplitude_m: float = 0.003
    breathing_hz: float = 0.25
    bump: bool = True
    bump_m: tuple[float, float, float] = (0.0, 0.003, 0.002)
    bump_depth_m: float = 0.012
    bump_speed_threshold: float = 0.015
    bump_jump_m: float = 0.0015
    camera_hz: float = 50.0
    control_hz: float = 500.0
    pixel_sigma: float = 0.1
    fiducial_noise_m: float = 0.1e-3
    n_surface_points: int = 100
    calibration_poses: int = 12
    calibration_from_images: bool = True
    feed_m_s: float = 4e-3
    standoff_m: float = 0.02
    bit_extension_m: float = 0.08
    planner: str = "auto"
    tolerance_mm: float = 1.0
    tolerance_deg: float = 1.0
    extra_depth_m: dict = field(default_factory=dict)
    screws: tuple[str, ...] | None = None
    sim_dt: float = 2e-3
    bone_density: float = 1.0
    skive_gain: float = 0.0
    return_home: bool = True
    tracking_check: bool = True

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels: at least one")
        if self.plan_mode not in ("auto", "axis"):
            raise ValueError("plan_mode: 'auto' or 'axis'")
        for name in ("camera_hz", "control_hz", "feed_m_s", "standoff_m", "bit_extension_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be > 0")
        if self.control_hz % self.camera_hz:
            raise ValueError("control_hz must be a multiple of camera_hz")
        if not (math.isfinite(self.bone_density) and self.bone_density > 0 and 0.0 <= self.skive_gain <= 1.0):
            raise ValueError("bone_density must be > 0 and skive_gain in [0, 1]")


@dataclass(frozen=True)
class ScrewRun:
    """One executed screw: the report entry, the drilled path, what stopped the drill, and traces."""

    result: rep.ScrewResult
    path: DrilledPath
    stopped_by: str
    pauses: int
    approach: ApproachPath
    approach_collision_free: bool
    trace: dict


@dataclass(frozen=True)
class ProcedureResult:
    """Everything the procedure measured (SI); ``report`` is the JSON-ready report (mm, deg, s)."""

    screws: tuple[ScrewRun, ...]
    registration: dict
    calibration: dict
    tracking: dict
    report: dict
    report_dir: Path | None
    tolerance_mm: float
    tolerance_deg: float

    @property
    def all_within_tolerance(self) -> bool:
        return bool(self.screws) and all(
            s.stopped_by == "depth_stop"
            and s.result.entry_error <= self.tolerance_mm * MM
            and s.result.tip_error <= self.tolerance_mm * MM
            and math.degrees(s.result.angle_error) <= self.tolerance_deg
            for s in self.screws
        )

    def summary(self) -> str:
        lines = ["screw   entry_mm  tip_mm  angle_deg  clearance_mm  stopped_by   pauses"]
        for s in self.screws:
            r = s.result
            lines.append(
                f"{r.name:<7} {r.entry_error / MM:8.2f} {r.tip_error / MM:7.2f} {math.degrees(r.angle_error):10.2f}"
                f" {r.min_clearance / MM:13.2f}  {s.stopped_by:<12} {s.pauses}"
            )
        g = self.registration
        lines.append(
            f"registration: FRE {g['fre'] / MM:.3f} mm, TRE predicted {g['tre_predicted'] / MM:.3f} mm, "
            f"TRE at targets {g['tre_measured'] / MM:.3f} mm (max); hand-eye error "
            f"{self.calibration['error_m'] / MM:.2f} mm / {math.degrees(self.calibration['error_rad']):.3f} deg"
        )
        lines.append("all screws within tolerance" if self.all_within_tolerance else "SOME SCREWS OUT OF TOLERANCE")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# geometry helpers
# ------------------------------------------------------------------------------------------


def _quat_xyzw(R: np.ndarray) -> list[float]:
    return Rotation.from_matrix(R).as_quat().tolist()


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


def _facing(pos: np.ndarray, toward: np.ndarray) -> np.ndarray:
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


def _pose_with_axis(p: np.ndarray, z: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    z = z / np.linalg.norm(z)
    y = y_hint - (y_hint @ z) * z
    y /= np.linalg.norm(y)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([np.cross(y, z), y, z])
    T[:3, 3] = p
    return T


def _first_hit(anatomy: SpineSegment, start: np.ndarray, direction: np.ndarray, length: float = 0.15) -> np.ndarray:
    """First bone surface point on the segment from ``start`` along ``direction`` (image frame)."""
    s = np.arange(0.0, length, 2e-4)
    pts = start + np.outer(s, direction)
    d = anatomy.sdf(pts)
    k = int(np.argmax(d < 0.0))
    if d[k] >= 0.0:
        raise ProcedureError("landmark: ray does not hit the bone")
    lo, hi = s[max(k - 1, 0)], s[k]
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if anatomy.sdf((start + mid * direction)[None])[0] < 0.0:
            hi = mid
        else:
            lo = mid
    return start + hi * direction


def landmarks(anatomy: SpineSegment) -> np.ndarray:
    """Registration landmarks (image frame, m): spinous process tip and transverse process tips per level."""
    out = []
    dirs = [np.array([0.0, 0.94, -0.34]), np.array([0.95, 0.31, 0.0]), np.array([-0.95, 0.31, 0.0]),
            np.array([0.45, 0.85, 0.25]), np.array([-0.45, 0.85, 0.25])]
    for lv in anatomy.levels:
        T = anatomy.level_frame(lv)
        for d in dirs:
            d_i = T[:3, :3] @ d
            start = T[:3, 3] + 0.12 * d_i
            out.append(_first_hit(anatomy, start, -d_i))
    return np.array(out)


# ------------------------------------------------------------------------------------------
# the procedure
# ------------------------------------------------------------------------------------------


class _World:
    """The simulated operating room and the robot's software, for one procedure run."""

    def __init__(self, cfg: ProcedureConfig, anatomy: SpineSegment, say: Callable[[str], None]) -> None:
        from machaon.control.impedance import JointImpedance
        from machaon.control.supervisor import SafetyConfig, Supervisor
        from machaon.robot.description import load_description
        from machaon.robot.loop import ControlLoop
        from machaon.sim import ArmSim, Camera, CollisionChecker

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

        # -- where things are ------------------------------------------------------------------
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
        T_world_ref0 = _facing(ref_pos_world, self.cam_pos + np.array([0.0, 0.55, 0.0]))
        self.T_image_ref = np.linalg.solve(self.T_world_image0, T_world_ref0)
        self.T_ref_image_true = np.linalg.inv(self.T_image_ref)  # ground truth, for TRE only
        # tool plate on the guide mount: beside the tube, facing sideways (-y) and back up the tube (-z)
        n = np.array([0.0, -1.0, -0.55])
        n /= np.linalg.norm(n)
        x = np.array([1.0, 0.0, 0.0])
        self.T_mount_toolplate = np.eye(4)
        self.T_mount_toolplate[:3, :3] = np.column_stack([x, np.cross(n, x), n])
        self.T_mount_toolplate[:3, 3] = (0.0, -0.085, 0.075)

        amp = cfg.breathing_amplitude_m if cfg.breathing else 0.0
        self.motion = PatientMotion(self.T_world_image0, amp, cfg.breathing_hz)

        # -- the sim ---------------------------------------------------------------------------
        self._torso_half = np.array([0.15, 0.40, 0.05])
        self.q_home = self._home_pose()
        self.sim = ArmSim(desc, tool="drill_guide", gui=cfg.gui, realtime=False, q0=self.q_home, dt=cfg.sim_dt)
        sc = self.sim.scene
        sc.add_floor()
        table_top = self.T_world_image0[2, 3] + 0.5 * (lo[1] + hi[1]) - 0.005 - 2 * self._torso_half[2]
        T_table = np.eye(4)
        T_table[:3, 3] = (self.T_world_image0[0, 3], 0.0, table_top)
        sc.add_operating_table(T_world_table=T_table, size=(0.5, 1.9, 0.06))
        mesh = anatomy.mesh(2e-3)
        self.T_image_torso = np.linalg.solve(
            self.T_world_image0, self._torso_pose_world()
        )
        sc.add_box("torso", tuple(2 * self._torso_half), self._torso_pose_world(), rgba=(0.85, 0.7, 0.62, 1.0))
        sc.add_bone_phantom((np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int32)),
                            self.T_world_image0, name="spine")
        sc.add_marker_plate("reference", _square_image(self.ref_plate), self.ref_plate.size_m[0], T_world_ref0)
        # the tool plate follows the guide mount; it is moved by our own step hook with PyBullet's
        # quaternion maths (cheaper than the scene's generic attachment, which runs SciPy per step)
        sc.add_marker_plate("tool_plate", _square_image(self.tool_plate), self.tool_plate.size_m[0],
                            self.sim.T_world_link("drill_guide_mount") @ self.T_mount_toolplate)
        cid, arm = self.sim.client, self.sim.body
        for link in range(-1, pb.getNumJoints(arm, physicsClientId=cid)):
            pb.setCollisionFilterPair(sc.objects["tool_plate"], arm, -1, link, 0, physicsClientId=cid)
        self._mount_link = self.sim.link_index("drill_guide_mount")
        self._plate_pq = (self.T_mount_toolplate[:3, 3].tolist(), _quat_xyzw(self.T_mount_toolplate[:3, :3]))
        self._patient_q = _quat_xyzw(self.T_world_image0[:3, :3])
        self._ref_pq = (self.T_image_ref[:3, 3].tolist(), _quat_xyzw(self.T_image_ref[:3, :3]))
        self._torso_pq = (self.T_image_torso[:3, 3].tolist(), _quat_xyzw(self.T_image_torso[:3, :3]))
        self.sim_camera = Camera(self.camera.K, self.camera.width, self.camera.height, self.T_world_cam)
        self.sim.add_step_hook(self._move_patient)
        model = ThrustModel.for_anatomy(30.0 * cfg.bone_density, 5.0 * cfg.bone_density)
        self.drill = DrillPhysics(
            self.sim, "guide_tcp", self.T_tcp_tip, self.motion.T_world_patient, anatomy.region, model, DrillBit(),
            rng=np.random.default_rng(cfg.seed + 1), bounds=anatomy.bounds(), skive_gain=cfg.skive_gain,
            normal_fn=lambda P: sdf_gradient(anatomy, P),
        )
        self.sim.add_step_hook(self.drill)
        self.checker = CollisionChecker(self.sim, ignore={"tool_plate", "floor"})
        if cfg.gui:
            cid = self.sim.client
            pb.configureDebugVisualizer(pb.COV_ENABLE_SHADOWS, 0, physicsClientId=cid)
            pb.configureDebugVisualizer(pb.COV_ENABLE_GUI, 0, physicsClientId=cid)
            pb.resetDebugVisualizerCamera(0.9, 50.0, -35.0, self.site.tolist(), physicsClientId=cid)

        # -- control ---------------------------------------------------------------------------
        safety = SafetyConfig.from_chain(
            self.chain, tau_max=np.array(desc.effort_limit), tool_speed_max=0.5, target_timeout_s=0.5,
        )
        self.supervisor = Supervisor(safety, self.chain, self.dyn)
        self.joint_ctl = JointImpedance(self.chain.dof, np.array(desc.joint_stiffness), desc.joint_damping_ratio,
                                        dynamics=self.dyn)
        self.joint_ctl.set_target(self.q_home)
        self.loop = ControlLoop(self.sim, self.joint_ctl, self.supervisor, rate_hz=cfg.control_hz)
        self.navigator: Navigator | None = None
        self.trace: dict[str, list] = {}

    # -- scene motion ------------------------------------------------------------------------
    def _torso_pose_world(self) -> np.ndarray:
        T = np.eye(4)
        lo, hi = self.anatomy.bounds()
        top = self.T_world_image0[2, 3] + 0.5 * (lo[1] + hi[1]) - 0.005  # a little below the lamina
        T[:3, 3] = (self.T_world_image0[0, 3], self.T_world_image0[1, 3], top - self._torso_half[2])
        return T

    def _move_patient(self) -> None:
        """Step hook: the patient's bodies follow ``motion``; the tool plate follows the guide mount."""
        cid = self.sim.client
        objs = self.sim.scene.objects
        pos = self.motion.T_world_patient(self.sim.t)[:3, 3].tolist()
        pb.resetBasePositionAndOrientation(objs["spine"], pos, self._patient_q, physicsClientId=cid)
        for name, (p_rel, q_rel) in (("reference", self._ref_pq), ("torso", self._torso_pq)):
            pw, qw = pb.multiplyTransforms(pos, self._patient_q, p_rel, q_rel)
            pb.resetBasePositionAndOrientation(objs[name], pw, qw, physicsClientId=cid)
        st = pb.getLinkState(self.sim.body, self._mount_link, computeForwardKinematics=True, physicsClientId=cid)
        pw, qw = pb.multiplyTransforms(st[4], st[5], *self._plate_pq)
        pb.resetBasePositionAndOrientation(objs["tool_plate"], pw, qw, physicsClientId=cid)

    def _home_pose(self) -> np.ndarray:
        r = self.chain.ik_axis(np.array([0.30, 0.0, 0.45]), np.array([0.0, 0.0, -1.0]), seed=self.cfg.seed)
        if not r.success:
            raise ProcedureError("home pose: IK failed")
        return r.q

    # -- tracking ---------------------------------------------------------------------------
    def true_T_cam(self, what: str, t: float | None = None) -> np.ndarray:
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
        m_ref = self.tracker.measure("reference", self.true_T_cam("reference"), self.rng, self.sim.t)
        m_tool = self.tracker.measure("tool", self.true_T_cam("tool"), self.rng, self.sim.t)
        q = self.sim.read().q
        if self.navigator is not None:
            self.navigator.update(
                None if m_ref is None else m_ref.T_cam_plate,
                None if m_tool is None else m_tool.T_cam_plate,
                self.chain_flange.fk(q),
            )

    def render(self) -> np.ndarray:
        self._move_patient()
        return self.sim_camera.render(self.sim.client)

    def close(self) -> None:
        self.sim.close()


def _plan(cfg: ProcedureConfig, anatomy: SpineSegment, say: Callable[[str], None]) -> Plan:
    if cfg.plan_path is not None:
        plan = Plan.load(cfg.plan_path)
        say(f"plan: {len(plan)} screws from {cfg.plan_path}")
        return plan
    t0 = time.perf_counter()
    if cfg.plan_mode == "auto":
        plan = auto_plan(anatomy)
    else:
        screws = []
        for lv in anatomy.levels:
            for side in ("left", "right"):
                ax = anatomy.pedicle_axis(lv, side)
                length = 0.8 * ax.chord_length
                screws.append(ScrewPlan(f"{lv}-{side[0].upper()}", lv, side, ax.entry, ax.entry + length * ax.direction,
                                        min(6.5 * MM, 2 * 0.7 * ax.semi_width)))
        plan = Plan(tuple(screws), anatomy.to_dict(), {"mode": "axis"})
    say(f"plan: {len(plan)} screws ({cfg.plan_mode}) in {time.perf_counter() - t0:.1f} s")
    return plan


def _calibrate(w: _World, directory: Path | None) -> tuple[dict, dict]:
    """Hand-eye calibration from rendered images of the tool plate in several robot poses.

    Returns the calibration and the tracking check (both plates detected in the rendered image of
    the first calibration pose, compared with their true poses).
    """
    cfg = w.cfg
    rng = np.random.default_rng(cfg.seed + 7)
    A, B = [], []
    tracking: dict = {"rendered": False}  # no tracking check: no image to check the noise model against
    to_cam = w.cam_pos - w.site
    y_hint = -np.array([to_cam[0], to_cam[1], 0.0])
    q = w.q_home
    tries = 0
    t0 = time.perf_counter()
    while len(A) < cfg.calibration_poses and tries < 4 * cfg.calibration_poses:
        tries += 1
        tilt = Rotation.from_rotvec(rng.uniform(-0.6, 0.6, 3)).as_matrix()
        p = w.site + np.array([-0.03, 0.0, 0.12]) + rng.uniform(-0.04, 0.04, 3)
        T = _pose_with_axis(p, tilt @ np.array([0.0, 0.0, -1.0]), tilt @ y_hint)
        r = w.chain.ik(T, q0=q, seed=cfg.seed + tries)
        if not r.success or w.checker.in_collision(r.q, margin=0.005):
            continue
        w.sim.reset(r.q)
        if not A and cfg.tracking_check:
            tracking = _tracking_check(w, directory)
            if not tracking.get("tool_found"):
                continue  # this pose hides the plate from the camera; the check needs both plates
        if cfg.calibration_from_images:
            m = w.tracker.detect(w.render()).get("tool")
        else:
            m = w.tracker.measure("tool", w.true_T_cam("tool"), rng)
        if m is None:
            continue
        # a plate seen squarely (or very obliquely) gives a poorly determined tilt: skip that view,
        # judged from the measured pose itself
        Tm = m.T_cam_plate
        view = math.degrees(math.acos(float(np.clip(-Tm[:3, 2] @ Tm[:3, 3] / np.linalg.norm(Tm[:3, 3]), -1, 1))))
        if not 20.0 <= view <= 65.0:
            continue
        A.append(w.chain_flange.fk(r.q))
        B.append(m.T_cam_plate)
        q = r.q
    w.sim.reset(w.q_home)
    if not A:
        raise ProcedureError("hand-eye calibration: the tool plate was never seen")
    if len(A) < 4:
        raise ProcedureError(f"hand-eye calibration: only {len(A)} usable poses")
    T_base_cam, T_flange_plate = calibrate_camera_to_base(A, B)
    e_m, e_rad = pose_error(T_base_cam, w.T_world_cam)
    T_flange_plate_true = w.T_mount_toolplate  # the mount link is the flange frame
    pe_m, pe_rad = pose_error(T_flange_plate, T_flange_plate_true)
    w.say(f"hand-eye: {len(A)} poses, camera pose error {e_m / MM:.2f} mm / {math.degrees(e_rad):.3f} deg")
    return {
        "T_base_cam": T_base_cam, "T_flange_plate": T_flange_plate, "n_poses": len(A),
        "error_m": e_m, "error_rad": e_rad, "plate_error_m": pe_m, "plate_error_rad": pe_rad,
        "time_s": time.perf_counter() - t0, "from_images": cfg.calibration_from_images,
    }, tracking


def _digitise(w: _World, p_image: np.ndarray, t: float, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Tracked-pointer digitisation of an image-frame point, returned in the reference frame (m).

    The pointer tip is placed on the point with the configured localisation error; each frame
    measures the pointer and the reference plate at the same instant (tracker noise model).
    """
    cfg = w.cfg
    p_true = p_image + rng.normal(0.0, cfg.fiducial_noise_m, 3)
    out = []
    dt = 1.0 / cfg.camera_hz
    T_cam_world = np.linalg.inv(w.T_world_cam)
    for k in range(frames):
        tk = t + k * dt
        T_wi = w.motion.T_world_patient(tk)
        tip_w = T_wi[:3, :3] @ p_true + T_wi[:3, 3]
        shaft = (w.cam_pos - tip_w) / np.linalg.norm(w.cam_pos - tip_w) + np.array([0.0, 0.0, 0.6])
        shaft /= np.linalg.norm(shaft)
        T_w_ptr = _facing(tip_w + 0.10 * shaft, w.cam_pos + np.array([0.0, 0.5, 0.0]))
        tip_plate = np.linalg.solve(T_w_ptr, np.append(tip_w, 1.0))[:3]  # pointer calibration (pivoting)
        m_ptr = w.tracker.measure("pointer", T_cam_world @ T_w_ptr, rng, tk)
        m_ref = w.tracker.measure("reference", T_cam_world @ T_wi @ w.T_image_ref, rng, tk)
        if m_ptr is None or m_ref is None:
            continue
        tip_cam = m_ptr.T_cam_plate[:3, :3] @ tip_plate + m_ptr.T_cam_plate[:3, 3]
        T_ref_cam = np.linalg.inv(m_ref.T_cam_plate)
        out.append(T_ref_cam[:3, :3] @ tip_cam + T_ref_cam[:3, 3])
    if not out:
        raise ProcedureError("digitisation: pointer or reference not visible")
    return np.mean(out, axis=0)


def _register(w: _World, plan: Plan) -> dict:
    cfg = w.cfg
    rng = np.random.default_rng(cfg.seed + 11)
    t0 = time.perf_counter()
    fid_img = landmarks(w.anatomy)
    t = 0.0
    fid_ref = []
    for pnt in fid_img:
        fid_ref.append(_digitise(w, pnt, t, 20, rng))
        t += 1.0
    fid_ref = np.array(fid_ref)
    paired = reg.register_paired(fid_img, fid_ref)  # T_ref_image
    lo, hi = w.anatomy.bounds()
    # the surgeon reaches the posterior elements: laminae, spinous and transverse processes, facets;
    # their surfaces face many ways, which ICP needs (a single flat patch lets it slide)
    y_cut = lo[1] + 0.35 * (hi[1] - lo[1])
    surf_img, _ = surface_samples(w.anatomy, cfg.n_surface_points, seed=cfg.seed + 3, spacing=2e-3,
                                  mask_fn=lambda P: P[:, 1] > y_cut)
    surf_ref = []
    for pnt in surf_img:
        surf_ref.append(_digitise(w, pnt, t, 10, rng))
        t += 0.3
    model_pts, model_n = surface_samples(w.anatomy, 20000, seed=cfg.seed + 5, spacing=2e-3,
                                         mask_fn=lambda P: P[:, 1] > y_cut - 0.005)
    icp = reg.icp_point_to_plane(np.array(surf_ref), model_pts, model_n, np.linalg.inv(paired.T_dst_src))
    T_ref_image = np.linalg.inv(icp.T_dst_src)
    # consistency check without ground truth: the refined transform must still fit the landmarks
    fre_icp = float(np.sqrt(np.mean(np.sum((reg.apply_transform(T_ref_image, fid_img) - fid_ref) ** 2, axis=1))))
    icp_used = fre_icp <= 1.5 * paired.fre + 0.05 * MM
    if not icp_used:
        log.warning("ICP moved the landmarks to %.3f mm RMS (paired %.3f mm): keeping the paired-point result",
                    fre_icp / MM, paired.fre / MM)
        T_ref_image = paired.T_dst_src
    targets = np.array([s.target for s in plan] + [s.entry for s in plan])
    fle = reg.estimate_fle(paired.fre, len(fid_img))
    tre_pred = reg.predicted_tre(fid_img, targets, fle)
    tre_paired = reg.target_registration_error(paired.T_dst_src, w.T_ref_image_true, targets)
    tre = reg.target_registration_error(T_ref_image, w.T_ref_image_true, targets)
    dt = time.perf_counter() - t0
    w.say(f"registration: {len(fid_img)} landmarks FRE {paired.fre / MM:.3f} mm, ICP on {len(surf_img)} points, "
          f"TRE at targets {tre.max() / MM:.3f} mm (paired only {tre_paired.max() / MM:.3f} mm)")
    return {
        "T_ref_image": T_ref_image, "fre": paired.fre, "tre_predicted": float(tre_pred.max()),
        "tre_measured": float(tre.max()), "tre_paired_only": float(tre_paired.max()), "icp_rms": icp.rms,
        "n_fiducials": len(fid_img), "n_surface_points": len(surf_img), "icp_inliers": icp.n_inliers,
        "icp_used": icp_used, "fre_after_icp": fre_icp, "time_s": dt,
    }


def _tracking_check(w: _World, directory: Path | None) -> dict:
    """Detect both plates in a rendered camera image and compare with the true poses."""
    img = w.render()
    found = w.tracker.detect(img)
    out: dict[str, object] = {}
    for name, key in (("reference", "reference"), ("tool", "tool")):
        m = found.get(name)
        if m is None:
            out[f"{key}_found"] = False
            continue
        e_m, e_rad = pose_error(m.T_cam_plate, w.true_T_cam(key))
        out[f"{key}_found"] = True
        out[f"{key}_error_mm"] = e_m / MM
        out[f"{key}_error_deg"] = math.degrees(e_rad)
        out[f"{key}_corners"] = m.n_corners
        rvec = cv2.Rodrigues(np.ascontiguousarray(m.T_cam_plate[:3, :3]))[0]
        cv2.drawFrameAxes(img, w.camera.K, w.camera.dist_coeffs, rvec, m.T_cam_plate[:3, 3].copy(), 0.05, 3)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(directory / "camera_view.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return out


def _plate_score(w: _World, q: np.ndarray) -> float:
    """How well the camera sees the tool plate at ``q``: best near 35 deg off the line of sight."""
    T = w.chain_flange.fk(q) @ w.T_mount_toolplate
    v = w.cam_pos - T[:3, 3]
    ang = math.degrees(math.acos(float(np.clip(v @ T[:3, 2] / np.linalg.norm(v), -1.0, 1.0))))
    return -abs(ang - 35.0)


def _standoff_ik(w: _World, p: np.ndarray, axis: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """Joint goal putting the drill tip at ``p`` on ``axis`` (base frame), collision-free, tool plate visible.

    ``Chain.ik_axis`` solves the five-DOF task (roll free, chosen for joint margins and
    manipulability); when its roll hides the tool plate from the camera or collides, the roll is
    searched with ``Chain.ik`` for the best line of sight (the tracker needs the plate).
    """
    cands = []
    r = w.chain.ik_axis(p, axis, q0=q0, seed=w.cfg.seed)
    if r.success:
        cands.append(r.q)
    if not cands or _plate_score(w, cands[0]) < -25.0 or w.checker.in_collision(cands[0], margin=0.01):
        z = axis / np.linalg.norm(axis)
        x0 = np.cross([0.0, 1.0, 0.0], z) if abs(z[1]) < 0.9 else np.cross([1.0, 0.0, 0.0], z)
        x0 /= np.linalg.norm(x0)
        for k in range(12):
            psi = 2 * math.pi * k / 12
            x = math.cos(psi) * x0 + math.sin(psi) * np.cross(z, x0)
            T = np.eye(4)
            T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, np.cross(z, x), z, p
            rk = w.chain.ik(T, q0=q0, seed=w.cfg.seed + k)
            if rk.success:
                cands.append(rk.q)
    cands = [q for q in cands if not w.checker.in_collision(q, margin=0.01)]
    if not cands:
        raise ProcedureError("stand-off pose: no collision-free IK solution")
    return max(cands, key=lambda q: _plate_score(w, q) - 2.0 * float(np.linalg.norm(q - q0)))


def _approach(w: _World, q_goal: np.ndarray) -> tuple[ApproachPath, bool]:
    """Plan and execute a collision-free joint path from the current pose to ``q_goal``."""
    from machaon.control.trajectory import TrajectorySequence, TrajectoryTracker

    cfg = w.cfg
    q0 = w.sim.read().q

    def valid(q: np.ndarray) -> bool:
        return not w.checker.in_collision(q, margin=0.01)

    # the joints' path stays inside the software limits
    lo, hi = np.array(w.chain.lower), np.array(w.chain.upper)
    path = plan_approach(q0, q_goal, valid, lo, hi, planner=cfg.planner, seed=cfg.seed, resolution_rad=0.03,
                         timeout_s=20.0)
    ok = check_path(path.waypoints, valid, lo, hi, resolution_rad=0.03)
    traj = TrajectorySequence.through(list(path.waypoints), 0.4, 1.0)
    w.joint_ctl.set_target(q0)
    tracker = TrajectoryTracker(w.joint_ctl, traj, w.supervisor)
    w.loop.set_controller(tracker)
    t_end = w.sim.t + traj.duration + 0.3
    while w.sim.t < t_end:
        w.camera_frame()
    return path, ok


def _execute_screw(w: _World, screw: ScrewPlan, bump: bool) -> tuple[dict, str, int, dict]:
    """Align, hold, drill and retract one screw; returns (times, stopped_by, pauses, trace)."""
    from machaon.control.impedance import CartesianGains, CartesianImpedance

    cfg = w.cfg
    nav = w.navigator
    assert nav is not None
    g = AxisGains()
    gains = CartesianGains.axial(g.k_across, g.k_along, g.k_rot_across, g.k_rot_about, g.damping_ratio)
    imp = CartesianImpedance(w.chain, gains, dynamics=w.dyn, tau_max=np.array(w.sim.desc.effort_limit))
    length = screw.length + float(cfg.extra_depth_m.get(screw.name, 0.0))
    det = BreachDetector(cfg.control_hz)
    ctl = AxisHoldController(imp, g, length, feed_m_s=cfg.feed_m_s, standoff_m=cfg.standoff_m, detector=det,
                             supervisor=w.supervisor)
    d_img = screw.direction

    def push_axis() -> None:
        e, a = nav.axis_base(screw.entry, d_img)
        ctl.set_axis(e, a, nav.v_image_corrected)

    push_axis()
    w.loop.set_controller(ctl)
    trace: dict[str, list] = {k: [] for k in ("t", "s_cmd", "depth", "lateral", "force", "patient", "phase", "jump")}

    def frame() -> tuple[float, float]:
        w.camera_frame()
        push_axis()
        T = w.chain.fk(w.sim.read().q)
        lat, dep = ctl.lateral_error(T[:3, 3]), ctl.depth(T[:3, 3])
        trace["t"].append(w.sim.t)
        trace["s_cmd"].append(ctl.s_cmd)
        trace["depth"].append(dep)
        trace["lateral"].append(lat)
        trace["force"].append(ctl.axial_force_n)
        trace["patient"].append(w.motion.offset(w.sim.t).tolist())
        trace["phase"].append(ctl.phase.value)
        trace["jump"].append(nav.innovation)
        return lat, float(np.degrees(np.arccos(np.clip(T[:3, 2] @ ctl.axis, -1, 1))))

    times = {}
    # align at the stand-off
    t0 = w.sim.t
    good = 0
    while w.sim.t - t0 < 5.0:
        lat, ang = frame()
        good = good + 1 if (lat < 0.2 * MM and ang < 0.2) else 0
        if good >= int(0.3 * cfg.camera_hz):
            break
    times["align"] = w.sim.t - t0
    # drill
    t0 = w.sim.t
    w.drill.start_hole()
    ctl.set_phase(Phase.DRILL)
    pauses = 0
    bumped = False
    calm = 0
    stopped_by = "timeout"
    t_limit = (length + cfg.standoff_m) / cfg.feed_m_s + 20.0
    t_at_depth = None
    while w.sim.t - t0 < t_limit:
        lat, _ = frame()
        if bump and not bumped and ctl.s_cmd >= cfg.bump_depth_m:
            w.motion.add_bump(w.sim.t, np.array(cfg.bump_m))
            bumped = True
            w.say(f"{screw.name}: patient bump of {np.linalg.norm(cfg.bump_m) / MM:.1f} mm")
        speed = float(np.linalg.norm(nav.v_image))
        jump = nav.innovation
        if ctl.phase is Phase.DRILL and (speed > cfg.bump_speed_threshold or jump > cfg.bump_jump_m):
            ctl.set_phase(Phase.PAUSED)
            pauses += 1
            calm = 0
            w.say(f"{screw.name}: patient moved ({speed / MM:.0f} mm/s, jump {jump / MM:.1f} mm), "
                  f"drilling paused at {ctl.s_cmd / MM:.1f} mm")
        elif ctl.phase is Phase.PAUSED:
            calm = calm + 1 if (speed < 0.5 * cfg.bump_speed_threshold and jump < 0.5 * cfg.bump_jump_m
                                and lat < 0.3 * MM) else 0
            if calm >= int(0.3 * cfg.camera_hz):
                ctl.set_phase(Phase.DRILL)
                w.say(f"{screw.name}: back on the axis, drilling resumed")
        if ctl.phase is Phase.STOPPED:
            stopped_by = "breach"
            w.say(f"{screw.name}: breach detected at {ctl.s_cmd / MM:.1f} mm, drill stopped")
            break
        if ctl.phase is Phase.DRILL and ctl.s_cmd >= length:  # (the command ends at length + preload)
            # the commanded depth is at the stop; the drill keeps cutting until the tip (which lags
            # behind under thrust) is there too
            t_at_depth = w.sim.t if t_at_depth is None else t_at_depth
            if trace["depth"][-1] >= length - 0.1 * MM or w.sim.t - t_at_depth >= 3.0:
                stopped_by = "depth_stop"
                ctl.set_phase(Phase.STOPPED)
                break
    times["drill"] = w.sim.t - t0
    # hold a moment at the stop, then retract with the drill off
    for _ in range(int(0.2 * cfg.camera_hz)):
        frame()
    samples = w.drill.stop_hole()
    ctl.set_phase(Phase.RETRACT)
    t0 = w.sim.t
    while ctl.s_cmd > -cfg.standoff_m + 1e-6 and w.sim.t - t0 < 15.0:
        frame()
    times["retract"] = w.sim.t - t0
    trace["samples"] = samples
    return times, stopped_by, pauses, trace


def run_procedure(
    cfg: ProcedureConfig, report_dir: str | Path | None = None, say: Callable[[str], None] | None = None
) -> ProcedureResult:
    """Run the whole procedure (module docstring); write ``report_dir/report.json`` and pictures if given."""
    say = say or (lambda msg: log.info("%s", msg))
    t_start = time.perf_counter()
    directory = None if report_dir is None else Path(report_dir)
    anatomy = SpineSegment(cfg.levels)
    plan = _plan(cfg, anatomy, say)
    if cfg.plan_path is not None:
        # the simulated patient is the phantom the plan was made on
        if not plan.anatomy:
            raise ValueError(f"{cfg.plan_path}: the plan stores no phantom description; a plan made on a "
                             "mesh cannot be executed in the simulation (its bone has no ground truth here)")
        anatomy = plan.build_anatomy()
    if cfg.screws is not None:
        unknown = set(cfg.screws) - {s.name for s in plan}
        if unknown:
            raise ValueError(f"screws: not in the plan: {sorted(unknown)}")
        plan = Plan(tuple(s for s in plan if s.name in cfg.screws), plan.anatomy, plan.meta)
    t_plan = time.perf_counter() - t_start
    for s in plan:
        c = check_plan(anatomy, s)
        if c.breach:
            log.warning("%s: the plan itself breaches (%s)", s.name, c.breach_location)
    w = _World(cfg, anatomy, say)
    if cfg.gui:  # the planned trajectories, drawn at the patient's rest pose
        for s in plan:
            a = w.T_world_image0[:3, :3] @ s.entry + w.T_world_image0[:3, 3]
            b = w.T_world_image0[:3, :3] @ s.target + w.T_world_image0[:3, 3]
            pb.addUserDebugLine(a.tolist(), b.tolist(), [0.9, 0.1, 0.1], 2.0, physicsClientId=w.sim.client)
    try:
        calib, tracking = _calibrate(w, directory)
        say("tracking check (rendered camera image vs truth): " + ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in tracking.items()))
        regn = _register(w, plan)
        # the tool plate's place on the guide is known from the tool's design (as tracked tools are
        # factory-calibrated); the hand-eye estimate of it is only a check of the calibration
        w.navigator = Navigator(calib["T_base_cam"], regn["T_ref_image"], w.T_mount_toolplate, w.T_flange_tip,
                                cfg.camera_hz)
        # settle the navigation filter with the robot holding at home
        w.loop.set_controller(w.joint_ctl)
        for _ in range(int(0.6 * cfg.camera_hz)):
            w.camera_frame()
        runs: list[ScrewRun] = []
        for i, screw in enumerate(plan):
            t0 = w.sim.t
            e_b, a_b = w.navigator.axis_base(screw.entry, screw.direction)
            p_stand = e_b - cfg.standoff_m * a_b
            q_now = w.sim.read().q
            q_goal = _standoff_ik(w, p_stand, a_b, q_now)
            path, ok = _approach(w, q_goal)
            t_app = w.sim.t - t0
            say(f"{screw.name}: approach {len(path.waypoints)} waypoints ({path.planner}, "
                f"{path.plan_time_s:.2f} s planning), collision-free: {ok}")
            times, stopped_by, pauses, trace = _execute_screw(w, screw, bump=cfg.bump and i == 0)
            times = {"approach": t_app, **times}
            hole = drilled_path(trace["samples"], screw.entry, screw.target)
            if hole.depth < 1.0 * MM:
                raise ProcedureError(f"{screw.name}: the drill did not enter the bone (stopped by {stopped_by})")
            result = rep.evaluate_screw(anatomy, screw, hole.entry, hole.tip, times, stopped_by)
            say(f"{screw.name}: stopped by {stopped_by}; entry {result.entry_error / MM:.2f} mm, "
                f"tip {result.tip_error / MM:.2f} mm, angle {math.degrees(result.angle_error):.2f} deg")
            runs.append(ScrewRun(result, hole, stopped_by, pauses, path, ok, trace))
        if cfg.return_home:
            path, ok = _approach(w, w.q_home)
    finally:
        w.close()
    registration = {k: v for k, v in regn.items() if not isinstance(v, np.ndarray)}
    calibration = {k: v for k, v in calib.items() if not isinstance(v, np.ndarray)}
    report = rep.make_report(
        [r.result for r in runs],
        registration,
        anatomy,
        {"plan": t_plan, "total": time.perf_counter() - t_start},
        {
            "calibration": calibration,
            "tracking_check": tracking,
            "seed": cfg.seed,
            "levels": list(cfg.levels),
            "breathing_amplitude_mm": cfg.breathing_amplitude_m / MM if cfg.breathing else 0.0,
            "screw_runs": [
                {"name": r.result.name, "stopped_by": r.stopped_by, "pauses": r.pauses,
                 "max_lateral_mm": r.path.max_lateral / MM, "max_thrust_n": r.path.max_thrust_n,
                 "approach_planner": r.approach.planner, "approach_plan_time_s": r.approach.plan_time_s,
                 "approach_waypoints": len(r.approach.waypoints), "approach_collision_free": r.approach_collision_free}
                for r in runs
            ],
        },
    )
    out_dir = None
    if directory is not None:
        rep.write_report(directory, report, anatomy)
        _plot_traces(directory, runs)
        out_dir = directory
    return ProcedureResult(tuple(runs), registration, calibration, tracking, report, out_dir,
                           cfg.tolerance_mm, cfg.tolerance_deg)


def _plot_traces(directory: Path, runs: list[ScrewRun]) -> None:
    """Force-depth profiles and motion-compensation traces, one PNG each (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 2.6 * len(runs)), dpi=100, squeeze=False)
    for ax_row, r in zip(axes, runs, strict=True):
        s = r.trace["samples"]
        d = [(x.tip_image - r.result.planned.entry) @ r.result.planned.direction / MM for x in s]
        ax_row[0].plot(d, [x.thrust_n for x in s], lw=0.8)
        ax_row[0].axvline(r.result.planned.length / MM, color="k", ls="--", lw=0.8)
        ax_row[0].set_xlabel("depth (mm)")
        ax_row[0].set_ylabel("thrust (N)")
        ax_row[0].set_title(f"{r.result.name}: stopped by {r.stopped_by}")
        t = np.array(r.trace["t"])
        pat = np.array(r.trace["patient"])
        ax_row[1].plot(t - t[0], np.linalg.norm(pat, axis=1) / MM, label="patient offset (mm)", lw=0.8)
        ax_row[1].plot(t - t[0], np.array(r.trace["lateral"]) / MM * 10, label="tool off axis (mm x10)", lw=0.8)
        ax_row[1].set_xlabel("time (s)")
        ax_row[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(directory / "drilling_traces.png")
    plt.close(fig)


def print_report(directory: str | Path, render: bool = True) -> int:
    """Print a report's per-screw table (and re-render its pictures); returns a CLI exit code."""
    d = Path(directory)
    r = rep.load_report(d)
    print(f"report {d / 'report.json'}")
    print(f"{'screw':<8}{'entry mm':>9}{'tip mm':>8}{'angle deg':>10}{'clear mm':>9}  breach  stopped_by")
    for s in r["screws"]:
        print(f"{s['name']:<8}{s['entry_error_mm']:9.2f}{s['tip_error_mm']:8.2f}{s['angle_error_deg']:10.2f}"
              f"{s['min_clearance_mm']:9.2f}  {str(s['breach']):<6}  {s.get('stopped_by')}")
    g = r.get("registration", {})
    if g:
        items = (f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in g.items())
        print("registration: " + ", ".join(items))
    if render:
        paths = rep.render_pictures(d, r)
        for p_ in paths:
            print(f"picture: {p_}")
    return 0
