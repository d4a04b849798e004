"""Impedance laws: exact agreement with pinocchio + numpy, limits, gain ramps, task frames, null space."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.control import (
    CartesianGains,
    CartesianImpedance,
    JointImpedance,
    cartesian_damping,
    cartesian_impedance_torque,
    cartesian_inertia,
    joint_impedance_torque,
    limit_torque,
    pose_error,
)
from machaon.types import JointState
from tests.control.conftest import ARM_URDF


class PinReference:
    """The Cartesian law computed independently with pinocchio's Python API and numpy."""

    def __init__(self, urdf, tip: str, joint_names) -> None:
        self.model = pin.buildModelFromUrdf(str(urdf))
        self.data = self.model.createData()
        self.fid = self.model.getFrameId(tip)
        self.iq = [self.model.joints[self.model.getJointId(n)].idx_q for n in joint_names]
        self.iv = [self.model.joints[self.model.getJointId(n)].idx_v for n in joint_names]

    def full(self, q):
        qf = pin.neutral(self.model)
        qf[self.iq] = q
        return qf

    def tau(self, q, dq, T_target, K, D):
        qf = self.full(q)
        pin.forwardKinematics(self.model, self.data, qf)
        pin.updateFramePlacements(self.model, self.data)
        M = self.data.oMf[self.fid]
        J = pin.computeFrameJacobian(self.model, self.data, qf, self.fid, pin.LOCAL_WORLD_ALIGNED)[:, self.iv]
        e = np.concatenate([T_target[:3, 3] - M.translation, pin.log3(T_target[:3, :3] @ M.rotation.T)])
        return J.T @ (K @ e - D @ (J @ dq))

    def gravity(self, q):
        return pin.computeGeneralizedGravity(self.model, self.data, self.full(q))[self.iv]


def _spd(rng, scale):
    A = rng.normal(size=(6, 6))
    return scale * (A @ A.T / 6 + np.eye(6))


@pytest.fixture(scope="module")
def ref(arm):
    return PinReference(ARM_URDF, "flange", arm.joint_names)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_cartesian_law_matches_pinocchio(arm, ref, seed):
    rng = np.random.default_rng(seed)
    q = arm.random_q(rng)
    dq = rng.normal(size=arm.dof)
    # Targets near and far, including rotation errors close to pi (the log map must stay exact).
    T_target = arm.fk(arm.random_q(rng))
    K, D = _spd(rng, 300.0), _spd(rng, 20.0)
    tau = cartesian_impedance_torque(arm, q, dq, T_target, K, D)
    expect = ref.tau(q, dq, T_target, K, D)
    np.testing.assert_allclose(tau, expect, rtol=1e-9, atol=1e-9)
    g = ref.gravity(q)
    np.testing.assert_allclose(cartesian_impedance_torque(arm, q, dq, T_target, K, D, g=g), expect + g, atol=1e-9)


def test_rotation_error_near_pi_is_the_log_map(arm):
    q = arm.home()
    T = arm.fk(q)
    T_target = T.copy()
    w = np.array([0.3, -0.5, 0.8])
    w *= (np.pi - 1e-7) / np.linalg.norm(w)
    T_target[:3, :3] = pin.exp3(w) @ T[:3, :3]
    e = pose_error(T, T_target)
    np.testing.assert_allclose(np.abs(e[3:]), np.abs(w), atol=1e-6)
    np.testing.assert_allclose(e[:3], 0.0, atol=1e-12)


def test_fused_step_equals_functional_face(arm, arm_dyn):
    rng = np.random.default_rng(3)
    gains = CartesianGains(rng.uniform(100, 2000, 6), 0.7, frame="base")
    ctrl = CartesianImpedance(arm, gains, dynamics=arm_dyn, inertia_damping=False)
    K = np.diag(gains.stiffness)
    D = cartesian_damping(gains.stiffness, gains.damping_ratio)
    for _ in range(5):
        q, dq = arm.random_q(rng), rng.normal(size=6)
        T_target = arm.fk(arm.random_q(rng))
        ctrl.set_target(T_target)
        cmd = ctrl.update(JointState(0.0, q, dq, np.zeros(6)), 0.0)
        expect = cartesian_impedance_torque(arm, q, dq, T_target, K, D, g=arm_dyn.gravity(q))
        np.testing.assert_allclose(cmd.tau, expect, atol=1e-9)
        np.testing.assert_allclose(cmd.info["error"], pose_error(arm.fk(q), T_target), atol=1e-12)


def test_bad_inputs_raise_value_error_naming_the_argument(arm):
    q = arm.home()
    K = np.eye(6)
    with pytest.raises(ValueError, match="q"):
        cartesian_impedance_torque(arm, np.full(6, np.nan), q, np.eye(4), K, K)
    with pytest.raises(ValueError, match="T_base_target"):
        cartesian_impedance_torque(arm, q, q, np.full((4, 4), np.nan), K, K)
    with pytest.raises(ValueError, match="K"):
        cartesian_impedance_torque(arm, q, q, np.eye(4), np.eye(5), K)
    ctrl = CartesianImpedance(arm, CartesianGains.isotropic(500, 20))
    good = arm.fk(q)
    ctrl.set_target(good)
    bad = good.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="T_base_target"):
        ctrl.set_target(bad)
    np.testing.assert_array_equal(ctrl.target, good)  # the previous target is kept


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_joint_law_and_limits(seed):
    rng = np.random.default_rng(seed)
    n = 5
    q, dq, qd, dqd, g, ff = (rng.normal(size=n) for _ in range(6))
    k, d = rng.uniform(0, 100, n), rng.uniform(0, 10, n)
    tau = joint_impedance_torque(q, dq, qd, dqd, k, d, g, ff)
    np.testing.assert_allclose(tau, k * (qd - q) + d * (dqd - dq) + g + ff, atol=1e-12)
    tau_max, prev, rate, dt = rng.uniform(0.1, 5, n), rng.normal(size=n), rng.uniform(0, 100, n), 1e-3
    lim = limit_torque(tau * 10, tau_max, prev, rate, dt)
    assert (np.abs(lim) <= tau_max + 1e-12).all()
    inside = np.abs(prev) <= tau_max
    # Where the previous torque was admissible, the step respects the rate limit.
    assert (np.abs(lim - prev)[inside] <= rate[inside] * dt + 1e-12).all()


def test_torque_saturation_and_rate_limit_in_the_fused_step(arm):
    q = arm.home()
    T_far = arm.fk(q)
    T_far[:3, 3] += [0.3, 0.0, 0.0]
    ctrl = CartesianImpedance(arm, CartesianGains.isotropic(5000, 200), tau_max=20.0, dtau_max=1000.0)
    ctrl.set_target(T_far)
    state = JointState(0.0, q, np.zeros(6), np.zeros(6))
    ctrl.on_activate(state, 0.0)
    taus = [ctrl.update(state, 0.001 * i).tau for i in range(1, 60)]
    steps = np.abs(np.diff(np.vstack([np.zeros(6)] + taus), axis=0))
    assert steps.max() <= 1000.0 * 0.001 + 1e-9  # 1 N m per 1 ms cycle
    assert np.abs(taus[-1]).max() == pytest.approx(20.0)  # saturated after the ramp-up


def test_gain_change_is_interpolated_without_torque_jump(arm):
    q = arm.home()
    T_target = arm.fk(q)
    T_target[:3, 3] += [0.02, -0.01, 0.01]
    state = JointState(0.0, q, np.zeros(6), np.zeros(6))

    def run(ramp_s):
        ctrl = CartesianImpedance(arm, CartesianGains.isotropic(200, 10), ramp_s=ramp_s)
        ctrl.set_target(T_target)
        ctrl.on_activate(state, 0.0)
        taus = [ctrl.update(state, 0.001 * i).tau for i in range(1, 20)]
        ctrl.set_gains(CartesianGains.isotropic(2000, 100))
        taus += [ctrl.update(state, 0.001 * i).tau for i in range(20, 400)]
        return np.array(taus)

    smooth = run(0.25)
    jump = run(0.0)
    total = np.abs(smooth[-1] - smooth[0]).max()
    assert total > 5.0  # the gains did change the torque a lot...
    assert np.abs(np.diff(smooth, axis=0)).max() < 1.05 * total * 0.001 / 0.25 + 1e-9  # ...in small steps
    assert np.abs(np.diff(jump, axis=0)).max() > 0.9 * total  # without a ramp it jumps at once
    np.testing.assert_allclose(smooth[-1], jump[-1], atol=1e-9)

    jctrl = JointImpedance(6, 50.0, 0.7, ramp_s=0.1)
    jctrl.set_target(q + 0.1)
    jctrl.on_activate(state, 0.0)
    a = jctrl.update(state, 0.001).tau
    jctrl.set_gains(500.0)
    seq = np.array([jctrl.update(state, 0.001 * i).tau for i in range(2, 200)])
    assert np.abs(np.diff(np.vstack([a, seq]), axis=0)).max() <= 450 * 0.1 * 0.001 / 0.1 * 1.01
    np.testing.assert_allclose(seq[-1], 500 * 0.1)


def test_task_frame_turns_with_the_target(arm):
    """Stiff across the target z axis, soft along it, wherever the target z points."""
    q = np.array([0.2, -0.4, 0.9, 0.1, 0.6, -0.3])
    T = arm.fk(q)
    state = JointState(0.0, q, np.zeros(6), np.zeros(6))
    for axis in np.eye(3):
        target = T.copy()
        # Rotate the target so that its z axis points along `axis` (base frame).
        z = axis
        x = np.cross([0.3, 0.5, 0.8], z)
        x /= np.linalg.norm(x)
        target[:3, :3] = T[:3, :3]  # keep the tool orientation error out of the picture
        R_task = np.column_stack([x, np.cross(z, x), z])
        gains = CartesianGains(np.array([3000.0, 3000.0, 30.0, 50.0, 50.0, 50.0]), 0.0,
                               R_frame_task=T[:3, :3].T @ R_task)
        ctrl = CartesianImpedance(arm, gains)
        for direction, k_expect in ((z, 30.0), (x, 3000.0)):
            tgt = target.copy()
            tgt[:3, 3] = T[:3, 3] + 0.01 * direction
            ctrl.set_target(tgt)
            ctrl.on_activate(state, 0.0)
            ctrl.update(state, 0.0)
            np.testing.assert_allclose(ctrl.wrench()[:3], k_expect * 0.01 * direction, atol=1e-9)


def test_cartesian_damping_uses_the_cartesian_inertia(arm, arm_dyn):
    q = arm.home() + 0.3
    J = arm.jacobian(q)
    M = arm_dyn.mass_matrix(q)
    Lam, A = cartesian_inertia(J, M)
    np.testing.assert_allclose(A @ A, Lam, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(Lam, np.linalg.inv(J @ np.linalg.solve(M, J.T)), rtol=1e-6)
    k = np.full(6, 400.0)
    D = cartesian_damping(k, 0.5, None, A)
    # Isotropic stiffness: D = 2 zeta sqrt(k) Lambda^1/2, so every mode gets zeta.
    np.testing.assert_allclose(D, 2 * 0.5 * 20.0 * A, rtol=1e-9)
    # Unit inertia, per-axis: the scalar formula 2 zeta sqrt(k m).
    np.testing.assert_allclose(cartesian_damping([100, 400, 900, 1, 4, 9], 0.5), np.diag([10, 20, 30, 1, 2, 3.0]))


def test_nullspace_posture_does_not_disturb_the_task(panda):
    rng = np.random.default_rng(7)
    q = panda.home() + rng.normal(scale=0.2, size=7)
    dq = rng.normal(scale=0.1, size=7)
    state = JointState(0.0, q, dq, np.zeros(7))
    T = panda.fk(q)
    T[:3, 3] += [0.01, 0.02, -0.01]
    gains = CartesianGains.isotropic(500, 30)

    def tau(posture_gain):
        c = CartesianImpedance(panda, gains, posture=q + 0.5, k_null=posture_gain, d_null=posture_gain / 5)
        c.set_target(T)
        return c.update(state, 0.0).tau

    diff = tau(20.0) - tau(0.0)
    assert np.abs(diff).max() > 0.1  # the posture term acts...
    J = panda.jacobian(q)
    np.testing.assert_allclose(J @ diff, 0.0, atol=1e-6 * np.abs(diff).max())  # ...only in the null space


def test_fused_step_checks_sizes_and_converts_other_layouts(arm):
    from machaon.control import _impedance

    step = _impedance.CartesianStep(arm.kernel)
    step.set_gains(np.eye(6) * 100.0, np.eye(6) * 10.0)
    q = arm.home()
    T = arm.fk(q + 0.1)
    out = np.empty(6)
    step.step(q, np.zeros(6), T, None, 0.0, out)
    out2 = np.empty(6)
    step.step(list(q), np.zeros(6, dtype=np.float32), np.asfortranarray(T), None, 0.0, out2)
    np.testing.assert_allclose(out2, out, atol=1e-12)
    with pytest.raises(ValueError, match="q, dq"):
        step.step(q[:5], np.zeros(6), T, None, 0.0, out)
    with pytest.raises(ValueError, match="out"):
        step.step(q, np.zeros(6), T, None, 0.0, np.empty(6, dtype=np.float32))
    with pytest.raises(ValueError, match="g"):
        step.step(q, np.zeros(6), T, np.zeros(3), 0.0, out)
