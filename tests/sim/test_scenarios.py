"""Trajectory files and scenarios: the parser only ever raises ScenarioError; plans start where the arm is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from machaon.sim.scenarios import SCENARIOS, ScenarioError, load_trajectory

T_HOME = np.array([[-1.0, 0, 0, 0.48], [0, 1, 0, 0], [0, 0, -1, 0.38], [0, 0, 0, 1]])
Q_HOME = np.radians([0, 20, 70, 0, 90, 0])

_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["kind", "waypoints", "waypoints_deg", "xyz_m", "rpy_deg", "v_max_m_s", "a_max_m_s2", "v_max_deg_s"]),
        inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_json, kind=st.sampled_from(["cartesian", "joint", None]))
def test_trajectory_parser_only_raises_scenario_error(tmp_path, doc, kind):
    if kind is not None and isinstance(doc, dict):
        doc = {**doc, "kind": kind}
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    try:
        traj = load_trajectory(f, T_HOME, Q_HOME)
    except ScenarioError:
        return
    assert traj.duration >= 0.0 and np.isfinite(traj.duration)


def test_cartesian_plan_starts_at_the_current_pose_and_ends_at_the_last_waypoint(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"kind": "cartesian", "waypoints": [{"xyz_m": [0.5, 0.1, 0.4]},
                                                                 {"xyz_m": [0.45, 0.1, 0.35]}]}))
    traj = load_trajectory(f, T_HOME, Q_HOME)
    np.testing.assert_allclose(traj.sample(traj.t0)[0], T_HOME, atol=1e-12)
    end = traj.sample(traj.t_end + 1.0)[0]
    np.testing.assert_allclose(end[:3, 3], [0.45, 0.1, 0.35], atol=1e-12)
    np.testing.assert_allclose(end[:3, :3], T_HOME[:3, :3], atol=1e-9)  # orientation kept
    with pytest.raises(ScenarioError, match="cannot read"):
        load_trajectory(tmp_path / "missing.json", T_HOME, Q_HOME)


def test_every_scenario_is_documented():
    assert {"hold", "square", "step", "wall"} <= set(SCENARIOS)
    assert all(s.doc for s in SCENARIOS.values())


def test_cartesian_segments_never_raise_near_their_end():
    """The minimum-jerk profile may round s to 1 + 1 ulp just before the end; playback must not raise."""
    from machaon.sim.scenarios import _cart

    T1 = T_HOME.copy()
    T1[:3, 3] += (0.06, 0.0, 0.0)
    seg = _cart(T_HOME, T1)
    for u in np.linspace(0.99999, 1.0, 2001):
        T, v, _ = seg.sample(u * seg.duration)
        assert np.isfinite(T).all() and np.linalg.norm(T[:3, 3] - T1[:3, 3]) < 1e-9 + 0.06 * (1 - u) * 10
