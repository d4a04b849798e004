"""Rotations and poses in one place: SO(3) maps, axis-angle, quaternions, 4x4 transforms.

Every other module that turns a rotation vector into a matrix, a matrix into a quaternion or a
(position, quaternion) pair into a transform calls these (Rodrigues' formula is written once).

- ``skew(w)``: the cross-product matrix ``[w]x`` (``skew(a) @ b == cross(a, b)``).
- ``exp3(w)`` / ``log3(R)``: rotation vector (rad) <-> rotation matrix.
- ``rotation_about(axis, angle)``: the rotation of ``angle`` rad about ``axis`` (any length > 0).
- ``rotation_between(a, b)``: the smallest rotation taking direction ``a`` onto direction ``b``.
- ``quat_from_matrix(R)`` / ``matrix_from_quat(q)``: quaternions ``(x, y, z, w)``, as PyBullet
  and SciPy order them (DESIGN.md).
- ``transform_from_pq(p, q)`` / ``pq_from_transform(T)``: a 4x4 ``T_a_b`` from/to a position (m)
  and a quaternion, the pair PyBullet takes and returns.

Bad input (NaN, Inf, wrong shapes, a zero axis or quaternion) raises ``machaon.errors.InputError``
(a ``ValueError``) naming the argument.

>>> import numpy as np
>>> R = exp3([0.0, 0.0, np.pi / 2])            # a quarter turn about z
>>> np.round(R @ [1.0, 0.0, 0.0], 12)
array([0., 1., 0.])
>>> np.allclose(log3(R), [0.0, 0.0, np.pi / 2])
True
>>> q = quat_from_matrix(R)                    # (x, y, z, w)
>>> [round(v, 6) for v in q]
[0.0, 0.0, 0.707107, 0.707107]
>>> T = transform_from_pq([0.1, 0.2, 0.3], q)
>>> np.allclose(T[:3, :3], R) and np.allclose(T[:3, 3], [0.1, 0.2, 0.3])
True
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from machaon._validate import finite_array
from machaon._validate import unit_vector as _unit
from machaon.errors import InputError
from machaon.kinematics._chain import log3 as _log3

__all__ = [
    "exp3",
    "log3",
    "matrix_from_quat",
    "pq_from_transform",
    "quat_from_matrix",
    "rotation_about",
    "rotation_between",
    "skew",
    "transform_from_pq",
]


def skew(w: ArrayLike) -> np.ndarray:
    """The cross-product matrix of a 3-vector: ``skew(a) @ b == np.cross(a, b)``. Not checked."""
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def log3(R: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rotation vector w (3,) with exp3(w) = R, |w| in [0, pi]; robust near 0 and pi.

    ``R`` must be a finite 3x3 matrix (ValueError otherwise); it is not re-orthonormalised.
    """
    return _log3(R, out)


def exp3(w: ArrayLike) -> np.ndarray:
    """Rotation matrix (3x3) of a rotation vector ``w`` (rad), by Rodrigues' formula."""
    w = finite_array("w", w, (3,))
    th = float(np.linalg.norm(w))
    K = skew(w)
    if th < 1e-8:
        return np.eye(3) + K + 0.5 * (K @ K)
    return np.eye(3) + (math.sin(th) / th) * K + ((1 - math.cos(th)) / th**2) * (K @ K)


def rotation_about(axis: ArrayLike, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` rad about ``axis`` (normalised here; a zero axis raises)."""
    if not math.isfinite(angle):
        raise InputError(f"angle: must be finite, got {angle!r}")
    return exp3(_unit("axis", axis) * float(angle))


def rotation_between(a: ArrayLike, b: ArrayLike, *, flip_axis: ArrayLike | None = None) -> np.ndarray:
    """The smallest rotation ``R`` with ``R @ a / |a| = b / |b|`` (directions; any non-zero length).

    Parallel directions give the identity. Opposite directions have no unique smallest rotation:
    the result is the half turn about ``flip_axis`` (a direction perpendicular to ``a``; default
    the base axis least aligned with ``a``, made perpendicular to it).
    """
    a, b = _unit("a", a), _unit("b", b)
    c = float(np.clip(a @ b, -1.0, 1.0))
    v = np.cross(a, b)
    s = float(np.linalg.norm(v))
    if s >= 1e-12:
        return exp3(v * (math.atan2(s, c) / s))
    if c > 0:
        return np.eye(3)
    if flip_axis is None:
        e = np.eye(3)[int(np.argmin(np.abs(a)))]
        flip_axis = e - (e @ a) * a
    return exp3(_unit("flip_axis", flip_axis) * math.pi)


def quat_from_matrix(R: ArrayLike) -> tuple[float, float, float, float]:
    """Unit quaternion ``(x, y, z, w)`` of a rotation matrix (SciPy's conversion; finite 3x3)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(finite_array("R", R, (3, 3))).as_quat()
    return (float(x), float(y), float(z), float(w))


def quats_from_matrices(R: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(x, y, z, w)`` of rotation matrices ``(..., 3, 3)``, shape ``(..., 4)``.

    Shepperd's method, branch by branch over the whole batch (the largest of ``w, x, y, z`` is taken
    from the diagonal first, as SciPy does, and the signs are SciPy's: equal to
    ``Rotation.from_matrix(R).as_quat()`` to 1e-12 on proper rotations). Written out because SciPy
    costs ~20 µs per matrix here, and the live views convert a frame tree 50 times a second on a
    thread that shares the GIL with the control loop. No input checks: callers pass finite,
    proper rotation matrices (``FramePose`` checks its transforms).
    """
    R = np.asarray(R, dtype=np.float64)
    M = R.reshape(-1, 3, 3)
    m00, m11, m22 = M[:, 0, 0], M[:, 1, 1], M[:, 2, 2]
    case = np.argmax(np.stack([m00, m11, m22, m00 + m11 + m22], axis=1), axis=1)
    q = np.empty((M.shape[0], 4))
    for k in range(3):  # x, y or z the largest component
        sel = case == k
        if not sel.any():
            continue
        i, j, l = k, (k + 1) % 3, (k + 2) % 3
        Ms = M[sel]
        q[sel, i] = 1.0 - Ms[:, 0, 0] - Ms[:, 1, 1] - Ms[:, 2, 2] + 2.0 * Ms[:, i, i]
        q[sel, j] = Ms[:, j, i] + Ms[:, i, j]
        q[sel, l] = Ms[:, l, i] + Ms[:, i, l]
        q[sel, 3] = Ms[:, l, j] - Ms[:, j, l]
    sel = case == 3  # w the largest
    if sel.any():
        Ms = M[sel]
        q[sel, 0] = Ms[:, 2, 1] - Ms[:, 1, 2]
        q[sel, 1] = Ms[:, 0, 2] - Ms[:, 2, 0]
        q[sel, 2] = Ms[:, 1, 0] - Ms[:, 0, 1]
        q[sel, 3] = 1.0 + Ms[:, 0, 0] + Ms[:, 1, 1] + Ms[:, 2, 2]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(R.shape[:-2] + (4,))


def matrix_from_quat(q: ArrayLike) -> np.ndarray:
    """Rotation matrix (3x3) of a quaternion ``(x, y, z, w)``; a non-unit quaternion is normalised.

    A zero quaternion raises ``InputError``.
    """
    x, y, z, w = (float(v) for v in finite_array("q", q, (4,)))
    n = x * x + y * y + z * z + w * w
    if n < 1e-24:
        raise InputError("q: the zero quaternion is not a rotation")
    s = 2.0 / n
    xs, ys, zs = x * s, y * s, z * s
    wx, wy, wz = w * xs, w * ys, w * zs
    xx, xy, xz = x * xs, x * ys, x * zs
    yy, yz, zz = y * ys, y * zs, z * zs
    return np.array([
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ])


def transform_from_pq(p: ArrayLike, q: ArrayLike) -> np.ndarray:
    """The 4x4 transform with translation ``p`` (m, (3,)) and rotation quaternion ``q`` (x, y, z, w)."""
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat(q)
    T[:3, 3] = finite_array("p", p, (3,))
    return T


def pq_from_transform(T: ArrayLike) -> tuple[list[float], tuple[float, float, float, float]]:
    """(position [x, y, z] m, quaternion (x, y, z, w)) of a 4x4 rigid transform, as Python floats.

    ``T`` must be finite 4x4; its rotation part is taken as a rotation (check it with
    ``machaon._validate.transform`` first where it comes from a user).
    """
    T = finite_array("T", T, (4, 4))
    return T[:3, 3].tolist(), quat_from_matrix(T[:3, :3])
