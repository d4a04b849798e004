"""The Dynamics face (over the compiled chain) against pinocchio, and the payload model against a Jacobian check."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from machaon.kinematics import Chain, Dynamics
from tests.kinematics.conftest import arm_spec
from tests.kinematics.pin_reference import pin_q as _pin_q


@pytest.mark.parametrize("name", ["machaon_arm", "kuka_iiwa"])
def test_gravity_mass_matrix_nonlinear(name):
    dyn = Dynamics.from_urdf(*arm_spec(name))
    chain = dyn.chain
    model = pin.buildModelFromUrdf(str(chain.urdf_path))
    data = model.createData()
    rng = np.random.default_rng(1)
    for q in chain.random_q(rng, 5):
        dq = rng.normal(0, 1, chain.dof)
        qp = _pin_q(model, chain, q)
        np.testing.assert_allclose(dyn.gravity(q), pin.computeGeneralizedGravity(model, data, qp), atol=1e-9)
        M = dyn.mass_matrix(q)
        np.testing.assert_allclose(M, M.T, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(M) > 0)
        np.testing.assert_allclose(dyn.nonlinear(q, np.zeros(chain.dof)), dyn.gravity(q), atol=1e-9)
        np.testing.assert_allclose(dyn.nonlinear(q, dq), pin.nonLinearEffects(model, data, qp, dq), atol=1e-9)


def test_payload_adds_jacobian_transpose_of_its_weight():
    path, base, tip = arm_spec("machaon_arm")
    T_tool = np.eye(4)
    T_tool[:3, 3] = [0.0, 0.0, 0.1]
    com = np.array([0.01, -0.02, 0.05])
    bare = Dynamics.from_urdf(path, base, tip, T_flange_tool=T_tool)
    loaded = Dynamics.from_urdf(path, base, tip, payload_mass=1.5, payload_com=com, T_flange_tool=T_tool)
    T_com = T_tool.copy()
    T_com[:3, 3] += com
    com_chain = Chain.from_urdf(path, base, tip).with_tool(T_com)
    q = com_chain.random_q(np.random.default_rng(8))
    Jp = com_chain.jacobian(q)[:3]
    expected = Jp.T @ np.array([0.0, 0.0, 1.5 * 9.81])
    np.testing.assert_allclose(loaded.gravity(q) - bare.gravity(q), expected, atol=1e-9)


def test_dynamics_rejects_bad_input():
    dyn = Dynamics.from_urdf(*arm_spec("kuka_iiwa"))
    with pytest.raises(ValueError, match="q"):
        dyn.gravity(np.full(7, np.nan))
    with pytest.raises(ValueError, match="dq"):
        dyn.nonlinear(np.zeros(7), np.zeros(3))
    with pytest.raises(ValueError, match="payload_mass"):
        Dynamics.from_urdf(*arm_spec("kuka_iiwa"), payload_mass=-1.0)


@pytest.mark.parametrize("name", ["machaon_arm", "kuka_iiwa"])
def test_per_cycle_path_gives_pinocchios_numbers_and_checks_like_finite_array(name):
    """The cheap per-cycle input check and the skipped reordering change no number and no error."""
    dyn = Dynamics.from_urdf(*arm_spec(name))
    chain = dyn.chain
    model = pin.buildModelFromUrdf(str(chain.urdf_path))
    data = model.createData()
    n = chain.dof
    for q in chain.random_q(np.random.default_rng(3), 5):
        qp = _pin_q(model, chain, q)
        np.testing.assert_allclose(dyn.gravity(q), pin.computeGeneralizedGravity(model, data, qp), rtol=0, atol=1e-12)
        M = pin.crba(model, data, qp)
        M = np.triu(M) + np.triu(M, 1).T
        np.testing.assert_allclose(dyn.mass_matrix(q), M, rtol=0, atol=1e-12)
        # Lists, other dtypes and strided views take the full check and give the same result.
        np.testing.assert_array_equal(dyn.gravity(list(q)), dyn.gravity(q))
        np.testing.assert_array_equal(dyn.gravity(np.repeat(q, 2)[::2]), dyn.gravity(q))
    g = dyn.gravity(np.zeros(n))
    g[:] = 1e9  # the result is the caller's own array: nothing inside the Dynamics changes
    assert np.abs(dyn.gravity(np.zeros(n))).max() < 1e6
    # Finite values whose sum overflows are still accepted (as finite_array does); NaN/Inf anywhere are not.
    big = np.full(n, 1e308)
    assert dyn.gravity(big).shape == (n,)
    for bad in (np.nan, np.inf, -np.inf):
        q = np.zeros(n)
        q[n - 1] = bad
        with pytest.raises(ValueError, match="q: contains NaN or Inf"):
            dyn.gravity(q)
        with pytest.raises(ValueError, match="q: contains NaN or Inf"):
            dyn.mass_matrix(q)
    with pytest.raises(ValueError, match="q: expected shape"):
        dyn.gravity(np.zeros(n + 1))
