"""Approach planning: RRT-Connect (ours and OMPL's) gives collision-free, verified joint paths."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.ortho.approach import PlanningFailed, check_path, densify, ompl_available, plan_approach

LO, HI = -np.pi * np.ones(6), np.pi * np.ones(6)


def wall(q: np.ndarray) -> bool:
    """A wall in (q0, q1) with a gap below q1 = -1: the straight line from start to goal is blocked."""
    return not (abs(q[0]) < 0.3 and q[1] > -1.0)


QS = np.array([-1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
QG = np.array([1.0, 0.5, 0.2, 0.0, 0.0, 0.0])

PLANNERS = ["rrtconnect"] + (["ompl"] if ompl_available() else [])


@pytest.mark.parametrize("planner", PLANNERS)
def test_path_avoids_obstacle_and_is_verified(planner: str) -> None:
    assert not check_path(np.array([QS, QG]), wall, LO, HI)
    path = plan_approach(QS, QG, wall, LO, HI, planner=planner, seed=1)
    np.testing.assert_allclose(path.waypoints[0], QS)
    np.testing.assert_allclose(path.waypoints[-1], QG)
    assert check_path(path.waypoints, wall, LO, HI, resolution_rad=0.005)
    dense = path.dense(0.01)
    assert all(wall(q) for q in dense)
    assert np.max(np.abs(np.diff(dense, axis=0))) <= 0.01 + 1e-12
    assert path.n_checks > 0 and path.planner == planner


def test_free_straight_line_is_taken_directly() -> None:
    path = plan_approach(QS, QS + 0.1, lambda q: True, LO, HI)
    assert len(path.waypoints) == 2


def test_shortcutting_shortens_our_path() -> None:
    p = plan_approach(QS, QG, wall, LO, HI, planner="rrtconnect", seed=4)
    # detour through the gap: at least the obstacle-free lower bound, and not wildly longer
    assert np.linalg.norm(QG - QS) < p.length_rad < 4.0 * np.linalg.norm(QG - QS) + 4.0


def test_our_planner_is_deterministic_for_a_seed() -> None:
    a = plan_approach(QS, QG, wall, LO, HI, planner="rrtconnect", seed=5)
    b = plan_approach(QS, QG, wall, LO, HI, planner="rrtconnect", seed=5)
    np.testing.assert_array_equal(a.waypoints, b.waypoints)


def test_bad_input_and_failure() -> None:
    with pytest.raises(ValueError, match="q_goal"):
        plan_approach(QS, np.full(6, np.nan), wall, LO, HI)
    with pytest.raises(ValueError, match="in collision"):
        plan_approach(QS, np.zeros(6), wall, LO, HI)
    with pytest.raises(ValueError, match="limits"):
        plan_approach(QS, np.full(6, 4.0), wall, LO, HI)
    with pytest.raises(ValueError, match="planner"):
        plan_approach(QS, QG, wall, LO, HI, planner="prm")

    def enclosed(q: np.ndarray) -> bool:  # the goal sits in a closed pocket
        return not (0.5 < abs(q[0]) < 0.8)

    with pytest.raises(PlanningFailed):
        plan_approach(QS * 0.1, QG, enclosed, LO, HI, planner="rrtconnect", timeout_s=0.3)


def test_densify_keeps_endpoints() -> None:
    d = densify(np.array([np.zeros(6), np.ones(6)]), 0.1)
    assert len(d) == 11 and np.allclose(d[-1], 1.0)
