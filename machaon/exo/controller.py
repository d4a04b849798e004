"""Assist-as-needed controller of the lower-limb exoskeleton (hip and knee of both legs).

``AssistController.update(state, t) -> JointCommand`` (torque mode) on the exo joints, in the
order ``AssistConfig.joints`` = (hip_l, knee_l, hip_r, knee_r); angles in the sagittal plane,
flexion positive (rad), torques N m. Each cycle it polls a sensor source (``SensorBatch``-shaped:
the serial board, a replayed recording or the leg simulation), and computes per joint

    tau = tau_myo + tau_profile + K (q_ref - q) + D (dq_ref - dq)

- ``tau_myo`` = k_myo * (a_flexor - a_extensor), with ``a`` the MVC-normalised EMG envelopes of
  the joint's flexor/extensor pair (``EMGStream`` + ``MVCNormaliser``);
- ``q_ref(phi_ref)`` the reference gait (``exo_legs.toml``) at a reference phase taken from the
  inter-limb rhythm: by default the phase of the leg that is ahead (the other leg's reference is
  half a cycle away), so a leg that lags is pulled forward to the rhythm of the better leg;
  ``phase_reference="mean"`` uses the circular mean of both legs instead. Leg phases come from
  IMU adaptive oscillators aligned to the reference hip curve (``GaitPhaseEstimator``);
- ``tau_profile`` a phase-based assist pattern (hip flexion at push-off, hip extension at loading,
  knee flexion at pre-swing, knee extension at terminal swing);
- both ``tau_myo`` and ``tau_profile`` are scaled by K / K_max, the joint's assist-as-needed level,
  so a leg that keeps up gets little of either;
- ``K`` adapts (assist as needed), per joint and per gait-phase bin (``phase_bins`` over the
  cycle, linearly interpolated): dK/dt = gamma max(0, |e| - e_tol) (1 + lag gain * lag)
  - lambda K - lead decay * K while leading, in [K_min, K_max]; so K rises where in the cycle the
  leg lags or misses the reference by more than the tolerance, and decays where the wearer leads
  or tracks; ``D`` = d_ratio * K.

Torque, power (|tau * dq|) and rate limits are applied last. Safe fallback: on a bad joint state
(``ok`` False, NaN), a sensor dropout (no EMG or IMU sample within the timeout, link closed), or a
bad signal (NaN sample, EMG at the ADC rail, channel quality not OK, many lost frames), the
command of that same cycle is transparent: zero assist plus joint damping ``tau = -b dq``,
without rate limiting. Assist resumes after ``recover_s`` of good signals, ramping by the rate
limit. The reason is in ``status.reason`` and in the log.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from machaon._records import torque_command
from machaon.exo import _assist
from machaon.exo.emg import EMGConfig, EMGStream, MVCNormaliser
from machaon.exo.frames import EMG_FULL_SCALE_V
from machaon.exo.imu import GaitPhaseEstimator, SegmentOrientation, sagittal_angle_from_quat, sagittal_rate
from machaon.exo.reference import ReferenceGait, load_reference_gait
from machaon.exo.sensors import SensorSource
from machaon.types import JointCommand, JointState

log = logging.getLogger(__name__)

SIDES = ("l", "r")


@dataclass(frozen=True)
class AssistConfig:
    """Gains and limits (SI). Per-joint tuples are in ``joints`` order (hip_l, knee_l, hip_r, knee_r).

    ``emg_pairs`` gives per joint the (flexor, extensor) EMG channel indices; ``imu_index`` the
    IMU sensor indices of (thigh_l, shank_l, thigh_r, shank_r). ``assist=False`` makes the
    controller transparent all the time (the no-assist baseline), with ``damping_nm_s`` of
    damping (0 = a perfectly transparent exo).
    """

    joints: tuple[str, ...] = ("hip_l", "knee_l", "hip_r", "knee_r")
    assist: bool = True
    emg_pairs: tuple[tuple[int, int], ...] = ((0, 1), (3, 2), (4, 5), (7, 6))
    imu_index: tuple[int, int, int, int] = (0, 1, 2, 3)
    imu_rate_hz: float = 200.0
    ahrs_algorithm: str = "madgwick"
    k_myo_nm: tuple[float, ...] = (8.0, 6.0, 8.0, 6.0)
    profile_nm: tuple[float, ...] = (10.0, 6.0, 10.0, 6.0)
    k_min: float = 5.0
    k_max: float = 300.0
    k_init: float = 20.0
    d_ratio_s: float = 0.08
    adapt_gain: float = 22000.0
    error_tolerance_rad: float = 0.06
    phase_bins: int = 20
    lag_gain: float = 8.0
    forget_per_s: float = 1.8
    lead_decay_per_s: float = 2.0
    phase_deadband: float = 0.02
    phase_reference: str = "leader"
    phase_smoothing_s: float = 0.03
    tau_max_nm: tuple[float, ...] = (40.0, 35.0, 40.0, 35.0)
    power_max_w: tuple[float, ...] = (150.0, 150.0, 150.0, 150.0)
    rate_max_nm_s: tuple[float, ...] = (800.0, 800.0, 800.0, 800.0)
    damping_nm_s: float = 1.0
    sensor_timeout_s: float = 0.005
    imu_timeout_s: float = 0.03
    max_lost_frames: int = 20
    recover_s: float = 0.2
    warmup_s: float = 0.3

    def __post_init__(self) -> None:
        n = len(self.joints)
        for name in ("k_myo_nm", "profile_nm", "tau_max_nm", "power_max_w", "rate_max_nm_s", "emg_pairs"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} values, one per joint")
        if not 0 < self.k_min <= self.k_init <= self.k_max:
            raise ValueError("need 0 < k_min <= k_init <= k_max")
        if min(self.tau_max_nm) <= 0 or min(self.power_max_w) <= 0 or min(self.rate_max_nm_s) <= 0:
            raise ValueError("torque, power and rate limits must be > 0")
        if self.phase_reference not in ("leader", "mean"):
            raise ValueError("phase_reference must be 'leader' or 'mean'")
        if self.damping_nm_s < 0 or self.sensor_timeout_s <= 0:
            raise ValueError("damping must be >= 0 and sensor_timeout_s > 0")


@dataclass(frozen=True)
class AssistStatus:
    """What the controller did in the last cycle (for logs and plots). Angles rad, torques N m."""

    t: float
    mode: str  # "assist" | "transparent"
    reason: str
    phase: tuple[float, float]
    phase_ref: tuple[float, float]
    q_ref: np.ndarray
    stiffness: np.ndarray
    tau_myo: np.ndarray
    tau_profile: np.ndarray
    tau_impedance: np.ndarray
    tau: np.ndarray
    activation: np.ndarray = field(repr=False)


def assist_profile(phase: float) -> np.ndarray:
    """Normalised phase-based assist pattern [hip, knee] (peak ~1, flexion +) at gait phase in [0, 1).

    Hip: flexion bump at 60 % (width 7 %) minus 0.6 x an extension bump at 5 % (6 %); knee: 0.5 x a
    flexion bump at 62 % (5 %) minus 0.6 x an extension bump at 90 % (5 %); Gaussian bumps on the
    circle. Computed by the compiled law (``machaon.exo._assist``), which uses it every cycle.
    """
    return _assist.profile(float(phase))


def _wrap_half(x: float) -> float:
    return (x + 0.5) % 1.0 - 0.5


def _circ_mean(a: float, b: float) -> float:
    return (a + 0.5 * _wrap_half(b - a)) % 1.0


class AssistController:
    """Adaptive-impedance, EMG- and gait-phase-driven assist; see the module docstring.

    ``source`` provides ``poll()`` (a SensorBatch-shaped object) and may have a ``connected``
    attribute. ``mvc`` normalises the 8 EMG envelopes. ``status`` holds the last cycle's
    ``AssistStatus``. Raises ``ValueError`` at construction for bad configuration only; at run
    time bad inputs turn into the transparent fallback, never an exception.
    """

    def __init__(
        self,
        source: SensorSource,
        mvc: MVCNormaliser,
        cfg: AssistConfig | None = None,
        emg_cfg: EMGConfig | None = None,
        reference: ReferenceGait | None = None,
    ) -> None:
        self.cfg = cfg or AssistConfig()
        self.source = source
        self.mvc = mvc
        self.n_emg = mvc.mvc_v.size
        self.emg = EMGStream(emg_cfg or EMGConfig(), self.n_emg)
        self.ref = reference or load_reference_gait()
        n = len(self.cfg.joints)
        if n != 4:
            raise ValueError("the assist controller drives exactly 4 joints (hip_l, knee_l, hip_r, knee_r)")
        self._imu_est = [SegmentOrientation(self.cfg.imu_rate_hz, self.cfg.ahrs_algorithm) for _ in range(4)]
        c1 = self.ref.hip_harmonic()
        self.gait = {s: GaitPhaseEstimator(self.ref.stride_time_s, reference_harmonic=c1) for s in SIDES}
        self.K_table = np.full((n, self.cfg.phase_bins), self.cfg.k_init)
        self._law = _assist.AssistLaw(self.cfg, self.ref.spline, mvc.mvc_v)  # the compiled per-cycle law
        self._law_mvc = mvc
        self.K = np.full(n, self.cfg.k_init)
        self._tau_prev = np.zeros(n)
        self._t_prev: float | None = None
        self._t_last_emg = -math.inf
        self._t_last_imu = -math.inf
        self._t_first: float | None = None
        self._t_bad_until = -math.inf
        self._activation = np.zeros(self.n_emg)
        self._alpha = np.zeros(4)
        self.status: AssistStatus | None = None
        self.fallback_count = 0
        self.fallback_cycles = 0
        self._ph_s: np.ndarray | None = None

    # -- sensing -------------------------------------------------------------------------
    def _ingest(self, t: float) -> str:
        """Poll the source and fold the samples in; return a fault reason or ''."""
        batch = self.source.poll()
        if getattr(self.source, "connected", True) is False:
            return "sensor_link_closed"
        if batch.dropped + batch.corrupt > self.cfg.max_lost_frames:
            return f"lost_frames:{batch.dropped + batch.corrupt}"
        reason = ""
        emg = np.asarray(batch.emg_v, dtype=np.float64)
        if emg.shape[0]:
            if emg.ndim != 2 or emg.shape[1] != self.n_emg:
                return "bad_emg_samples"
            try:
                env = self.emg.process(emg)  # compiled; a NaN/Inf block is refused before any state changes
            except ValueError:
                return "bad_emg_samples"
            if self.mvc is not self._law_mvc:  # a new MVC calibration: the law takes its levels
                self._law = _assist.AssistLaw(self.cfg, self.ref.spline, self.mvc.mvc_v)
                self._law_mvc = self.mvc
            self._activation = self._activation.copy()  # the last status keeps its own
            self._law.activation(env[-1], self._activation)  # clip(env / MVC, 0, 1.5)
            self._t_last_emg = t
            if _assist.any_saturated(emg, 0.98 * EMG_FULL_SCALE_V):
                reason = "emg_saturated"
        imu = np.asarray(batch.imu, dtype=np.float64)
        if imu.shape[0]:
            if imu.ndim != 3 or imu.shape[2] != 6 or not np.isfinite(imu).all():
                return "bad_imu_samples"
            th_l, sh_l, th_r, sh_r = self.cfg.imu_index
            for k in range(imu.shape[0]):
                tk = float(batch.t_imu[k])
                for j, idx in enumerate((th_l, sh_l, th_r, sh_r)):
                    q = self._imu_est[j].update(imu[k, idx, :3], imu[k, idx, 3:])
                    self._alpha[j] = float(sagittal_angle_from_quat(q))
                self.gait["l"].update(self._alpha[0], float(sagittal_rate(imu[k, sh_l, :3])), tk)
                self.gait["r"].update(self._alpha[2], float(sagittal_rate(imu[k, sh_r, :3])), tk)
            self._t_last_imu = t
        if reason:
            return reason
        if t - self._t_last_emg > self.cfg.sensor_timeout_s:
            return "emg_dropout"
        if t - self._t_last_imu > self.cfg.imu_timeout_s:
            return "imu_dropout"
        if not self.emg.quality.all_ok():
            bad = [f"{i}:{c.value}" for i, c in enumerate(self.emg.quality.codes()) if c.value != "ok"]
            return "emg_quality:" + ",".join(bad)
        return ""

    # -- control ---------------------------------------------------------------------------
    def _transparent(self, state: JointState | None, t: float, reason: str, n: int) -> JointCommand:
        dq = np.zeros(n)
        if state is not None:
            d = np.asarray(state.dq, dtype=np.float64)
            if d.shape == (n,) and np.isfinite(d).all():
                dq = d
        tau = -self.cfg.damping_nm_s * dq
        tau = np.clip(tau, -np.asarray(self.cfg.tau_max_nm), self.cfg.tau_max_nm)
        if reason not in ("assist_off", "warming_up", "phase_not_locked", "recovering"):
            # A fallback event is counted (and logged) when the fault reason changes; every cycle
            # spent in fallback is counted in fallback_cycles.
            if self.status is None or self.status.reason != reason:
                log.warning("exo assist -> transparent at t=%.3f s: %s", t, reason)
                self.fallback_count += 1
            self.fallback_cycles += 1
        self._tau_prev = tau.copy()
        self._ph_s = None  # re-seed the phase tracker when assistance resumes
        z = np.zeros(n)
        self.status = AssistStatus(t, "transparent", reason, self._phases(), self._phases(), z, self.K.copy(),
                                   z, z, z, tau.copy(), self._activation.copy())
        return JointCommand.torque(tau)

    def _reference_phases(self, ph: tuple[float, float]) -> tuple[float, float]:
        """Reference phase per leg: the inter-limb rhythm (legs half a cycle apart).

        ``"leader"``: the rhythm of the leg that is ahead (the lagging leg is pulled to it, the
        leader is left alone); ``"mean"``: the circular mean of both legs' rhythms.
        """
        other_l = (ph[1] + 0.5) % 1.0  # left-leg phase implied by the right leg
        if self.cfg.phase_reference == "mean":
            ref_l = _circ_mean(ph[0], other_l)
        else:
            ref_l = ph[0] if _wrap_half(ph[0] - other_l) >= 0 else other_l
        return (ref_l, (ref_l + 0.5) % 1.0)

    def _smoothed_phases(self, dt: float, stride_s: float) -> tuple[float, float]:
        """IMU phases (updated at the IMU rate) advanced every cycle at the stride frequency and
        pulled toward each new estimate by a first-order tracker (time constant
        ``phase_smoothing_s``), so the reference angles have no steps at the IMU rate."""
        est = self._phases()
        if self._ph_s is None:
            self._ph_s = np.array(est)
        else:
            a = min(1.0, dt / self.cfg.phase_smoothing_s)
            for s in range(2):
                pred = self._ph_s[s] + dt / stride_s
                self._ph_s[s] = (pred + a * _wrap_half(est[s] - pred)) % 1.0
        return (float(self._ph_s[0]), float(self._ph_s[1]))

    def _phases(self) -> tuple[float, float]:
        return (self.gait["l"].phase, self.gait["r"].phase)

    def update(self, state: JointState, t: float) -> JointCommand:
        """One control cycle at loop time ``t`` (s): poll sensors, return the exo torque command."""
        cfg = self.cfg
        n = len(cfg.joints)
        dt = 0.0 if self._t_prev is None else max(0.0, t - self._t_prev)
        self._t_prev = t
        if self._t_first is None:
            self._t_first = t
            self._t_last_emg = self._t_last_imu = t  # timeouts count from the start
        try:
            reason = self._ingest(t)
        except ValueError as exc:  # malformed samples from a source: a bad signal, not a crash
            reason = f"bad_samples:{exc}"
        q = np.ascontiguousarray(state.q, dtype=np.float64)
        dq = np.ascontiguousarray(state.dq, dtype=np.float64)
        if not state.ok or not _assist.finite_state(q, dq, n):
            reason = reason or "bad_joint_state"
        if reason:
            self._t_bad_until = t + cfg.recover_s
            return self._transparent(state, t, reason, n)
        if not cfg.assist:
            return self._transparent(state, t, "assist_off", n)
        if t - self._t_first < cfg.warmup_s:
            return self._transparent(state, t, "warming_up", n)
        if not (self.gait["l"].locked and self.gait["r"].locked):
            return self._transparent(state, t, "phase_not_locked", n)
        if t < self._t_bad_until:
            return self._transparent(state, t, "recovering", n)

        stride = 0.5 * (self.gait["l"].stride_time_s + self.gait["r"].stride_time_s)
        ph = self._smoothed_phases(dt, stride)
        ph_ref = self._reference_phases(ph)
        # The law of the module docstring, in one compiled call: reference gait at the reference
        # phases, phase-binned adaptive K (K_table updated in place), the three torques, limits.
        tau, q_ref, K, tau_myo, tau_prof, tau_imp = self._law.step(
            q, dq, ph[0], ph[1], ph_ref[0], ph_ref[1], stride, dt, self._activation, self.K_table, self._tau_prev)
        self.K = K
        self.status = AssistStatus(t, "assist", "", ph, ph_ref, q_ref, K.copy(), tau_myo, tau_prof,
                                   tau_imp, tau.copy(), self._activation)
        return torque_command(tau, {})

    def _limit(self, tau: np.ndarray, dq: np.ndarray, dt: float) -> np.ndarray:
        """Rate limit (against the previous command) first, then the hard torque and power caps
        (|tau dq| <= P), which win over smoothness; the result becomes the previous command."""
        return self._law.limit(tau, np.ascontiguousarray(dq, dtype=np.float64), dt, self._tau_prev)
