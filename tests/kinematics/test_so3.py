"""The one module of rotations and poses: SO(3) maps, axis-angle, shortest rotations, quaternions,
(position, quaternion) <-> 4x4, checked against SciPy's ``Rotation`` and by their defining identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from machaon.errors import InputError
from machaon.kinematics.so3 import (
    exp3,
    log3,
    matrix_from_quat,
    pq_from_transform,
    quat_from_matrix,
    quats_from_matrices,
    rotation_about,
    rotation_between,
    skew,
    transform_from_pq,
)

coord = st.floats(-3.0, 3.0, allow_nan=False)
vec3 = st.tuples(coord, coord, coord).map(np.array)
direction = vec3.filter(lambda v: np.linalg.norm(v) > 1e-3)


def _is_rotation(R: np.ndarray) -> bool:
    return np.allclose(R @ R.T, np.eye(3), atol=1e-12) and math.isclose(np.linalg.det(R), 1.0, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(vec3)
def test_exp3_is_scipys_rotation_vector_map_and_log3_inverts_it(w):
    R = exp3(w)
    assert _is_rotation(R)
    assert np.allclose(R, Rotation.from_rotvec(w).as_matrix(), atol=1e-12)
    if np.linalg.norm(w) < math.pi - 1e-6:
        assert np.allclose(log3(R), w, atol=1e-9)


@given(vec3, vec3)
def test_skew_is_the_cross_product(a, b):
    assert np.allclose(skew(a) @ b, np.cross(a, b))


@settings(deadline=None)
@given(direction, st.floats(-10.0, 10.0, allow_nan=False))
def test_rotation_about_an_axis_of_any_length(axis, angle):
    u = axis / np.linalg.norm(axis)
    assert np.allclose(rotation_about(axis, angle), Rotation.from_rotvec(u * angle).as_matrix(), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(direction, direction)
def test_rotation_between_takes_a_onto_b_by_the_smallest_angle(a, b):
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    R = rotation_between(a, b)
    assert _is_rotation(R)
    assert np.allclose(R @ ua, ub, atol=1e-9)
    angle = np.linalg.norm(log3(R))
    assert math.isclose(angle, math.acos(np.clip(ua @ ub, -1.0, 1.0)), abs_tol=1e-6)


def test_rotation_between_parallel_and_opposite_directions():
    assert np.array_equal(rotation_between([0, 0, 2.0], [0, 0, 1.0]), np.eye(3))
    R = rotation_between([0, 0, 1.0], [0, 0, -1.0], flip_axis=[1.0, 0, 0])  # a half turn about x
    assert np.allclose(R, np.diag([1.0, -1.0, -1.0]), atol=1e-15)
    R = rotation_between([1.0, 0, 0], [-1.0, 0, 0])  # default flip axis: perpendicular to a
    assert _is_rotation(R) and np.allclose(R @ [1.0, 0, 0], [-1.0, 0, 0])


@settings(deadline=None)
@given(st.tuples(coord, coord, coord, coord).filter(lambda q: np.linalg.norm(q) > 1e-3))
def test_quaternions_match_scipy_and_round_trip(q):
    R = matrix_from_quat(q)  # normalised inside, as PyBullet and SciPy do
    assert np.allclose(R, Rotation.from_quat(q).as_matrix(), atol=1e-12)
    q2 = np.array(quat_from_matrix(R))
    qn = np.array(q) / np.linalg.norm(q)
    assert np.allclose(q2, qn, atol=1e-9) or np.allclose(q2, -qn, atol=1e-9)  # q and -q: one rotation


@settings(deadline=None)
@given(vec3, vec3)
def test_transform_and_position_quaternion_pairs_round_trip(p, w):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = exp3(w), p
    pos, quat = pq_from_transform(T)
    assert isinstance(pos, list) and len(quat) == 4 and all(isinstance(x, float) for x in quat)
    assert np.allclose(transform_from_pq(pos, quat), T, atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda: exp3([0.0, math.nan, 0.0]),
    lambda: exp3([1.0, 2.0]),
    lambda: rotation_about([0.0, 0.0, 0.0], 1.0),
    lambda: rotation_about([0.0, 0.0, 1.0], math.inf),
    lambda: rotation_between([1.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    lambda: matrix_from_quat([0.0, 0.0, 0.0, 0.0]),
    lambda: matrix_from_quat([0.0, 0.0, math.inf, 1.0]),
    lambda: transform_from_pq([0.0, 0.0], [0.0, 0.0, 0.0, 1.0]),
    lambda: pq_from_transform(np.eye(3)),
])
def test_bad_input_is_an_input_error(call):
    with pytest.raises(InputError):
        call()


@settings(max_examples=200, deadline=None)
@given(st.lists(vec3, min_size=1, max_size=12))
def test_batched_quaternions_are_scipys_values_and_signs(ws):
    R = np.stack([exp3(w) for w in ws])
    np.testing.assert_allclose(quats_from_matrices(R), Rotation.from_matrix(R).as_quat(), atol=1e-12)


def test_batched_quaternions_on_half_turns_and_batch_shapes():
    # each branch of the method: w, x, y or z the largest component
    R = np.stack([np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]),
                  rotation_about([1, 1, 0], 3.0), rotation_about([0, 1, 1], -3.1)])
    np.testing.assert_allclose(quats_from_matrices(R), Rotation.from_matrix(R).as_quat(), atol=1e-12)
    assert quats_from_matrices(R.reshape(2, 3, 3, 3)).shape == (2, 3, 4)
    assert quats_from_matrices(np.eye(3)).shape == (4,)
