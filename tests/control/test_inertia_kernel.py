"""The Cython Lambda^1/2 kernel used by the controller each inertia refresh agrees with numpy's route."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.control import CartesianGains, CartesianImpedance, cartesian_damping, cartesian_inertia
from machaon.control import _impedance as kernels
from machaon.types import JointState


def _kernel(J, M, eps=1e-6):
    A = np.full((6, 6), np.nan)
    code = kernels.sqrt_cartesian_inertia(np.ascontiguousarray(J), np.ascontiguousarray(M), eps, A)
    return code, A


def _rel(A, B):
    return np.abs(A - B).max() / np.abs(B).max()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_matches_numpy_on_the_arm(arm, arm_dyn, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(np.maximum(arm.lower, -3.0), np.minimum(arm.upper, 3.0))
    J, M = arm.jacobian(q), arm_dyn.mass_matrix(q)
    code, A = _kernel(J, M)
    Lam, A0 = cartesian_inertia(J, M)
    assert code == 0
    # Agreement to rounding, scaled by how well conditioned Lambda is.
    assert _rel(A, A0) <= 1e-14 * max(1.0, np.linalg.cond(Lam))
    np.testing.assert_allclose(A, A.T, atol=0)


@pytest.mark.parametrize("n", [1, 3, 6, 7, 12])
def test_matches_numpy_for_any_joint_count_and_at_singularities(n):
    rng = np.random.default_rng(n)
    for i in range(20):
        J = rng.normal(size=(6, n))
        if i % 4 == 0:
            J[3:] = 0.0  # no angular authority: three eigenvalues floored at eps
        B = rng.normal(size=(n, n))
        M = B @ B.T + 0.05 * np.eye(n)
        code, A = _kernel(J, M)
        Lam, A0 = cartesian_inertia(J, M)
        assert code == 0
        assert _rel(A, A0) <= 1e-14 * max(1.0, np.linalg.cond(Lam))


def test_declines_what_it_cannot_do():
    J = np.ones((6, 6))
    bad = [np.diag([1.0, 1.0, -1.0, 1.0, 1.0, 1.0]), np.diag([1.0, 1.0, np.nan, 1.0, 1.0, 1.0]), np.eye(5)]
    for M in bad:
        code, A = _kernel(J, M)
        assert code == -1 and np.isnan(A).all()  # out untouched
    Jn = J.copy()
    Jn[0, 0] = np.inf
    assert _kernel(Jn, np.eye(6))[0] == -1


def test_controller_damping_is_the_inertia_design(arm, arm_dyn):
    gains = CartesianGains(np.array([800.0, 800.0, 200.0, 40.0, 40.0, 10.0]), 0.7)
    ctrl = CartesianImpedance(arm, gains, dynamics=arm_dyn)
    q = arm.home() + 0.2
    state = JointState(0.0, q, np.zeros(arm.dof), np.zeros(arm.dof))
    ctrl.update(state, 0.0)
    K, D = np.empty((6, 6)), np.empty((6, 6))
    ctrl._step.gains_base(K, D)
    _, A = cartesian_inertia(arm.jacobian(q), arm_dyn.mass_matrix(q))
    D_ref = cartesian_damping(gains.stiffness, gains.damping_ratio, ctrl.target[:3, :3], A)
    np.testing.assert_allclose(D, D_ref, rtol=1e-10, atol=1e-10 * np.abs(D_ref).max())


def test_the_refresh_from_the_compiled_chain_counts_the_drives_armature(arm):
    """``refresh_inertia(q)`` with the mass matrix from ``set_dynamics``: Lambda^1/2 of J and M + armature."""
    chain = arm.with_armature(np.linspace(0.05, 0.4, arm.dof))
    step = kernels.CartesianStep(chain)
    step.set_dynamics(chain)
    step.set_damping_factors(np.eye(6), np.eye(6))  # D_base = A Z K1 + K1 Z A = 2 A
    K, D = np.zeros((6, 6)), np.zeros((6, 6))
    q = arm.home() + 0.1
    assert step.refresh_inertia(q) == 0
    step.apply_inertia_damping()
    step.gains_base(K, D)
    Lam, A_with = cartesian_inertia(chain.jacobian(q), chain.mass_matrix(q))
    _, A_bare = cartesian_inertia(arm.jacobian(q), arm.mass_matrix(q))
    assert _rel(D, 2.0 * A_with) <= 1e-14 * max(1.0, np.linalg.cond(Lam))
    assert _rel(D, 2.0 * A_bare) > 1e-6  # the armature does change the design
