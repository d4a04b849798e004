"""Input checks shared by every layer's Python faces.

Compiled kernels never check their inputs; the typed Python face in front of them calls these,
so that a NaN, an Inf or a wrong shape becomes an ``InputError`` naming the argument instead of
a crash or a silently wrong answer (``machaon.errors.InputError``: a ``MachaonError`` and a
``ValueError``).

Arrays: ``finite_array`` (any shape), ``vector`` (scalar or vector of length n), ``finite_vector``
(the per-cycle fast path), ``optional_vector`` (limits that may be off), ``unit_vector``,
``out_array`` (an ``out=`` buffer); transforms: ``transform``; numbers: ``positive``,
``nonnegative``.
"""

from __future__ import annotations

import math

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


def vector(name: str, value: object, n: int, *, nonneg: bool = False, allow_none: bool = False) -> np.ndarray | None:
    """A new length-``n`` float64 vector from a scalar (broadcast) or a vector, finite.

    ``nonneg`` also rejects negative entries; ``allow_none`` lets ``None`` through (returned as is),
    otherwise ``None`` is an ``InputError`` ("required").
    """
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name}: required")
    arr = finite_array(name, np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)) if np.ndim(value) == 0
                       else value, (n,)).copy()
    if nonneg and (arr < 0).any():
        raise InputError(f"{name}: must be >= 0")
    return arr


def finite_vector(name: str, value: object, n: int) -> np.ndarray:
    """``finite_array(name, value, (n,))`` with a cheap path for the per-cycle case (a float64 (n,) array,
    returned as is, not copied).

    A float sum is finite iff every element is, unless it overflowed: then the full check decides.
    """
    if (type(value) is np.ndarray and value.dtype == np.float64 and value.shape == (n,)
            and value.flags.c_contiguous and math.isfinite(sum(value.tolist()))):
        return value
    return finite_array(name, value, (n,))


def optional_vector(name: str, value: object, allow_inf: bool = False) -> np.ndarray | None:
    """``None``, or a new 1-D float64 array from a scalar or a vector without NaN (and without
    +-Inf unless ``allow_inf``: a limit that is off)."""
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64)).copy()
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a scalar or a vector")
    if np.isnan(arr).any() or (not allow_inf and not np.isfinite(arr).all()):
        raise InputError(f"{name}: contains NaN" + ("" if allow_inf else " or Inf"))
    return arr


def unit_vector(name: str, value: object) -> np.ndarray:
    """``value`` (3,) scaled to length 1; a finite, non-zero 3-vector (``InputError`` otherwise)."""
    a = finite_array(name, value, (3,))
    norm = float(np.linalg.norm(a))
    if norm < 1e-12:
        raise InputError(f"{name}: must be a non-zero vector")
    return a / norm


def positive(name: str, value: float) -> float:
    """``value`` as a float, finite and > 0 (``InputError`` otherwise)."""
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"{name}: must be a positive finite number, got {v!r}")
    return v


def nonnegative(name: str, value: float) -> float:
    """``value`` as a float, finite and >= 0 (``InputError`` otherwise)."""
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise InputError(f"{name}: must be finite and >= 0, got {v!r}")
    return v
