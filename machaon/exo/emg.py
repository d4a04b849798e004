"""Surface EMG processing with SciPy: offline and streaming (causal, block by block).

Chain per channel (all causal IIR, second-order sections):

1. band-pass 20-450 Hz (Butterworth),
2. mains notches at ``mains_hz`` and its harmonics (``scipy.signal.iirnotch``),
3. full-wave rectification,
4. linear envelope: Butterworth low-pass at 3-6 Hz, or a moving RMS window,
5. MVC normalisation (envelope / envelope at maximal voluntary contraction).

``EMGStream`` keeps every filter's state between blocks, so processing a recording in blocks of
any size gives the same samples as ``envelope_offline`` (SciPy's ``sosfilt``/``lfilter`` on the
whole recording) to rounding, ~1e-15. It runs the chain, and the channel-quality statistics, in a
compiled kernel (``machaon.exo._emg``) with SciPy's filter designs and recurrences: one call per
block, no per-block Python or NumPy work. Units: raw EMG in volts at the electrodes, time in seconds, rates in Hz;
normalised envelopes are dimensionless (1.0 = MVC).

Bad input: NaN/Inf samples or a wrong channel count raise ``ValueError`` (the acquisition layer
marks such samples as a dropout before they get here); an impossible filter design (corner above
Nyquist) raises ``ValueError`` at construction.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import numpy as np
from scipy import signal

from machaon._validate import finite_array
from machaon.exo._emg import EMGKernel, QualityKernel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EMGConfig:
    """Design parameters of the EMG chain (Hz, V, s).

    ``notch_harmonics`` counts the mains frequency itself (3 -> 50, 100, 150 Hz); harmonics at
    or above Nyquist are skipped. ``envelope`` is ``"lowpass"`` (Butterworth at ``envelope_hz``)
    or ``"rms"`` (moving RMS over ``rms_window_s``). ``full_scale_v`` is the ADC range (+/-),
    used by the quality checks.
    """

    fs_hz: float = 2000.0
    band_hz: tuple[float, float] = (20.0, 450.0)
    band_order: int = 4
    mains_hz: float = 50.0
    notch_harmonics: int = 3
    notch_q: float = 30.0
    envelope: str = "lowpass"
    envelope_hz: float = 5.0
    envelope_order: int = 2
    rms_window_s: float = 0.1
    full_scale_v: float = 5e-3

    def __post_init__(self) -> None:
        nyq = 0.5 * self.fs_hz
        lo, hi = self.band_hz
        if not (self.fs_hz > 0 and 0 < lo < hi < nyq):
            raise ValueError(f"band_hz {self.band_hz} must satisfy 0 < low < high < fs/2 = {nyq}")
        if not 0 < self.envelope_hz < nyq:
            raise ValueError(f"envelope_hz {self.envelope_hz} must be in (0, fs/2)")
        if self.envelope not in ("lowpass", "rms"):
            raise ValueError(f"envelope must be 'lowpass' or 'rms', got {self.envelope!r}")
        if self.mains_hz not in (50.0, 60.0):
            raise ValueError(f"mains_hz must be 50 or 60, got {self.mains_hz}")
        if self.notch_harmonics < 0 or self.band_order < 1 or self.envelope_order < 1:
            raise ValueError("filter orders and notch_harmonics must be positive")
        if self.rms_window_s * self.fs_hz < 1:
            raise ValueError("rms_window_s is shorter than one sample")
        if self.full_scale_v <= 0:
            raise ValueError("full_scale_v must be > 0")


@dataclass(frozen=True)
class EMGFilters:
    """Designed filters: ``sos_pre`` (band-pass + notches), envelope ``sos_env`` or RMS FIR ``rms_taps``."""

    sos_pre: np.ndarray
    sos_env: np.ndarray | None
    rms_taps: np.ndarray | None


def design_filters(cfg: EMGConfig) -> EMGFilters:
    """Design the SciPy filters of ``cfg`` (Butterworth band-pass, iirnotch per harmonic, envelope)."""
    sections = [signal.butter(cfg.band_order, cfg.band_hz, btype="bandpass", fs=cfg.fs_hz, output="sos")]
    for k in range(1, cfg.notch_harmonics + 1):
        f0 = k * cfg.mains_hz
        if f0 >= 0.5 * cfg.fs_hz:
            break
        b, a = signal.iirnotch(f0, cfg.notch_q, fs=cfg.fs_hz)
        sections.append(signal.tf2sos(b, a))
    sos_pre = np.ascontiguousarray(np.vstack(sections))
    if cfg.envelope == "lowpass":
        sos_env = signal.butter(cfg.envelope_order, cfg.envelope_hz, btype="lowpass", fs=cfg.fs_hz, output="sos")
        return EMGFilters(sos_pre, np.ascontiguousarray(sos_env), None)
    n = int(round(cfg.rms_window_s * cfg.fs_hz))
    return EMGFilters(sos_pre, None, np.full(n, 1.0 / n))


def _check_block(x: object, n_channels: int | None = None) -> np.ndarray:
    arr = finite_array("emg", x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"emg: expected shape (samples, channels), got {arr.shape}")
    if n_channels is not None and arr.shape[1] != n_channels:
        raise ValueError(f"emg: expected {n_channels} channels, got {arr.shape[1]}")
    return arr


def preprocess_offline(x: np.ndarray, cfg: EMGConfig) -> np.ndarray:
    """Band-pass + notch ``x`` (samples, channels), causally from zero initial state (V)."""
    arr = _check_block(x)
    return signal.sosfilt(design_filters(cfg).sos_pre, arr, axis=0)


def envelope_offline(x: np.ndarray, cfg: EMGConfig) -> np.ndarray:
    """Linear envelope (V) of raw EMG ``x`` (samples, channels): filter, rectify, smooth; causal.

    Same result as feeding ``x`` block by block through ``EMGStream`` (zero initial state).
    """
    arr = _check_block(x)
    filt = design_filters(cfg)
    rect = np.abs(signal.sosfilt(filt.sos_pre, arr, axis=0))
    if filt.sos_env is not None:
        return signal.sosfilt(filt.sos_env, rect, axis=0)
    ms = signal.lfilter(filt.rms_taps, [1.0], rect * rect, axis=0)
    return np.sqrt(np.maximum(ms, 0.0))


class QualityCode(enum.Enum):
    """Per-channel signal quality verdict."""

    OK = "ok"
    SATURATED = "saturated"
    FLAT = "flat"
    ELECTRODE_OFF = "electrode_off"


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the channel-quality checks, evaluated over exponential windows of ``window_s``.

    saturated: more than ``sat_fraction`` of samples within 2 % of full scale.
    flat: band-passed RMS below ``flat_rms_v`` (disconnected amplifier, stuck ADC).
    electrode_off: mains hum RMS above ``mains_ratio`` times the notched EMG-band RMS and above
    ``mains_min_v`` (a lifted electrode picks up the mains; a good contact is dominated by EMG).
    """

    window_s: float = 0.25
    sat_fraction: float = 0.01
    flat_rms_v: float = 1e-7
    mains_ratio: float = 3.0
    mains_min_v: float = 2e-5


class QualityMonitor:
    """Streaming channel-quality checks: saturation, flat line, electrode off (mains dominated).

    Keeps exponentially weighted statistics (compiled, ``machaon.exo._emg.QualityKernel``);
    ``update(raw, clean)`` takes a block of raw samples and the same block after band-pass + notch
    (folded in 10 ms chunks), ``codes`` gives the current verdicts. Until one window of samples
    has been seen the verdict is OK unless a sample is saturated. ``EMGStream`` feeds its monitor
    from inside its compiled chain.
    """

    def __init__(self, cfg: EMGConfig, n_channels: int, qcfg: QualityConfig | None = None) -> None:
        self.cfg = cfg
        self.qcfg = qcfg or QualityConfig()
        self.n_channels = n_channels
        # Mains hum band-pass around the fundamental (a resonator), to measure what the notch removes.
        b, a = signal.iirpeak(cfg.mains_hz, 5.0, fs=cfg.fs_hz)
        hp = signal.butter(2, cfg.band_hz[0], btype="highpass", fs=cfg.fs_hz, output="sos")
        # Statistics are folded in chunks of at least this many samples (cheaper than per 1 ms
        # block; the windows are 250 ms long). Saturation is flagged on every block.
        self.chunk = max(1, int(0.01 * cfg.fs_hz))
        self._kernel = QualityKernel(n_channels, np.vstack([signal.tf2sos(b, a), hp]), 0.98 * cfg.full_scale_v,
                                     1.0 / (self.qcfg.window_s * cfg.fs_hz), self.chunk)
        self._warm_samples = self.qcfg.window_s * cfg.fs_hz
        self._codes = tuple(QualityCode.OK for _ in range(n_channels))
        self._codes_at = 0  # the kernel's fold count the cached codes were computed at

    def update(self, raw: np.ndarray, clean: np.ndarray) -> None:
        """Fold a block (samples, channels) of raw and band-passed/notched samples into the statistics."""
        self._kernel.update(raw, clean)

    def flush(self) -> None:
        """Fold the buffered samples into the statistics now."""
        self._kernel.flush()

    def codes(self) -> tuple[QualityCode, ...]:
        """Current verdict per channel."""
        k = self._kernel
        if k.seen < self._warm_samples:
            return self._compute_codes()  # warm-up: a saturated block counts at once
        if k.folds != self._codes_at:  # recomputed whenever the statistics change (every folded chunk)
            self._codes = self._compute_codes()
            self._codes_at = k.folds
        return self._codes

    def _compute_codes(self) -> tuple[QualityCode, ...]:
        q, k = self.qcfg, self._kernel
        warm = k.seen >= self._warm_samples
        out = []
        rms_clean = np.sqrt(k.ms_clean)
        rms_mains = np.sqrt(k.ms_mains)
        sat, sat_now = k.sat, k.any_sat_now
        for c in range(self.n_channels):
            if sat[c] > q.sat_fraction or (not warm and sat_now[c]):
                out.append(QualityCode.SATURATED)
            elif not warm:
                out.append(QualityCode.OK)
            elif rms_mains[c] > q.mains_min_v and rms_mains[c] > q.mains_ratio * rms_clean[c]:
                out.append(QualityCode.ELECTRODE_OFF)
            elif rms_clean[c] < q.flat_rms_v:
                out.append(QualityCode.FLAT)
            else:
                out.append(QualityCode.OK)
        return tuple(out)

    def all_ok(self) -> bool:
        return all(c is QualityCode.OK for c in self.codes())


class EMGStream:
    """Causal block-by-block EMG chain with kept filter state for ``n_channels`` channels.

    ``process(block)`` takes raw volts (samples, channels) and returns the envelope (V) of the
    same shape; ``last_envelope`` holds the newest envelope sample per channel. ``quality`` is the
    running ``QualityMonitor``. A block with NaN/Inf or the wrong channel count raises
    ``ValueError`` and leaves the state untouched. The chain runs in one compiled call per block.
    """

    def __init__(self, cfg: EMGConfig, n_channels: int, quality: QualityConfig | None = None) -> None:
        if n_channels < 1:
            raise ValueError("n_channels must be >= 1")
        self.cfg = cfg
        self.n_channels = n_channels
        self.filters = design_filters(cfg)
        self.quality = QualityMonitor(cfg, n_channels, quality)
        f = self.filters
        self._kernel = EMGKernel(n_channels, f.sos_pre, f.sos_env, f.rms_taps, self.quality._kernel)

    @property
    def last_envelope(self) -> np.ndarray:
        """The newest envelope sample per channel (V), a copy."""
        return self._kernel.last_envelope.copy()

    @property
    def samples_seen(self) -> int:
        return self._kernel.samples_seen

    def reset(self) -> None:
        """Zero all filter states (e.g. after a long dropout)."""
        self._kernel.reset()
        self.quality = QualityMonitor(self.cfg, self.n_channels, self.quality.qcfg)
        self._kernel.quality = self.quality._kernel

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter one block of raw EMG (samples, channels) in V; returns its envelope (V)."""
        return self._kernel.process(block)


@dataclass(frozen=True)
class MVCNormaliser:
    """Envelope -> fraction of maximal voluntary contraction, per channel (dimensionless, >= 0).

    ``mvc_v`` is the envelope level (V) at MVC for each channel; must be finite and > 0.
    """

    mvc_v: np.ndarray

    def __post_init__(self) -> None:
        arr = finite_array("mvc_v", self.mvc_v, (None,))
        if np.any(arr <= 0):
            raise ValueError("mvc_v: every channel's MVC level must be > 0")
        object.__setattr__(self, "mvc_v", arr)

    @staticmethod
    def from_trial(envelope: np.ndarray, fs_hz: float, window_s: float = 0.5) -> MVCNormaliser:
        """MVC level = the highest mean envelope over any ``window_s`` window of an MVC trial.

        Averaging over a window (instead of the single peak sample) keeps one artefact spike from
        setting the scale. Raises ``ValueError`` if the trial is shorter than the window or silent.
        """
        env = _check_block(envelope)
        n = int(round(window_s * fs_hz))
        if n < 1 or env.shape[0] < n:
            raise ValueError(f"MVC trial of {env.shape[0]} samples is shorter than the {n}-sample window")
        kernel = np.full(n, 1.0 / n)
        means = np.stack([np.convolve(env[:, c], kernel, mode="valid") for c in range(env.shape[1])], axis=1)
        return MVCNormaliser(means.max(axis=0))

    def __call__(self, envelope: np.ndarray) -> np.ndarray:
        """Normalise an envelope (..., channels) in V; negative filter ripple is clipped to 0."""
        return np.maximum(np.asarray(envelope, dtype=np.float64) / self.mvc_v, 0.0)


@dataclass(frozen=True)
class Burst:
    """One muscle activation burst: sample indices [onset, offset) on one channel."""

    channel: int
    onset: int
    offset: int


def detect_onsets(
    envelope: np.ndarray,
    fs_hz: float,
    baseline: tuple[int, int] | None = None,
    h_sd: float = 3.0,
    window_s: float = 0.025,
    min_fraction: float = 0.6,
    min_burst_s: float = 0.05,
) -> list[Burst]:
    """Muscle onsets/offsets with a Hodges-Bui / double-threshold detector.

    Threshold = baseline mean + ``h_sd`` * baseline SD, the baseline being samples
    ``baseline`` = (start, stop) of each channel (default: the first 0.25 s). A channel is active
    where at least ``min_fraction`` of the samples in a trailing ``window_s`` window exceed the
    threshold (second threshold); the onset is placed at the first supra-threshold sample of that
    window. Bursts shorter than ``min_burst_s`` are dropped. Returns bursts sorted by channel,
    then onset. Raises ``ValueError`` on NaN or a baseline outside the signal.
    """
    env = _check_block(envelope)
    n_total = env.shape[0]
    b0, b1 = baseline if baseline is not None else (0, int(round(0.25 * fs_hz)))
    if not 0 <= b0 < b1 <= n_total or b1 - b0 < 2:
        raise ValueError(f"baseline {(b0, b1)} is not a valid range inside {n_total} samples")
    m = max(1, int(round(window_s * fs_hz)))
    r = max(1, int(np.ceil(min_fraction * m)))
    min_len = int(round(min_burst_s * fs_hz))
    bursts: list[Burst] = []
    for c in range(env.shape[1]):
        base = env[b0:b1, c]
        thr = base.mean() + h_sd * base.std()
        above = env[:, c] > thr
        count = np.convolve(above.astype(np.int64), np.ones(m, dtype=np.int64))[:n_total]
        active = count >= r
        edges = np.diff(active.astype(np.int8), prepend=0, append=0)
        starts = np.flatnonzero(edges == 1)
        stops = np.flatnonzero(edges == -1)
        for s, e in zip(starts, stops, strict=True):
            # Window ending at s has r samples above: onset is the first of them in that window.
            w0 = max(0, s - m + 1)
            first = w0 + int(np.argmax(above[w0 : s + 1]))
            # Offset: activity ends when the window no longer holds r samples above; the last
            # supra-threshold sample before that is the true end of the burst.
            last_above = np.flatnonzero(above[first:e])
            end = first + (int(last_above[-1]) + 1 if last_above.size else e - first)
            if end - first >= min_len:
                bursts.append(Burst(c, first, end))
    return bursts
