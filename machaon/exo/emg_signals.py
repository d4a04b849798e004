"""Real surface-EMG recordings before the envelope chain: units, DC offset, saturated or disconnected
channels, 50 or 60 Hz mains; and the agreement of an envelope with a recorded force.

``machaon.exo.emg`` is the filter chain the assist controller runs; this module prepares what
real files hand over so that the chain sees volts at the electrodes, and checks the result
against something measured (``envelope_force_agreement``).

- Units: a file that declares V, mV or uV is scaled by its declaration and then checked: surface
  EMG at the electrodes stays below ~50 mV, so a channel whose peak is larger was declared in
  the wrong unit (a factor of 1000) and raises ``EMGSignalError``. A file that declares nothing
  (plain CSV/text) gets the unit its amplitude implies (``infer_emg_scale``).
- DC offset: the channel median is removed (it would ring through the band-pass otherwise).
- Saturation: at least ``SATURATION_FRACTION`` of the samples pinned at the channel's extreme
  value; disconnected: a flat line (band RMS below 0.1 uV) or a channel whose 20-450 Hz power is
  mostly mains hum. Such channels are reported and left out of envelopes.
- Mains: the fundamental (50 or 60 Hz) is found from the spectrum (Welch) when the file's
  country is not known; the notches of ``EMGConfig`` use it.

Units: volts, seconds, hertz; envelopes in volts (or normalised where a name says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

from machaon.errors import ExoError
from machaon.exo.emg import EMGConfig, envelope_offline

MAX_SEMG_V = 0.05  # largest plausible surface-EMG amplitude at the electrodes (V)
SATURATION_FRACTION = 0.005
FLAT_RMS_V = 1e-7
MAINS_DOMINANCE = 0.5


class EMGSignalError(ExoError, ValueError):
    """An EMG channel cannot be used as recorded (impossible amplitude for its unit, too short)."""


def infer_emg_scale(x: np.ndarray) -> tuple[float, str]:
    """(scale to volts, unit name) implied by the amplitude of raw EMG ``x`` with no declared unit.

    The 99.5th percentile of |x - median| is compared with surface EMG's range (10 uV - 20 mV):
    below 0.02 the values are volts, below 20 millivolts, below 20000 microvolts. Raises
    ``EMGSignalError`` when the amplitude fits none of them.
    """
    a = float(np.percentile(np.abs(np.asarray(x, float) - np.median(x)), 99.5)) if np.size(x) else 0.0
    if not math.isfinite(a):
        raise EMGSignalError("EMG: non-finite samples")
    if a < 0.02:
        return 1.0, "V"
    if a < 20.0:
        return 1e-3, "mV"
    if a < 2e4:
        return 1e-6, "uV"
    raise EMGSignalError(f"EMG: amplitude {a:.3g} fits no unit of surface EMG (V, mV, uV)")


def check_declared_units(label: str, x_v: np.ndarray, unit: str) -> None:
    """Raise ``EMGSignalError`` when ``x_v`` (already scaled by its declared ``unit``) is not surface EMG."""
    peak = float(np.percentile(np.abs(x_v - np.median(x_v)), 99.5)) if x_v.size else 0.0
    if peak > MAX_SEMG_V:
        raise EMGSignalError(
            f"EMG {label}: peak {peak:.3g} V with the declared unit {unit!r} is not surface EMG "
            f"(< {MAX_SEMG_V * 1e3:.0f} mV); the unit looks wrong by a factor of 1000 (mV or uV?)")


def detect_mains_hz(x: np.ndarray, fs_hz: float) -> float | None:
    """50 or 60 when the spectrum of ``x`` has a mains peak standing above its neighbours, else None."""
    if fs_hz < 130.0 or x.size < int(fs_hz):
        return None
    f, p = signal.welch(x - np.mean(x), fs=fs_hz, nperseg=min(x.size, int(fs_hz)))

    def prominence(f0: float) -> float:
        peak = p[(f >= f0 - 1.0) & (f <= f0 + 1.0)]
        side = p[((f > f0 - 8) & (f < f0 - 3)) | ((f > f0 + 3) & (f < f0 + 8))]
        return float(peak.max() / np.median(side)) if peak.size and side.size and np.median(side) > 0 else 0.0

    p50, p60 = prominence(50.0), prominence(60.0)
    best = 50.0 if p50 >= p60 else 60.0
    return best if max(p50, p60) > 6.0 else None


@dataclass(frozen=True)
class ChannelCheck:
    """What was found on one raw EMG channel (V, Hz, fractions)."""

    label: str
    status: str  # "ok", "saturated", "flat", "mains_only"
    dc_offset_v: float
    saturated_fraction: float
    band_rms_v: float
    mains_fraction: float

    @property
    def usable(self) -> bool:
        return self.status == "ok"


def check_channel(label: str, x_v: np.ndarray, fs_hz: float, mains_hz: float) -> ChannelCheck:
    """Quality of one raw channel (V): DC offset, saturation, flat line, mains-only (disconnected)."""
    x = np.asarray(x_v, dtype=np.float64)
    dc = float(np.median(x))
    hi, lo = float(x.max()), float(x.min())
    tol = 1e-9 * max(abs(hi), abs(lo), 1e-12)
    pinned = max(np.count_nonzero(x >= hi - tol), np.count_nonzero(x <= lo + tol))
    sat = pinned / max(1, x.size)
    nyq = 0.5 * fs_hz
    band = (20.0, min(450.0, 0.95 * nyq))
    sos = signal.butter(4, band, btype="bandpass", fs=fs_hz, output="sos")
    y = signal.sosfiltfilt(sos, x - dc)
    rms = float(np.sqrt(np.mean(y * y)))
    f, p = signal.welch(y, fs=fs_hz, nperseg=min(y.size, max(256, int(fs_hz))))
    in_band = (f >= band[0]) & (f <= band[1])
    mains = np.zeros_like(f, dtype=bool)
    for k in range(1, 4):
        mains |= np.abs(f - k * mains_hz) <= 2.0
    total = float(p[in_band].sum())
    frac = float(p[in_band & mains].sum() / total) if total > 0 else 0.0
    if rms < FLAT_RMS_V:
        status = "flat"
    elif sat >= SATURATION_FRACTION and pinned > 3:
        status = "saturated"
    elif frac > MAINS_DOMINANCE:
        status = "mains_only"
    else:
        status = "ok"
    return ChannelCheck(label, status, dc, sat, rms, frac)


@dataclass(frozen=True)
class PreparedEMG:
    """EMG channels ready for the envelope chain: offset removed, volts, with the checks made."""

    emg_v: dict[str, np.ndarray]
    fs_hz: float
    mains_hz: float
    checks: dict[str, ChannelCheck]

    def usable(self) -> dict[str, np.ndarray]:
        """Only the channels whose check is ok."""
        return {k: v for k, v in self.emg_v.items() if self.checks[k].usable}


def prepare_emg(emg_v: dict[str, np.ndarray], fs_hz: float, mains_hz: float | None = None) -> PreparedEMG:
    """Remove offsets, find the mains frequency (unless given) and check each channel (V in, V out).

    Raises ``EMGSignalError`` for a channel shorter than 0.5 s or with NaN.
    """
    if not emg_v:
        return PreparedEMG({}, fs_hz, mains_hz or 50.0, {})
    for k, v in emg_v.items():
        if v.size < 0.5 * fs_hz:
            raise EMGSignalError(f"EMG {k}: only {v.size} samples; at least 0.5 s are needed")
        if not np.isfinite(v).all():
            raise EMGSignalError(f"EMG {k}: NaN/Inf samples")
    if mains_hz is None:
        votes = [m for v in emg_v.values() if (m := detect_mains_hz(v, fs_hz)) is not None]
        mains_hz = max(set(votes), key=votes.count) if votes else 50.0
    checks = {k: check_channel(k, v, fs_hz, mains_hz) for k, v in emg_v.items()}
    clean = {k: v - checks[k].dc_offset_v for k, v in emg_v.items()}
    return PreparedEMG(clean, fs_hz, float(mains_hz), checks)


def emg_config_for(fs_hz: float, mains_hz: float, envelope_hz: float = 5.0) -> EMGConfig:
    """The chain's ``EMGConfig`` for a file's rate: the band's top stays below Nyquist."""
    top = min(450.0, 0.45 * fs_hz)
    return EMGConfig(fs_hz=fs_hz, band_hz=(20.0, top), mains_hz=mains_hz, envelope_hz=envelope_hz)


@dataclass(frozen=True)
class ForceAgreement:
    """How well an EMG envelope follows a recorded force: Pearson r at the best lag (force after EMG)."""

    r: float
    r_zero_lag: float
    lag_s: float
    r_squared_linear: float
    n_samples: int


def envelope_force_agreement(
    emg_v: np.ndarray,
    force: np.ndarray,
    fs_hz: float,
    cfg: EMGConfig | None = None,
    max_lag_s: float = 0.3,
) -> ForceAgreement:
    """Agreement of the chain's envelope of ``emg_v`` (V) with ``force`` (any unit, same samples).

    The envelope is ``envelope_offline`` (the causal chain the controller uses). The force lags
    the EMG (electromechanical delay and muscle dynamics); the lag in [0, ``max_lag_s``] that
    maximises Pearson's r is searched. ``r_squared_linear`` is the r^2 of force against the
    envelope at that lag. Raises ``EMGSignalError`` for mismatched or too short signals.
    """
    e = np.asarray(emg_v, dtype=np.float64)
    f = np.asarray(force, dtype=np.float64)
    if e.shape != f.shape or e.ndim != 1:
        raise EMGSignalError(f"EMG {e.shape} and force {f.shape} must be 1-D and of equal length")
    if not (np.isfinite(e).all() and np.isfinite(f).all()):
        raise EMGSignalError("EMG and force must be finite")
    max_lag = int(round(max_lag_s * fs_hz))
    if e.size < 4 * max_lag + 10:
        raise EMGSignalError("signals too short for the lag search")
    cfg = cfg or emg_config_for(fs_hz, detect_mains_hz(e, fs_hz) or 50.0)
    env = envelope_offline(e - np.median(e), cfg)[:, 0]
    skip = int(0.2 * fs_hz)  # leave out the filters' start-up transient
    best = (-2.0, 0)
    for lag in range(0, max_lag + 1, max(1, int(0.005 * fs_hz))):
        a, b = env[skip : e.size - lag], f[skip + lag :]
        r = float(stats.pearsonr(a, b)[0])
        if r > best[0]:
            best = (r, lag)
    r0 = float(stats.pearsonr(env[skip:], f[skip:])[0])
    r, lag = best
    return ForceAgreement(r, r0, lag / fs_hz, r * r, e.size - skip - lag)


__all__ = [
    "MAX_SEMG_V",
    "ChannelCheck",
    "EMGSignalError",
    "ForceAgreement",
    "PreparedEMG",
    "check_channel",
    "check_declared_units",
    "detect_mains_hz",
    "emg_config_for",
    "envelope_force_agreement",
    "infer_emg_scale",
    "prepare_emg",
]
