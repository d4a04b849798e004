"""The whole chain in simulation: weak-sided wearer, sim sensors, assist controller, ControlLoop.

One short walk without and one with assist (6.5 s each, metrics over the last ~3 strides) are
shared by the tests of this module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from machaon.exo.controller import AssistConfig
from machaon.exo.reference import load_reference_gait
from machaon.exo.report import write_sim_report
from machaon.exo.walk import run_walk
from machaon.sim.legs import LegSim

DURATION, SKIP = 6.5, 3.0
DROPOUT_T = 6.46


@pytest.fixture(scope="module")
def walks() -> dict:
    out = {}
    for assist in (False, True):
        cfg = AssistConfig(assist=assist, damping_nm_s=1.0 if assist else 0.0)
        # The sensors drop out for the last 40 ms of the assisted walk (after the last heel strike
        # that counts in the metrics).
        events = [(DROPOUT_T, lambda sim: setattr(sim.sensors, "dropout", True))] if assist else None
        with LegSim() as sim:
            out[assist] = run_walk(sim, DURATION, cfg, skip_s=SKIP, events=events)
    return out


def test_assist_improves_gait_symmetry(walks) -> None:
    si_off = walks[False].report.symmetry_index
    si_on = walks[True].report.symmetry_index
    assert si_off > 0.08  # the simulated hemiparesis is visible without assist
    assert si_on < 0.5 * si_off  # and the exo at least halves it
    assert walks[True].report.step_time_si < walks[False].report.step_time_si
    assert walks[True].report.stance_time_si < walks[False].report.stance_time_si


def test_no_assist_run_commands_nothing(walks) -> None:
    assert np.all(walks[False].trace.tau_exo == 0.0)
    assert walks[False].fallbacks == 0


def test_assist_as_needed_targets_the_weak_leg(walks) -> None:
    st = walks[True].status
    late = st.t > DURATION - 2.2
    rms = np.sqrt(np.mean(st.tau[late] ** 2, axis=0))
    assert rms[3] > 1.2 * rms[1]  # weak (right) knee gets more assistance than the strong knee
    assert st.assisting[(st.t > SKIP) & (st.t < DROPOUT_T)].mean() > 0.95
    assert walks[True].fallbacks == 1  # the injected dropout, nothing else


def test_sensor_dropout_makes_the_exo_transparent_within_one_cycle(walks) -> None:
    res = walks[True]
    st = res.status
    timeout = AssistConfig().sensor_timeout_s
    after = st.t > DROPOUT_T + 1e-9
    first = int(np.flatnonzero(after)[0])
    i_safe = int(np.flatnonzero(after & ~st.assisting)[0])
    # Samples stop after DROPOUT_T; the first cycle more than `timeout` later is already safe.
    assert st.t[i_safe] - DROPOUT_T == pytest.approx(timeout + 1e-3, abs=1e-6)
    assert np.all(st.assisting[first:i_safe])
    assert np.all(~st.assisting[i_safe:])
    # What the sim applied in the next physics step is the damping-only command (-b dq).
    k = int(np.searchsorted(res.trace.t, st.t[i_safe] + 1e-9))
    np.testing.assert_allclose(res.trace.tau_exo[k], st.tau[i_safe])
    assert np.any(st.tau[i_safe] != 0.0)  # damping of the moving legs, no assist terms
    assert np.all(st.tau_impedance[i_safe] == 0.0) and np.all(st.tau_myo[i_safe] == 0.0)


def test_gait_phase_tracks_the_wearer(walks) -> None:
    res = walks[True]
    st = res.status
    keep = st.t > SKIP
    idx = np.searchsorted(res.trace.t, st.t[keep])
    idx = np.clip(idx, 0, res.trace.t.size - 1)
    err = np.angle(np.exp(2j * np.pi * (st.phase[keep] - res.wearer_phase[idx]))) / (2 * np.pi)
    assert np.sqrt(np.mean(err**2)) < 0.04


def test_sim_report_files(walks, tmp_path) -> None:
    data = write_sim_report(tmp_path, walks[False], walks[True], load_reference_gait(), {"duration_s": DURATION}, SKIP)
    with open(tmp_path / "report.json") as f:
        on_disk = json.load(f)
    assert on_disk["symmetry_index_no_assist"] == pytest.approx(data["symmetry_index_no_assist"])
    assert on_disk["symmetry_index_assist"] < on_disk["symmetry_index_no_assist"]
    for name in on_disk["plots"].values():
        assert (tmp_path / name).stat().st_size > 10_000
