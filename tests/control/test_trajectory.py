"""Trajectories: boundary conditions, limits respected, derivatives consistent, SLERP geodesic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.control.trajectory import (
    CartesianTrajectory,
    JointTrajectory,
    MinimumJerkProfile,
    TrajectorySequence,
    TrajectoryTracker,
    TrapezoidalProfile,
)
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop

limits = st.floats(0.05, 20.0)


def _check_profile(p, v_max, a_max):
    ts = np.linspace(-0.1, p.duration + 0.1, 2001)
    s, ds, dds = (np.array(x) for x in zip(*(p(t) for t in ts), strict=True))
    assert p(0.0)[0] == 0.0 and p(p.duration)[0] == 1.0
    assert np.all(np.diff(s) >= -1e-12)  # monotone
    assert ds.max() <= v_max * (1 + 1e-9) and np.abs(dds).max() <= a_max * (1 + 1e-9)
    # ds is the derivative of s (central differences, away from the kinks of the trapezoid)
    h = ts[1] - ts[0]
    num = np.gradient(s, h)
    assert np.abs(num - ds)[5:-5].max() <= max(a_max * 2 * h, 1e-9)
    return ds.max(), np.abs(dds).max()


@settings(max_examples=25, deadline=None, derandomize=True)
@given(v=limits, a=limits)
def test_profiles_respect_limits_and_one_is_reached(v, a):
    peak_v, peak_a = _check_profile(MinimumJerkProfile.timed(v, a), v, a)
    assert max(peak_v / v, peak_a / a) == pytest.approx(1.0, rel=2e-3)  # time-optimal for its shape
    peak_v, peak_a = _check_profile(TrapezoidalProfile(v, a), v, a)
    assert peak_a == pytest.approx(a, rel=1e-9)


def test_trapezoid_durations():
    assert TrapezoidalProfile(1.0, 1.0).duration == pytest.approx(2.0)  # triangle: 2 sqrt(1/a)
    assert TrapezoidalProfile(0.5, 1.0).duration == pytest.approx(2.5)  # 1/v + v/a
    assert MinimumJerkProfile.timed(1.0, 100.0).duration == pytest.approx(1.875)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_joint_trajectory_is_synchronised_and_within_limits(seed):
    rng = np.random.default_rng(seed)
    q0, q1 = rng.uniform(-2, 2, 4), rng.uniform(-2, 2, 4)
    v_max, a_max = rng.uniform(0.2, 2, 4), rng.uniform(0.5, 5, 4)
    for kind in ("minjerk", "trapezoid"):
        tr = JointTrajectory(q0, q1, v_max, a_max, profile=kind, t0=1.0)
        np.testing.assert_allclose(tr.sample(0.5)[0], q0)
        np.testing.assert_allclose(tr.sample(tr.t_end + 1)[0], q1)
        ts = np.linspace(1.0, tr.t_end, 400)
        Q, dQ, ddQ = (np.array(x) for x in zip(*(tr.sample(t) for t in ts), strict=True))
        assert (np.abs(dQ) <= v_max * (1 + 1e-9)).all()
        assert (np.abs(ddQ) <= a_max * (1 + 1e-9)).all()
        # straight line in joint space
        frac = (Q - q0) / (q1 - q0)
        np.testing.assert_allclose(frac, frac[:, :1] * np.ones(4), atol=1e-9)


def test_cartesian_trajectory_slerp_and_limits():
    T0 = np.eye(4)
    T1 = np.eye(4)
    T1[:3, :3] = Rotation.from_rotvec([0.0, 0.0, 2.0]).as_matrix()
    T1[:3, 3] = [0.3, -0.1, 0.2]
    tr = CartesianTrajectory(T0, T1, v_max=0.1, a_max=0.5, w_max=0.5, alpha_max=2.0)
    np.testing.assert_allclose(tr.sample(tr.duration)[0], T1, atol=1e-12)
    np.testing.assert_allclose(tr.sample(-1)[0], T0, atol=1e-12)
    # at s = 1/2 the rotation is half way along the geodesic
    half = next(t for t in np.linspace(0, tr.duration, 20001) if tr.profile(t)[0] >= 0.5)
    T, tw, _ = tr.sample(half)
    assert Rotation.from_matrix(T[:3, :3]).magnitude() == pytest.approx(1.0, abs=1e-3)
    speeds = np.array([tr.sample(t)[1] for t in np.linspace(0, tr.duration, 500)])
    assert np.linalg.norm(speeds[:, :3], axis=1).max() <= 0.1 * (1 + 1e-9)
    assert np.linalg.norm(speeds[:, 3:], axis=1).max() <= 0.5 * (1 + 1e-9)
    # the twist's angular part is the derivative of the rotation (base frame)
    t, h = 0.37 * tr.duration, 1e-6
    Ra, Rb = tr.sample(t - h)[0][:3, :3], tr.sample(t + h)[0][:3, :3]
    w_num = Rotation.from_matrix(Rb @ Ra.T).as_rotvec() / (2 * h)
    np.testing.assert_allclose(tr.sample(t)[1][3:], w_num, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="q1"):
        JointTrajectory([0, 0], [0, np.nan], 1.0, 1.0)
    with pytest.raises(ValueError, match="v_max"):
        JointTrajectory([0, 0], [1, 1], 0.0, 1.0)
    with pytest.raises(ValueError, match="kind"):
        JointTrajectory([0, 0], [1, 1], 1.0, 1.0, profile="cubic")
    with pytest.raises(ValueError, match="T1"):
        CartesianTrajectory(np.eye(4), np.zeros((4, 4)), 0.1, 0.1)


def test_tracker_follows_a_sequence_on_the_fake_robot():
    q_way = [np.zeros(2), np.array([0.5, -0.3]), np.array([0.2, 0.4])]
    seq = TrajectorySequence.through(q_way, v_max=1.0, a_max=4.0)
    assert seq.duration == pytest.approx(sum(s.duration for s in seq.segments))
    backend = FakeBackend(2)
    sup = Supervisor(SafetyConfig(target_timeout_s=0.01))
    ctrl = TrajectoryTracker(JointImpedance(2, 2500.0, 1.0), seq, supervisor=sup)
    loop = ControlLoop(backend, ctrl, sup)
    loop.run_for(seq.duration + 0.5)
    assert ctrl.done(backend.clock.now())
    np.testing.assert_allclose(backend.read().q, q_way[-1], atol=1e-3)
    assert sup.state.value == "run"  # the tracker kept the target fresh
    assert math.isclose(loop.stats().period_median, 1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_cartesian_sample_is_the_exp3_geodesic(seed):
    """The per-cycle Rodrigues form equals exp3(s theta) R0 to rounding, exactly at the ends."""
    from machaon.kinematics import exp3

    rng = np.random.default_rng(seed)
    T0, T1 = np.eye(4), np.eye(4)
    T0[:3, :3] = Rotation.random(random_state=seed % 2**31).as_matrix()
    T1[:3, :3] = T0[:3, :3] if seed % 4 == 0 else Rotation.random(random_state=(seed + 1) % 2**31).as_matrix()
    T0[:3, 3], T1[:3, 3] = rng.normal(size=3), rng.normal(size=3)
    tr = CartesianTrajectory(T0, T1, 0.5, 1.0, w_max=1.0, alpha_max=4.0)
    for t in np.linspace(-0.1, tr.duration + 0.1, 23):
        T, tw, acc = tr.sample(t)
        s, ds, dds = tr.profile(t - tr.t0)
        R_ref = exp3(s * tr.theta) @ T0[:3, :3]
        np.testing.assert_allclose(T[:3, :3], R_ref, atol=1e-13)
        np.testing.assert_allclose(T[:3, 3], T0[:3, 3] + s * tr.dp, atol=1e-15)
        np.testing.assert_array_equal(T[3], [0.0, 0.0, 0.0, 1.0])
        np.testing.assert_array_equal(tw, np.concatenate([ds * tr.dp, ds * tr.theta]))
        np.testing.assert_array_equal(acc, np.concatenate([dds * tr.dp, dds * tr.theta]))
        if s in (0.0, 1.0):
            np.testing.assert_array_equal(T[:3, :3], R_ref)
