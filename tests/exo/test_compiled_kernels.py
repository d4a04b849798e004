"""The exo's compiled kernels: EMG chain = SciPy, assist law = its NumPy statement, state survives copies."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from machaon.exo import _assist
from machaon.exo.controller import AssistConfig
from machaon.exo.emg import EMGConfig, EMGStream, QualityMonitor, design_filters
from machaon.exo.reference import load_reference_gait


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), mains=st.sampled_from([50.0, 60.0]), harmonics=st.integers(0, 4),
       order=st.integers(1, 4), env_hz=st.floats(2.0, 40.0), block=st.integers(1, 40))
def test_emg_chain_equals_scipy_sosfilt_with_the_same_coefficients(seed, mains, harmonics, order, env_hz, block):
    cfg = EMGConfig(mains_hz=mains, notch_harmonics=harmonics, band_order=order, envelope_hz=env_hz)
    f = design_filters(cfg)
    x = np.random.default_rng(seed).normal(scale=5e-4, size=(600, 3))
    expected = signal.sosfilt(f.sos_env, np.abs(signal.sosfilt(f.sos_pre, x, axis=0)), axis=0)
    stream = EMGStream(cfg, 3)
    got = np.vstack([stream.process(x[i : i + block]) for i in range(0, 600, block)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_emg_state_survives_deepcopy_and_pickle_mid_stream():
    rng = np.random.default_rng(2)
    x = rng.normal(scale=4e-4, size=(400, 8))
    a = EMGStream(EMGConfig(), 8)
    a.process(x[:200])
    b, c = copy.deepcopy(a), pickle.loads(pickle.dumps(a))
    assert b.quality._kernel is b._kernel.quality  # the monitor and the chain still share statistics
    ref = a.process(x[200:])
    np.testing.assert_array_equal(b.process(x[200:]), ref)
    np.testing.assert_array_equal(c.process(x[200:]), ref)
    assert b.quality.codes() == a.quality.codes() and b.samples_seen == a.samples_seen == 400


def test_quality_monitor_fed_directly_equals_the_one_inside_the_stream():
    cfg = EMGConfig()
    rng = np.random.default_rng(8)
    t = np.arange(2000) / cfg.fs_hz
    x = np.stack([3e-4 * rng.normal(size=2000), 2e-3 * np.sin(2 * np.pi * 50 * t)], axis=1)
    stream, alone = EMGStream(cfg, 2), QualityMonitor(cfg, 2)
    clean = signal.sosfilt(design_filters(cfg).sos_pre, x, axis=0)
    for i in range(0, 2000, 7):
        stream.process(x[i : i + 7])
        alone.update(x[i : i + 7], clean[i : i + 7])
    k1, k2 = stream.quality._kernel, alone._kernel
    assert k1.seen == k2.seen and k1.folds == k2.folds
    for name in ("sat", "ms_clean", "ms_mains"):
        np.testing.assert_allclose(getattr(k1, name), getattr(k2, name), rtol=1e-12)
    assert stream.quality.codes() == alone.codes()
    with pytest.raises(ValueError, match="emg: contains NaN"):
        alone.update(np.full((2, 2), np.nan), np.zeros((2, 2)))


def _numpy_law(cfg, ref, q, dq, ph, ph_ref, stride, dt, act, K_table, tau_prev):
    """The assist law as the controller's docstring states it, with NumPy and SciPy (the oracle)."""
    n = 4
    both = np.array(ph_ref)
    q_ref = ref.angles(both)[:, :2].reshape(n)
    dq_ref = ref.rates(both, stride)[:, :2].reshape(n)

    def bump(phase, center, width):
        d = (phase - center + 0.5) % 1.0 - 0.5
        return np.exp(-0.5 * (d / width) ** 2)

    def prof(p):
        return [bump(p, 0.60, 0.07) - 0.6 * bump(p, 0.05, 0.06), 0.5 * bump(p, 0.62, 0.05) - 0.6 * bump(p, 0.90, 0.05)]

    pr = np.array(prof(ph_ref[0]) + prof(ph_ref[1]))
    wrap = lambda x: (x + 0.5) % 1.0 - 0.5  # noqa: E731
    lead = np.repeat([wrap(ph[0] - ph_ref[0]), wrap(ph[1] - ph_ref[1])], 2)
    e = q_ref - q
    lag = np.maximum(0.0, -lead - cfg.phase_deadband)
    leading = lead > cfg.phase_deadband
    nb = cfg.phase_bins
    pos = np.array([ph_ref[0], ph_ref[0], ph_ref[1], ph_ref[1]]) * nb
    b0 = np.floor(pos).astype(int) % nb
    frac = pos - np.floor(pos)
    b1 = (b0 + 1) % nb
    rows = np.arange(n)
    excess = np.maximum(0.0, np.abs(e) - cfg.error_tolerance_rad)
    dK = cfg.adapt_gain * excess * (1.0 + cfg.lag_gain * lag) * ~leading
    Kb = K_table[rows, b0]
    dK -= cfg.forget_per_s * Kb + cfg.lead_decay_per_s * Kb * leading
    K_table[rows, b0] = np.clip(Kb + dt * dK, cfg.k_min, cfg.k_max)
    K = (1.0 - frac) * K_table[rows, b0] + frac * K_table[rows, b1]
    tau_imp = K * e + cfg.d_ratio_s * K * (dq_ref - dq)
    need = K / cfg.k_max
    tau_myo = need * np.array([k * (act[f] - act[x]) for k, (f, x) in zip(cfg.k_myo_nm, cfg.emg_pairs, strict=True)])
    tau_prof = np.asarray(cfg.profile_nm) * pr * need
    tau = tau_myo + tau_prof + tau_imp
    if dt > 0:
        step = np.asarray(cfg.rate_max_nm_s) * dt
        tau = np.clip(tau, tau_prev - step, tau_prev + step)
    tmax = np.asarray(cfg.tau_max_nm)
    tau = np.clip(tau, -tmax, tmax)
    cap = np.asarray(cfg.power_max_w) / np.maximum(np.abs(dq), 1e-9)
    tau = np.clip(tau, -cap, cap)
    return tau, q_ref, K, tau_myo, tau_prof, tau_imp


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_compiled_assist_law_equals_its_numpy_statement(seed):
    rng = np.random.default_rng(seed)
    cfg, ref = AssistConfig(), load_reference_gait()
    mvc = rng.uniform(1e-4, 1e-3, 8)
    law = _assist.AssistLaw(cfg, ref.spline, mvc)
    q, dq = rng.normal(scale=0.5, size=4), rng.normal(scale=3.0, size=4)
    ph = tuple(rng.uniform(-0.2, 1.2, 2))
    ph_ref = tuple(rng.uniform(0.0, 1.0, 2))
    stride, dt = rng.uniform(0.8, 1.4), float(rng.choice([0.0, 1e-3, 5e-3]))
    act = rng.uniform(0.0, 1.5, 8)
    table = rng.uniform(cfg.k_min, cfg.k_max, (4, cfg.phase_bins))
    prev = rng.uniform(-30, 30, 4)
    t_np, t_c = table.copy(), table.copy()
    p_np, p_c = prev.copy(), prev.copy()
    want = _numpy_law(cfg, ref, q, dq, ph, ph_ref, stride, dt, act, t_np, p_np)
    got = law.step(q, dq, ph[0], ph[1], ph_ref[0], ph_ref[1], stride, dt, act, t_c, p_c)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(t_c, t_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(p_c, got[0])  # the command becomes the previous one
    env = rng.uniform(0, 2e-3, 8)
    out = np.empty(8)
    law.activation(env, out)
    np.testing.assert_allclose(out, np.clip(np.maximum(env / mvc, 0.0), 0.0, 1.5), rtol=1e-15)


def test_reference_spline_in_the_law_equals_scipy():
    ref = load_reference_gait()
    law = _assist.AssistLaw(AssistConfig(), ref.spline, np.ones(8))
    table = np.full((4, AssistConfig().phase_bins), 20.0)
    for p in np.linspace(0.0, 1.0, 101):  # both ends and every breakpoint region
        _, q_ref, *_ = law.step(np.zeros(4), np.zeros(4), p, p, p, p, 1.0, 0.0, np.zeros(8), table.copy(), np.zeros(4))
        np.testing.assert_allclose(q_ref[:2], ref.angles(p)[:2], rtol=0, atol=1e-13)
