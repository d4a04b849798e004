"""The hole drilled, against the plan: the drill tip's samples and the path they trace.

``HoleSample`` is one recorded sample (image frame, m, N, m/s); ``drilled_path`` turns a hole's
samples into its ``DrilledPath`` (entry, tip, depth, lateral deviation, peak thrust) for
``machaon.ortho.report``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class HoleSample:
    t: float
    tip_image: np.ndarray
    axis_image: np.ndarray
    thrust_n: float
    feed_m_s: float


@dataclass(frozen=True)
class DrilledPath:
    """The path actually drilled, image frame (m): from the recorded drill-tip samples.

    ``entry``: where the tip crossed the planned entry depth (the plane through the planned entry
    normal to the planned axis); ``tip``: the deepest point reached along the planned axis;
    ``max_lateral``: the largest distance of the drilled path from the planned axis between entry
    and tip (a bump shows here); ``max_thrust_n``: the peak thrust.
    """

    entry: np.ndarray
    tip: np.ndarray
    depth: float
    max_lateral: float
    max_thrust_n: float


def drilled_path(samples: list[HoleSample], entry: np.ndarray, target: np.ndarray) -> DrilledPath:
    """Extract the drilled entry/tip from recorded samples against the planned ``entry`` -> ``target``."""
    if not samples:
        raise ValueError("hole: no samples recorded")
    entry = finite_array("entry", entry, (3,))
    target = finite_array("target", target, (3,))
    d = _unit(target - entry)
    P = np.array([s.tip_image for s in samples])
    s_along = (P - entry) @ d
    k_tip = int(np.argmax(s_along))
    tip = P[k_tip]
    idx = np.nonzero(s_along >= 0.0)[0]
    if len(idx) == 0 or idx[0] == 0:
        p_entry = P[int(np.argmin(np.abs(s_along)))]
    else:
        k = int(idx[0])
        a, b = s_along[k - 1], s_along[k]
        w = 0.0 if b == a else -a / (b - a)
        p_entry = P[k - 1] + w * (P[k] - P[k - 1])
    inside = (s_along >= 0.0) & (np.arange(len(P)) <= k_tip)
    rel = P[inside] - entry
    lat = rel - np.outer(rel @ d, d)
    return DrilledPath(
        entry=p_entry,
        tip=tip,
        depth=float(s_along[k_tip]),
        max_lateral=float(np.linalg.norm(lat, axis=1).max()) if len(lat) else 0.0,
        max_thrust_n=float(max(s.thrust_n for s in samples)),
    )
