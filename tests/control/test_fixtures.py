"""Virtual fixtures: zero inside, restoring outside, projections land in the allowed set, composition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.control import CartesianGains, CartesianImpedance
from machaon.control.fixtures import DepthStop, ForbiddenCylinder, ForbiddenSphere, LineGuide, PlaneBoundary
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop

coord = st.floats(-0.5, 0.5)
point = st.tuples(coord, coord, coord).map(np.array)


def pose(p, R=None):
    T = np.eye(4)
    T[:3, 3] = p
    if R is not None:
        T[:3, :3] = R
    return T


FIXTURES = [
    PlaneBoundary([0, 0, 0.1], [0, 0, 1], k=1000.0, d=10.0),
    ForbiddenSphere([0.1, 0.0, 0.0], 0.2, k=1000.0, d=10.0),
    ForbiddenCylinder([0.0, 0.1, 0.0], [1, 1, 0], 0.15, k=1000.0, d=10.0, half_length=0.3),
    DepthStop([0.0, 0.0, 0.2], [0, 0, -1], 0.1, k=1000.0, d=10.0),
    LineGuide([0.0, 0.0, 0.0], [0, 1, 1], k=1000.0, d=10.0),
]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(p=point, v=point)
def test_wrench_is_zero_inside_and_restoring_outside(p, v):
    T = pose(p)
    for fx in FIXTURES:
        w = fx.wrench(T, np.concatenate([v, np.zeros(3)]))
        viol = fx.violation(T)
        if viol == 0.0 and not isinstance(fx, LineGuide):
            np.testing.assert_array_equal(w, 0.0)
        elif viol > 1e-9:
            # The spring force points toward the allowed set: moving along it reduces the violation.
            f = fx.wrench(T, np.zeros(6))[:3]
            assert np.linalg.norm(f) > 0
            assert fx.violation(pose(p + 0.5 * viol * f / np.linalg.norm(f))) < viol
        projected = fx.constrain(T)
        assert fx.violation(projected) <= 1e-9
        if viol == 0.0:
            np.testing.assert_allclose(projected, T, atol=1e-12)


def test_spring_and_damper_values():
    guide = LineGuide([0, 0, 0], [0, 0, 1], k=2000.0, d=50.0)
    w = guide.wrench(pose([0.01, 0.0, 0.3]), np.array([0.1, 0.0, 0.5, 0, 0, 0]))
    np.testing.assert_allclose(w[:3], [-2000 * 0.01 - 50 * 0.1, 0.0, 0.0])  # along the axis: free
    stop = DepthStop([0, 0, 0], [0, 0, -1], 0.05, k=1e4, d=100.0)
    w = stop.wrench(pose([0, 0, -0.052]), np.array([0, 0, -0.01, 0, 0, 0]))
    np.testing.assert_allclose(w[:3], [0, 0, 1e4 * 0.002 + 100 * 0.01])
    # Moving back out: the damper does not pull it in
    w = stop.wrench(pose([0, 0, -0.052]), np.array([0, 0, 0.5, 0, 0, 0]))
    np.testing.assert_allclose(w[:3], [0, 0, 1e4 * 0.002])


def test_line_guide_aligns_the_tool_axis():
    guide = LineGuide([0, 0, 0], [1, 0, 0], k=100.0, k_rot=10.0)
    R = np.eye(3)  # tool z along base z, line along x: 90 degrees off
    w = guide.wrench(pose([0, 0, 0], R), np.zeros(6))
    np.testing.assert_allclose(w[3:], 10.0 * np.array([0.0, np.pi / 2, 0.0]), atol=1e-12)
    T = guide.constrain(pose([0.3, 0.02, -0.01], R))
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [0.3, 0, 0], atol=1e-12)


def test_composition():
    both = FIXTURES[0] + FIXTURES[3]
    assert len((both + FIXTURES[1]).terms) == 3
    T = pose([0, 0, -0.5])
    np.testing.assert_allclose(both.wrench(T, np.zeros(6)), FIXTURES[0].wrench(T, np.zeros(6))
                               + FIXTURES[3].wrench(T, np.zeros(6)))
    assert both.violation(both.constrain(T)) <= 1e-12


def test_bad_geometry():
    with pytest.raises(ValueError, match="direction"):
        LineGuide([0, 0, 0], [0, 0, 0], k=1.0)
    with pytest.raises(ValueError, match="k"):
        PlaneBoundary([0, 0, 0], [0, 0, 1], k=-1.0)
    with pytest.raises(ValueError, match="center"):
        ForbiddenSphere([0, np.nan, 0], 0.1, k=1.0)


def test_depth_stop_holds_the_impedance_controller_back(arm):
    """The controller is pulled 3 cm down; the depth stop keeps the tool at its 1 cm limit."""
    q0 = np.array([0.0, -0.4, 1.1, 0.0, 0.8, 0.0])
    T0 = arm.fk(q0)
    stop = DepthStop(T0[:3, 3], [0, 0, -1], 0.01, k=2e4, d=200.0)
    ctrl = CartesianImpedance(arm, CartesianGains.isotropic(500.0, 20.0, 1.0), fixtures=stop)
    target = T0.copy()
    target[2, 3] -= 0.03
    ctrl.set_target(target)
    backend = FakeBackend(6, q0=q0, mass_matrix=np.diag([1.0, 1.0, 0.5, 0.1, 0.1, 0.05]))
    loop = ControlLoop(backend, ctrl, Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None)))
    loop.run_for(2.0)
    depth = stop.depth(arm.fk(backend.read().q)[:3, 3])
    # Equilibrium: 500 * (0.03 - d) = 2e4 * (d - 0.01)  ->  d = 0.0105
    assert depth == pytest.approx((500 * 0.03 + 2e4 * 0.01) / (500 + 2e4), abs=2e-4)
