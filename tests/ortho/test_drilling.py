"""Drilling: thrust by region and feed, depth stop, breach detection from the exit drop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.ortho.drilling import BreachDetector, DrillBit, DrillEvent, ThrustModel, drill_along

OUT, COR, CAN, CANAL = 0, 1, 2, 3
MODEL = ThrustModel({COR: 30.0, CAN: 5.0})
Z = np.array([0.0, 0.0, 1.0])


def layers(p: np.ndarray) -> np.ndarray:
    """Bone along +z: cortex 0-2 mm, cancellous 2-20 mm, cortex 20-22 mm, then the canal."""
    z = p[:, 2]
    out = np.full(len(z), OUT)
    out[(z >= 0.0) & (z < 0.002)] = COR
    out[(z >= 0.002) & (z < 0.020)] = CAN
    out[(z >= 0.020) & (z < 0.022)] = COR
    out[z >= 0.022] = CANAL
    return out


def test_thrust_depends_on_region_and_feed() -> None:
    bit = DrillBit()
    cort = MODEL.thrust(layers, np.array([0, 0, 0.0015]), Z, 1e-3, bit)
    canc = MODEL.thrust(layers, np.array([0, 0, 0.010]), Z, 1e-3, bit)
    air = MODEL.thrust(layers, np.array([0, 0, -0.005]), Z, 1e-3, bit)
    assert cort == pytest.approx(30.0) and canc == pytest.approx(5.0) and air == 0.0
    assert MODEL.thrust(layers, np.array([0, 0, 0.010]), Z, 0.0, bit) == 0.0
    # the cone ramps the force while the point enters the cortex
    half = MODEL.thrust(layers, np.array([0, 0, 0.5 * bit.point_length_m]), Z, 1e-3, bit)
    assert 0.0 < half < cort
    # bigger drill, slower spindle: more thrust
    assert MODEL.thrust(layers, np.array([0, 0, 0.01]), Z, 1e-3, DrillBit(diameter_m=0.0045)) > canc
    assert MODEL.thrust(layers, np.array([0, 0, 0.01]), Z, 1e-3, DrillBit(rpm=600.0)) > canc


@settings(max_examples=20, deadline=None)
@given(st.floats(1e-4, 5e-3), st.floats(1e-4, 5e-3))
def test_thrust_is_monotonic_in_feed(v1: float, v2: float) -> None:
    tip = np.array([0.0, 0.0, 0.012])
    f1, f2 = (MODEL.thrust(layers, tip, Z, v, DrillBit()) for v in (v1, v2))
    assert (f1 - f2) * (v1 - v2) >= 0.0


def test_depth_stop_stops_the_drill_at_the_planned_length() -> None:
    tr = drill_along(layers, np.zeros(3), Z, 0.015, model=MODEL, rate_hz=250.0, rng=np.random.default_rng(1))
    assert tr.event is DrillEvent.DEPTH_STOP
    assert tr.stop_depth_m == pytest.approx(0.015, abs=1e-9)
    assert tr.depth_m.max() <= 0.015 + 1e-12
    # it went through the entry cortex (a cortical peak and then the cancellous plateau)
    assert tr.force_n.max() > 20.0


def test_breach_detection_stops_at_the_exit_drop_not_after_the_entry_cortex() -> None:
    tr = drill_along(layers, np.zeros(3), Z, 0.040, model=MODEL, rate_hz=250.0, rng=np.random.default_rng(2))
    assert tr.event is DrillEvent.BREACH
    # stopped after leaving the far cortex at 22 mm, within about the length of the drill point + filter lag
    assert 0.022 <= tr.stop_depth_m < 0.022 + 2e-3
    # no stop at the entry-cortex -> cancellous drop near 2 mm
    assert tr.depth_m.max() > 0.02


def test_no_breach_when_the_drill_never_enters_bone() -> None:
    det = BreachDetector(500.0)
    rng = np.random.default_rng(0)
    assert not any(det.update(abs(rng.normal(0, 0.3)), 1e-5 * k) for k in range(2000))
    with pytest.raises(ValueError):
        det.update(float("nan"), 0.0)
    with pytest.raises(ValueError):
        BreachDetector(10.0, cutoff_hz=15.0)


def test_breach_into_canal_from_cancellous() -> None:
    """A medial breach: cancellous straight into the canal (no far cortex) is still caught."""

    def medial(p: np.ndarray) -> np.ndarray:
        z = p[:, 2]
        out = np.full(len(z), OUT)
        out[(z >= 0.0) & (z < 0.002)] = COR
        out[(z >= 0.002) & (z < 0.012)] = CAN
        out[z >= 0.012] = CANAL
        return out

    tr = drill_along(medial, np.zeros(3), Z, 0.040, model=MODEL, rate_hz=250.0, rng=np.random.default_rng(3))
    assert tr.event is DrillEvent.BREACH and 0.012 <= tr.stop_depth_m < 0.015


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        DrillBit(diameter_m=-1.0)
    with pytest.raises(ValueError):
        MODEL.thrust(layers, np.array([np.nan, 0, 0]), Z, 1e-3, DrillBit())
    with pytest.raises(ValueError):
        drill_along(layers, np.zeros(3), Z, -0.01, model=MODEL)
