"""Tracking metrics that keep *where* the tool went apart from *when* it got there.

The distance from the ideal point at the same instant mixes two things: how far the tool strays
from the commanded path (geometry) and how late it follows it (time). A link's delay shows up
almost entirely in the second. So:

- ``path_deviation(p_actual, p_ideal)``: for every actual position, the distance (m) to the
  nearest point of the ideal path, the polyline through the ideal positions, whatever the time
  (corners cut, overshoot past a corner, wobble across the path);
- ``time_lag(t, p_actual, p_ideal)``: the delay (s) that best aligns the actual trajectory with
  the ideal one, ``argmin_tau RMS |p_actual(t) - p_ideal(t - tau)|`` (ideal held at its first
  and last value outside its time span), found on a grid and refined by a parabola through the
  best three grid points.

Positions (N, 3) in one frame (m), times (N,) in s, increasing. Bad input (shapes, NaN, fewer
than 2 samples) raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from machaon._validate import finite_array


def _points(name: str, p: object) -> np.ndarray:
    a = finite_array(name, p, (None, 3))
    if a.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 samples")
    return a


def path_deviation(p_actual: np.ndarray, p_ideal: np.ndarray) -> np.ndarray:
    """Distance (m) of each actual position to the ideal path polyline; shape (N,)."""
    pa = _points("p_actual", p_actual)
    pi = _points("p_ideal", p_ideal)
    keep = np.ones(len(pi), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(pi, axis=0), axis=1) > 0.0  # drop repeated points (held segments)
    pi = pi[keep]
    if len(pi) == 1:
        return np.linalg.norm(pa - pi[0], axis=1)
    # Exact: the nearest path point lies on a segment with an end within (distance to the
    # nearest vertex + half the longest segment) of the query point; only those are checked.
    seg_len = np.linalg.norm(np.diff(pi, axis=0), axis=1)
    tree = cKDTree(pi)
    d_vertex, _ = tree.query(pa)
    near = tree.query_ball_point(pa, d_vertex + 0.5 * float(seg_len.max()) + 1e-12)
    out = np.empty(len(pa))
    last = len(pi) - 2
    for n, verts in enumerate(near):
        v = np.asarray(verts, dtype=np.int64)
        s = np.unique(np.clip(np.concatenate([v - 1, v]), 0, last))
        a, ab = pi[s], pi[s + 1] - pi[s]
        w = np.clip(((pa[n] - a) * ab).sum(axis=1) / np.maximum((ab * ab).sum(axis=1), 1e-300), 0.0, 1.0)
        out[n] = np.sqrt(((a + w[:, None] * ab - pa[n]) ** 2).sum(axis=1).min())
    return out


def time_lag(t: np.ndarray, p_actual: np.ndarray, p_ideal: np.ndarray, max_lag_s: float = 1.0,
             step_s: float = 2e-3) -> float:
    """Delay (s, in [0, max_lag_s]) of the actual trajectory behind the ideal one (module docstring)."""
    tt = finite_array("t", t, (None,))
    pa = _points("p_actual", p_actual)
    pi = _points("p_ideal", p_ideal)
    if not (len(tt) == len(pa) == len(pi)):
        raise ValueError("t, p_actual and p_ideal must have the same length")
    if np.any(np.diff(tt) <= 0):
        raise ValueError("t: must increase")
    if not (max_lag_s > 0 and step_s > 0):
        raise ValueError("max_lag_s and step_s must be > 0")

    def cost(lag: float) -> float:
        shifted = np.column_stack([np.interp(tt - lag, tt, pi[:, j]) for j in range(3)])
        return float(np.mean(np.sum((pa - shifted) ** 2, axis=1)))

    lags = np.arange(0.0, max_lag_s + 0.5 * step_s, step_s)
    c = np.array([cost(x) for x in lags])
    k = int(np.argmin(c))
    if 0 < k < len(lags) - 1:
        denom = c[k - 1] - 2.0 * c[k] + c[k + 1]
        if denom > 0:
            return float(np.clip(lags[k] + 0.5 * step_s * (c[k - 1] - c[k + 1]) / denom, 0.0, max_lag_s))
    return float(lags[k])
