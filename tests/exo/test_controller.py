"""Assist controller: fallback within one cycle, limits, assist-as-needed adaptation, phase."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.exo.controller import AssistConfig, AssistController, assist_profile
from machaon.exo.emg import MVCNormaliser
from machaon.types import CommandMode, JointState

from ._walker import SyntheticWalker

DT = 1e-3


def _controller(walker: SyntheticWalker, **kw: object) -> AssistController:
    return AssistController(walker, MVCNormaliser(np.full(8, 2e-4)), AssistConfig(**kw))


def _state(walker: SyntheticWalker, t: float, q_offset: np.ndarray | None = None, ok: bool = True) -> JointState:
    q = walker.joint_q(t) + (0 if q_offset is None else q_offset)
    return JointState(t, q, walker.joint_dq(t), np.zeros(4), ok=ok)


def _run(ctrl: AssistController, walker: SyntheticWalker, t0: float, t1: float, **state_kw: object) -> list:
    out = []
    for i in range(int(round((t1 - t0) / DT))):
        t = t0 + (i + 1) * DT
        walker.advance(t)
        out.append((t, ctrl.update(_state(walker, t, **state_kw), t), ctrl.status))
    return out


@pytest.fixture(scope="module")
def walking() -> tuple[AssistController, SyntheticWalker, float]:
    """A controller that has locked on to a synthetic walk and is assisting."""
    w = SyntheticWalker(stride_s=1.0, lag=(0.0, 0.0))
    ctrl = _controller(w)
    _run(ctrl, w, 0.0, 3.5)
    assert ctrl.status.mode == "assist", ctrl.status.reason
    return ctrl, w, 3.5


def test_locks_on_and_tracks_phase(walking) -> None:
    ctrl, w, t = walking
    for s in range(2):
        est = ctrl.status.phase[s]
        true = w.phase(t, s)
        assert abs((est - true + 0.5) % 1.0 - 0.5) < 0.03
        assert ctrl.gait["lr"[s]].stride_time_s == pytest.approx(1.0, rel=0.06)  # from 1.1 s, converging


@pytest.fixture
def fresh(walking):
    """A copy of a locked, assisting controller + its walker, with config overrides."""

    def make(**kw: object) -> tuple[AssistController, SyntheticWalker, float]:
        ctrl, w, t = copy.deepcopy(walking)
        ctrl.cfg = dataclasses.replace(ctrl.cfg, **kw)
        return ctrl, w, t

    return make


def test_dropout_falls_back_in_the_first_cycle_it_is_detectable(fresh) -> None:
    ctrl, w, t0 = fresh(damping_nm_s=2.0)
    w.dropout = True
    res = _run(ctrl, w, t0, t0 + 0.02)
    timeout = ctrl.cfg.sensor_timeout_s
    modes = [(t, s.mode) for t, _, s in res]
    first = next(t for t, m in modes if m == "transparent")
    # Last sample arrived at t0; the first cycle later than t0 + timeout must already be safe.
    assert first == pytest.approx(t0 + math.floor(timeout / DT + 1e-9) * DT + DT, abs=1e-9)
    assert all(m == "assist" for t, m in modes if t < first - 1e-12)
    t_f, cmd, status = next(r for r in res if r[0] == first)
    assert cmd.mode is CommandMode.TORQUE
    np.testing.assert_allclose(cmd.tau, -2.0 * w.joint_dq(t_f))  # zero assist + damping
    assert status.reason == "emg_dropout"


@pytest.mark.parametrize("fault", ["nan", "saturate", "link", "state"])
def test_bad_signal_falls_back_in_the_same_cycle(fault: str, fresh) -> None:
    ctrl, w, t0 = fresh(damping_nm_s=1.5)
    t = t0 + DT
    w.advance(t)
    ok = True
    if fault == "nan":
        w.nan_next = True
    elif fault == "saturate":
        w.saturate_next = True
    elif fault == "link":
        w.connected = False
    else:
        ok = False
    cmd = ctrl.update(_state(w, t, ok=ok), t)
    assert ctrl.status.mode == "transparent"
    assert ctrl.status.reason.startswith(
        {"nan": "bad_emg", "saturate": "emg_saturated", "link": "sensor_link", "state": "bad_joint"}[fault]
    )
    np.testing.assert_allclose(cmd.tau, -1.5 * w.joint_dq(t))
    assert ctrl.fallback_count >= 1


def test_nan_joint_state_gives_finite_safe_command(fresh) -> None:
    ctrl, w, t0 = fresh()
    t = t0 + DT
    w.advance(t)
    cmd = ctrl.update(JointState(t, np.array([np.nan, 0, 0, 0]), np.full(4, np.nan), np.zeros(4)), t)
    assert ctrl.status.mode == "transparent" and np.all(cmd.tau == 0.0)


def test_recovers_after_signals_are_good_again_with_rate_limit(fresh) -> None:
    ctrl, w, t0 = fresh(recover_s=0.1)
    w.nan_next = True
    _run(ctrl, w, t0, t0 + DT)
    assert ctrl.status.mode == "transparent"
    res = _run(ctrl, w, t0 + DT, t0 + 0.3)
    modes = [s.mode for _, _, s in res]
    back = modes.index("assist")
    assert 0.09 <= back * DT <= 0.12
    taus = np.array([c.tau for _, c, _ in res])
    steps = np.abs(np.diff(taus[back - 1 :], axis=0))
    assert np.all(steps <= np.asarray(ctrl.cfg.rate_max_nm_s) * DT + 1e-9)


def test_assist_off_is_transparent_and_zero_without_damping() -> None:
    w = SyntheticWalker()
    ctrl = _controller(w, assist=False, damping_nm_s=0.0)
    res = _run(ctrl, w, 0.0, 0.5)
    assert all(np.all(c.tau == 0.0) for _, c, _ in res)
    assert ctrl.fallback_count == 0  # not a fault


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-200, 200), min_size=4, max_size=4),
    st.lists(st.floats(-20, 20), min_size=4, max_size=4),
    st.lists(st.floats(-40, 40), min_size=4, max_size=4),
)
def test_torque_power_rate_limits(tau: list, dq: list, prev: list) -> None:
    ctrl = _controller(SyntheticWalker())
    ctrl._tau_prev = np.clip(np.array(prev), -35, 35)
    out = ctrl._limit(np.array(tau), np.array(dq), DT)
    cfg = ctrl.cfg
    assert np.all(np.abs(out) <= np.asarray(cfg.tau_max_nm) + 1e-12)
    assert np.all(np.abs(out * np.array(dq)) <= np.asarray(cfg.power_max_w) + 1e-9)
    # Rate limit holds unless a hard cap (torque/power) forced a bigger step toward zero.
    step = np.abs(out - np.clip(np.array(prev), -35, 35))
    capped = np.abs(out) < np.abs(np.clip(np.array(prev), -35, 35))
    assert np.all((step <= np.asarray(cfg.rate_max_nm_s) * DT + 1e-9) | capped)


def test_stiffness_rises_where_the_leg_lags_and_falls_where_it_leads(fresh) -> None:
    """Right leg starts lagging the rhythm by 8 % of the cycle: its K rises; the left leg leads: its K falls."""
    ctrl, w, t0 = fresh()
    ctrl.K_table[:] = 60.0
    w.lag = (0.0, 0.08)
    _run(ctrl, w, t0, t0 + 3.0)
    assert ctrl.status.mode == "assist"
    k_l = ctrl.K_table[:2].mean()
    k_r = ctrl.K_table[2:].mean()
    assert k_r > 60.0 > k_l
    assert k_r > 2 * k_l
    # The lagging leg is pulled toward the leader's rhythm: reference ahead of its own phase.
    ph, ref = ctrl.status.phase, ctrl.status.phase_ref
    assert 0.04 < (ref[1] - ph[1]) % 1.0 < 0.12


def test_assist_profile_shape() -> None:
    ph = np.linspace(0, 1, 201)
    prof = np.array([assist_profile(p) for p in ph])
    assert ph[np.argmax(prof[:, 0])] == pytest.approx(0.60, abs=0.01)  # hip flexion at push-off
    assert prof[:, 1].min() < -0.5 and ph[np.argmin(prof[:, 1])] == pytest.approx(0.90, abs=0.01)
    np.testing.assert_allclose(assist_profile(0.0), assist_profile(1.0))


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError):
        AssistConfig(k_myo_nm=(1.0, 2.0))
    with pytest.raises(ValueError):
        AssistConfig(k_min=10.0, k_init=5.0)
    with pytest.raises(ValueError):
        AssistConfig(phase_reference="average")
