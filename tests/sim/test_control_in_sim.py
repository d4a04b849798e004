"""The control core on the simulated arm, through the same ControlLoop that drives hardware."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.control.impedance import CartesianGains, CartesianImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.robot.loop import ControlLoop
from machaon.sim import ArmSim
from machaon.types import JointCommand
from tests.sim.helpers import chain_and_dynamics

TOOL = "drill_guide"


def _setup(desc, **safety):
    chain, dyn = chain_and_dynamics(desc, TOOL)
    gains = CartesianGains(desc.cartesian_stiffness, desc.cartesian_damping_ratio)
    ctrl = CartesianImpedance(chain, gains, dynamics=dyn, tau_max=desc.effort_limit)
    kw = desc.safety_kwargs(workspace=False)
    kw.update(safety)
    cfg = SafetyConfig(**kw)
    sup = Supervisor(cfg, chain=chain, dynamics=dyn)
    return chain, dyn, ctrl, sup


def test_cartesian_step_of_5cm_settles_within_half_a_millimetre(arm_desc):
    # A raw 5 cm jump of the target moves the tool faster than the clinical speed limit: this test
    # is about the settling of the impedance, so the tool-speed watchdog is off here.
    chain, dyn, ctrl, sup = _setup(arm_desc, tool_speed_max=None)
    with ArmSim(arm_desc, tool=TOOL) as sim:
        loop = ControlLoop(sim, ctrl, sup, rate_hz=1000)
        loop.run_for(0.2)
        T0 = sim.T_base_tcp()
        target = T0.copy()
        target[:3, 3] += (0.0, 0.05, 0.0)  # 5 cm sideways
        ctrl.set_target(target)
        loop.run_for(2.0)
        assert sup.state is SupervisorState.RUN, sup.events
        T = sim.T_base_tcp()
        err = np.linalg.norm(T[:3, 3] - target[:3, 3])
        assert err < 5e-4, f"settled {err * 1e3:.3f} mm from the target"
        # orientation held too, and the measured state agrees with the kinematics the loop uses
        assert np.linalg.norm(T[:3, :3] - T0[:3, :3]) < 1e-3
        np.testing.assert_allclose(chain.fk(sim.read().q), T, atol=1e-7)


def test_pushing_into_a_wall_gives_the_force_the_stiffness_predicts(arm_desc):
    chain, dyn, ctrl, sup = _setup(arm_desc)
    k_z = arm_desc.cartesian_stiffness[2]
    with ArmSim(arm_desc, tool=TOOL) as sim:
        T0 = sim.T_base_tcp()
        surface_z = T0[2, 3] - 0.01  # a rigid block whose top is 1 cm below the guide tip
        block = np.eye(4)
        block[:3, 3] = (T0[0, 3], T0[1, 3], surface_z - 0.05)
        sim.scene.add_box("wall", (0.2, 0.2, 0.1), sim.T_world_base @ block, rgba=(0.3, 0.6, 0.3, 1.0))
        loop = ControlLoop(sim, ctrl, sup, rate_hz=1000)
        target = T0.copy()
        for z in np.linspace(T0[2, 3], surface_z - 0.02, 50):  # ramp the target 2 cm into the wall
            target[2, 3] = z
            ctrl.set_target(target)
            loop.run_for(0.01)
        loop.run_for(1.5)
        assert sup.state is SupervisorState.RUN, sup.events
        st = sim.read()
        tip_z = sim.T_base_tcp()[2, 3]
        assert tip_z == pytest.approx(surface_z, abs=1e-3)  # stopped by the wall
        expected = k_z * (tip_z - target[2, 3])  # ~ 1500 N/m * 2 cm = 30 N, pushing the tool up
        assert expected > 25.0
        assert st.wrench_tool[2] == pytest.approx(expected, rel=0.10)
        assert np.linalg.norm(st.wrench_tool[:2]) < 0.1 * expected
        assert sim.contact_wrench()[2] == pytest.approx(expected, rel=0.10)


class _TargetFollower:
    """Joint impedance toward a joint target that a (buggy) upstream may set to NaN."""

    def __init__(self, dyn, q_target):
        self.dyn = dyn
        self.q_target = np.array(q_target, dtype=np.float64)

    def update(self, state, t):
        tau = 200.0 * (self.q_target - state.q) - 20.0 * state.dq + self.dyn.gravity(state.q)
        return JointCommand.torque(tau)


def test_supervisor_stops_the_arm_on_a_nan_target(arm_desc):
    chain, dyn, ctrl, sup = _setup(arm_desc)
    with ArmSim(arm_desc, tool=TOOL) as sim:
        # The impedance controller refuses a NaN target and keeps the old one: the arm stays.
        loop = ControlLoop(sim, ctrl, sup, rate_hz=1000)
        loop.run_for(0.1)
        p0 = sim.T_base_tcp()[:3, 3].copy()
        bad = np.eye(4)
        bad[0, 3] = np.nan
        with pytest.raises(ValueError):
            ctrl.set_target(bad)
        loop.run_for(0.5)
        assert np.linalg.norm(sim.T_base_tcp()[:3, 3] - p0) < 1e-4
        # A controller that lets the NaN through: the supervisor catches the command and stops.
        follower = _TargetFollower(dyn, sim.read().q)
        loop.set_controller(follower)
        loop.run_for(0.2)
        follower.q_target[3] = np.nan
        loop.run_for(1.0)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        assert sup.last_fault[0] == "nan"
        st = sim.read()
        assert np.isfinite(st.q).all()
        assert np.abs(st.dq).max() < 0.02  # braked to a standstill
        assert np.linalg.norm(sim.T_base_tcp()[:3, 3] - p0) < 2e-3


def test_supervisor_stops_the_arm_at_the_workspace_limit(arm_desc):
    chain, dyn, ctrl, sup = _setup(
        arm_desc, workspace_min=arm_desc.workspace_min, workspace_max=arm_desc.workspace_max
    )
    with ArmSim(arm_desc, tool=TOOL) as sim:
        loop = ControlLoop(sim, ctrl, sup, rate_hz=1000)
        loop.run_for(0.1)
        target = sim.T_base_tcp()
        x_max = arm_desc.workspace_max[0]
        for x in np.arange(target[0, 3], x_max + 0.1, 0.001):  # target moves out at 10 cm/s
            target[0, 3] = x
            ctrl.set_target(target)
            loop.run_for(0.01)
            if sup.state is not SupervisorState.RUN:
                break
        loop.run_for(1.0)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        assert sup.last_fault[0] == "workspace"
        x = sim.T_base_tcp()[0, 3]
        assert x_max < x < x_max + 0.02  # stopped just past the boundary, not at the target
        assert np.abs(sim.read().dq).max() < 0.02


def test_friction_on_a_surface_shows_in_sensor_and_contact_forces(arm_desc):
    """Pressed on a block and pulled sideways: friction holds the tip; sensor and contacts agree."""
    chain, dyn, ctrl, sup = _setup(arm_desc)
    with ArmSim(arm_desc, tool=TOOL) as sim:
        T0 = sim.T_base_tcp()
        top = T0[2, 3] - 0.005
        block = np.eye(4)
        block[:3, 3] = (T0[0, 3], T0[1, 3], top - 0.05)
        sim.scene.add_box("block", (0.3, 0.3, 0.1), block)
        loop = ControlLoop(sim, ctrl, sup, rate_hz=1000)
        target = T0.copy()
        for z, y in zip(np.linspace(T0[2, 3], top - 0.02, 40), np.linspace(T0[1, 3], T0[1, 3] + 0.005, 40),
                        strict=True):
            target[1, 3], target[2, 3] = y, z
            ctrl.set_target(target)
            loop.run_for(0.01)
        loop.run_for(1.0)
        assert sup.state is SupervisorState.RUN, sup.events
        st = sim.read()
        k = arm_desc.cartesian_stiffness
        assert st.wrench_tool[2] > 25.0  # pressed down ~2 cm deep in the target
        assert st.wrench_tool[1] < -0.5 * k[1] * 0.005  # friction pulls back against the sideways spring
        np.testing.assert_allclose(sim.contact_wrench()[:3], st.wrench_tool[:3], atol=0.3)
