"""FK, Jacobian and their batch/fused forms against pinocchio, finite differences, and bad input."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from machaon.kinematics import Chain
from tests.kinematics.conftest import arm_spec
from tests.kinematics.pin_reference import pin_q as _pin_q


def _pin_reference(chain: Chain, q: np.ndarray):
    model = pin.buildModelFromUrdf(str(chain.urdf_path))
    data = model.createData()
    qp = _pin_q(model, chain, q)
    pin.framesForwardKinematics(model, data, qp)
    pin.computeJointJacobians(model, data, qp)
    fb = model.getFrameId(chain.base_link, pin.FrameType.BODY)
    ft = model.getFrameId(chain.tip_link, pin.FrameType.BODY)
    T_w_base = data.oMf[fb].homogeneous
    T_w_tip = data.oMf[ft].homogeneous
    T_base_tip = np.linalg.inv(T_w_base) @ T_w_tip
    J_world = pin.getFrameJacobian(model, data, ft, pin.LOCAL_WORLD_ALIGNED)
    R = T_w_base[:3, :3].T
    idx = [model.joints[model.getJointId(n)].idx_v for n in chain.joint_names]
    J = np.vstack([R @ J_world[:3, idx], R @ J_world[3:, idx]])
    frames = [np.linalg.inv(T_w_base) @ data.oMi[model.getJointId(n)].homogeneous for n in chain.joint_names]
    return T_base_tip, J, frames


def test_fk_jacobian_match_pinocchio(arm):
    name, chain = arm
    rng = np.random.default_rng(7)
    Q = chain.random_q(rng, 40)
    for q in Q:
        T_ref, J_ref, frames = _pin_reference(chain, q)
        np.testing.assert_allclose(chain.fk(q), T_ref, atol=1e-10, rtol=0)
        np.testing.assert_allclose(chain.jacobian(q), J_ref, atol=1e-10, rtol=0)
        T, J = chain.fk_jacobian(q)
        np.testing.assert_allclose(T, T_ref, atol=1e-10, rtol=0)
        np.testing.assert_allclose(J, J_ref, atol=1e-10, rtol=0)
        allf = chain.fk_all(q)
        assert allf.shape == (chain.dof + 1, 4, 4)
        for k, F in enumerate(frames):
            np.testing.assert_allclose(allf[k], F, atol=1e-10, rtol=0)
        np.testing.assert_allclose(allf[-1], T_ref, atol=1e-10, rtol=0)
    np.testing.assert_allclose(chain.fk_batch(Q), np.stack([chain.fk(q) for q in Q]), atol=1e-14, rtol=0)
    np.testing.assert_allclose(chain.jacobian_batch(Q), np.stack([chain.jacobian(q) for q in Q]), atol=1e-14, rtol=0)


def test_jacobian_matches_finite_differences(arm):
    _, chain = arm
    rng = np.random.default_rng(3)
    h = 1e-6
    for q in chain.random_q(rng, 10):
        T0 = chain.fk(q)
        J = chain.jacobian(q)
        for k in range(chain.dof):
            dq = np.zeros(chain.dof)
            dq[k] = h
            Tp, Tm = chain.fk(q + dq), chain.fk(q - dq)
            v = (Tp[:3, 3] - Tm[:3, 3]) / (2 * h)
            dR = (Tp[:3, :3] - Tm[:3, :3]) / (2 * h) @ T0[:3, :3].T
            w = np.array([dR[2, 1], dR[0, 2], dR[1, 0]])
            np.testing.assert_allclose(J[:3, k], v, atol=1e-7)
            np.testing.assert_allclose(J[3:, k], w, atol=1e-7)


def test_joint_types_and_limits():
    chain = Chain.from_urdf(*arm_spec("mixed_joints"))
    assert chain.joint_names == ("j1", "j2", "j3", "j4", "j5")
    assert chain.dof == 5
    assert np.isinf(chain.lower[1]) and np.isinf(chain.upper[1])  # continuous
    np.testing.assert_allclose(chain.lower[[0, 2, 3, 4]], [-2.5, -0.1, -2.0, -2.0])
    np.testing.assert_allclose(chain.upper[[0, 2, 3, 4]], [2.5, 0.15, 2.0, 2.0])
    # The prismatic joint moves the tip along its axis by exactly q.
    q = np.zeros(5)
    d = chain.fk(q + np.array([0, 0, 0.1, 0, 0]))[:3, 3] - chain.fk(q)[:3, 3]
    assert abs(np.linalg.norm(d) - 0.1) < 1e-12


def test_with_tool_composes_on_the_right(arm):
    _, chain = arm
    T_tool = np.eye(4)
    T_tool[:3, :3] = pin.rpy.rpyToMatrix(0.3, -0.2, 0.5)
    T_tool[:3, 3] = [0.01, -0.02, 0.15]
    tool = chain.with_tool(T_tool)
    q = chain.random_q(np.random.default_rng(1))
    np.testing.assert_allclose(tool.fk(q), chain.fk(q) @ T_tool, atol=1e-12)
    # The Jacobian is referenced at the tool origin now: v_tool = v_flange + w x r.
    J0, J1 = chain.jacobian(q), tool.jacobian(q)
    r = tool.fk(q)[:3, 3] - chain.fk(q)[:3, 3]
    np.testing.assert_allclose(J1[:3], J0[:3] + np.cross(J0[3:].T, r).T, atol=1e-12)
    np.testing.assert_allclose(J1[3:], J0[3:], atol=1e-12)


def test_wrong_link_names_list_the_links():
    path, base, tip = arm_spec("xarm6")
    with pytest.raises(ValueError, match="link6") as exc:
        Chain.from_urdf(path, base, "no_such_link")
    assert "link_base" in str(exc.value)
    with pytest.raises(ValueError, match="not an ancestor"):
        Chain.from_urdf(path, "link6", "link_base")
    with pytest.raises(FileNotFoundError):
        Chain.from_urdf("/nonexistent.urdf", base, tip)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected_by_name(bad):
    chain = Chain.from_urdf(*arm_spec("xarm6"))
    q = np.zeros(6)
    q[2] = bad
    for fn in (chain.fk, chain.jacobian, chain.fk_all, chain.fk_jacobian):
        with pytest.raises(ValueError, match="q: contains NaN or Inf"):
            fn(q)
    with pytest.raises(ValueError, match="Q: contains NaN"):
        chain.fk_batch(np.vstack([np.zeros(6), q]))
    T = np.eye(4)
    T[0, 3] = bad
    with pytest.raises(ValueError, match="T_base_target"):
        chain.ik(T)
    with pytest.raises(ValueError, match="q0"):
        chain.ik(np.eye(4), q)


def test_wrong_shapes_and_types_are_rejected():
    chain = Chain.from_urdf(*arm_spec("xarm6"))
    with pytest.raises(ValueError, match="q: expected shape 6"):
        chain.fk(np.zeros(5))
    with pytest.raises(ValueError, match="q: expected shape 6"):
        chain.fk(np.zeros((6, 1)))
    with pytest.raises(ValueError, match="q: not a numeric array"):
        chain.fk(["a"] * 6)
    with pytest.raises(ValueError, match="Q: expected shape Nx6"):
        chain.fk_batch(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="out"):
        chain.fk(np.zeros(6), out=np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="out"):
        chain.jacobian(np.zeros(6), out=np.zeros((6, 5)))
    with pytest.raises(ValueError, match="T_base_target: rotation"):
        chain.ik(np.diag([1.0, 1.0, 2.0, 1.0]))
    # Lists and integer arrays are accepted and converted.
    np.testing.assert_allclose(chain.fk([0, 0, 0, 0, 0, 0]), chain.fk(np.zeros(6)))


def test_out_buffers_are_filled_in_place():
    chain = Chain.from_urdf(*arm_spec("xarm6"))
    q = chain.random_q(np.random.default_rng(0))
    T, J = np.empty((4, 4)), np.empty((6, 6))
    assert chain.fk(q, out=T) is T
    assert chain.jacobian(q, out=J) is J
    T2, J2 = chain.fk_jacobian(q, T_out=np.empty((4, 4)), J_out=np.empty((6, 6)))
    np.testing.assert_array_equal(T, T2)
    np.testing.assert_array_equal(J, J2)
    Q = chain.random_q(np.random.default_rng(1), 5)
    out = np.empty((5, 4, 4))
    assert chain.fk_batch(Q, out=out) is out


def test_manipulability_and_condition_number():
    chain = Chain.from_urdf(*arm_spec("kuka_iiwa"))
    q = chain.random_q(np.random.default_rng(2))
    J = chain.jacobian(q)
    assert chain.manipulability(q) == pytest.approx(np.sqrt(np.linalg.det(J @ J.T)), rel=1e-9)
    s = np.linalg.svd(J, compute_uv=False)
    assert chain.condition_number(q) == pytest.approx(s[0] / s[-1], rel=1e-9)
    # Straight arm: the iiwa's joint 2/4/6 at zero is a singularity.
    assert chain.manipulability(np.zeros(7)) < 1e-9
