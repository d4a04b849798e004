"""PyBullet simulation of a lower-limb exoskeleton and its wearer, as a ``Backend`` (layer 4).

Model (``machaon/robot/descriptions/exo_legs.urdf``): pelvis, thigh, shank and foot of both legs
in the sagittal plane; hip and knee joints carry the exoskeleton actuators (the Backend's 4
joints: hip_l, knee_l, hip_r, knee_r; flexion positive, rad, N m); ankles are moved by the wearer
only. Feet touch a ground plane with friction.

**Body-weight-supported walking**: the pelvis is held by a trolley, as in Lokomat/Andago-type
gait rehabilitation: it moves freely forward (x) and vertically (z) with a constant support force
of ``bws_fraction`` of the body weight, but cannot pitch or fall sideways. Free 3-D balance is not
simulated.

Wearer model: a central pattern (the reference gait of ``exo_legs.toml``, or the wearer's own
version of it with scaled joint excursions, ``WearerConfig.gait_rom_scale``; legs half a cycle
apart, stride ``stride_time_s``) is tracked by each joint with a PD "intention"; the neural drive
``u = clip(PD / tau_max, -1, 1)`` of each joint is split into a flexor and an extensor muscle
(``u`` > 0 flexor, < 0 extensor); the muscles produce ``u * tau_max``. On the weak side
``tau_max`` is scaled by ``weakness`` per joint (hemiparesis; the ankle is braced by an AFO by
default) and the knee extensors are spastic (a stretch reflex resisting fast knee flexion), so
that leg flexes its knee less in swing, scuffs and lands early: the stiff-knee gait after stroke.

Sensors, generated from the simulated physics so the whole exo chain closes:

- 8 EMG channels at ``emg_rate_hz`` (layout of ``machaon.exo.frames.EMG_CHANNELS``: per leg
  rectus femoris / gluteus maximus (hip flexor / extensor), vastus lateralis / semitendinosus
  (knee extensor / flexor)): each muscle is a pool of motor units (Fuglevand-type recruitment
  thresholds and rate coding) firing Poisson spike trains, each spike filtered by a biphasic
  action potential shape; plus mains interference (50 Hz and 150 Hz) and amplifier noise (V).
- 4 IMUs (thigh and shank of each leg) at ``imu_rate_hz``: gyroscope (rad/s) and accelerometer
  (specific force, m/s^2) in the segment frame (x anterior, y left, z proximal), from the
  PyBullet link velocities at the sensor point (acceleration by finite difference), averaged
  over each output period as an IMU's decimation filter does, with noise.

``sensors.poll()`` returns everything generated since the last poll (like the serial board);
faults can be injected there (dropout, electrode off, NaN samples). ``trace()`` returns the
ground truth per physics step (foot contacts, all joint angles, wearer and exo torques).

Bad input: a command that is not TORQUE mode, has the wrong length or NaN raises ``ValueError``
(a programming error, per the Backend protocol); exo torques beyond the actuator limits of the
TOML are clipped.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet as p
from scipy.interpolate import CubicSpline

from machaon.errors import SimError
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState, SensorBatch

DESCRIPTIONS = Path(__file__).resolve().parent.parent / "robot" / "descriptions"
EXO_JOINTS = ("hip_l", "knee_l", "hip_r", "knee_r")
WEARER_JOINTS = ("hip_l", "knee_l", "ankle_l", "hip_r", "knee_r", "ankle_r")
IMU_LINKS = ("thigh_l", "shank_l", "thigh_r", "shank_r")
# IMU position in its segment's link frame (m): anterior surface, 20 cm below the joint.
IMU_OFFSET = np.array([0.06, 0.0, -0.20])
GRAVITY = 9.80665


@dataclass(frozen=True)
class WearerConfig:
    """The simulated person. Torques N m, gains N m/rad and N m s/rad, per (hip, knee, ankle)."""

    stride_time_s: float = 1.1
    weak_side: str = "r"
    # Fraction of the healthy peak torque left on the weak side, per (hip, knee, ankle).
    weakness: tuple[float, float, float] = (0.25, 0.25, 1.0)
    # Knee-extensor spasticity of the weak side: a velocity-dependent stretch reflex resisting
    # knee flexion, tau = -k max(0, dq_knee) (N m s/rad); it gives the stiff-knee gait of stroke.
    spasticity_nm_s: float = 8.0
    tau_max_nm: tuple[float, float, float] = (120.0, 100.0, 80.0)
    kp: tuple[float, float, float] = (300.0, 150.0, 100.0)
    kd: tuple[float, float, float] = (20.0, 8.0, 4.0)
    bws_fraction: float = 0.5
    co_contraction: float = 0.03
    # The wearer's own intended gait: the reference gait's excursion scaled per (hip, knee, ankle)
    # (``scaled_gait``); with ``stride_time_s`` it gives each simulated person a gait of their own.
    gait_rom_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.weak_side not in ("l", "r", "none"):
            raise ValueError("weak_side must be 'l', 'r' or 'none'")
        if len(self.gait_rom_scale) != 3 or not all(0.3 <= s <= 3.0 for s in self.gait_rom_scale):
            raise ValueError("gait_rom_scale: three factors in [0.3, 3] (hip, knee, ankle)")
        if not all(0 < w <= 1 for w in self.weakness) or not 0 <= self.bws_fraction < 1 or self.stride_time_s <= 0:
            raise ValueError("weakness in (0, 1], bws_fraction in [0, 1), stride_time_s > 0")


@dataclass(frozen=True)
class LegSimConfig:
    """Simulation and sensor settings (SI)."""

    dt: float = 0.001
    emg_rate_hz: int = 2000
    imu_rate_hz: int = 200
    seed: int = 0
    friction: float = 0.9
    emg_mvc_rms_v: float = 5e-4
    mains_hz: float = 50.0
    mains_v: float = 2e-5
    emg_noise_v: float = 3e-6
    gyro_noise_rad_s: float = 0.01
    acc_noise_m_s2: float = 0.05
    n_motor_units: int = 80
    urdf: str = "exo_legs.urdf"
    toml: str = "exo_legs.toml"

    def __post_init__(self) -> None:
        if abs(self.emg_rate_hz * self.dt - round(self.emg_rate_hz * self.dt)) > 1e-9 or self.emg_rate_hz * self.dt < 1:
            raise ValueError("emg_rate_hz * dt must be a whole number of samples per step")
        if abs(1.0 / (self.imu_rate_hz * self.dt) - round(1.0 / (self.imu_rate_hz * self.dt))) > 1e-9:
            raise ValueError("1 / (imu_rate_hz * dt) must be a whole number of steps")


def _load_description(cfg: LegSimConfig) -> tuple[CubicSpline, float, np.ndarray]:
    """Wearer's intended gait (periodic spline, rad; phase 0 = heel strike) and exo torque limits."""
    with open(DESCRIPTIONS / cfg.toml, "rb") as f:
        d = tomllib.load(f)
    g = d["reference_gait"]
    pct = np.asarray(g["phase_pct"], dtype=np.float64) / 100.0
    ang = np.deg2rad(np.stack([np.asarray(g[k], dtype=np.float64) for k in ("hip_deg", "knee_deg", "ankle_deg")], 1))
    spline = CubicSpline(pct, ang, bc_type="periodic", axis=0)
    return spline, float(g["stride_time_s"]), np.asarray(d["limits"]["torque_nm"], dtype=np.float64)


def scaled_gait(gait: CubicSpline, rom_scale: tuple[float, float, float]) -> CubicSpline:
    """``gait`` (periodic spline of [hip, knee, ankle] rad over phase) with each joint's excursion scaled.

    Hip and ankle scale about their cycle mean, the knee about its minimum (full extension at
    heel strike stays where it is, only the flexion grows or shrinks). The spline is linear in its
    knots, so scaling the knots scales the curve exactly.
    """
    s = np.asarray(rom_scale, dtype=np.float64)
    if s.shape != (3,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("rom_scale: three positive factors (hip, knee, ankle)")
    dense = gait(np.linspace(0.0, 1.0, 1001)[:-1])
    anchor = np.array([dense[:, 0].mean(), dense[:, 1].min(), dense[:, 2].mean()])
    y = gait(gait.x)
    return CubicSpline(gait.x, anchor + s * (y - anchor), bc_type="periodic", axis=0)


class MotorUnitEMG:
    """Surface EMG of ``n_muscles`` muscles from neural drive ``u`` in [0, 1] (one value per block).

    Each muscle: ``n_mu`` motor units with exponentially spaced recruitment thresholds (all
    recruited at 70 % drive), firing rates 8-35 Hz rising linearly above threshold, Poisson
    spike trains, twitch amplitudes spanning 1:50, and one biphasic MUAP shape (first-order
    Hermite-Rodriguez, ~1 ms scale). ``pool_scale`` scales each muscle's amplitude (a smaller
    pool on the paretic side). Output volts, scaled so RMS at u = 1 is ``mvc_rms_v``.
    """

    def __init__(self, n_muscles: int, fs_hz: float, n_mu: int, mvc_rms_v: float, pool_scale: np.ndarray,
                 rng: np.random.Generator) -> None:
        self.fs = fs_hz
        self.rng = rng
        i = np.arange(n_mu)
        self.thr = 0.7 * (np.exp(np.log(30.0) * i / (n_mu - 1)) - 1.0) / 29.0  # 0 .. 0.7
        self.amp = np.exp(np.log(50.0) * i / (n_mu - 1))
        tt = np.arange(-6, 7) / fs_hz
        lam = 1.0e-3
        self.muap = (tt / lam) * np.exp(-((tt / lam) ** 2))
        self._hist = np.zeros((self.muap.size - 1, n_muscles))  # last inputs, for block convolution
        # Scale so that a Poisson train at full drive has the requested RMS (shot-noise power).
        rate1 = self._rates(np.ones(1))[0]
        # Per sample, unit i fires with probability rate_i / fs: variance sum(rate_i / fs * amp_i^2) * sum(h^2).
        power = np.sum(rate1 / fs_hz * self.amp**2) * np.sum(self.muap**2)
        self.gain = mvc_rms_v / math.sqrt(power) * np.asarray(pool_scale, dtype=np.float64)

    def _rates(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u)[:, None]
        above = u - self.thr[None, :]
        rate = 8.0 + 27.0 * above / (1.0 - self.thr[None, :] + 1e-9)
        return np.where(above > 0, np.minimum(rate, 35.0), 0.0)

    def generate(self, u: np.ndarray, n: int) -> np.ndarray:
        """``n`` samples (n, muscles) of EMG in V for drive ``u`` (muscles,) held over the block."""
        rates = self._rates(np.clip(u, 0.0, 1.0))  # (muscles, mu)
        spikes = self.rng.random((n,) + rates.shape) < rates[None] / self.fs
        impulses = spikes.astype(np.float64) @ self.amp * self.gain[None, :]
        ext = np.concatenate([self._hist, impulses], axis=0)
        self._hist = ext[-(self.muap.size - 1) :]
        # Causal FIR over the block (the same as lfilter with kept state, cheaper for short blocks).
        win = np.lib.stride_tricks.sliding_window_view(ext, self.muap.size, axis=0)  # (n, muscles, taps)
        return win @ self.muap[::-1]


class LegSensors:
    """Buffer of simulated EMG/IMU samples, drained by ``poll()``; with fault injection.

    ``dropout`` True: samples are lost (nothing is delivered, ``dropped`` counts frames).
    ``electrode_off`` set of channels that show a lifted electrode (mains hum, no EMG).
    ``nan_channels`` channels that deliver NaN (a broken driver).
    """

    def __init__(self, n_emg: int = 8, n_imu: int = 4) -> None:
        self.n_emg, self.n_imu = n_emg, n_imu
        self._t_emg: list[np.ndarray] = []
        self._emg: list[np.ndarray] = []
        self._t_imu: list[float] = []
        self._imu: list[np.ndarray] = []
        self.dropout = False
        self.electrode_off: set[int] = set()
        self.nan_channels: set[int] = set()
        self._dropped = 0

    def _push_emg(self, t: np.ndarray, emg: np.ndarray) -> None:
        if self.dropout:
            self._dropped += 1
            return
        self._t_emg.append(t)
        self._emg.append(emg)

    def _push_imu(self, t: float, imu: np.ndarray) -> None:
        if not self.dropout:
            self._t_imu.append(t)
            self._imu.append(imu)

    def poll(self) -> SensorBatch:
        emg = np.vstack(self._emg) if self._emg else np.zeros((0, self.n_emg))
        t_emg = np.concatenate(self._t_emg) if self._t_emg else np.zeros(0)
        imu = np.stack(self._imu) if self._imu else np.zeros((0, self.n_imu, 6))
        batch = SensorBatch(t_emg, emg, np.asarray(self._t_imu, dtype=np.float64), imu, self._dropped, 0)
        self._t_emg, self._emg, self._t_imu, self._imu, self._dropped = [], [], [], [], 0
        return batch


@dataclass(frozen=True)
class LegTrace:
    """Ground truth per physics step: ``t`` (n,), ``q``/``tau_wearer``/``drive`` (n, 6) in
    WEARER_JOINTS order, ``tau_exo`` (n, 4) in EXO_JOINTS order, ``contact`` (n, 2) bool (left,
    right foot on the ground), ``pelvis`` (n, 2) x, z (m)."""

    t: np.ndarray
    q: np.ndarray
    tau_wearer: np.ndarray
    drive: np.ndarray
    tau_exo: np.ndarray
    contact: np.ndarray
    pelvis: np.ndarray


@dataclass(frozen=True)
class _TraceLog:
    """The ground truth as it is recorded, one entry per physics step (``LegTrace`` gives units)."""

    t: list[float] = field(default_factory=list)
    q: list[np.ndarray] = field(default_factory=list)
    tau_wearer: list[np.ndarray] = field(default_factory=list)
    drive: list[np.ndarray] = field(default_factory=list)
    tau_exo: list[np.ndarray] = field(default_factory=list)
    contact: list[list[bool]] = field(default_factory=list)
    pelvis: list[list[float]] = field(default_factory=list)

    def append(self, t: float, q: np.ndarray, tau_wearer: np.ndarray, drive: np.ndarray, tau_exo: np.ndarray,
               contact: list[bool], pelvis: list[float]) -> None:
        """Record one step (the arrays are kept, not copied: pass fresh ones)."""
        self.t.append(t)
        self.q.append(q)
        self.tau_wearer.append(tau_wearer)
        self.drive.append(drive)
        self.tau_exo.append(tau_exo)
        self.contact.append(contact)
        self.pelvis.append(pelvis)

    def freeze(self) -> LegTrace:
        """The steps so far as arrays (shapes as in ``LegTrace``, also with no step yet)."""
        return LegTrace(
            np.asarray(self.t),
            np.asarray(self.q).reshape(-1, 6),
            np.asarray(self.tau_wearer).reshape(-1, 6),
            np.asarray(self.drive).reshape(-1, 6),
            np.asarray(self.tau_exo).reshape(-1, 4),
            np.asarray(self.contact, dtype=bool).reshape(-1, 2),
            np.asarray(self.pelvis).reshape(-1, 2),
        )


class _SimClock:
    def __init__(self, sim: LegSim) -> None:
        self._sim = sim

    def now(self) -> float:
        return self._sim.t

    def wait_until(self, t: float) -> None:
        while self._sim.t + 0.5 * self._sim.cfg.dt < t:
            self._sim.step()


class LegSim:
    """The exo + wearer PyBullet world (DIRECT by default; ``gui=True`` opens a window).

    Backend of 4 exo joints (``EXO_JOINTS``), torque mode. The clock steps physics in
    ``wait_until``. Use as a context manager; ``close()`` disconnects PyBullet.
    """

    def __init__(self, wearer: WearerConfig | None = None, cfg: LegSimConfig | None = None, gui: bool = False) -> None:
        self.wearer = wearer or WearerConfig()
        self.cfg = cfg or LegSimConfig()
        self._gait, _, self._exo_limit = _load_description(self.cfg)
        if self.wearer.gait_rom_scale != (1.0, 1.0, 1.0):
            self._gait = scaled_gait(self._gait, self.wearer.gait_rom_scale)
        self._client = p.connect(p.GUI if gui else p.DIRECT)
        if self._client < 0:
            raise SimError("PyBullet could not open its GUI (no display? run headless or under xvfb-run)")
        self._load_bodies()
        side_scale = self._init_wearer_drive()
        self._init_emg(side_scale)
        self.sensors = LegSensors()
        self.clock = _SimClock(self)
        self.t = 0.0
        self._k = 0
        self._tau_exo = np.zeros(4)
        self._v_prev: np.ndarray | None = None
        self._emg_queue: list[tuple[np.ndarray, np.ndarray]] = []
        self._imu_sum = np.zeros((4, 6))
        self._imu_n = 0
        self._trace = _TraceLog()
        self._faults: tuple[DeviceFault, ...] = ()
        self._reset_pose()

    def _load_bodies(self) -> None:
        """World (gravity, ``dt``, a ground plane) and the legs' fixed-base URDF: joint and link
        indices, joint motors off (torque control), foot and ground friction, moving mass (kg)."""
        c = self._client
        p.setGravity(0, 0, -GRAVITY, physicsClientId=c)
        p.setTimeStep(self.cfg.dt, physicsClientId=c)
        self._plane = p.createMultiBody(0, p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c), physicsClientId=c)
        self._body = p.loadURDF(str(DESCRIPTIONS / self.cfg.urdf), useFixedBase=True, physicsClientId=c)
        names = {}
        for j in range(p.getNumJoints(self._body, physicsClientId=c)):
            info = p.getJointInfo(self._body, j, physicsClientId=c)
            names[info[1].decode()] = j
            names["link:" + info[12].decode()] = j
        self._j_px, self._j_pz = names["pelvis_x"], names["pelvis_z"]
        self._j_wearer = [names[n] for n in WEARER_JOINTS]
        self._j_exo = [names[n] for n in EXO_JOINTS]
        self._exo_in_wearer = [WEARER_JOINTS.index(n) for n in EXO_JOINTS]
        self._l_feet = [names["link:foot_l"], names["link:foot_r"]]
        self._l_imu = [names["link:" + n] for n in IMU_LINKS]
        all_j = [self._j_px, self._j_pz, *self._j_wearer]
        p.setJointMotorControlArray(self._body, all_j, p.VELOCITY_CONTROL, forces=[0.0] * len(all_j), physicsClientId=c)
        for link in self._l_feet:
            p.changeDynamics(self._body, link, lateralFriction=self.cfg.friction, physicsClientId=c)
        p.changeDynamics(self._plane, -1, lateralFriction=self.cfg.friction, physicsClientId=c)
        self._mass = sum(
            p.getDynamicsInfo(self._body, j, physicsClientId=c)[0]
            for j in range(self._j_pz, p.getNumJoints(self._body, physicsClientId=c))
        )

    def _init_wearer_drive(self) -> dict[str, np.ndarray]:
        """The wearer's peak torques (N m) and gains, both legs in WEARER_JOINTS order, with the weak
        side scaled; returns the strength fraction per side, per (hip, knee, ankle)."""
        side_scale = {"l": np.ones(3), "r": np.ones(3)}
        if self.wearer.weak_side != "none":
            side_scale[self.wearer.weak_side] = np.asarray(self.wearer.weakness, dtype=np.float64)
        tm = np.asarray(self.wearer.tau_max_nm)
        self._tau_max = np.concatenate([tm * side_scale["l"], tm * side_scale["r"]])
        self._kp = np.tile(self.wearer.kp, 2)
        self._kd = np.tile(self.wearer.kd, 2)
        return side_scale

    def _init_emg(self, side_scale: dict[str, np.ndarray]) -> None:
        """The seeded random stream and the motor-unit EMG model (8 channels, V) with pools sized by
        ``side_scale``; samples per physics step and steps per IMU sample."""
        self._rng = np.random.default_rng(self.cfg.seed)
        # Motor-unit pool size follows hip/knee strength (channels: hip flex/ext, knee ext/flex).
        pool = np.repeat([side_scale["l"][0], side_scale["l"][1], side_scale["r"][0], side_scale["r"][1]], 2) ** 0.5
        self._pool = pool
        self._emg_model = MotorUnitEMG(8, self.cfg.emg_rate_hz, self.cfg.n_motor_units, self.cfg.emg_mvc_rms_v, pool,
                                       self._rng)
        self._n_emg_step = int(round(self.cfg.emg_rate_hz * self.cfg.dt))
        self._imu_every = int(round(1.0 / (self.cfg.imu_rate_hz * self.cfg.dt)))

    # -- Backend protocol ------------------------------------------------------------------
    @property
    def dof(self) -> int:
        return 4

    @property
    def joint_names(self) -> tuple[str, ...]:
        return EXO_JOINTS

    def read(self) -> JointState:
        if self._client < 0:
            raise SimError("LegSim is closed")
        st = p.getJointStates(self._body, self._j_exo, physicsClientId=self._client)
        q = np.array([s[0] for s in st])
        dq = np.array([s[1] for s in st])
        return JointState(self.t, q, dq, self._tau_exo.copy(), faults=self._faults)

    def write(self, cmd: JointCommand) -> None:
        if cmd.mode is not CommandMode.TORQUE or cmd.tau is None:
            raise ValueError(f"LegSim drives the exo in torque mode only, got {cmd.mode}")
        tau = np.asarray(cmd.tau, dtype=np.float64)
        if tau.shape != (4,) or not np.isfinite(tau).all():
            raise ValueError(f"exo torque must be 4 finite values, got {tau!r}")
        self._tau_exo = np.clip(tau, -self._exo_limit, self._exo_limit)

    def close(self) -> None:
        if self._client >= 0:
            p.disconnect(physicsClientId=self._client)
            self._client = -1

    def __enter__(self) -> LegSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- wearer ----------------------------------------------------------------------------
    def wearer_phase(self, t: float | None = None) -> tuple[float, float]:
        """Intended gait phase of (left, right) leg at time t (s), in [0, 1)."""
        tt = self.t if t is None else t
        ph = tt / self.wearer.stride_time_s
        return (ph % 1.0, (ph + 0.5) % 1.0)

    def _reset_pose(self) -> None:
        c = self._client
        ph = self.wearer_phase(0.0)
        T = self.wearer.stride_time_s
        for s in range(2):
            a = self._gait(ph[s])
            da = self._gait(ph[s], 1) / T
            for k in range(3):
                p.resetJointState(self._body, self._j_wearer[3 * s + k], a[k], da[k], physicsClientId=c)
        # Put the lowest foot on the ground.
        p.resetJointState(self._body, self._j_pz, 1.0, physicsClientId=c)
        low = min(p.getAABB(self._body, link, physicsClientId=c)[0][2] for link in self._l_feet)
        p.resetJointState(self._body, self._j_pz, 1.0 - low + 0.002, physicsClientId=c)
        p.resetJointState(self._body, self._j_px, 0.0, 0.0, physicsClientId=c)

    def _wearer_torques(self, q: np.ndarray, dq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ph = self.wearer_phase()
        T = self.wearer.stride_time_s
        both = np.array(ph)
        qd = self._gait(both).reshape(6)
        dqd = self._gait(both, 1).reshape(6) / T
        pd = self._kp * (qd - q) + self._kd * (dqd - dq)
        u = np.clip(pd / self._tau_max, -1.0, 1.0)
        tau = u * self._tau_max
        if self.wearer.weak_side != "none" and self.wearer.spasticity_nm_s > 0:
            k = 1 if self.wearer.weak_side == "l" else 4  # weak knee in WEARER_JOINTS
            reflex = self.wearer.spasticity_nm_s * max(0.0, dq[k])
            tau[k] -= reflex
            # The reflex is knee-extensor activity: it shows in that muscle's EMG (drive < 0).
            u[k] = max(-1.0, u[k] - reflex / self._tau_max[k])
        return tau, u

    def mvc_trial(self, seconds: float = 2.0) -> np.ndarray:
        """EMG (n, 8) V of a maximal voluntary contraction of every muscle (isometric, drive 1)."""
        n = int(round(seconds * self.cfg.emg_rate_hz))
        model = MotorUnitEMG(8, self.cfg.emg_rate_hz, self.cfg.n_motor_units, self.cfg.emg_mvc_rms_v, self._pool,
                             np.random.default_rng(self.cfg.seed + 1))
        return model.generate(np.ones(8), n) + self._emg_noise(np.arange(n) / self.cfg.emg_rate_hz)

    def _emg_noise(self, t: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        w = 2 * np.pi * cfg.mains_hz
        hum = cfg.mains_v * (np.sin(w * t) + 0.3 * np.sin(3 * w * t + 0.4))
        return hum[:, None] + cfg.emg_noise_v * self._rng.standard_normal((t.size, 8))

    # -- physics step ------------------------------------------------------------------------
    def step(self) -> None:
        """Advance one physics step of ``dt``: wearer + exo torques, BWS trolley, sensors, trace."""
        c = self._client
        cfg = self.cfg
        st = p.getJointStates(self._body, self._j_wearer, physicsClientId=c)
        q = np.array([s[0] for s in st])
        dq = np.array([s[1] for s in st])
        tau_w, u = self._wearer_torques(q, dq)
        tau = tau_w.copy()
        tau[self._exo_in_wearer] += self._tau_exo
        vz = p.getJointState(self._body, self._j_pz, physicsClientId=c)[1]
        vx = p.getJointState(self._body, self._j_px, physicsClientId=c)[1]
        f_bws = self.wearer.bws_fraction * self._mass * GRAVITY - 200.0 * vz
        p.setJointMotorControlArray(
            self._body,
            [self._j_px, self._j_pz, *self._j_wearer],
            p.TORQUE_CONTROL,
            forces=[-5.0 * vx, f_bws, *tau],
            physicsClientId=c,
        )
        p.stepSimulation(physicsClientId=c)
        self._k += 1
        self.t = self._k * cfg.dt
        self._make_sensors(u)
        contact = [
            sum(cp[9] for cp in p.getContactPoints(self._body, self._plane, link, -1, physicsClientId=c)) > 20.0
            for link in self._l_feet
        ]
        pel = [p.getJointState(self._body, j, physicsClientId=c)[0] for j in (self._j_px, self._j_pz)]
        self._trace.append(self.t, q, tau_w, u, self._tau_exo.copy(), contact, pel)

    def _make_sensors(self, u: np.ndarray) -> None:
        cfg = self.cfg
        every = self._imu_every
        # EMG is synthesised per IMU period (5 ms): the neural drive is held over the block, far
        # shorter than muscle activation dynamics; samples are released step by step, as a board
        # streams them.
        if not self._emg_queue:
            cc = self.wearer.co_contraction
            drive = np.empty(8)
            for s in range(2):
                uh, uk = u[3 * s], u[3 * s + 1]
                # Channel order per leg: RF (hip flexor), GM (hip ext.), VL (knee ext.), ST (knee flexor).
                drive[4 * s : 4 * s + 4] = (max(uh, 0), max(-uh, 0), max(-uk, 0), max(uk, 0))
            drive = np.clip(drive + cc, 0.0, 1.0)
            n = self._n_emg_step * every
            t_blk = self.t - cfg.dt + (np.arange(n) + 1) / cfg.emg_rate_hz
            emg = self._emg_model.generate(drive, n) + self._emg_noise(t_blk)
            for k in range(every):
                sl = slice(k * self._n_emg_step, (k + 1) * self._n_emg_step)
                self._emg_queue.append((t_blk[sl], emg[sl]))
        t_emg, emg = self._emg_queue.pop(0)
        if self.sensors.electrode_off or self.sensors.nan_channels:
            emg = emg.copy()
            for ch in self.sensors.electrode_off:
                hum = 2e-3 * np.sin(2 * np.pi * cfg.mains_hz * t_emg)
                emg[:, ch] = hum + 2e-6 * self._rng.standard_normal(emg.shape[0])
            for ch in self.sensors.nan_channels:
                emg[:, ch] = np.nan
        self.sensors._push_emg(t_emg, emg)
        # IMUs: like a real IMU's internal decimation filter, the 200 Hz output is the mean of the
        # per-step (1 kHz) angular rate and specific force over the output period. Point samples
        # every 5 ms would alias the sharp rate changes at heel strike into orientation drift.
        ls = p.getLinkStates(self._body, self._l_imu, computeLinkVelocity=1, computeForwardKinematics=1,
                             physicsClientId=self._client)
        v = np.empty((4, 3))
        gyr = np.empty((4, 3))
        R = np.empty((4, 3, 3))
        for i, st in enumerate(ls):
            R[i] = np.asarray(p.getMatrixFromQuaternion(st[5])).reshape(3, 3)
            w = st[7]
            r = np.asarray(st[4]) + R[i] @ IMU_OFFSET - np.asarray(st[0])
            cross = (w[1] * r[2] - w[2] * r[1], w[2] * r[0] - w[0] * r[2], w[0] * r[1] - w[1] * r[0])
            v[i] = np.asarray(st[6]) + cross
            gyr[i] = R[i].T @ np.asarray(w)
        v_prev = v if self._v_prev is None else self._v_prev
        self._v_prev = v
        acc_w = (v - v_prev) / cfg.dt + np.array([0.0, 0.0, GRAVITY])
        self._imu_sum[:, :3] += gyr
        self._imu_sum[:, 3:] += np.einsum("kji,kj->ki", R, acc_w)
        self._imu_n += 1
        if self._k % every == 0:
            imu = self._imu_sum / self._imu_n
            imu[:, :3] += cfg.gyro_noise_rad_s * self._rng.standard_normal((4, 3))
            imu[:, 3:] += cfg.acc_noise_m_s2 * self._rng.standard_normal((4, 3))
            self._imu_sum[:] = 0.0
            self._imu_n = 0
            self.sensors._push_imu(self.t, imu)

    def trace(self) -> LegTrace:
        """Ground truth recorded so far (see ``LegTrace``)."""
        return self._trace.freeze()

