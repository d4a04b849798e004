"""SO(3) exponential and logarithm maps (rotation vector <-> rotation matrix), in radians."""

from __future__ import annotations

import math

import numpy as np

from machaon._validate import finite_array
from machaon.kinematics._chain import log3 as _log3


def log3(R: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rotation vector w (3,) with exp3(w) = R, |w| in [0, pi]; robust near 0 and pi.

    ``R`` must be a finite 3x3 matrix (ValueError otherwise); it is not re-orthonormalised.
    """
    return _log3(R, out)


def exp3(w: np.ndarray) -> np.ndarray:
    """Rotation matrix (3x3) of a rotation vector ``w`` (rad), by Rodrigues' formula."""
    w = finite_array("w", w, (3,))
    th = float(np.linalg.norm(w))
    K = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
    if th < 1e-8:
        return np.eye(3) + K + 0.5 * (K @ K)
    return np.eye(3) + (math.sin(th) / th) * K + ((1 - math.cos(th)) / th**2) * (K @ K)
