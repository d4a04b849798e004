"""The joint torque model: torque-current curves and friction (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from machaon.hardware.backend import ActuatorConfig, JointConfig
from machaon.hardware.control_table import XM430_W350
from machaon.hardware.motor import JointMotor, TorqueCurve, friction_torque

# The XM430-W350 performance graph's points as read on the ROBOTIS forum (torque N m at current A),
# shifted to pass through the origin (the graph's 0.13 A at zero torque is gear friction)
GRAPH = TorqueCurve((0.47, 1.07, 1.37), (0.84, 1.925, 2.45))

finite = st.floats(-20.0, 20.0, allow_nan=False)


@given(finite)
def test_curve_maps_back_and_forth(tau):
    for curve in (TorqueCurve.linear(XM430_W350.kt_nm_per_a), GRAPH):
        i = curve.current(tau)
        assert curve.torque(i) == pytest.approx(tau, abs=1e-9)
        assert np.sign(i) == np.sign(tau)  # odd through the origin


@given(finite, finite)
def test_curve_is_monotonic(a, b):
    lo, hi = sorted((a, b))
    assert GRAPH.current(lo) <= GRAPH.current(hi) + 1e-12


def test_datasheet_line_and_graph_agree():
    # slope of the graph's line (points 1 and 3) is the e-Manual's stall torque / stall current
    slope = (2.45 - 0.84) / (1.50 - 0.60)
    assert slope == pytest.approx(XM430_W350.stall_torque_nm / XM430_W350.stall_current_a, rel=0.01)
    assert TorqueCurve.linear(1.783).kt_nm_per_a == 1.783 and TorqueCurve.linear(1.783).is_linear
    assert not GRAPH.is_linear
    # beyond the last point the last segment's slope continues
    assert GRAPH.torque(2.0) == pytest.approx(2.45 + (2.0 - 1.37) * (2.45 - 1.925) / 0.30)


def test_friction_and_compensation():
    m = JointMotor(TorqueCurve.linear(2.0), coulomb_nm=0.1, viscous_nms_rad=0.2, compensation=1.0)
    assert m.friction_nm(0.0) == 0.0  # continuous through standstill
    assert m.friction_nm(1.0) == pytest.approx(0.1 + 0.2, rel=1e-6)
    assert m.friction_nm(-1.0) == pytest.approx(-0.3, rel=1e-6)
    # the current makes the asked torque plus the friction; the estimate takes the friction off again
    i = m.current_a(0.5, dq_rad_s=1.0)
    assert i == pytest.approx((0.5 + 0.3) / 2.0, rel=1e-6)
    assert m.joint_torque_nm(i, 1.0) == pytest.approx(0.5, rel=1e-6)
    half = JointMotor(TorqueCurve.linear(2.0), 0.1, 0.2, compensation=0.5)
    assert half.current_a(0.5, 1.0) == pytest.approx((0.5 + 0.15) / 2.0, rel=1e-6)
    np.testing.assert_allclose(friction_torque([0.0, 2.0], 0.1, 0.2), [0.0, 0.1 * np.tanh(100.0) + 0.4])


def test_bad_models_are_refused_with_the_joint_named():
    with pytest.raises(ValueError, match="increasing"):
        TorqueCurve((1.0, 0.5), (1.0, 2.0))
    with pytest.raises(ValueError, match="coulomb"):
        JointMotor(TorqueCurve.linear(1.0), coulomb_nm=-0.1)
    with pytest.raises(ValueError, match="joint j: give both"):
        ActuatorConfig(port="x", joints=(JointConfig("j", 1, curve_current_a=(1.0,)),))
    with pytest.raises(ValueError, match="friction_compensation"):
        ActuatorConfig(port="x", joints=(JointConfig("j", 1),), friction_compensation=1.5)
    with pytest.raises(ValueError, match=r"unknown keys \['kt'\]"):
        ActuatorConfig.from_dict({"joints": [{"name": "j", "id": 1, "kt": 2.0}]})
    cfg = ActuatorConfig.from_dict({"joints": [{"name": "j", "id": 1, "curve_current_a": [0.47, 1.07, 1.37],
                                                "curve_torque_nm": [0.84, 1.925, 2.45]}]})
    assert cfg.motor(cfg.joints[0]).curve == GRAPH
