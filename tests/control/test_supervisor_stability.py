"""The supervisor's hold and brake stay stable on a light joint at 1 kHz (gains bounded by the joint inertia)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from machaon.control import JointImpedance
from machaon.control.supervisor import STABLE_D, STABLE_K, SafetyConfig, Supervisor, SupervisorState
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop

# Joint inertias (kg m^2) like the project's arm: heavy shoulder/elbow, a very light wrist roll.
M_DIAG = np.array([0.52, 0.72, 0.17, 0.0076, 0.0066, 0.00027])
N = M_DIAG.size


def _mass_matrix() -> np.ndarray:
    # A little coupling between the wrist joints, symmetric positive definite.
    M = np.diag(M_DIAG)
    M[3, 4] = M[4, 3] = 0.001
    M[4, 5] = M[5, 4] = 0.00005
    assert np.linalg.eigvalsh(M).min() > 0
    return M


class PlantDynamics:
    """The FakeBackend plant's own dynamics (constant M, no gravity) behind the Dynamics interface."""

    def __init__(self, M: np.ndarray) -> None:
        self.M = M

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        return self.M.copy()

    def gravity(self, q: np.ndarray) -> np.ndarray:
        return np.zeros(len(q))


def _run(state: SupervisorState | None, dynamics: object | None, seconds: float = 1.0):
    """The default SafetyConfig (hold 100 / 10, brake 5) on the plant, wrist roll moving at 0.5 rad/s."""
    M = _mass_matrix()
    dq0 = np.zeros(N)
    dq0[5] = 0.5
    dq0[3] = -0.2
    backend = FakeBackend(N, mass_matrix=M, dq0=dq0)
    sup = Supervisor(SafetyConfig(), dynamics=dynamics,
                     initial_state=SupervisorState.HOLD if state is SupervisorState.HOLD else SupervisorState.RUN)
    loop = ControlLoop(backend, JointImpedance(N, 0.0, damping=0.0), sup)
    if state is SupervisorState.PROTECTIVE_STOP:
        sup.protective_stop("test")
    peak = 0.0
    with np.errstate(all="ignore"):  # the unbounded case overflows
        for _ in range(int(seconds * 100)):
            loop.run_for(0.01)
            dq = backend.read().dq
            peak = max(peak, float(np.abs(dq).max())) if np.isfinite(dq).all() else np.inf
    return sup, backend, peak


@pytest.mark.parametrize("state", [SupervisorState.PROTECTIVE_STOP, SupervisorState.HOLD])
def test_light_wrist_does_not_spin_up_under_the_default_config(state, caplog):
    with caplog.at_level(logging.INFO, logger="machaon.control.supervisor"):
        sup, backend, peak = _run(state, PlantDynamics(_mass_matrix()))
    assert sup.state is SupervisorState.HOLD or sup.state is state
    assert peak <= 0.5 + 1e-9  # never faster than it started
    s = backend.read()
    assert np.abs(s.dq).max() < 0.02  # and it comes to rest
    clipped = [r for r in caplog.records if "clipped to the discrete-time stable bound" in r.getMessage()]
    assert clipped and all(r.levelno == logging.INFO for r in clipped)
    names = [r.getMessage().split()[1] for r in clipped]
    assert len(names) == len(set(names))  # once per setting, not once per cycle
    if state is SupervisorState.PROTECTIVE_STOP:
        assert "brake_damping" in names


def test_without_the_bound_the_same_wrist_is_unstable():
    # The reason for the bound: the generic defaults alone diverge on this joint at 1 kHz.
    _, _, peak = _run(SupervisorState.PROTECTIVE_STOP, None, seconds=0.05)
    assert peak > 5.0


def test_bounds_follow_the_joint_inertia_and_leave_heavy_joints_alone():
    M = _mass_matrix()
    sup = Supervisor(SafetyConfig(hold_stiffness=100.0, hold_damping=10.0, brake_damping=[5.0] * N),
                     dynamics=PlantDynamics(M))
    q = np.zeros(N)
    # No loop period bound yet: the configured gains are used as they are.
    k, d, b = sup._safe_gains(q)
    np.testing.assert_array_equal(np.broadcast_to(k, (N,)), 100.0)
    sup.bind_period(1e-3)
    k, d, b = sup._safe_gains(q)
    m = 1.0 / np.diag(np.linalg.inv(M))
    np.testing.assert_allclose(k, np.minimum(100.0, STABLE_K * m / 1e-6))
    np.testing.assert_allclose(d, np.minimum(10.0, STABLE_D * m / 1e-3))
    np.testing.assert_allclose(b, np.minimum(5.0, STABLE_D * m / 1e-3))
    assert k[0] == 100.0 and d[0] == 10.0 and b[0] == 5.0  # heavy joints keep their gains
    assert d[5] < 0.2 and k[5] < 100.0  # the light wrist roll is bounded
    # A slower loop needs smaller gains.
    sup.bind_period(4e-3)
    _, d4, _ = sup._safe_gains(q)
    assert d4[5] == pytest.approx(d[5] / 4)


def test_description_safety_kwargs_route_still_works(caplog):
    from machaon.robot.description import load_description

    desc = load_description("machaon_arm")
    cfg = SafetyConfig(**desc.safety_kwargs(workspace=False))
    with caplog.at_level(logging.INFO, logger="machaon.control.supervisor"):
        sup = Supervisor(cfg, dynamics=PlantDynamics(_mass_matrix()))
        sup.bind_period(1e-3)
        k, d, b = sup._safe_gains(np.zeros(N))
    # The description's per-joint gains are already stable for this plant: nothing is clipped.
    np.testing.assert_array_equal(k, desc.hold_stiffness)
    np.testing.assert_array_equal(d, desc.hold_damping)
    np.testing.assert_array_equal(b, desc.brake_damping)
    assert not [r for r in caplog.records if "clipped" in r.getMessage()]
