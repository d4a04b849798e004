"""IMU processing with known motions: orientation, segment/joint angles, gait events, phase, timing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.exo.imu import (
    GRAVITY,
    GaitPhaseEstimator,
    SegmentOrientation,
    StreamingGaitEvents,
    detect_gait_events,
    estimate_orientation,
    gait_timing,
    joint_angles,
    sagittal_angle_from_quat,
    symmetry_index,
)
from machaon.exo.reference import load_reference_gait

FS = 200.0


def _pendulum_imu(alpha: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Gyro/accel of a sensor rotating in the sagittal plane with inclination alpha(t), no translation."""
    dalpha = np.gradient(alpha, 1 / fs)
    gyr = np.zeros((alpha.size, 3))
    gyr[:, 1] = -dalpha  # sagittal rate = -gyr_y
    # Specific force of a non-accelerating sensor: world up (g) seen in the sensor frame, u = R^T e_z.
    acc = np.stack([np.sin(alpha), np.zeros_like(alpha), np.cos(alpha)], axis=1) * GRAVITY
    return gyr, acc


@pytest.mark.parametrize("algorithm", ["madgwick", "mahony"])
def test_orientation_tracks_sagittal_swing(algorithm: str) -> None:
    t = np.arange(int(6 * FS)) / FS
    alpha = 0.5 * np.sin(2 * np.pi * 0.9 * t) + 0.1
    gyr, acc = _pendulum_imu(alpha, FS)
    q = estimate_orientation(gyr, acc, FS, algorithm)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-9)
    est = sagittal_angle_from_quat(q)
    assert np.max(np.abs(est - alpha)[int(FS) :]) < math.radians(2.0)


def test_orientation_rejects_nan() -> None:
    s = SegmentOrientation(FS)
    s.update(np.zeros(3), np.array([0, 0, GRAVITY]))
    with pytest.raises(ValueError):
        s.update(np.array([np.nan, 0, 0]), np.array([0, 0, GRAVITY]))
    with pytest.raises(ValueError):
        SegmentOrientation(FS, algorithm="kalman-ish")


@pytest.mark.parametrize("algorithm", ["madgwick", "mahony"])
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e300, 1e300), min_size=6, max_size=6))
def test_orientation_survives_finite_but_absurd_samples(algorithm: str, sample: list[float]) -> None:
    """A glitching sensor (finite, huge values) never turns the orientation into NaN for good."""
    s = SegmentOrientation(FS, algorithm)
    s.update(np.zeros(3), np.array([0, 0, GRAVITY]))
    q = s.update(np.array(sample[:3]), np.array(sample[3:]))
    assert np.isfinite(q).all() and abs(np.linalg.norm(q) - 1.0) < 1e-6
    q = s.update(np.zeros(3), np.array([0, 0, GRAVITY]))  # the next good sample is used as usual
    assert np.isfinite(q).all() and abs(np.linalg.norm(q) - 1.0) < 1e-6


@settings(max_examples=25, deadline=None)
@given(st.floats(-1.4, 1.4), st.floats(-1.4, 1.4), st.floats(-3.0, 3.0))
def test_joint_angles_from_segment_quaternions(a_thigh: float, a_shank: float, yaw: float) -> None:
    """alpha is independent of heading; knee = thigh - shank."""

    def quat(alpha: float) -> np.ndarray:
        # R = Rz(yaw) @ Ry(-alpha): distal end anterior for alpha > 0.
        qy = np.array([0.0, math.sin(-alpha / 2), 0.0, math.cos(-alpha / 2)])
        qz = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
        x1, y1, z1, w1 = qz
        x2, y2, z2, w2 = qy
        return np.array(
            [
                w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            ]
        )

    at = float(sagittal_angle_from_quat(quat(a_thigh)))
    ash = float(sagittal_angle_from_quat(quat(a_shank)))
    assert at == pytest.approx(a_thigh, abs=1e-9)
    hip, knee = joint_angles(0.0, at, ash)
    assert knee == pytest.approx(a_thigh - a_shank, abs=1e-9)
    assert hip == pytest.approx(a_thigh, abs=1e-9)


def _synthetic_walk(stride_s: float, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    g = load_reference_gait()
    t = np.arange(int(seconds * FS)) / FS
    phase = (t / stride_s) % 1.0
    a = g.angles(phase)
    shank = a[:, 0] - a[:, 1]
    return t, phase, a[:, 0], np.gradient(shank, 1 / FS)


def test_gait_events_on_synthetic_walk() -> None:
    """Heel strike near phase 0 (the shank decelerates just after contact), toe off near 62 %."""
    stride = 1.05
    t, _, _, w = _synthetic_walk(stride, 8.0)
    ev = detect_gait_events(w, FS)
    n = int(8.0 / stride)
    assert n - 1 <= ev.heel_strike.size <= n
    hs_phase = (ev.heel_strike / stride) % 1.0
    to_phase = (ev.toe_off / stride) % 1.0
    assert np.all((hs_phase >= 0.0) & (hs_phase < 0.10))
    assert np.all(np.abs(to_phase - 0.62) < 0.06)
    np.testing.assert_allclose(np.diff(ev.heel_strike), stride, atol=1.5 / FS)
    # The online detector finds the same events.
    online = StreamingGaitEvents()
    hs_online = []
    for ti, wi in zip(t, w, strict=True):
        if online.update(float(wi), float(ti)) == "heel_strike":
            hs_online.append(online.last_event_t)
    np.testing.assert_allclose(hs_online[: ev.heel_strike.size], ev.heel_strike[: len(hs_online)], atol=1.5 / FS)


def test_no_events_when_standing() -> None:
    ev = detect_gait_events(np.zeros(1000) + 0.01, FS)
    assert ev.heel_strike.size == 0 and ev.toe_off.size == 0


def test_adaptive_oscillator_locks_to_cadence_and_phase() -> None:
    stride = 0.95
    t, phase, hip, w = _synthetic_walk(stride, 14.0)
    est = GaitPhaseEstimator(stride_time_s=1.3)  # starts 37 % off
    out = np.array([est.update(float(h), float(wi), float(ti)) for h, wi, ti in zip(hip, w, t, strict=True)])
    assert est.stride_time_s == pytest.approx(stride, rel=0.02)
    assert est.cadence_steps_min == pytest.approx(120.0 / stride, rel=0.02)
    assert est.locked
    last = slice(int(10 * FS), None)
    err = np.angle(np.exp(2j * np.pi * (out[last] - phase[last]))) / (2 * np.pi)
    # Bias = heel-strike detection delay on kinematic data (< 10 % of the stride, see above).
    assert np.all(np.abs(err) < 0.12)
    assert np.std(err) < 0.03


def test_gait_timing_and_symmetry() -> None:
    hs = {"l": np.arange(0.0, 10.0, 1.0), "r": np.arange(0.6, 10.0, 1.0)}
    to = {"l": hs["l"] + 0.65, "r": hs["r"] + 0.55}
    gt = gait_timing(hs, to)
    assert gt.stride_time_s["l"] == pytest.approx(1.0)
    assert gt.stance_time_s["l"] == pytest.approx(0.65)
    assert gt.swing_time_s["r"] == pytest.approx(0.45)
    assert gt.step_time_s["l"] == pytest.approx(0.4)
    assert gt.step_time_s["r"] == pytest.approx(0.6)
    assert gt.cadence_steps_min == pytest.approx(120.0)
    assert symmetry_index(0.4, 0.6) == pytest.approx(0.4)
    assert symmetry_index(1.0, 1.0) == 0.0
    assert math.isnan(symmetry_index(math.nan, 1.0))


def test_phase_aligned_to_reference_curve_has_no_event_bias() -> None:
    """Aligning the oscillator's first harmonic with the reference hip curve gives phase 0 at the
    reference's heel strike, without the detection delay of the event-based offset."""
    stride = 1.05
    t, phase, hip, w = _synthetic_walk(stride, 10.0)
    est = GaitPhaseEstimator(stride_time_s=1.3, reference_harmonic=load_reference_gait().hip_harmonic())
    out = np.array([est.update(float(h), float(wi), float(ti)) for h, wi, ti in zip(hip, w, t, strict=True)])
    last = slice(int(6 * FS), None)
    err = np.angle(np.exp(2j * np.pi * (out[last] - phase[last]))) / (2 * np.pi)
    assert np.max(np.abs(err)) < 0.015
