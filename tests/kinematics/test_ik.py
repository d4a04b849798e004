"""Inverse kinematics: success rate and accuracy on random reachable poses, limits, axis IK."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.kinematics import Chain, exp3, log3
from tests.kinematics.conftest import arm_spec


@pytest.fixture(scope="module")
def project_arm() -> Chain:
    return Chain.from_urdf(*arm_spec("machaon_arm"))


def _errors(chain: Chain, q: np.ndarray, T: np.ndarray) -> tuple[float, float]:
    A = chain.fk(q)
    return float(np.linalg.norm(A[:3, 3] - T[:3, 3])), float(np.linalg.norm(log3(T[:3, :3] @ A[:3, :3].T)))


@pytest.mark.parametrize("name", ["machaon_arm", "xarm6", "kuka_iiwa", "ur5"])
def test_ik_success_rate_on_1000_reachable_poses(name):
    chain = Chain.from_urdf(*arm_spec(name))
    rng = np.random.default_rng(2026)
    Q = chain.random_q(rng, 1000)
    ok = 0
    for i, q in enumerate(Q):
        T = chain.fk(q)
        r = chain.ik(T, seed=i)
        assert np.all(r.q >= chain.lower) and np.all(r.q <= chain.upper)
        if r.success:
            pe, re = _errors(chain, r.q, T)
            assert pe <= 1e-6 and re <= 1e-6
            assert r.pos_err <= 1e-6 and r.rot_err <= 1e-6
            ok += 1
    assert ok >= 999, f"{name}: {ok}/1000"


def test_unreachable_target_returns_failure_within_limits(project_arm):
    T = np.eye(4)
    T[:3, 3] = [5.0, 0.0, 0.5]  # far outside the reach
    r = project_arm.ik(T, restarts=5)
    assert not r.success
    assert r.pos_err > 3.0
    assert np.all(r.q >= project_arm.lower) and np.all(r.q <= project_arm.upper)


def test_ik_is_deterministic_for_a_seed(project_arm):
    rng = np.random.default_rng(5)
    T = project_arm.fk(project_arm.random_q(rng))
    a = project_arm.ik(T, np.zeros(6) + 0.01, seed=42)
    b = project_arm.ik(T, np.zeros(6) + 0.01, seed=42)
    np.testing.assert_array_equal(a.q, b.q)
    assert a.iterations == b.iterations


def test_ik_prefers_the_solution_nearest_q0(project_arm):
    rng = np.random.default_rng(9)
    for _ in range(20):
        q = project_arm.random_q(rng)
        # stay clear of limits so the nearby solution is unconstrained
        q = np.clip(q, project_arm.lower + 0.2, project_arm.upper - 0.2)
        T = project_arm.fk(q)
        r = project_arm.ik(T, q + rng.normal(0, 0.02, 6))
        assert r.success
        assert np.linalg.norm(r.q - q) < 1e-2  # the same branch (near-singular poses allow ~1e-3 drift)


def test_q0_outside_the_limits_is_clamped_not_returned(project_arm):
    q0 = project_arm.upper + 1.0
    r = project_arm.ik(project_arm.fk(project_arm.home()), q0)
    assert r.success
    assert np.all(r.q <= project_arm.upper)


def test_continuous_joints_are_wrapped_near_q0():
    chain = Chain.from_urdf(*arm_spec("mixed_joints"))
    rng = np.random.default_rng(4)
    q = chain.random_q(rng)
    T = chain.fk(q)
    q0 = q.copy()
    q0[1] += 4 * np.pi  # the continuous joint, many turns away
    r = chain.ik(T, q0)
    assert r.success
    assert abs(r.q[1] - q0[1]) <= np.pi + 1e-9


def test_axis_ik_on_random_lines(project_arm):
    tool = project_arm.with_tool(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.12], [0, 0, 0, 1.0]]))
    rng = np.random.default_rng(11)
    solved = 0
    for _ in range(25):
        q = tool.random_q(rng)
        T = tool.fk(q)
        p, a = T[:3, 3], T[:3, 2]
        r = tool.ik_axis(p, a, samples=8)
        assert r.success
        A = tool.fk(r.q)
        assert np.linalg.norm(A[:3, 3] - p) <= 1e-6
        assert np.arccos(np.clip(A[:3, 2] @ a, -1, 1)) <= 1e-5
        assert np.all(r.q >= tool.lower) and np.all(r.q <= tool.upper)
        solved += 1
    assert solved == 25


def test_axis_ik_uses_the_free_roll_to_stay_off_limits(project_arm):
    rng = np.random.default_rng(12)
    q = project_arm.random_q(rng)
    T = project_arm.fk(q)
    r = project_arm.ik_axis(T[:3, 3], T[:3, 2], samples=12)
    single = project_arm.ik(T)
    span = project_arm.upper - project_arm.lower
    mid = project_arm.home()

    def margin(x):
        return float(np.min(1 - np.abs(2 * (x - mid) / span)) * project_arm.manipulability(x))

    assert r.success and single.success
    assert margin(r.q) >= margin(single.q) - 1e-9


def test_axis_ik_rejects_zero_axis(project_arm):
    with pytest.raises(ValueError, match="axis_base"):
        project_arm.ik_axis(np.zeros(3), np.zeros(3))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=6, max_size=6), st.integers(0, 2**32 - 1))
def test_fk_ik_fk_roundtrip(project_arm, u, seed):
    lo, hi = project_arm.lower, project_arm.upper
    q = lo + (np.array(u) + 1.0) * 0.5 * (hi - lo)
    T = project_arm.fk(q)
    r = project_arm.ik(T, seed=seed)
    assert r.success
    np.testing.assert_allclose(project_arm.fk(r.q), T, atol=2e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3), st.floats(0.0, np.pi))
def test_log3_inverts_exp3_up_to_pi(direction, angle):
    d = np.array(direction)
    if np.linalg.norm(d) < 1e-3:
        d = np.array([0.0, 0.0, 1.0])
    w = angle * d / np.linalg.norm(d)
    R = exp3(w)
    w2 = log3(R)
    np.testing.assert_allclose(exp3(w2), R, atol=1e-9)
    if angle < np.pi - 1e-6:
        np.testing.assert_allclose(w2, w, atol=1e-8)
