"""Input checks shared by every layer's Python faces.

Compiled kernels never check their inputs; the typed Python face in front of them calls these,
so that a NaN, an Inf or a wrong shape becomes an ``InputError`` naming the argument instead of
a crash or a silently wrong answer (``machaon.errors.InputError``: a ``MachaonError`` and a
``ValueError``).
"""

from __future__ import annotations

import numpy as np

from machaon.errors import InputError


def finite_array(name: str, value: object, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 array, checked.

    ``shape`` may contain ``None`` for a free dimension. Raises ``InputError`` naming ``name``
    when the value is not numeric, has the wrong shape, or holds NaN or Inf.
    """
    try:
        arr = np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: not a numeric array ({exc})") from None
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, arr.shape, strict=False)):
            want = "x".join("N" if s is None else str(s) for s in shape) or "scalar"
            raise InputError(f"{name}: expected shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or Inf")
    return arr


def out_array(name: str, out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Return a writable C-contiguous float64 array of ``shape``: ``out`` itself if it fits, else new.

    An ``out`` of the wrong dtype, shape or layout raises ``InputError`` (it is never copied
    silently, which would leave the caller's buffer unchanged).
    """
    if out is None:
        return np.empty(shape, dtype=np.float64)
    if (
        not isinstance(out, np.ndarray)
        or out.dtype != np.float64
        or out.shape != shape
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise InputError(f"{name}: expected a writable C-contiguous float64 array of shape {shape}")
    return out


def transform(name: str, value: object) -> np.ndarray:
    """A 4x4 homogeneous transform, finite, with an orthonormal rotation (to 1e-6) and last row 0 0 0 1."""
    T = finite_array(name, value, (4, 4))
    R = T[:3, :3]
    if not np.allclose(T[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise InputError(f"{name}: last row must be [0, 0, 0, 1]")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise InputError(f"{name}: rotation part is not a proper rotation matrix")
    return T
