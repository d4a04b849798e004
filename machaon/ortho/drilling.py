"""Bone drilling: a thrust-force model by bone region, breach detection from the force profile, depth stop.

Thrust model (empirical power law, as in the bone-drilling literature, e.g. the reviews of
Pandey & Panda 2013 and Lee et al. 2011: thrust grows with feed rate and diameter, falls with
spindle speed, and is several times larger in cortical than in cancellous bone)::

    F = sum over the cutting lips of  c(material) * (v / v_ref)^a * (d / d_ref)^b * (n / n_ref)^-g

The drill point is a cone (point angle 118 deg); the cutting lips are sampled along it and
each sample weighs by the annulus it cuts, so the force ramps over the ~1 mm the point takes
to enter or leave a layer, as a measured profile does. The material at each sample comes from
the anatomy model (``region_fn``: points in the bone frame, metres -> region codes).

Breach detection (:class:`BreachDetector`) watches the filtered thrust against drill depth:
once the drill has been in bone, a fall to below ``floor_n`` after a drop of at least
``min_drop_n`` from the peak over the last ``window_m`` of travel is the exit drop of a breach
(leaving the cortex into the canal or out of the bone). The drop from cortical to cancellous
bone after the entry cortex stays above the floor and is not a breach.

Units: metres, m/s, newtons, rev/min at the edge (``rpm``). Non-finite inputs raise ValueError.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import butter, sosfilt_zi

from machaon._validate import finite_array

RegionFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DrillBit:
    """A twist drill: diameter (m), point angle (rad), spindle speed (rev/min)."""

    diameter_m: float = 0.0032
    point_angle_rad: float = float(np.radians(118.0))
    rpm: float = 1200.0

    def __post_init__(self) -> None:
        finite_array("drill", [self.diameter_m, self.point_angle_rad, self.rpm])
        if self.diameter_m <= 0 or not (0 < self.point_angle_rad < np.pi) or self.rpm <= 0:
            raise ValueError("drill: diameter and rpm must be positive, point angle in (0, pi)")

    @property
    def point_length_m(self) -> float:
        """Axial length of the cone of the point (m)."""
        return 0.5 * self.diameter_m / np.tan(0.5 * self.point_angle_rad)


@dataclass(frozen=True)
class ThrustModel:
    """Thrust force (N) of a drill in bone, from the region at the cutting lips.

    ``coeff_n`` maps a region code to its thrust (N) at the reference feed ``v_ref`` (m/s),
    diameter ``d_ref`` (m) and speed ``n_ref`` (rev/min); codes not listed cut nothing.
    Defaults: cortical 30 N, cancellous 5 N at 1 mm/s, 3.2 mm, 1200 rpm; exponents feed 0.6,
    diameter 1.0, speed 0.3.
    """

    coeff_n: Mapping[int, float]
    v_ref: float = 1e-3
    d_ref: float = 0.0032
    n_ref: float = 1200.0
    feed_exp: float = 0.6
    diameter_exp: float = 1.0
    speed_exp: float = 0.3
    samples: int = 6

    def __post_init__(self) -> None:
        if any(int(k) < 0 or int(k) > 255 for k in self.coeff_n):
            raise ValueError("thrust model: region codes must be in 0..255")
        lut = np.zeros(256)
        for k, v in self.coeff_n.items():
            lut[int(k)] = float(v)
        frac = (np.arange(self.samples) + 0.5) / self.samples
        object.__setattr__(self, "_lut", lut)
        object.__setattr__(self, "_frac", frac)
        object.__setattr__(self, "_w", frac / frac.sum())

    @staticmethod
    def for_anatomy(cortical_n: float = 30.0, cancellous_n: float = 5.0) -> ThrustModel:
        """Coefficients keyed by ``machaon.ortho.anatomy``'s region codes."""
        from machaon.ortho import anatomy

        return ThrustModel({int(anatomy.Region.CORTICAL): cortical_n, int(anatomy.Region.CANCELLOUS): cancellous_n})

    def engagement(self, region_fn: RegionFn, tip: np.ndarray, axis: np.ndarray, bit: DrillBit) -> float:
        """Weighted material coefficient (N) over the drill point at ``tip`` pointing along ``axis``.

        The point is sampled at ``samples`` stations along the cone; a station at radius r cuts
        an annulus of width dr, so it weighs r. Stations behind the tip by more than the cone length
        are the full-diameter body, which cuts nothing (thrust comes from the lips and chisel edge).
        """
        tip = finite_array("tip", tip, (3,))
        axis = finite_array("axis", axis, (3,))
        axis = axis / np.linalg.norm(axis)
        # station k at radius fraction frac[k] sits frac[k] * h behind the tip
        pts = tip[None, :] - np.outer(self._frac * bit.point_length_m, axis)  # type: ignore[attr-defined]
        codes = np.asarray(region_fn(pts), dtype=np.int64).reshape(-1)
        return float(self._lut[codes] @ self._w)  # type: ignore[attr-defined]

    def thrust(self, region_fn: RegionFn, tip: np.ndarray, axis: np.ndarray, feed_m_s: float, bit: DrillBit) -> float:
        """Thrust (N, >= 0) at feed rate ``feed_m_s`` along ``axis``; zero when not advancing."""
        if not np.isfinite(feed_m_s):
            raise ValueError("feed_m_s: not finite")
        if feed_m_s <= 0.0:
            return 0.0
        c = self.engagement(region_fn, tip, axis, bit)
        return float(
            c
            * (feed_m_s / self.v_ref) ** self.feed_exp
            * (bit.diameter_m / self.d_ref) ** self.diameter_exp
            * (bit.rpm / self.n_ref) ** (-self.speed_exp)
        )


class DrillEvent(enum.Enum):
    """Why the drill stopped."""

    NONE = "none"
    DEPTH_STOP = "depth_stop"
    BREACH = "breach"
    PAUSED = "paused"


@dataclass
class BreachDetector:
    """Exit-drop detector on the thrust profile (see module docstring). Call ``update`` every sample.

    Thrust is low-pass filtered (2nd-order Butterworth at ``cutoff_hz``, SciPy) before the test;
    ``contact_n`` marks that the drill has entered bone. ``reset()`` before a new hole.
    """

    sample_hz: float
    cutoff_hz: float = 15.0
    contact_n: float = 3.0
    floor_n: float = 1.5
    min_drop_n: float = 2.5
    window_m: float = 0.003
    _sos: np.ndarray = field(init=False, repr=False)
    _zi: np.ndarray | None = field(init=False, default=None, repr=False)
    _hist: deque = field(init=False, repr=False)
    _peaks: deque = field(init=False, repr=False)
    in_bone: bool = field(init=False, default=False)
    breached: bool = field(init=False, default=False)
    filtered_n: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if not (self.sample_hz > 2.0 * self.cutoff_hz > 0.0):
            raise ValueError("breach detector: need sample_hz > 2 * cutoff_hz > 0")
        self._sos = butter(2, self.cutoff_hz, fs=self.sample_hz, output="sos")
        self.reset()

    def reset(self) -> None:
        self._zi = None
        self._hist = deque()
        self._peaks = deque()
        self.in_bone = False
        self.breached = False
        self.filtered_n = 0.0

    def rearm(self) -> None:
        """Forget the force history (after a pause: the force restarts from zero, which is no exit drop)."""
        self._zi = None
        self._hist = deque()
        self._peaks = deque()

    def update(self, force_n: float, depth_m: float) -> bool:
        """Feed one thrust sample (N) at drill depth (m along the axis); True once a breach is seen."""
        if not (np.isfinite(force_n) and np.isfinite(depth_m)):
            raise ValueError("breach detector: force and depth must be finite")
        if self._zi is None:
            self._zi = sosfilt_zi(self._sos)[0] * force_n
        # one sample of SciPy's second-order section (direct form II transposed), inline: calling
        # sosfilt for a single sample costs more than the control cycle can spare
        b0, b1, b2, _, a1, a2 = self._sos[0]
        z = self._zi
        f = b0 * force_n + z[0]
        z[0] = b1 * force_n - a1 * f + z[1]
        z[1] = b2 * force_n - a2 * f
        f = float(f)
        self.filtered_n = f
        # running maximum over the depth window: a deque of decreasing values (amortised O(1))
        peaks = self._peaks
        while peaks and peaks[-1][1] <= f:
            peaks.pop()
        peaks.append((depth_m, f))
        while peaks and peaks[0][0] < depth_m - self.window_m:
            peaks.popleft()
        if f > self.contact_n:
            self.in_bone = True
        if self.in_bone and not self.breached:
            peak = peaks[0][1]
            if f < self.floor_n and peak - f >= self.min_drop_n:
                self.breached = True
        return self.breached


@dataclass(frozen=True)
class DrillTrace:
    """A drilling run: time (s), depth (m), thrust (N), filtered thrust (N) per sample, and why it stopped."""

    t: np.ndarray
    depth_m: np.ndarray
    force_n: np.ndarray
    filtered_n: np.ndarray
    event: DrillEvent
    stop_depth_m: float


def drill_along(
    region_fn: RegionFn,
    entry: np.ndarray,
    axis: np.ndarray,
    length_m: float,
    *,
    model: ThrustModel,
    bit: DrillBit = DrillBit(),
    feed_m_s: float = 1e-3,
    rate_hz: float = 500.0,
    noise_n: float = 0.2,
    rng: np.random.Generator | None = None,
    start_m: float = -0.005,
    detector: BreachDetector | None = None,
) -> DrillTrace:
    """Drill from ``start_m`` before ``entry`` along ``axis`` at constant feed, in the bone frame.

    Stops at the depth stop (``length_m`` past the entry) or at a detected breach, whichever
    comes first. Force noise is Gaussian (``noise_n``, 1 sigma). This is the drill alone on a
    rigid guide; the robot-held version is in :mod:`machaon.ortho.execution`.
    """
    entry = finite_array("entry", entry, (3,))
    axis = finite_array("axis", axis, (3,))
    axis = axis / np.linalg.norm(axis)
    if not (length_m > 0 and feed_m_s > 0 and rate_hz > 0):
        raise ValueError("drill_along: length, feed and rate must be positive")
    rng = rng if rng is not None else np.random.default_rng(0)
    det = detector if detector is not None else BreachDetector(rate_hz)
    det.reset()
    dt = 1.0 / rate_hz
    ts, ds, fs, ffs = [], [], [], []
    s, t = start_m, 0.0
    event = DrillEvent.NONE
    while True:
        f = model.thrust(region_fn, entry + s * axis, axis, feed_m_s, bit) + rng.normal(0.0, noise_n)
        ts.append(t)
        ds.append(s)
        fs.append(f)
        if det.update(f, s):
            event = DrillEvent.BREACH
        ffs.append(det.filtered_n)
        if event is DrillEvent.BREACH:
            break
        step = min(feed_m_s * dt, length_m - s)
        if step <= 1e-12:
            event = DrillEvent.DEPTH_STOP
            break
        s += step
        t += dt
    return DrillTrace(np.array(ts), np.array(ds), np.array(fs), np.array(ffs), event, s)
