"""The chain's compiled rigid-body dynamics: exact against pinocchio, physical properties, bad input, out=."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machaon.kinematics._chain import ChainKernel

from machaon.kinematics import Chain
from tests.kinematics.conftest import arm_spec, erd_urdf
from tests.kinematics.pin_reference import ReducedModel

# Arms with real inertial data: the project's arm, example-robot-data's UR5/UR10, Panda and Kinova
# (continuous joints), pybullet_data's iiwa, a chain with every joint type, a mid-arm sub-chain
# whose base is not the URDF root (links beyond the tip lumped, joints beyond it locked), and the
# Panda to its hand (fixed links and the locked fingers lumped into the last body).
ARMS = {
    "machaon_arm": lambda: arm_spec("machaon_arm"),
    "ur5": lambda: (erd_urdf("ur_description/urdf/ur5_robot.urdf"), "base_link", "tool0"),
    "ur10": lambda: (erd_urdf("ur_description/urdf/ur10_robot.urdf"), "base_link", "tool0"),
    "panda": lambda: (erd_urdf("panda_description/urdf/panda.urdf"), "panda_link0", "panda_link8"),
    "panda_hand": lambda: (erd_urdf("panda_description/urdf/panda.urdf"), "panda_link0", "panda_hand"),
    "kinova": lambda: (erd_urdf("kinova_description/robots/kinova.urdf"), "j2s6s200_link_base",
                       "j2s6s200_end_effector"),
    "kuka_iiwa": lambda: arm_spec("kuka_iiwa"),
    "mixed_joints": lambda: arm_spec("mixed_joints"),
    "ur5_mid": lambda: (erd_urdf("ur_description/urdf/ur5_robot.urdf"), "shoulder_link", "wrist_2_link"),
}


@pytest.fixture(scope="module", params=list(ARMS))
def dyn_arm(request) -> tuple[Chain, ReducedModel]:
    chain = Chain.from_urdf(*ARMS[request.param]())
    return chain, ReducedModel(chain)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def test_dynamics_equal_pinocchio_reduced_model(dyn_arm):
    chain, ref = dyn_arm
    rng = np.random.default_rng(11)
    for q in chain.random_q(rng, 25):
        dq, ddq = rng.normal(size=chain.dof), rng.normal(size=chain.dof)
        assert _rel(chain.rnea(q, dq, ddq), ref.rnea(q, dq, ddq)) < 1e-9
        assert _rel(chain.gravity_torque(q), ref.gravity(q)) < 1e-9
        assert _rel(chain.mass_matrix(q), ref.mass_matrix(q)) < 1e-9
        assert _rel(chain.coriolis_torque(q, dq), ref.coriolis(q, dq)) < 1e-9


def test_gravity_is_settable_and_follows_the_base_frame(dyn_arm):
    chain, _ = dyn_arm
    tilted = Chain.from_urdf(chain.urdf_path, chain.base_link, chain.tip_link)
    ref = ReducedModel(tilted)
    np.testing.assert_array_equal(tilted.gravity, [0.0, 0.0, -9.81])
    tilted.gravity = [1.5, -3.0, -8.0]
    np.testing.assert_array_equal(tilted.gravity, [1.5, -3.0, -8.0])
    q = tilted.random_q(np.random.default_rng(2))
    assert _rel(tilted.gravity_torque(q), ref.gravity(q)) < 1e-9
    tilted.gravity = np.zeros(3)
    np.testing.assert_array_equal(tilted.gravity_torque(q), np.zeros(tilted.dof))
    with pytest.raises(ValueError, match="gravity: contains NaN"):
        tilted.gravity = [0.0, np.nan, 0.0]
    with pytest.raises(ValueError, match="gravity: expected shape 3"):
        tilted.gravity = [0.0, -9.81]


@pytest.mark.parametrize("name", ["machaon_arm", "panda", "kinova"])
def test_payload_equals_pinocchio_with_the_same_body_added(name):
    T_tool = np.eye(4)
    T_tool[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    T_tool[:3, 3] = [0.01, 0.0, 0.12]
    chain = Chain.from_urdf(*ARMS[name]()).with_tool(T_tool)
    A = np.array([[0.02, 0.001, 0.0], [0.001, 0.03, -0.002], [0.0, -0.002, 0.01]])
    com = np.array([0.01, -0.02, 0.05])
    loaded = chain.with_payload(1.7, com, A)
    ref = ReducedModel(chain, payload=(1.7, com, A))
    rng = np.random.default_rng(5)
    for q in chain.random_q(rng, 10):
        dq, ddq = rng.normal(size=chain.dof), rng.normal(size=chain.dof)
        assert _rel(loaded.rnea(q, dq, ddq), ref.rnea(q, dq, ddq)) < 1e-9
        assert _rel(loaded.mass_matrix(q), ref.mass_matrix(q)) < 1e-9
    # The payload stays on the flange when the tool frame changes; kinematics is untouched.
    moved = loaded.with_tool(np.eye(4))
    q = chain.random_q(rng)
    np.testing.assert_allclose(moved.gravity_torque(q), loaded.gravity_torque(q), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(loaded.fk(q), chain.fk(q))
    with pytest.raises(ValueError, match="mass"):
        chain.with_payload(-1.0)
    with pytest.raises(ValueError, match="com"):
        chain.with_payload(1.0, [0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="inertia"):
        chain.with_payload(1.0, com, -np.eye(3))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(["machaon_arm", "kinova", "mixed_joints", "panda"]))
def test_physical_properties(seed, name):
    chain = _chains(name)
    rng = np.random.default_rng(seed)
    q = chain.random_q(rng)
    dq = rng.normal(scale=2.0, size=chain.dof)
    ddq = rng.normal(scale=5.0, size=chain.dof)
    M = chain.mass_matrix(q)
    np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-14 * np.abs(M).max())
    assert np.linalg.eigvalsh(M).min() > 0
    zero = np.zeros(chain.dof)
    np.testing.assert_allclose(chain.rnea(q, zero, zero), chain.gravity_torque(q), rtol=1e-12, atol=1e-12)
    # rnea = M ddq + C dq + g
    np.testing.assert_allclose(chain.rnea(q, dq, ddq), M @ ddq + chain.coriolis_torque(q, dq) + chain.gravity_torque(q),
                               rtol=1e-9, atol=1e-9)
    # Energy: dM/dt - 2C is skew, so dq^T (dM/dt dq - 2 C dq) = 0 (power balance of the kinetic energy).
    h = 1e-6
    Mdot = (chain.mass_matrix(q + h * dq) - chain.mass_matrix(q - h * dq)) / (2 * h)
    lhs, rhs = dq @ Mdot @ dq, 2.0 * dq @ chain.coriolis_torque(q, dq)
    assert abs(lhs - rhs) <= 1e-6 * max(1.0, abs(rhs))
    # Without gravity and at rest nothing moves the joints.
    assert np.abs(chain.coriolis_torque(q, zero)).max() == 0.0


_CACHE: dict[str, Chain] = {}


def _chains(name: str) -> Chain:
    if name not in _CACHE:
        _CACHE[name] = Chain.from_urdf(*ARMS[name]())
    return _CACHE[name]


def test_bad_input_is_rejected_by_name():
    chain = _chains("kinova")
    n = chain.dof
    q = np.zeros(n)
    calls = {
        "rnea": lambda a, b, c: chain.rnea(a, b, c),
        "gravity_torque": lambda a, b, c: chain.gravity_torque(a),
        "mass_matrix": lambda a, b, c: chain.mass_matrix(a),
        "coriolis_torque": lambda a, b, c: chain.coriolis_torque(a, b),
    }
    for fn in calls.values():
        for bad in (np.nan, np.inf, -np.inf):
            qb = q.copy()
            qb[n - 1] = bad
            with pytest.raises(ValueError, match="q: contains NaN or Inf"):
                fn(qb, q, q)
        with pytest.raises(ValueError, match="q: expected shape 6"):
            fn(np.zeros(n + 1), q, q)
        with pytest.raises(ValueError, match="q: expected shape 6"):
            fn(np.zeros((n, 1)), q, q)
        with pytest.raises(ValueError, match="q: expected real numbers"):
            fn(q.astype(complex), q, q)
        with pytest.raises(ValueError, match="q: not a numeric array"):
            fn(["a"] * n, q, q)
    with pytest.raises(ValueError, match="dq: contains NaN"):
        chain.rnea(q, np.full(n, np.nan), q)
    with pytest.raises(ValueError, match="ddq: expected shape"):
        chain.rnea(q, q, np.zeros(3))
    with pytest.raises(ValueError, match="dq: expected shape"):
        chain.coriolis_torque(q, np.zeros(2))
    # Lists, integers, float32 and strided views are real numbers: converted, same answer.
    ref = chain.gravity_torque(q)
    for alt in (list(q), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float32), np.zeros(2 * n)[::2]):
        np.testing.assert_array_equal(chain.gravity_torque(alt), ref)


def test_out_forms_fill_and_return_the_buffer_and_reject_wrong_buffers():
    chain = _chains("panda")
    n = chain.dof
    rng = np.random.default_rng(4)
    q, dq, ddq = chain.random_q(rng), rng.normal(size=n), rng.normal(size=n)
    tau, g, c, M = np.empty(n), np.empty(n), np.empty(n), np.empty((n, n))
    assert chain.rnea(q, dq, ddq, out=tau) is tau
    assert chain.gravity_torque(q, out=g) is g
    assert chain.coriolis_torque(q, dq, out=c) is c
    assert chain.mass_matrix(q, out=M) is M
    np.testing.assert_array_equal(tau, chain.rnea(q, dq, ddq))
    np.testing.assert_array_equal(g, chain.gravity_torque(q))
    np.testing.assert_array_equal(c, chain.coriolis_torque(q, dq))
    np.testing.assert_array_equal(M, chain.mass_matrix(q))
    readonly = np.empty(n)
    readonly.flags.writeable = False
    for bad in (np.empty(n, dtype=np.float32), np.empty(n + 1), np.empty((n, 1)), np.empty(2 * n)[::2], readonly,
                [0.0] * n):
        with pytest.raises(ValueError, match="out"):
            chain.gravity_torque(q, out=bad)
    with pytest.raises(ValueError, match="out"):
        chain.mass_matrix(q, out=np.empty((n, n + 1)))


def test_documented_methods_are_the_compiled_ones_that_run():
    chain = _chains("machaon_arm")
    for name in ("fk", "fk_all", "jacobian", "fk_jacobian", "fk_batch", "jacobian_batch", "rnea",
                 "gravity_torque", "mass_matrix", "coriolis_torque"):
        assert name not in vars(chain), f"{name} is hidden by an instance attribute"
        assert getattr(Chain, name) is getattr(ChainKernel, name)
        assert "ValueError" in getattr(Chain, name).__doc__
    assert chain.kernel is chain


def test_pickle_keeps_kinematics_dynamics_and_gravity():
    chain = _chains("mixed_joints").with_payload(0.4, [0.0, 0.01, 0.02])
    chain.gravity = [0.0, -1.0, -9.0]
    copy = pickle.loads(pickle.dumps(chain))
    q = chain.random_q(np.random.default_rng(9))
    np.testing.assert_array_equal(copy.fk(q), chain.fk(q))
    np.testing.assert_array_equal(copy.mass_matrix(q), chain.mass_matrix(q))
    np.testing.assert_array_equal(copy.gravity_torque(q), chain.gravity_torque(q))
