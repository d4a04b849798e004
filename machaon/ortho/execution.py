"""Robot-guided execution of a planned screw: navigation, axis hold, drilling, motion compensation.

Pieces (all SI; poses ``T_a_b``; the robot's base frame is ``base``, the CT/plan frame ``image``,
the patient reference plate ``ref``, the tracker camera ``cam``):

- :class:`PatientMotion`: the true motion of the patient in the world (breathing, a few mm at
  ~0.25 Hz, plus sudden bumps), used by the simulation to move the bone and the reference plate.
- :class:`Navigator`: the camera-rate estimate of where the plan is in the robot's base frame,
  ``T_base_image = T_base_cam @ T_cam_ref @ T_ref_image``, from the tracked reference plate, the
  hand-eye calibration ``T_base_cam`` and the registration ``T_ref_image``. The tracked tool plate
  closes the loop: the pose of the drill tip seen by the camera is compared with the robot's
  forward kinematics and the (low-passed) discrepancy corrects the target, so hand-eye
  calibration errors do not reach the bone. The reference pose is filtered with an alpha-beta
  (constant-velocity) filter, which also gives the patient's velocity for feed-forward and bump
  detection.
- :class:`AxisHoldController`: the control-rate controller (``update(state, t)``) that holds the
  drill tip on the planned axis under ``machaon.control.CartesianImpedance`` with task-frame gains
  (stiff across the axis, soft along it), a ``LineGuide`` and a ``DepthStop`` fixture from
  ``machaon.control.fixtures``, advances the depth at the feed rate while drilling, compensates
  the measured axial thrust (flange force/torque sensor) and runs the breach detector on it.
- :class:`DrillPhysics`: the simulated drill, a physics step hook that computes the thrust of the
  drill in bone from the true tip pose in the true bone frame (``machaon.ortho.drilling``), applies
  it to the tool in PyBullet and records the hole actually drilled.
- :func:`drilled_path`: the entry and tip actually drilled (for ``machaon.ortho.report``).

Bad input (NaN poses, unknown phases) raises ``ValueError``; tracking dropouts are data (the
navigator keeps its prediction and reports ``valid=False`` after ``max_missed`` frames, and the
controller then holds the depth).
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation

from machaon._validate import finite_array, transform
from machaon.control.fixtures import DepthStop, LineGuide
from machaon.ortho.drilling import BreachDetector, DrillBit, ThrustModel
from machaon.types import JointCommand, JointState

log = logging.getLogger(__name__)

MM = 1e-3


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------------
# patient motion
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bump:
    """A sudden shift of the patient: ``displacement`` (m, world) reached over ``duration_s`` from ``t_start``."""

    t_start: float
    displacement: np.ndarray
    duration_s: float = 0.06

    def offset(self, t: float) -> np.ndarray:
        u = min(max((t - self.t_start) / self.duration_s, 0.0), 1.0)
        s = 10 * u**3 - 15 * u**4 + 6 * u**5  # minimum-jerk step
        return s * np.asarray(self.displacement, dtype=np.float64)


class PatientMotion:
    """True pose of the patient (bone + reference plate) in the world: rest pose, breathing, bumps.

    Breathing is ``amplitude_m * sin(2 pi f t)`` along ``direction`` (world); bumps are added with
    :meth:`add_bump` (the procedure schedules them while drilling).
    """

    def __init__(
        self,
        T_world_patient0: np.ndarray,
        amplitude_m: float = 0.003,
        frequency_hz: float = 0.25,
        direction: np.ndarray = (0.0, 0.25, 1.0),
    ) -> None:
        self.T0 = transform("T_world_patient0", T_world_patient0).copy()
        if not (math.isfinite(amplitude_m) and amplitude_m >= 0 and math.isfinite(frequency_hz) and frequency_hz >= 0):
            raise ValueError("breathing: amplitude and frequency must be finite and >= 0")
        self.amplitude_m = float(amplitude_m)
        self.frequency_hz = float(frequency_hz)
        self.direction = _unit(finite_array("direction", direction, (3,)))
        self.bumps: list[Bump] = []

    def add_bump(self, t_start: float, displacement: np.ndarray, duration_s: float = 0.06) -> Bump:
        b = Bump(float(t_start), finite_array("displacement", displacement, (3,)).copy(), float(duration_s))
        self.bumps.append(b)
        return b

    def offset(self, t: float) -> np.ndarray:
        off = self.amplitude_m * math.sin(2 * math.pi * self.frequency_hz * t) * self.direction
        for b in self.bumps:
            off = off + b.offset(t)
        return off

    def T_world_patient(self, t: float) -> np.ndarray:
        T = self.T0.copy()
        T[:3, 3] += self.offset(t)
        return T


# ------------------------------------------------------------------------------------------
# navigation
# ------------------------------------------------------------------------------------------


@dataclass
class Navigator:
    """Camera-rate estimate of ``T_base_image`` (see module docstring).

    ``T_flange_plate``: the tool plate in the flange frame (from the hand-eye calibration);
    ``T_flange_tip``: the drill tip in the flange frame (the controlled tool frame).
    ``alpha``/``beta``: alpha-beta filter gains for the reference pose; ``correction_alpha``: the
    exponential-average gain of the tool-plate correction per frame.
    """

    T_base_cam: np.ndarray
    T_ref_image: np.ndarray
    T_flange_plate: np.ndarray
    T_flange_tip: np.ndarray
    rate_hz: float
    alpha: float = 0.25
    beta: float = 0.03
    correction_alpha: float = 0.1
    max_missed: int = 5
    T_base_image: np.ndarray | None = field(init=False, default=None)
    v_image: np.ndarray = field(init=False, default_factory=lambda: np.zeros(3))
    raw_speed: float = field(init=False, default=0.0)
    innovation: float = field(init=False, default=0.0)
    jump_window: int = 3
    _innov: list = field(init=False, default_factory=list)
    missed: int = field(init=False, default=0)
    correction: np.ndarray = field(init=False, default_factory=lambda: np.eye(4))
    _p: np.ndarray | None = field(init=False, default=None)
    _R: np.ndarray | None = field(init=False, default=None)
    _p_raw_prev: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for name in ("T_base_cam", "T_ref_image", "T_flange_plate", "T_flange_tip"):
            setattr(self, name, transform(name, getattr(self, name)).copy())
        if not self.rate_hz > 0:
            raise ValueError("rate_hz: must be > 0")

    @property
    def valid(self) -> bool:
        return self.T_base_image is not None and self.missed <= self.max_missed

    def update(
        self, T_cam_ref: np.ndarray | None, T_cam_toolplate: np.ndarray | None, T_base_flange: np.ndarray
    ) -> bool:
        """One camera frame. ``None`` for a plate not seen. Returns ``valid``."""
        dt = 1.0 / self.rate_hz
        if T_cam_toolplate is not None:
            # where the camera sees the drill tip vs where the robot's kinematics puts it
            T_base_tip_cam = self.T_base_cam @ T_cam_toolplate @ np.linalg.inv(self.T_flange_plate) @ self.T_flange_tip
            T_base_tip_fk = T_base_flange @ self.T_flange_tip
            D = T_base_tip_fk @ np.linalg.inv(T_base_tip_cam)
            a = self.correction_alpha
            C = self.correction
            rv = Rotation.from_matrix(D[:3, :3] @ C[:3, :3].T).as_rotvec()
            C_new = np.eye(4)
            C_new[:3, :3] = Rotation.from_rotvec(a * rv).as_matrix() @ C[:3, :3]
            C_new[:3, 3] = C[:3, 3] + a * (D[:3, 3] - C[:3, 3])
            self.correction = C_new
        if T_cam_ref is None:
            self.missed += 1
            if self._p is not None:
                self._p = self._p + self.v_image * dt  # predict
                self._compose()
            return self.valid
        self.missed = 0
        # the filter runs on the uncorrected estimate so that its innovation measures patient motion
        # only; the tool-plate correction is applied to its output
        T_meas = self.T_base_cam @ T_cam_ref @ self.T_ref_image
        p_meas, R_meas = T_meas[:3, 3], T_meas[:3, :3]
        if self._p_raw_prev is not None:
            self.raw_speed = float(np.linalg.norm(p_meas - self._p_raw_prev) / dt)
        self._p_raw_prev = p_meas.copy()
        if self._p is None:
            self._p, self._R = p_meas.copy(), R_meas.copy()
        else:
            p_pred = self._p + self.v_image * dt
            r = p_meas - p_pred
            # a bump shows as innovations that agree in direction over a few frames; tracker noise
            # does not, so the mean innovation vector separates the two
            self._innov = (self._innov + [r])[-self.jump_window:]
            self.innovation = float(np.linalg.norm(np.mean(self._innov, axis=0)))
            self._p = p_pred + self.alpha * r
            self.v_image = self.v_image + (self.beta / dt) * r
            rv = Rotation.from_matrix(R_meas @ self._R.T).as_rotvec()
            self._R = Rotation.from_rotvec(self.alpha * rv).as_matrix() @ self._R
        self._compose()
        return True

    def _compose(self) -> None:
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self._R, self._p
        self.T_base_image = self.correction @ T

    @property
    def v_image_corrected(self) -> np.ndarray:
        """Velocity of the image origin in the (corrected) base frame, m/s."""
        return self.correction[:3, :3] @ self.v_image

    def axis_base(self, entry_image: np.ndarray, direction_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The planned axis (entry point, unit direction) in the base frame, from the current estimate."""
        if self.T_base_image is None:
            raise ValueError("navigator: no estimate yet")
        T = self.T_base_image
        return T[:3, :3] @ entry_image + T[:3, 3], T[:3, :3] @ direction_image


# ------------------------------------------------------------------------------------------
# the control-rate controller
# ------------------------------------------------------------------------------------------


class Phase(enum.Enum):
    ALIGN = "align"
    DRILL = "drill"
    PAUSED = "paused"
    STOPPED = "stopped"
    RETRACT = "retract"


@dataclass(frozen=True)
class AxisGains:
    """Task-frame gains of the axis hold (N/m, N m/rad) and fixture stiffness (N/m)."""

    k_across: float = 5000.0
    k_along: float = 1500.0
    k_along_drill: float = 8000.0
    k_rot_across: float = 150.0
    k_rot_about: float = 10.0
    damping_ratio: float = 1.0
    k_line: float = 2000.0
    k_depth: float = 30000.0
    d_depth: float = 300.0


class AxisHoldController:
    """Holds the drill tip on the planned axis at depth ``s`` and drills (see module docstring).

    ``impedance`` is a ``CartesianImpedance`` on the chain whose tip is the drill tip, built with
    ``CartesianGains.axial`` (task frame = the target frame, z along the axis). The axis comes from
    :meth:`set_axis` at camera rate (base frame). Depth ``s`` is measured from the planned entry
    along the axis (negative above it). During ``DRILL`` the commanded depth grows at ``feed_m_s``
    up to ``length_m`` (the depth stop); the ``DepthStop`` fixture makes the planned depth a stiff
    wall for the actual tool. The measured axial force (``state.wrench_tool``) goes to the breach
    detector, whose trip stops the advance (the commanded depth freezes).
    """

    def __init__(
        self,
        impedance: object,
        gains: AxisGains,
        length_m: float,
        *,
        feed_m_s: float = 2e-3,
        retract_m_s: float = 20e-3,
        standoff_m: float = 0.02,
        air_gap_m: float = 0.002,
        smooth_s: float = 0.03,
        preload_m: float = 0.3e-3,
        detector: BreachDetector | None = None,
        supervisor: object | None = None,
    ) -> None:
        self.imp = impedance
        self.gains = gains
        self.length_m = float(length_m)
        self.feed_m_s = float(feed_m_s)
        self.retract_m_s = float(retract_m_s)
        self.standoff_m = float(standoff_m)
        self.air_gap_m = float(air_gap_m)
        self.smooth_s = float(smooth_s)
        self.preload_m = float(preload_m)
        self._meas_entry = np.zeros(3)
        self._meas_axis = np.array([0.0, 0.0, 1.0])
        self.detector = detector
        self.supervisor = supervisor
        self.phase = Phase.ALIGN
        self.s_cmd = -self.standoff_m
        self.entry: np.ndarray | None = None
        self.axis: np.ndarray | None = None
        self.v_axis = np.zeros(3)
        self.x_ref: np.ndarray | None = None
        self.axial_force_n = 0.0
        self.breach = False
        self.depth_stop = False
        self._t_prev: float | None = None
        self._f_lp = 0.0

    def set_axis(self, entry_base: np.ndarray, axis_base: np.ndarray, v_base: np.ndarray | None = None) -> None:
        """New axis estimate (camera rate): entry point, direction into the bone, and its velocity.

        Between camera frames the controller moves the axis on with ``v_base`` and blends into each
        new estimate over ``smooth_s`` (a first-order filter at control rate), so the target does
        not step at camera rate.
        """
        self._meas_entry = finite_array("entry_base", entry_base, (3,)).copy()
        self._meas_axis = _unit(finite_array("axis_base", axis_base, (3,)))
        self.v_axis = np.zeros(3) if v_base is None else finite_array("v_base", v_base, (3,)).copy()
        if self.entry is None or self.axis is None:
            self.entry, self.axis = self._meas_entry.copy(), self._meas_axis.copy()
        self._update_fixtures()  # at camera rate: the fixtures are walls, small steps do not matter
        if self.supervisor is not None:
            self.supervisor.target_updated()

    def _update_fixtures(self) -> None:
        assert self.entry is not None and self.axis is not None
        g = self.gains
        line = LineGuide(self.entry, self.axis, k=g.k_line, d=0.0)
        stop = DepthStop(self.entry, self.axis, self.length_m, k=g.k_depth, d=g.d_depth)
        self.imp.fixtures = line + stop

    def set_phase(self, phase: Phase) -> None:
        if not isinstance(phase, Phase):
            raise ValueError(f"phase: expected a Phase, got {phase!r}")
        if phase is Phase.DRILL and self.detector is not None:
            if self.phase is Phase.ALIGN:
                self.detector.reset()
            elif self.phase is Phase.PAUSED:
                self.detector.rearm()
        g = self.gains
        if phase is Phase.DRILL and self.phase is Phase.ALIGN:
            # the feed is position-controlled: a stiffer axial spring keeps the lag behind the
            # commanded depth small under thrust (the soft axial hold is for aligning)
            self.imp.set_gains(self._axial_gains(g.k_along_drill), ramp_s=0.3)
        elif phase is Phase.RETRACT:
            self.imp.set_gains(self._axial_gains(g.k_along), ramp_s=0.3)
        self.phase = phase

    def _axial_gains(self, k_along: float) -> object:
        from machaon.control.impedance import CartesianGains

        g = self.gains
        return CartesianGains.axial(g.k_across, k_along, g.k_rot_across, g.k_rot_about, g.damping_ratio)

    def depth(self, p_base: np.ndarray) -> float:
        """Depth of a base-frame point along the current axis (m)."""
        assert self.entry is not None and self.axis is not None
        return float(self.axis @ (p_base - self.entry))

    def lateral_error(self, p_base: np.ndarray) -> float:
        assert self.entry is not None and self.axis is not None
        d = p_base - self.entry
        return float(np.linalg.norm(d - (self.axis @ d) * self.axis))

    def _target(self) -> np.ndarray:
        assert self.entry is not None and self.axis is not None
        z = self.axis
        x = self.x_ref if self.x_ref is not None else np.array([1.0, 0.0, 0.0])
        x = x - (x @ z) * z
        if np.linalg.norm(x) < 1e-6:
            x = np.cross(z, [0.0, 1.0, 0.0])
        x = _unit(x)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2] = x, np.cross(z, x), z
        T[:3, 3] = self.entry + self.s_cmd * z
        return T

    def on_activate(self, state: JointState, t: float) -> None:
        T = self.imp.chain.fk(state.q)
        self.x_ref = T[:3, 0].copy()
        self._t_prev = t
        if self.entry is not None:
            self.imp.set_target(self._target())
        self.imp.on_activate(state, t)

    def update(self, state: JointState, t: float) -> JointCommand:
        dt = 0.0 if self._t_prev is None else max(t - self._t_prev, 0.0)
        self._t_prev = t
        if self.entry is None or self.axis is None:
            raise ValueError("axis hold: no axis set")
        if dt > 0:
            # carry the measured axis on with the patient's velocity, and blend the held axis into it
            self._meas_entry = self._meas_entry + self.v_axis * dt
            a = min(1.0, dt / self.smooth_s)
            self.entry = self.entry + self.v_axis * dt + a * (self._meas_entry - self.entry - self.v_axis * dt)
            self.axis = _unit(self.axis + a * (self._meas_axis - self.axis))
        # axial force that the bone exerts against the drill, >= 0 when pushing back
        f_axial = 0.0
        if state.wrench_tool is not None:
            f_axial = max(-float(np.asarray(state.wrench_tool)[:3] @ self.axis), 0.0)
        a = min(1.0, dt * 2 * math.pi * 20.0) if dt > 0 else 1.0
        self._f_lp += a * (f_axial - self._f_lp)
        self.axial_force_n = self._f_lp
        if self.phase is Phase.DRILL:
            if self.detector is not None and self.detector.update(f_axial, self.s_cmd):
                # stop where the tip is (it lags behind the command under thrust): no plunge
                self.s_cmd = self.depth(self.imp.chain.fk(state.q)[:3, 3])
                self.breach = True
                self.phase = Phase.STOPPED
                log.warning("breach detected at depth %.1f mm: drill stopped", self.s_cmd / MM)
            else:
                # rapid advance through air down to just above the entry, then the feed rate; the
                # command ends a little past the stop so that the tip, which lags under thrust,
                # still reaches the DepthStop wall with a small preload (no force fall-off there)
                rate = self.feed_m_s if self.s_cmd >= -self.air_gap_m else self.retract_m_s
                self.s_cmd = min(self.s_cmd + rate * dt, self.length_m + self.preload_m)
        elif self.phase is Phase.RETRACT:
            self.s_cmd = max(self.s_cmd - self.retract_m_s * dt, -self.standoff_m)
        # target moves with the patient: the axis velocity and the feed, as a feed-forward twist
        v_d = np.zeros(6)
        v_d[:3] = self.v_axis
        if self.phase is Phase.DRILL:
            v_d[:3] += (self.feed_m_s if self.s_cmd >= -self.air_gap_m else self.retract_m_s) * self.axis
        self.imp.set_target(self._target(), v_d=v_d)
        return self.imp.update(state, t)


# ------------------------------------------------------------------------------------------
# the simulated drill
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HoleSample:
    t: float
    tip_image: np.ndarray
    axis_image: np.ndarray
    thrust_n: float
    feed_m_s: float


class DrillPhysics:
    """Physics step hook: thrust of the drill in the (moving) bone, applied to the tool; hole recording.

    ``tip_link``/``T_link_tip``: the drill tip on the arm; ``T_world_image(t)``: the true bone pose;
    ``region_fn``: the anatomy's region codes (image frame); ``bounds``: an optional image-frame box
    around the bone outside which the region is not queried. The thrust is evaluated every
    ``every`` physics steps (held in between), with Gaussian noise ``noise_n``.

    Skiving (off unless ``skive_gain`` > 0 and ``normal_fn`` is given): while the point crosses
    the first ``skive_depth_m`` of bone, a surface inclined to the drill pushes the tip sideways,
    down the slope: the surface's reaction to the thrust has a component across the drill of
    ``thrust * tan(incidence)``, of which ``skive_gain`` (0..1, how much the point slips rather
    than bites) acts on the tool. ``normal_fn`` maps image-frame points to the bone's outward
    unit normals (e.g. ``machaon.ortho.anatomy.sdf_gradient``); the incidence is capped at 60 deg.
    """

    def __init__(
        self,
        sim: object,
        tip_link: str,
        T_link_tip: np.ndarray,
        T_world_image,
        region_fn,
        model: ThrustModel,
        bit: DrillBit,
        *,
        every: int = 2,
        noise_n: float = 0.2,
        feed_tau_s: float = 0.08,
        rng: np.random.Generator | None = None,
        bounds: np.ndarray | None = None,
        skive_gain: float = 0.0,
        normal_fn=None,
        skive_depth_m: float = 0.0015,
    ) -> None:
        if not (math.isfinite(skive_gain) and 0.0 <= skive_gain <= 1.0 and skive_depth_m >= 0.0):
            raise ValueError("skive_gain must be in [0, 1] and skive_depth_m >= 0")
        self.skive_gain = float(skive_gain)
        self.normal_fn = normal_fn
        self.skive_depth_m = float(skive_depth_m)
        self._s_bone: float | None = None  # depth along the axis where the point first met bone
        self.sim = sim
        self.link = sim.link_index(tip_link)
        self.T_link_tip = transform("T_link_tip", T_link_tip).copy()
        self.T_world_image = T_world_image
        self.region_fn = region_fn
        self.model = model
        self.bit = bit
        self.every = int(every)
        self.noise_n = float(noise_n)
        self.feed_tau_s = float(feed_tau_s)
        # (2, 3) image-frame box around the bone: outside it (plus the drill point) nothing is cut
        self.bounds = None if bounds is None else finite_array("bounds", bounds, (2, 3)).copy()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.spinning = False
        self.recording = False
        self.samples: list[HoleSample] = []
        self.thrust_n = 0.0
        self._k = 0
        self._prev: tuple[float, np.ndarray] | None = None  # (t, tip in the bone frame)
        self._feed = 0.0
        self._f_world = np.zeros(3)
        self._p_world = np.zeros(3)

    def __call__(self) -> None:
        sim = self.sim
        if self._k % self.every == 0:
            t = sim.t
            T_wt = sim.T_world_link(sim.link_names[self.link]) @ self.T_link_tip
            T_wi = self.T_world_image(t)
            T_iw = np.eye(4)
            T_iw[:3, :3] = T_wi[:3, :3].T
            T_iw[:3, 3] = -T_wi[:3, :3].T @ T_wi[:3, 3]
            tip_i = T_iw[:3, :3] @ T_wt[:3, 3] + T_iw[:3, 3]
            axis_i = T_iw[:3, :3] @ T_wt[:3, 2]
            if self._prev is not None and t > self._prev[0]:
                # feed = the tip's velocity relative to the bone, along the drill axis
                dt = t - self._prev[0]
                v = float(axis_i @ (tip_i - self._prev[1])) / dt
                # the cutting law is a very stiff damper (dF/dv ~ 1e4 N s/m); feeding it the raw
                # velocity makes the explicit physics step chatter. A first-order filter (feed_tau_s)
                # turns it into a stiff spring at high frequency, as a real bit engaging bone behaves.
                self._feed += min(1.0, dt / self.feed_tau_s) * (v - self._feed)
            self._prev = (t, tip_i)
            f = 0.0
            near = self.bounds is None or bool(
                np.all(tip_i > self.bounds[0] - 0.005) and np.all(tip_i < self.bounds[1] + 0.005)
            )
            if self.spinning and self._feed > 0 and near:
                f = self.model.thrust(self.region_fn, tip_i, axis_i, self._feed, self.bit)
                if f > 0:
                    f = max(f + self.rng.normal(0.0, self.noise_n), 0.0)
            self.thrust_n = f
            self._f_world = -f * T_wt[:3, 2]
            if f > 0 and self.skive_gain > 0 and self.normal_fn is not None:
                self._f_world = self._f_world + T_wi[:3, :3] @ self._skive(tip_i, axis_i, f)
            self._p_world = T_wt[:3, 3]
            if self.recording:
                self.samples.append(HoleSample(t, tip_i, axis_i, f, self._feed))
        self._k += 1
        if self.thrust_n > 0:
            p.applyExternalForce(
                sim.body, self.link, self._f_world.tolist(), self._p_world.tolist(), p.WORLD_FRAME,
                physicsClientId=sim.client,
            )

    def _skive(self, tip_i: np.ndarray, axis_i: np.ndarray, f: float) -> np.ndarray:
        """Lateral force (N, image frame) on the tip at the entry cortex (class docstring)."""
        a = axis_i / np.linalg.norm(axis_i)
        s = float(a @ tip_i)
        if self._s_bone is None:
            self._s_bone = s
        if s - self._s_bone > self.skive_depth_m:
            return np.zeros(3)
        n = np.asarray(self.normal_fn(tip_i[None]), dtype=np.float64).reshape(3)
        across = n - (n @ a) * a
        sin_i = float(np.linalg.norm(across))
        if sin_i < 1e-9:
            return np.zeros(3)
        incidence = min(math.atan2(sin_i, -float(n @ a)), math.radians(60.0))
        return self.skive_gain * f * math.tan(incidence) * across / sin_i

    def start_hole(self) -> None:
        self._s_bone = None
        self.samples = []
        self.recording = True
        self.spinning = True

    def stop_hole(self) -> list[HoleSample]:
        self.recording = False
        self.spinning = False
        self.thrust_n = 0.0
        return list(self.samples)


# ------------------------------------------------------------------------------------------
# what was drilled vs what was planned
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrilledPath:
    """The path actually drilled, image frame (m): from the recorded drill-tip samples.

    ``entry``: where the tip crossed the planned entry depth (the plane through the planned entry
    normal to the planned axis); ``tip``: the deepest point reached along the planned axis;
    ``max_lateral``: the largest distance of the drilled path from the planned axis between entry
    and tip (a bump shows here); ``max_thrust_n``: the peak thrust.
    """

    entry: np.ndarray
    tip: np.ndarray
    depth: float
    max_lateral: float
    max_thrust_n: float


def drilled_path(samples: list[HoleSample], entry: np.ndarray, target: np.ndarray) -> DrilledPath:
    """Extract the drilled entry/tip from recorded samples against the planned ``entry`` -> ``target``."""
    if not samples:
        raise ValueError("hole: no samples recorded")
    entry = finite_array("entry", entry, (3,))
    target = finite_array("target", target, (3,))
    d = _unit(target - entry)
    P = np.array([s.tip_image for s in samples])
    s_along = (P - entry) @ d
    k_tip = int(np.argmax(s_along))
    tip = P[k_tip]
    idx = np.nonzero(s_along >= 0.0)[0]
    if len(idx) == 0 or idx[0] == 0:
        p_entry = P[int(np.argmin(np.abs(s_along)))]
    else:
        k = int(idx[0])
        a, b = s_along[k - 1], s_along[k]
        w = 0.0 if b == a else -a / (b - a)
        p_entry = P[k - 1] + w * (P[k] - P[k - 1])
    inside = (s_along >= 0.0) & (np.arange(len(P)) <= k_tip)
    rel = P[inside] - entry
    lat = rel - np.outer(rel @ d, d)
    return DrilledPath(
        entry=p_entry,
        tip=tip,
        depth=float(s_along[k_tip]),
        max_lateral=float(np.linalg.norm(lat, axis=1).max()) if len(lat) else 0.0,
        max_thrust_n=float(max(s.thrust_n for s in samples)),
    )
