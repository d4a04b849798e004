"""The compiled ``CartesianImpedance.update`` gives exactly what the full Python cycle gives, cycle after cycle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.control import CartesianGains, CartesianImpedance
from machaon.kinematics import Dynamics
from machaon.types import JointCommand, JointState

_KINDS = ("ok", "ok", "ok", "ok", "ok", "target", "target_ff", "gains", "gap", "float32", "int_t", "nan", "same_t")


def _controllers(chain, variant: str) -> tuple[CartesianImpedance, CartesianImpedance]:
    def make() -> CartesianImpedance:
        gains = CartesianGains(np.array([900.0, 700.0, 500.0, 40.0, 30.0, 20.0]), 0.8)
        n = chain.dof
        if variant == "kernel_mass":  # gravity and the inertia design's M from the compiled chain
            return CartesianImpedance(chain, gains, dynamics=Dynamics(chain, payload_mass=0.4), tau_max=40.0,
                                      dtau_max=2e4)
        if variant == "armature":  # the drives' rotor inertia on the mass matrix of the inertia design
            return CartesianImpedance(chain.with_armature(np.linspace(0.05, 0.3, n)), gains,
                                      dynamics=chain.with_armature(np.linspace(0.05, 0.3, n)))
        if variant == "coriolis":
            return CartesianImpedance(chain, gains, dynamics=chain, coriolis=True, inertia_period_s=0.003)
        if variant == "constant_mass":  # a given mass matrix: its refresh cycles take the Python path
            return CartesianImpedance(chain, gains, dynamics=chain, mass_matrix=np.eye(n) * 0.5)
        return CartesianImpedance(chain, gains, inertia_damping=False, tau_max=np.full(n, 30.0))
    return make(), make()


def _state(rng: np.random.Generator, q0: np.ndarray, t: float, kind: str) -> JointState:
    n = q0.shape[0]
    q = q0 + rng.normal(scale=0.05, size=n)
    dq = rng.normal(scale=0.3, size=n)
    if kind == "float32":
        q = q.astype(np.float32)
    if kind == "nan":
        q[rng.integers(n)] = np.nan
    return JointState(t, q, dq, rng.normal(size=n))


def _same(a: JointCommand, b: JointCommand) -> None:
    assert a.mode is b.mode
    np.testing.assert_array_equal(a.tau, b.tau)
    assert a.info.keys() == b.info.keys()
    for key in a.info:
        np.testing.assert_array_equal(a.info[key], b.info[key])


def _outcome(update, state: JointState, t: float) -> JointCommand | str:
    try:
        return update(state, t)
    except ValueError as exc:
        return repr(exc)


def _observable(c: CartesianImpedance) -> tuple:
    step = c._step
    K, D = np.zeros((6, 6)), np.zeros((6, 6))
    step.gains_base(K, D)
    return (c._cur_k.tobytes(), c._cur_z.tobytes(), c._t_prev, c._t_inertia, c._have_lambda, c._activated,
            c._ramp is None, None if c._ff_target is None else c._ff_target[0].tobytes(),
            step.wrench().tobytes(), step.pose().tobytes(), step.error().tobytes(), K.tobytes(), D.tobytes())


@pytest.mark.parametrize("variant", ["kernel_mass", "armature", "coriolis", "constant_mass", "no_inertia", "redundant"])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(kinds=st.lists(st.sampled_from(_KINDS), min_size=5, max_size=40), seed=st.integers(0, 2**31 - 1))
def test_compiled_update_equals_the_full_cycle(arm, panda, variant, kinds, seed):
    arm = panda if variant == "redundant" else arm  # 7 joints: the null-space posture term too
    fast, full = _controllers(arm, "kernel_mass" if variant == "redundant" else variant)
    calls = []
    slow_path = fast._update_python
    fast._update_python = lambda state, t: calls.append(t) or slow_path(state, t)  # count the fallbacks
    q0 = arm.home() if variant != "redundant" else 0.5 * (arm.lower + arm.upper)
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    t = 0.0
    for kind in ["ok", *kinds]:
        t += 0.02 if kind == "gap" else (0.0 if kind == "same_t" else 0.001)
        for ctrl, rng in ((fast, rng_a), (full, rng_b)):
            if kind in ("target", "target_ff"):
                T = arm.fk(q0 + rng.normal(scale=0.1, size=arm.dof))
                if kind == "target_ff":
                    ctrl.set_target(T, v_d=rng.normal(size=6), w_ff=rng.normal(size=6))
                else:
                    ctrl.set_target(T)
            elif kind == "gains":
                ctrl.set_gains(CartesianGains(rng.uniform(100.0, 1000.0, 6), rng.uniform(0.5, 1.0)),
                               ramp_s=0.004)
        tt = int(round(t * 1000)) if kind == "int_t" else t
        out_fast, out_full = _outcome(fast.update, _state(rng_a, q0, t, kind), tt), \
            _outcome(full._update_python, _state(rng_b, q0, t, kind), tt)
        if isinstance(out_fast, JointCommand):
            _same(out_fast, out_full)
        else:  # bad input (NaN at a Cartesian-inertia refresh): the same error either way
            assert out_fast == out_full
        assert _observable(fast) == _observable(full)
    if len(kinds) >= 20 and variant != "constant_mass":
        assert len(calls) < len(kinds)  # the compiled cycle did run


def test_the_compiled_cycle_returns_fresh_arrays(arm):
    """Recorders keep commands: nothing a returned command holds is reused by a later cycle."""
    ctrl = CartesianImpedance(arm, CartesianGains.isotropic(800.0, 30.0), dynamics=arm)
    q = arm.home()
    state = JointState(0.0, q, np.zeros(arm.dof), np.zeros(arm.dof))
    first = ctrl.update(state, 0.0)
    kept = (first.tau.copy(), first.info["error"].copy())
    q2 = q + 0.01
    for i in range(1, 5):
        out = ctrl.update(JointState(0.001 * i, q2, np.full(arm.dof, 0.1), np.zeros(arm.dof)), 0.001 * i)
        assert out.tau is not first.tau and out.info["error"] is not first.info["error"]
    np.testing.assert_array_equal(first.tau, kept[0])
    np.testing.assert_array_equal(first.info["error"], kept[1])


def test_a_wrong_state_still_raises_naming_the_joints(arm):
    ctrl = CartesianImpedance(arm, CartesianGains.isotropic(800.0, 30.0), dynamics=arm)
    n = arm.dof
    ctrl.update(JointState(0.0, arm.home(), np.zeros(n), np.zeros(n)), 0.0)
    with pytest.raises(ValueError, match="state: expected"):
        ctrl.update(JointState(0.001, np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)), 0.001)
