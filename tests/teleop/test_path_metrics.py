"""Path deviation and time lag on constructed trajectories, and against a brute-force distance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from machaon.teleop.path_metrics import path_deviation, time_lag


def _square(t: np.ndarray, side: float = 0.04, period: float = 4.0) -> np.ndarray:
    corners = np.array([[0, 0, 0], [side, 0, 0], [side, side, 0], [0, side, 0], [0, 0, 0]], dtype=float)
    s = np.clip(t / period, 0.0, 1.0) * 4.0
    k = np.minimum(s.astype(int), 3)
    w = (s - k)[:, None]
    return corners[k] * (1 - w) + corners[k + 1] * w


def test_a_delayed_copy_has_no_path_deviation_and_its_delay_as_lag():
    t = np.arange(0.0, 6.0, 1e-3)
    ideal = _square(t)
    late = _square(t - 0.137)
    dev = path_deviation(late, ideal)
    assert dev.max() < 1e-9  # on the path, only late
    assert time_lag(t, late, ideal) == pytest.approx(0.137, abs=1e-3)
    # the same-instant distance is large though: what the old metric reported
    assert np.sqrt(np.mean(np.sum((late - ideal) ** 2, axis=1))) > 3e-3


def test_an_offset_path_has_its_offset_as_deviation_and_no_lag():
    t = np.arange(0.0, 2.0, 1e-3)
    ideal = np.column_stack([0.02 * t, np.zeros_like(t), np.zeros_like(t)])
    off = ideal + [0.0, 0.001, 0.0]
    assert path_deviation(off, ideal) == pytest.approx(np.full(len(t), 0.001))
    assert time_lag(t, off, ideal) == pytest.approx(0.0, abs=1e-3)


def test_corner_cutting_is_measured_at_the_corner():
    ideal = np.array([[0, 0, 0], [0.01, 0, 0], [0.01, 0.01, 0]], dtype=float)
    cut = np.array([[0.009, 0.001, 0.0], [0.0095, 0.0005, 0.0]])
    assert path_deviation(cut, ideal) == pytest.approx([0.001, 0.0005])


def _brute(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    a, b = poly[:-1], poly[1:]
    ab = b - a
    w = np.clip(np.einsum("nsj,sj->ns", p[:, None] - a, ab) / np.maximum((ab * ab).sum(1), 1e-300), 0, 1)
    q = a + w[..., None] * ab
    return np.linalg.norm(p[:, None] - q, axis=2).min(axis=1)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 12), st.just(3)), elements=st.floats(-1, 1)),
       arrays(np.float64, st.tuples(st.integers(1, 20), st.just(3)), elements=st.floats(-2, 2)))
def test_deviation_equals_the_brute_force_distance_to_every_segment(poly, pts):
    if len(pts) < 2:
        pts = np.vstack([pts, pts])
    keep = np.ones(len(poly), bool)
    keep[1:] = np.linalg.norm(np.diff(poly, axis=0), axis=1) > 0
    if keep.sum() < 2:
        return
    assert path_deviation(pts, poly) == pytest.approx(_brute(pts, poly[keep]), abs=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="p_actual"):
        path_deviation(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        path_deviation(np.full((3, 3), np.nan), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="increase"):
        time_lag(np.zeros(3), np.zeros((3, 3)), np.zeros((3, 3)))
