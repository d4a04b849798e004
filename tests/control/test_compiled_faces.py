"""The compiled impedance faces: dynamics inside the call, posture torque, out=, bad input, no pinocchio per cycle."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from machaon.control import (
    CartesianGains,
    CartesianImpedance,
    JointImpedance,
    Supervisor,
    cartesian_damping,
    cartesian_impedance_torque,
    joint_impedance_torque,
)
from machaon.control.supervisor import SafetyConfig
from machaon.kinematics import Dynamics
from machaon.types import JointState
from tests.kinematics.pin_reference import ReducedModel


def _state(chain, rng):
    q = chain.random_q(rng)
    return q, rng.normal(size=chain.dof), chain.fk(chain.random_q(rng))


def test_gravity_and_coriolis_inside_the_call_equal_pinocchio(arm, panda):
    K, D = np.diag([900.0, 800.0, 700.0, 40.0, 30.0, 20.0]), np.diag([60.0, 50.0, 40.0, 3.0, 2.0, 1.0])
    rng = np.random.default_rng(1)
    for chain in (arm, panda):
        ref = ReducedModel(chain)
        for _ in range(5):
            q, dq, T = _state(chain, rng)
            base = cartesian_impedance_torque(chain, q, dq, T, K, D)
            g = ref.gravity(q)
            c = ref.coriolis(q, dq)
            with_g = cartesian_impedance_torque(chain, q, dq, T, K, D, gravity=True)
            np.testing.assert_allclose(with_g, base + g, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(cartesian_impedance_torque(chain, q, dq, T, K, D, g=g), with_g,
                                       rtol=1e-12, atol=1e-12)
            both = cartesian_impedance_torque(chain, q, dq, T, K, D, gravity=True, coriolis=True)
            np.testing.assert_allclose(both, base + g + c, rtol=1e-9, atol=1e-9)
            qd, dqd = chain.random_q(rng), rng.normal(size=chain.dof)
            k, d = rng.uniform(0, 100, chain.dof), rng.uniform(0, 10, chain.dof)
            plain = joint_impedance_torque(q, dq, qd, dqd, k, d)
            np.testing.assert_allclose(joint_impedance_torque(q, dq, qd, dqd, k, d, chain=chain), plain + g,
                                       rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(joint_impedance_torque(q, dq, qd, dqd, k, d, chain=chain, coriolis=True),
                                       plain + g + c, rtol=1e-9, atol=1e-9)


def test_posture_torque_in_the_call_equals_the_controller_and_stays_in_the_null_space(panda):
    rng = np.random.default_rng(7)
    q = panda.home() + rng.normal(scale=0.2, size=7)
    dq = rng.normal(scale=0.1, size=7)
    T = panda.fk(q)
    T[:3, 3] += [0.01, 0.02, -0.01]
    gains = CartesianGains.isotropic(500, 30, 0.7)
    K, D = np.diag(gains.stiffness), cartesian_damping(gains.stiffness, gains.damping_ratio, T[:3, :3])
    posture = q + 0.5
    tau = cartesian_impedance_torque(panda, q, dq, T, K, D, posture=posture, k_null=20.0, d_null=4.0)
    free = cartesian_impedance_torque(panda, q, dq, T, K, D)
    diff = tau - free
    assert np.abs(diff).max() > 0.1
    np.testing.assert_allclose(panda.jacobian(q) @ diff, 0.0, atol=1e-6 * np.abs(diff).max())
    ctrl = CartesianImpedance(panda, gains, posture=posture, k_null=20.0, d_null=4.0, inertia_damping=False)
    ctrl.set_target(T)
    np.testing.assert_allclose(ctrl.update(JointState(0.0, q, dq, np.zeros(7)), 0.0).tau, tau, rtol=1e-10, atol=1e-10)
    # Per-joint posture gains equal the scalar ones broadcast.
    same = cartesian_impedance_torque(panda, q, dq, T, K, D, posture=posture, k_null=np.full(7, 20.0),
                                      d_null=np.full(7, 4.0))
    np.testing.assert_array_equal(same, tau)


def test_out_forms_and_bad_input(arm):
    q, dq = arm.home(), np.zeros(6)
    T, K, D = arm.fk(q + 0.1), np.eye(6) * 100.0, np.eye(6) * 10.0
    out = np.empty(6)
    assert cartesian_impedance_torque(arm, q, dq, T, K, D, out=out) is out
    np.testing.assert_array_equal(out, cartesian_impedance_torque(arm, q, dq, T, K, D))
    jout = np.empty(6)
    assert joint_impedance_torque(q, dq, q + 0.1, None, 10.0, 1.0, out=jout) is jout
    np.testing.assert_allclose(jout, 1.0)
    bad_outs = (np.empty(6, dtype=np.float32), np.empty(7), np.empty(12)[::2], [0.0] * 6)
    for bad in bad_outs:
        with pytest.raises(ValueError, match="out"):
            cartesian_impedance_torque(arm, q, dq, T, K, D, out=bad)
        with pytest.raises(ValueError, match="out"):
            joint_impedance_torque(q, dq, q, None, 1.0, 1.0, out=bad)
    cases = {
        "q": dict(q=np.full(6, np.nan)),
        "dq": dict(dq=np.zeros(5)),
        "T_base_target": dict(T=np.diag([1.0, 1.0, -1.0, 1.0])),
        "K": dict(K=np.eye(5)),
        "D": dict(D=np.full((6, 6), np.inf)),
    }
    for name, kw in cases.items():
        a = dict(q=q, dq=dq, T=T, K=K, D=D) | kw
        with pytest.raises(ValueError, match=f"^{name}:"):
            cartesian_impedance_torque(arm, a["q"], a["dq"], a["T"], a["K"], a["D"])
    with pytest.raises(ValueError, match="^q: expected real numbers"):
        cartesian_impedance_torque(arm, q.astype(complex), dq, T, K, D)
    with pytest.raises(ValueError, match="^g:"):
        cartesian_impedance_torque(arm, q, dq, T, K, D, g=np.zeros(6), gravity=True)
    with pytest.raises(ValueError, match="^g:"):
        cartesian_impedance_torque(arm, q, dq, T, K, D, g=np.zeros(3))
    with pytest.raises(ValueError, match="^v_d:"):
        cartesian_impedance_torque(arm, q, dq, T, K, D, v_d=[0.0, np.nan, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="^k_null:"):
        cartesian_impedance_torque(arm, q, dq, T, K, D, posture=q, k_null=-1.0)
    with pytest.raises(TypeError, match="chain"):
        cartesian_impedance_torque(object(), q, dq, T, K, D)
    with pytest.raises(ValueError, match="^k:"):
        joint_impedance_torque(q, dq, q, None, -1.0, 1.0)
    with pytest.raises(ValueError, match="^d:"):
        joint_impedance_torque(q, dq, q, None, 1.0, np.ones(5))
    with pytest.raises(ValueError, match="^q_d:"):
        joint_impedance_torque(q, dq, np.full(6, np.inf), None, 1.0, 1.0)
    with pytest.raises(ValueError, match="^chain:"):
        joint_impedance_torque(q[:5], dq[:5], q[:5], None, 1.0, 1.0, chain=arm)
    with pytest.raises(ValueError, match="^coriolis:"):
        joint_impedance_torque(q, dq, q, None, 1.0, 1.0, coriolis=True)


def test_controllers_and_the_hold_do_not_call_pinocchio_per_cycle(arm, monkeypatch):
    dyn = Dynamics(arm, payload_mass=0.8, payload_com=[0.0, 0.0, 0.05])
    ref = ReducedModel(arm, payload=(0.8, np.array([0.0, 0.0, 0.05]), np.zeros((3, 3))))
    cart = CartesianImpedance(arm, CartesianGains.isotropic(800, 30), dynamics=dyn)
    joint = JointImpedance(6, 50.0, dynamics=dyn)
    sup = Supervisor(SafetyConfig(target_timeout_s=None, period_max_s=1.0), dynamics=dyn)
    sup.bind_period(1e-3)
    rng = np.random.default_rng(3)
    states = [JointState(0.0, arm.random_q(rng), np.zeros(6), np.zeros(6)) for _ in range(3)]
    expected = [ref.gravity(st.q) for st in states]
    for name in ("computeGeneralizedGravity", "rnea", "crba", "nonLinearEffects", "computeAllTerms"):
        monkeypatch.setattr(pin, name, lambda *a, _n=name, **k: pytest.fail(f"pinocchio.{_n} called per cycle"))
    cart.on_activate(states[0], 0.0)
    joint.on_activate(states[0], 0.0)
    sup.hold("test")
    for i, st in enumerate(states):
        t = 0.02 * (i + 1)
        cart.set_target(arm.fk(st.q))
        joint.set_target(st.q)
        np.testing.assert_allclose(cart.update(st, t).tau, expected[i], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(joint.update(st, t).tau, expected[i], rtol=1e-9, atol=1e-9)
        sup.check(st, None, t)
    assert sup.state.value == "hold"
    monkeypatch.undo()


def test_coriolis_option_of_the_controller(arm, arm_dyn):
    rng = np.random.default_rng(5)
    q, dq, T = _state(arm, rng)
    gains = CartesianGains.isotropic(700, 25, 0.7)
    with_c = CartesianImpedance(arm, gains, dynamics=arm_dyn, coriolis=True, inertia_damping=False)
    plain = CartesianImpedance(arm, gains, dynamics=arm_dyn, inertia_damping=False)
    for c in (with_c, plain):
        c.set_target(T)
    st = JointState(0.0, q, dq, np.zeros(6))
    np.testing.assert_allclose(with_c.update(st, 0.0).tau - plain.update(st, 0.0).tau, arm.coriolis_torque(q, dq),
                               rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="coriolis"):
        CartesianImpedance(arm, gains, coriolis=True)
