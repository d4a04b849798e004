"""IMU processing: segment orientation (``ahrs`` Madgwick/Mahony), sagittal segment and joint angles,
gait events from the shank gyroscope, adaptive-oscillator gait phase, cadence and stride time.

Sensor mounting (documented once, used everywhere): each IMU sits on its segment with sensor x
anterior, y to the wearer's left, z along the segment pointing proximally (up when standing).
Gyroscope in rad/s, accelerometer in m/s^2 (specific force: reads +9.81 on z when upright and
still), both in the sensor frame. Quaternions are (x, y, z, w) at this module's faces; ``ahrs``
uses (w, x, y, z) internally and is converted here only.

Sagittal segment angle ``alpha``: inclination of the segment from vertical, positive when its
distal end is anterior (rad). Hip flexion = alpha_thigh - alpha_pelvis (pelvis assumed upright
when no pelvis sensor), knee flexion = alpha_thigh - alpha_shank. The sagittal angular rate of a
segment is ``-gyr_y`` (forward swing of the distal end positive).

Bad input: NaN/Inf samples raise ``ValueError``; a gait event detector that sees no swing
simply reports no events.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from ahrs.filters import Madgwick, Mahony
from scipy import signal

from machaon._validate import finite_array

log = logging.getLogger(__name__)

GRAVITY = 9.80665


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)


def sagittal_angle_from_quat(q_xyzw: np.ndarray) -> np.ndarray:
    """Segment inclination alpha (rad) from orientation quaternions (..., 4) in (x, y, z, w).

    Uses the world vertical seen in the sensor frame, u = R^T e_z, alpha = atan2(u_x, u_z); it
    does not depend on heading (yaw), which an IMU without magnetometer cannot observe.
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    # Third row of R (world z in sensor coordinates): R^T e_z = [R_20, R_21, R_22].
    ux = 2.0 * (x * z - w * y)
    uz = 1.0 - 2.0 * (x * x + y * y)
    return np.arctan2(ux, uz)


def sagittal_rate(gyr: np.ndarray) -> np.ndarray:
    """Sagittal angular rate (rad/s) of a segment from its gyroscope (..., 3): ``-gyr_y``."""
    return -np.asarray(gyr, dtype=np.float64)[..., 1]


class SegmentOrientation:
    """Streaming orientation of one segment with ``ahrs`` Madgwick (default) or Mahony, IMU only.

    ``update(gyr, acc)`` folds one sample (rad/s, m/s^2, sensor frame) and returns the quaternion
    (x, y, z, w) of the sensor in an Earth frame with z up. The initial orientation is levelled
    from the first accelerometer sample (heading 0); during the first ``init_s`` seconds the
    filter gain starts ``init_gain_factor`` times higher and ramps down, so a start during motion
    converges in about a second instead of tens of seconds. Accelerometer samples whose norm is
    off gravity by more than ``acc_rejection`` (fraction of g: impacts, fast swing) are not used
    for the correction (gyroscope integration only for that sample). NaN samples raise
    ``ValueError`` and leave the estimate unchanged.
    """

    def __init__(
        self,
        fs_hz: float,
        algorithm: str = "madgwick",
        gain: float | None = None,
        init_s: float = 1.0,
        init_gain_factor: float = 20.0,
        acc_rejection: float = 0.2,
    ) -> None:
        if fs_hz <= 0:
            raise ValueError("fs_hz must be > 0")
        self.dt = 1.0 / fs_hz
        if algorithm == "madgwick":
            self._gain = 0.033 if gain is None else gain
            self._filter = Madgwick(frequency=fs_hz, gain=self._gain)
        elif algorithm == "mahony":
            self._gain = 1.0 if gain is None else gain
            self._filter = Mahony(frequency=fs_hz, k_P=self._gain, k_I=0.3)
        else:
            raise ValueError(f"algorithm must be 'madgwick' or 'mahony', got {algorithm!r}")
        self.algorithm = algorithm
        self.init_s, self.init_gain_factor, self.acc_rejection = init_s, init_gain_factor, acc_rejection
        self._q_wxyz: np.ndarray | None = None
        self._n = 0
        self.rejected_samples = 0  # samples whose filter output was not a unit quaternion

    @staticmethod
    def _level(acc: np.ndarray) -> np.ndarray:
        # Roll/pitch from gravity, heading 0 (quaternion w, x, y, z).
        with np.errstate(over="ignore", invalid="ignore"):
            ax, ay, az = np.nan_to_num(acc / (np.linalg.norm(acc) or 1.0))
        roll = math.atan2(ay, az)
        pitch = math.atan2(-ax, math.hypot(ay, az))
        cr, sr, cp, sp = math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2)
        return np.array([cr * cp, sr * cp, cr * sp, -sr * sp])

    def update(self, gyr: np.ndarray, acc: np.ndarray) -> np.ndarray:
        g = finite_array("gyr", gyr, (3,))
        a = finite_array("acc", acc, (3,))
        if self._q_wxyz is None:
            self._q_wxyz = self._level(a)
            return quat_wxyz_to_xyzw(self._q_wxyz)
        t = self._n * self.dt
        self._n += 1
        ramp = max(0.0, 1.0 - t / self.init_s) if self.init_s > 0 else 0.0
        gain = self._gain * (1.0 + (self.init_gain_factor - 1.0) * ramp)
        with np.errstate(over="ignore"):  # an absurd sample's norm is inf: rejected below as any outlier
            acc_norm = float(np.linalg.norm(a))
        if abs(acc_norm / GRAVITY - 1.0) > self.acc_rejection:
            a = np.zeros(3)  # ahrs skips the correction for a zero accelerometer vector
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.algorithm == "madgwick":
                self._filter.gain = gain
                q_new = self._filter.updateIMU(self._q_wxyz, g, a, dt=self.dt)
            else:
                self._filter.k_P = gain
                q_new = self._filter.updateIMU(self._q_wxyz, g, a)
        # A finite but absurd sample (a glitching gyro at 1e300 rad/s) drives the filter to NaN,
        # which would then stick forever: keep the last good orientation and count the sample.
        if np.isfinite(q_new).all() and abs(float(np.linalg.norm(q_new)) - 1.0) < 1e-6:
            self._q_wxyz = q_new
        else:
            self.rejected_samples += 1
            log.debug("IMU sample rejected: orientation filter output not a unit quaternion (gyr=%s)", g)
        return quat_wxyz_to_xyzw(self._q_wxyz)

    @property
    def quaternion(self) -> np.ndarray | None:
        return None if self._q_wxyz is None else quat_wxyz_to_xyzw(self._q_wxyz)


def estimate_orientation(gyr: np.ndarray, acc: np.ndarray, fs_hz: float, algorithm: str = "madgwick") -> np.ndarray:
    """Orientation quaternions (N, 4) (x, y, z, w) for a whole recording (N, 3) + (N, 3)."""
    g = finite_array("gyr", gyr, (None, 3))
    a = finite_array("acc", acc, (None, 3))
    if g.shape != a.shape:
        raise ValueError(f"gyr {g.shape} and acc {a.shape} differ in length")
    est = SegmentOrientation(fs_hz, algorithm)
    return np.array([est.update(g[i], a[i]) for i in range(g.shape[0])]).reshape(-1, 4)


def joint_angles(alpha_pelvis: np.ndarray | float, alpha_thigh: np.ndarray, alpha_shank: np.ndarray) -> np.ndarray:
    """(..., 2) [hip flexion, knee flexion] in rad from sagittal segment angles (rad)."""
    t = np.asarray(alpha_thigh, dtype=np.float64)
    return np.stack([t - alpha_pelvis, t - np.asarray(alpha_shank, dtype=np.float64)], axis=-1)


@dataclass(frozen=True)
class GaitEvents:
    """Gait events of one leg as times (s): heel strikes, toe offs, mid-swing peaks."""

    heel_strike: np.ndarray
    toe_off: np.ndarray
    mid_swing: np.ndarray


def detect_gait_events(
    omega_shank: np.ndarray,
    fs_hz: float,
    swing_threshold: float = 1.5,
    min_stride_s: float = 0.6,
    hs_window_s: float = 0.25,
    to_window_s: float = 0.35,
) -> GaitEvents:
    """Offline gait events from the shank sagittal angular rate (rad/s), after Aminian/Salarian.

    Mid-swing = peaks above ``swing_threshold`` at least ``min_stride_s`` apart; heel strike = the
    first local minimum within ``hs_window_s`` after mid-swing (the deceleration at contact);
    toe off = the deepest minimum within ``to_window_s`` before mid-swing. Times in s from the
    first sample.
    """
    w = finite_array("omega_shank", omega_shank, (None,))
    peaks, _ = signal.find_peaks(w, height=swing_threshold, distance=max(1, int(min_stride_s * fs_hz)))
    hs, to = [], []
    n_hs, n_to = int(hs_window_s * fs_hz), int(to_window_s * fs_hz)
    for p in peaks:
        seg = w[p : p + n_hs + 1]
        if seg.size > 2:
            mins, _ = signal.find_peaks(-seg)
            neg = [m for m in mins if seg[m] < 0]
            if neg:
                hs.append((p + neg[0]) / fs_hz)
            elif p + n_hs < w.size:
                hs.append((p + int(np.argmin(seg))) / fs_hz)
        a = max(0, p - n_to)
        if p - a > 2 and a > 0:
            to.append((a + int(np.argmin(w[a:p]))) / fs_hz)
    return GaitEvents(np.array(hs), np.array(to), peaks / fs_hz)


@dataclass
class _DetectorState:
    in_swing: bool = False
    peak: float = 0.0
    seeking_hs: bool = False
    hs_min: float = 0.0
    hs_min_t: float = 0.0
    t_swing_start: float = 0.0
    history: list = field(default_factory=list)


class StreamingGaitEvents:
    """Online heel-strike / toe-off detection from the shank sagittal rate, one sample at a time.

    ``update(omega, t)`` returns ``"heel_strike"``, ``"toe_off"`` or ``None``, with the event
    time in ``last_event_t`` (the event is reported a few samples after it happened, once the
    minimum is confirmed by a rise of ``hysteresis`` rad/s or by the end of the search window).
    """

    def __init__(
        self,
        swing_threshold: float = 1.5,
        hysteresis: float = 0.3,
        hs_window_s: float = 0.25,
        to_window_s: float = 0.35,
    ) -> None:
        self.swing_threshold = swing_threshold
        self.hysteresis = hysteresis
        self.hs_window_s = hs_window_s
        self.to_window_s = to_window_s
        self._s = _DetectorState()
        self.last_event_t = math.nan

    def update(self, omega: float, t: float) -> str | None:
        if not (math.isfinite(omega) and math.isfinite(t)):
            raise ValueError("omega and t must be finite")
        s = self._s
        s.history.append((t, omega))
        while s.history and s.history[0][0] < t - self.to_window_s - 0.05:
            s.history.pop(0)
        event = None
        if not s.in_swing and omega > self.swing_threshold:
            s.in_swing, s.peak, s.seeking_hs = True, omega, False
            # Toe off: the deepest trough in the window before swing onset.
            past = [(tt, ww) for tt, ww in s.history if tt >= t - self.to_window_s]
            if past:
                t_min, w_min = min(past, key=lambda x: x[1])
                if w_min < 0:
                    self.last_event_t = t_min
                    event = "toe_off"
            s.t_swing_start = t
        elif s.in_swing:
            s.peak = max(s.peak, omega)
            if omega < 0:
                s.in_swing, s.seeking_hs = False, True
                s.hs_min, s.hs_min_t = omega, t
        elif s.seeking_hs:
            if omega < s.hs_min:
                s.hs_min, s.hs_min_t = omega, t
            elif omega > s.hs_min + self.hysteresis or t - s.hs_min_t > self.hs_window_s:
                s.seeking_hs = False
                self.last_event_t = s.hs_min_t
                event = "heel_strike"
        return event


class AdaptiveOscillator:
    """Adaptive frequency oscillator with a Fourier-series output (after Ronsse et al. 2011).

    Learns the frequency ``omega`` (rad/s) and shape of a periodic input theta(t) (e.g. the thigh
    angle); ``phase`` (rad, unwrapped) advances at omega and is pulled by the tracking error.
    Integrated with explicit Euler at each ``update(theta, dt)``.
    """

    def __init__(
        self,
        omega0: float = 2 * math.pi / 1.1,
        n_harmonics: int = 3,
        nu_phi: float = 12.0,
        nu_omega: float = 8.0,
        eta: float = 3.0,
        omega_bounds: tuple[float, float] = (2 * math.pi / 3.0, 2 * math.pi / 0.4),
    ) -> None:
        self.omega = float(omega0)
        self.phase = 0.0
        self.n = n_harmonics
        self.nu_phi, self.nu_omega, self.eta = nu_phi, nu_omega, eta
        self.omega_bounds = omega_bounds
        self.alpha0 = 0.0
        self.a = np.zeros(n_harmonics)  # cos coefficients
        self.b = np.zeros(n_harmonics)  # sin coefficients
        self.b[0] = 0.2  # non-zero start so the error can pull the phase
        self._k = np.arange(1, n_harmonics + 1)

    def predict(self) -> float:
        kp = self._k * self.phase
        return float(self.alpha0 + self.a @ np.cos(kp) + self.b @ np.sin(kp))

    def update(self, theta: float, dt: float) -> float:
        """Fold one sample theta (any unit, here rad) taken dt s after the previous; returns phase mod 2 pi."""
        if not (math.isfinite(theta) and dt > 0):
            raise ValueError("theta must be finite and dt > 0")
        kp = self._k * self.phase
        c, s = np.cos(kp), np.sin(kp)
        e = theta - (self.alpha0 + self.a @ c + self.b @ s)
        amp = max(1e-3, float(np.hypot(self.a, self.b).sum()))
        # Phase/frequency coupling through the first harmonic (its phase derivative is a*(-s)+b*c).
        coupling = (e / amp) * (self.b[0] * c[0] - self.a[0] * s[0]) / max(1e-3, math.hypot(self.a[0], self.b[0]))
        self.phase += dt * (self.omega + self.nu_phi * coupling)
        self.omega = float(np.clip(self.omega + dt * self.nu_omega * coupling, *self.omega_bounds))
        self.alpha0 += dt * self.eta * e
        self.a += dt * self.eta * e * c
        self.b += dt * self.eta * e * s
        return self.phase % (2 * math.pi)


class GaitPhaseEstimator:
    """Continuous gait phase in [0, 1) (0 = heel strike) of one leg from thigh angle + shank gyro.

    An ``AdaptiveOscillator`` on the thigh angle gives a smooth phase and the stride frequency.
    Its phase is tied to the gait cycle in one of two ways:

    - ``reference_harmonic`` given (the first Fourier coefficient ``A1 - i B1`` of the reference
      hip curve, ``ReferenceGait.hip_harmonic()``): the learned first harmonic of the thigh angle
      is aligned with the reference's, so phase 0 is where the reference has heel strike. This
      does not depend on when an event detector fires, and a leg that lags shows a lagging phase.
    - otherwise: the offset between the oscillator phase and detected heel strikes
      (``StreamingGaitEvents``) is learned with a circular low-pass.

    Heel strikes / toe offs from the shank gyroscope are recorded either way (``heel_strikes``,
    ``toe_offs``, s). ``locked`` is True once the oscillator has learned a thigh swing of at
    least ``min_amplitude`` rad, two heel strikes were seen, and the last stride time agrees
    with the oscillator frequency within 25 %.
    """

    def __init__(
        self,
        stride_time_s: float = 1.1,
        offset_gain: float = 0.3,
        reference_harmonic: complex | None = None,
        min_amplitude: float = 0.05,
    ) -> None:
        self.osc = AdaptiveOscillator(omega0=2 * math.pi / stride_time_s)
        self.events = StreamingGaitEvents()
        self.offset_gain = offset_gain
        self.reference_harmonic = reference_harmonic
        self.min_amplitude = min_amplitude
        self._offset = 0.0  # rad, oscillator phase at heel strike
        self._n_hs = 0
        self.heel_strikes: list[float] = []
        self.toe_offs: list[float] = []
        self._t_last: float | None = None
        self.phase = 0.0

    def update(self, alpha_thigh: float, omega_shank: float, t: float) -> float:
        dt = 0.0 if self._t_last is None else t - self._t_last
        self._t_last = t
        if dt > 0:
            self.osc.update(alpha_thigh, dt)
        ev = self.events.update(omega_shank, t)
        if ev == "heel_strike":
            t_hs = self.events.last_event_t
            # Oscillator phase at the (slightly past) heel strike time.
            ph_hs = self.osc.phase - self.osc.omega * (t - t_hs)
            err = math.atan2(math.sin(ph_hs - self._offset), math.cos(ph_hs - self._offset))
            self._offset += err if self._n_hs == 0 else self.offset_gain * err
            self._n_hs += 1
            self.heel_strikes.append(t_hs)
        elif ev == "toe_off":
            self.toe_offs.append(self.events.last_event_t)
        if self.reference_harmonic is not None:
            c_osc = complex(self.osc.a[0], -self.osc.b[0])
            c_ref = self.reference_harmonic
            offset = math.atan2(c_ref.imag, c_ref.real) - math.atan2(c_osc.imag, c_osc.real)
        else:
            offset = self._offset
        self.phase = ((self.osc.phase - offset) / (2 * math.pi)) % 1.0
        return self.phase

    @property
    def stride_time_s(self) -> float:
        """Stride time (s) from the oscillator frequency."""
        return 2 * math.pi / self.osc.omega

    @property
    def cadence_steps_min(self) -> float:
        """Cadence (steps per minute, two steps per stride) from the oscillator frequency."""
        return 120.0 / self.stride_time_s

    @property
    def amplitude(self) -> float:
        """Learned first-harmonic amplitude of the thigh angle (rad)."""
        return float(math.hypot(self.osc.a[0], self.osc.b[0]))

    @property
    def locked(self) -> bool:
        if self._n_hs < 2 or self.amplitude < self.min_amplitude:
            return False
        last = self.heel_strikes[-1] - self.heel_strikes[-2]
        return abs(last - self.stride_time_s) < 0.25 * self.stride_time_s


@dataclass(frozen=True)
class GaitTiming:
    """Temporal gait parameters (s, steps/min) of a walk, per leg where it applies."""

    stride_time_s: dict[str, float]
    stance_time_s: dict[str, float]
    swing_time_s: dict[str, float]
    step_time_s: dict[str, float]
    cadence_steps_min: float


def symmetry_index(left: float, right: float) -> float:
    """Robinson symmetry index |L - R| / ((L + R) / 2): 0 = symmetric (dimensionless, not %)."""
    den = 0.5 * (left + right)
    if not (math.isfinite(left) and math.isfinite(right)) or den <= 0:
        return math.nan
    return abs(left - right) / den


def gait_timing(heel_strikes: dict[str, np.ndarray], toe_offs: dict[str, np.ndarray]) -> GaitTiming:
    """Stride, stance, swing and step times (median over strides) and cadence from event times (s).

    Cadence (steps/min) is 120 / the mean of the legs' stride times.

    ``heel_strikes`` / ``toe_offs`` map ``"l"`` and ``"r"`` to increasing event times. The step
    time of a leg is the time from the contralateral heel strike to its own heel strike.
    Missing data gives NaN for that value.
    """
    stride, stance, swing, step = {}, {}, {}, {}
    for side, other in (("l", "r"), ("r", "l")):
        hs = np.sort(np.asarray(heel_strikes.get(side, ()), dtype=np.float64))
        to = np.sort(np.asarray(toe_offs.get(side, ()), dtype=np.float64))
        hs_o = np.sort(np.asarray(heel_strikes.get(other, ()), dtype=np.float64))
        stride[side] = float(np.median(np.diff(hs))) if hs.size > 1 else math.nan
        st, sw, sp = [], [], []
        for i in range(hs.size - 1):
            tos = to[(to > hs[i]) & (to < hs[i + 1])]
            if tos.size:
                st.append(tos[0] - hs[i])
                sw.append(hs[i + 1] - tos[0])
            prev = hs_o[(hs_o < hs[i + 1]) & (hs_o > hs[i])]
            if prev.size:
                sp.append(hs[i + 1] - prev[-1])
        stance[side] = float(np.median(st)) if st else math.nan
        swing[side] = float(np.median(sw)) if sw else math.nan
        step[side] = float(np.median(sp)) if sp else math.nan
    # Two steps per stride; the mean over both legs is robust to left/right step asymmetry.
    strides = [v for v in stride.values() if math.isfinite(v)]
    cadence = 120.0 / float(np.mean(strides)) if strides else math.nan
    return GaitTiming(stride, stance, swing, step, cadence)
