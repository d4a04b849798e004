"""EMG chain with known signals: filter responses, AM envelope, streaming == offline, onsets, quality."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from machaon.exo.emg import (
    EMGConfig,
    EMGStream,
    MVCNormaliser,
    QualityCode,
    design_filters,
    detect_onsets,
    envelope_offline,
    preprocess_offline,
)

FS = 2000.0


def _gain_db(sos: np.ndarray, f_hz: float) -> float:
    _, h = signal.sosfreqz(sos, worN=[f_hz], fs=FS)
    return 20 * np.log10(abs(h[0]))


def test_bandpass_and_notch_frequency_response() -> None:
    sos = design_filters(EMGConfig()).sos_pre
    assert abs(_gain_db(sos, 20.0) + 3.0) < 0.6  # corner of the Butterworth band-pass
    assert abs(_gain_db(sos, 450.0) + 3.0) < 0.6
    assert abs(_gain_db(sos, 250.0)) < 0.5  # pass band (between notches)
    assert _gain_db(sos, 5.0) < -40  # motion artefact band
    assert _gain_db(sos, 900.0) < -30
    for f in (50.0, 100.0, 150.0):
        assert _gain_db(sos, f) < -40, f
    sos60 = design_filters(EMGConfig(mains_hz=60.0)).sos_pre
    assert _gain_db(sos60, 60.0) < -40 and _gain_db(sos60, 120.0) < -40


def test_sine_amplitudes_through_chain() -> None:
    t = np.arange(int(2 * FS)) / FS
    x = np.stack([np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3 * t)], axis=1)
    y = preprocess_offline(x, EMGConfig())[int(FS) :]
    rms = np.sqrt((y * y).mean(axis=0))
    assert rms[0] < 0.01  # notched mains
    assert abs(rms[1] - 1 / np.sqrt(2)) < 0.02  # in band
    assert rms[2] < 0.01  # below band


def test_envelope_of_am_signal_follows_modulation() -> None:
    """Carrier noise in band, amplitude modulated at 1 Hz: the envelope tracks the modulation."""
    rng = np.random.default_rng(1)
    n = int(6 * FS)
    t = np.arange(n) / FS
    carrier = signal.sosfilt(signal.butter(4, (60, 400), btype="bandpass", fs=FS, output="sos"), rng.normal(size=n))
    carrier /= carrier.std()
    m = 1.0 + 0.8 * np.sin(2 * np.pi * 1.0 * t)
    x = (1e-3 * m * carrier)[:, None]
    cfg = EMGConfig(envelope_hz=4.0)
    env = envelope_offline(x, cfg)[:, 0]
    # Envelope of |gaussian| is sqrt(2/pi) * sigma * m(t), delayed by the low-pass group delay.
    expected = np.sqrt(2 / np.pi) * 1e-3 * m
    w, gd = signal.group_delay(signal.sos2tf(design_filters(cfg).sos_env), w=[1.0], fs=FS)
    lag = int(round(gd[0]))
    seg = slice(int(2 * FS), n)
    err = env[seg] - expected[seg.start - lag : n - lag]
    assert np.sqrt(np.mean(err**2)) / expected[seg].mean() < 0.12
    assert np.corrcoef(env[seg], expected[seg.start - lag : n - lag])[0, 1] > 0.97


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=12),
    st.sampled_from(["lowpass", "rms"]),
    st.integers(0, 2**31 - 1),
)
def test_streaming_equals_offline(blocks: list[int], method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = sum(blocks)
    x = rng.normal(scale=1e-3, size=(n, 8))
    cfg = EMGConfig(envelope=method)
    offline = envelope_offline(x, cfg)
    stream = EMGStream(cfg, 8)
    pieces, i = [], 0
    for b in blocks:
        pieces.append(stream.process(x[i : i + b]))
        i += b
    online = np.vstack(pieces)
    np.testing.assert_allclose(online, offline, rtol=0, atol=1e-12 * max(1.0, np.abs(offline).max()))
    np.testing.assert_array_equal(stream.last_envelope, online[-1])


def test_stream_rejects_bad_blocks_without_changing_state() -> None:
    s = EMGStream(EMGConfig(), 2)
    s.process(np.ones((4, 2)) * 1e-4)
    before = s.last_envelope.copy()
    with pytest.raises(ValueError, match="NaN"):
        s.process(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="channels"):
        s.process(np.zeros((3, 3)))
    np.testing.assert_array_equal(before, s.last_envelope)


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError):
        EMGConfig(band_hz=(20.0, 1200.0))
    with pytest.raises(ValueError):
        EMGConfig(mains_hz=55.0)
    with pytest.raises(ValueError):
        EMGConfig(envelope="hilbert")


def _bursty(seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    n = int(4 * FS)
    act = np.zeros(n)
    truth = [(int(1.0 * FS), int(1.6 * FS)), (int(2.5 * FS), int(3.1 * FS))]
    for a, b in truth:
        act[a:b] = 1.0
    x = 5e-5 * rng.normal(size=n) + 1e-3 * act * rng.normal(size=n)
    return x[:, None], truth


def test_onset_detection_finds_known_bursts() -> None:
    x, truth = _bursty(3)
    # Hodges & Bui detect on a 50 Hz low-passed rectified signal (a control envelope at 3-6 Hz
    # would put offsets late by its slow decay).
    env = envelope_offline(x, EMGConfig(envelope_hz=50.0))
    bursts = detect_onsets(env, FS, baseline=(int(0.2 * FS), int(0.9 * FS)))
    assert len(bursts) == 2
    for b, (on, off) in zip(bursts, truth, strict=True):
        assert 0 <= b.onset - on < 0.04 * FS  # envelope is causal: onset at most 40 ms late
        assert -0.02 * FS < b.offset - off < 0.15 * FS  # filter tails end bursts late


def test_mvc_normalisation() -> None:
    env = np.concatenate([np.zeros(1000), np.full(2000, 2e-4), np.zeros(1000)])[:, None]
    norm = MVCNormaliser.from_trial(env, FS)
    assert norm.mvc_v[0] == pytest.approx(2e-4)
    np.testing.assert_allclose(norm(np.array([[1e-4], [-1e-6]])), [[0.5], [0.0]])
    with pytest.raises(ValueError):
        MVCNormaliser(np.array([1.0, 0.0]))
    with pytest.raises(ValueError):
        MVCNormaliser.from_trial(np.zeros((10, 1)), FS)


def test_quality_codes() -> None:
    rng = np.random.default_rng(5)
    n = int(1.0 * FS)
    t = np.arange(n) / FS
    good = 3e-4 * rng.normal(size=n)
    flat = np.zeros(n)
    sat = np.clip(5e-3 * np.sign(rng.normal(size=n)), -5e-3, 5e-3)
    off = 2e-3 * np.sin(2 * np.pi * 50 * t) + 1e-6 * rng.normal(size=n)
    x = np.stack([good, flat, sat, off], axis=1)
    s = EMGStream(EMGConfig(), 4)
    for i in range(0, n, 2):
        s.process(x[i : i + 2])
    assert s.quality.codes() == (QualityCode.OK, QualityCode.FLAT, QualityCode.SATURATED, QualityCode.ELECTRODE_OFF)
    assert not s.quality.all_ok()
