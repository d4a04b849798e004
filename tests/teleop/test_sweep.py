"""The sweep's simulated experiment: real protocol over the in-process link, in simulated time."""

from __future__ import annotations

import pytest

from machaon.teleop.profiles import LinkProfile, get_profile
from machaon.teleop.script import hold_point
from machaon.teleop.sweep import run_profile


def _sim(desc):
    from machaon.sim import ArmSim

    return ArmSim(desc, realtime=False)  # PyBullet DIRECT


@pytest.fixture(scope="module")
def model():
    from machaon.robot.description import load_description
    from machaon.teleop.robot_setup import robot_model

    return robot_model(load_description("machaon_arm"))


def test_latency_worsens_tracking_and_outages_cause_holds(model):
    script = hold_point(offset_m=0.02, hold_s=0.6)
    wired, tr = run_profile(get_profile("wired"), script, _sim, model=model, rate_hz=500.0, settle_s=0.6)
    assert wired.holds == 0 and wired.completion_s is not None
    assert 3.0 < wired.rtt_p50_ms < 8.0  # 2 ms each way plus the 10 ms state period's phase
    assert abs(tr.p_actual[-1, 0] - tr.p_ideal[-1, 0]) < 1e-3  # arrived at the commanded point
    # a link that drops out for 300 ms every second: the command gap puts the arm in HOLD, the
    # scripted operator re-presses the clutch, and the task still ends at the commanded point
    flaky = LinkProfile("flaky", delay_s=0.02, outage_every_s=1.0, outage_s=0.3, outage_periodic=True)
    res, tr2 = run_profile(flaky, script, _sim, model=model, rate_hz=500.0, settle_s=0.6)
    assert res.holds >= 1 and res.time_not_run_s > 0.2
    assert res.rms_error_mm > wired.rms_error_mm
    assert res.packets_lost > 0
