"""The shared input checks (``machaon._validate``): what they accept, what they return, and that
everything they reject is an ``InputError`` naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from machaon._validate import (
    finite_array,
    finite_vector,
    nonnegative,
    optional_vector,
    out_array,
    positive,
    transform,
    unit_vector,
    vector,
)
from machaon.errors import InputError

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_vector_broadcasts_scalars_and_copies():
    assert np.array_equal(vector("k", 2.0, 3), [2.0, 2.0, 2.0])
    v = np.array([1.0, 2.0])
    out = vector("k", v, 2)
    assert np.array_equal(out, v) and out is not v
    assert vector("k", None, 3, allow_none=True) is None


def test_finite_vector_passes_a_float64_vector_through_and_checks_the_rest():
    v = np.array([1.0, 2.0, 3.0])
    assert finite_vector("q", v, 3) is v  # the per-cycle case: no copy
    assert np.array_equal(finite_vector("q", [1, 2, 3], 3), v)
    big = np.array([1e308, 1e308, -1.0])  # the sum overflows: the full check decides (finite)
    assert finite_vector("q", big, 3) is not None


def test_optional_vector_keeps_infinite_limits_only_when_allowed():
    assert optional_vector("q_max", None) is None
    assert np.array_equal(optional_vector("q_max", [1.0, math.inf], allow_inf=True), [1.0, math.inf])
    assert np.array_equal(optional_vector("q_max", 2.0), [2.0])


@given(st.tuples(finite, finite, finite).filter(lambda v: np.linalg.norm(v) > 1e-6))
def test_unit_vector_has_length_one_and_the_same_direction(v):
    u = unit_vector("axis", v)
    assert math.isclose(np.linalg.norm(u), 1.0, rel_tol=1e-12)
    assert np.allclose(u * np.linalg.norm(v), v, rtol=1e-9, atol=1e-9)


def test_numbers():
    assert positive("dt", 2) == 2.0 and nonnegative("k", 0) == 0.0


@pytest.mark.parametrize(("call", "name"), [
    (lambda: finite_array("q", [1.0, math.nan]), "q"),
    (lambda: finite_array("q", [1.0, 2.0], (3,)), "q"),
    (lambda: finite_array("q", "abc"), "q"),
    (lambda: vector("k", None, 3), "k"),
    (lambda: vector("k", [-1.0, 1.0], 2, nonneg=True), "k"),
    (lambda: vector("k", [1.0, 2.0], 3), "k"),
    (lambda: finite_vector("q", np.array([1.0, math.inf]), 2), "q"),
    (lambda: optional_vector("q_max", [1.0, math.inf]), "q_max"),
    (lambda: optional_vector("q_max", [1.0, math.nan], allow_inf=True), "q_max"),
    (lambda: optional_vector("q_max", np.eye(2)), "q_max"),
    (lambda: unit_vector("axis", [0.0, 0.0, 0.0]), "axis"),
    (lambda: positive("dt", 0.0), "dt"),
    (lambda: positive("dt", math.inf), "dt"),
    (lambda: nonnegative("k", -1.0), "k"),
    (lambda: nonnegative("k", math.nan), "k"),
    (lambda: transform("T", np.diag([1.0, 1.0, -1.0, 1.0])), "T"),
    (lambda: out_array("out", np.empty(3, dtype=np.float32), (3,)), "out"),
])
def test_rejections_are_input_errors_naming_the_argument(call, name):
    with pytest.raises(InputError, match=f"^{name}: "):
        call()
