"""In PyBullet at 1 kHz, the supervisor's brake and hold with the generic default gains keep the light wrist still."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.robot.loop import ControlLoop
from machaon.sim import ArmSim

from .helpers import chain_and_dynamics


@pytest.mark.parametrize("state", [SupervisorState.PROTECTIVE_STOP, SupervisorState.HOLD])
def test_wrist_roll_does_not_spin_up_with_the_default_safety_config(arm_desc, state):
    chain, dyn = chain_and_dynamics(arm_desc, "drill_guide")
    # The generic defaults (hold 100 N m/rad / 10 N m s/rad, brake 5 N m s/rad), not the TOML's tuned ones.
    cfg = SafetyConfig(q_min=arm_desc.lower, q_max=arm_desc.upper, tau_max=arm_desc.effort_limit)
    assert float(np.max(cfg.hold_damping)) == 10.0 and float(np.max(cfg.brake_damping)) == 5.0
    dq0 = np.zeros(arm_desc.dof)
    dq0[-1] = 1.0  # wrist roll turning at 1 rad/s when the stop comes
    with ArmSim(arm_desc, tool="drill_guide") as sim:
        sim.reset(arm_desc.q_home, dq0)
        sup = Supervisor(cfg, chain=chain, dynamics=dyn, initial_state=state)
        loop = ControlLoop(sim, JointImpedance(arm_desc.dof, 0.0, damping=0.0), sup)
        if state is SupervisorState.PROTECTIVE_STOP:
            sup.protective_stop("test")
        peak = 0.0
        for _ in range(100):
            loop.run_for(0.01)
            peak = max(peak, abs(float(sim.read().dq[-1])))
        s = sim.read()
        assert sup.state is state
        assert peak <= 1.0 + 1e-6  # never spun up
        assert np.abs(s.dq).max() < 0.05  # and at rest after a second
