"""Step responses on the exact FakeBackend: overshoot as the damping ratio predicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from machaon.control import CartesianGains, CartesianImpedance, JointImpedance, cartesian_inertia, pose_error
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.kinematics import exp3
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop


def predicted_overshoot(zeta: float) -> float:
    return math.exp(-math.pi * zeta / math.sqrt(1.0 - zeta * zeta))


def relaxed() -> Supervisor:
    return Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None))


class Capture:
    """A minimal loop recorder keeping the measured joint positions."""

    def __init__(self) -> None:
        self.q: list[np.ndarray] = []

    def record_cycle(self, t, state, cmd) -> None:
        self.q.append(state.q)

    def record_events(self, events) -> None:
        pass

    def record_stats(self, stats) -> None:
        pass


@pytest.mark.parametrize("zeta", [0.2, 0.5, 0.8])
def test_joint_step_overshoot_matches_damping_ratio(zeta):
    m = np.array([2.0, 0.5, 1.0])
    backend = FakeBackend(3, mass_matrix=np.diag(m))
    k = np.array([400.0, 100.0, 900.0])
    ctrl = JointImpedance(3, k, zeta, mass_matrix=np.diag(m))
    step = np.array([0.2, -0.1, 0.05])
    ctrl.set_target(step)
    cap = Capture()
    ControlLoop(backend, ctrl, relaxed(), rate_hz=1000, recorder=cap).run_for(3.0)
    q = np.array(cap.q) / step
    overshoot = q.max(axis=0) - 1.0
    # Sampled at 1 kHz with a zero-order hold the discrete response differs from the continuous
    # one by O(omega dt) (omega <= 30 rad/s here): a few percent of the overshoot at most.
    np.testing.assert_allclose(overshoot, predicted_overshoot(zeta), rtol=0.05, atol=2e-3)
    np.testing.assert_allclose(q[-1], 1.0, atol=2e-3)  # settled


@pytest.mark.parametrize("zeta", [0.3, 0.6])
def test_cartesian_step_overshoot_with_cartesian_inertia(arm, zeta):
    """Isotropic K with the inertia-based damping: every closed-loop mode has ratio zeta.

    A step along an eigenvector u of the Cartesian inertia excites one mode only, so the response
    along u overshoots by exactly the second-order prediction (small step: linear range). The
    fake arm has a unit joint inertia: its Cartesian inertia spreads less than the real arm's, so
    one K keeps every mode well below the 1 kHz sampling limit.
    """
    q0 = np.array([0.1, -0.5, 1.2, 0.2, 0.7, 0.1])
    M = np.eye(6)
    backend = FakeBackend(6, mass_matrix=M, q0=q0)
    k = 2000.0
    ctrl = CartesianImpedance(arm, CartesianGains(np.full(6, k), zeta), mass_matrix=M, inertia_period_s=0.001)
    T0 = arm.fk(q0)
    Lam, _ = cartesian_inertia(arm.jacobian(q0), M)
    lam, U = np.linalg.eigh(Lam)
    u = U[:, 3]  # a mode mixing translation and rotation, omega = sqrt(k / lam[3]) ~ 18 rad/s
    assert np.sqrt(k / lam[0]) * 1e-3 < 0.1  # the fastest mode is well resolved at 1 kHz
    step = 0.002
    T_target = T0.copy()
    T_target[:3, 3] += step * u[:3]
    T_target[:3, :3] = exp3(step * u[3:]) @ T0[:3, :3]
    ctrl.set_target(T_target)
    cap = Capture()
    loop = ControlLoop(backend, ctrl, relaxed(), recorder=cap)
    loop.run_for(1.5)
    Ts = arm.fk_batch(np.array(cap.q))
    progress = np.array([(step * u - pose_error(T, T_target)) @ u / step for T in Ts])
    overshoot = progress.max() - 1.0
    assert overshoot == pytest.approx(predicted_overshoot(zeta), rel=0.05)
    assert abs(progress[-1] - 1.0) < 0.01
    assert np.linalg.norm(pose_error(Ts[-1], T_target)) < 0.01 * step
    assert loop.supervisor.state is SupervisorState.RUN
