"""Gertzbein-Robbins grading on constructed screws: shifted out of the pedicle by known amounts."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.ortho.anatomy import SpineSegment
from machaon.ortho.grading import grade_for_breach, grade_screw

MM = 1e-3


@pytest.fixture(scope="module")
def spine():
    return SpineSegment(("L3",))


def _screw(spine, side: str, shift_dir: str, beyond_mm: float, diameter_mm: float = 6.5):
    """A screw on the pedicle axis, moved across it so its surface passes the pedicle wall by ``beyond_mm``.

    The pedicle is an elliptic cylinder: moving the screw along a semi-axis puts its surface
    ``shift - (semi-axis - radius)`` beyond the wall at the vertex, exactly.
    """
    ax = spine.pedicle_axis("L3", side)
    up = spine.level_frame("L3")[:3, 2]
    across = np.cross(up, ax.direction)
    across /= np.linalg.norm(across)
    x_left = spine.level_frame("L3")[:3, 0]
    lateral = across if (across @ x_left > 0) == (side == "left") else -across
    r = 0.5 * diameter_mm * MM
    if shift_dir in ("medial", "lateral"):
        unit, semi = (-lateral if shift_dir == "medial" else lateral), ax.semi_width
    else:
        unit, semi = (up if shift_dir == "superior" else -up), ax.semi_height
    shift = (semi - r + beyond_mm * MM) * unit
    entry = ax.entry + shift
    return entry, entry + 0.8 * ax.chord_length * ax.direction, diameter_mm * MM


@pytest.mark.parametrize(("beyond_mm", "grade"), [(-0.25, "A"), (0.25, "B"), (1.75, "B"), (2.25, "C"), (3.75, "C"),
                                                  (4.25, "D"), (5.75, "D"), (6.25, "E")])
def test_each_grade_boundary_medially(spine, beyond_mm, grade):
    e, t, dia = _screw(spine, "left", "medial", beyond_mm)
    g = grade_screw(spine, "L3", "left", e, t, dia)
    assert g.grade == grade
    if beyond_mm > 0:
        assert g.breach_mm == pytest.approx(beyond_mm, abs=0.02)
        assert g.direction == "medial"
    else:
        assert g.breach_mm == 0.0 and g.direction is None


@pytest.mark.parametrize(("side", "shift", "grade"), [("right", "medial", "B"), ("right", "lateral", "B"),
                                                      ("left", "lateral", "C"), ("left", "superior", "B"),
                                                      ("right", "inferior", "B")])
def test_breach_directions(spine, side, shift, grade):
    beyond = 2.5 if grade == "C" else 1.0
    e, t, dia = _screw(spine, side, shift, beyond)
    g = grade_screw(spine, "L3", side, e, t, dia)
    assert (g.grade, g.direction) == (grade, shift)
    assert g.breach_mm == pytest.approx(beyond, abs=0.05)


def test_centred_screw_is_grade_a_and_a_screw_beside_the_pedicle_is_e(spine):
    ax = spine.pedicle_axis("L3", "left")
    g = grade_screw(spine, "L3", "left", ax.entry, ax.entry + 0.8 * ax.chord_length * ax.direction, 6.5 * MM)
    assert (g.grade, g.breach_mm, g.outside, g.anterior_mm) == ("A", 0.0, False, 0.0)
    # a thin screw wholly beside the wall: grade E although its breach is under 6 mm
    e, t, dia = _screw(spine, "left", "lateral", 4.5, diameter_mm=4.0)
    g = grade_screw(spine, "L3", "left", e, t, dia)
    assert g.outside and g.grade == "E" and g.breach_mm == pytest.approx(4.5, abs=0.05)
    e, t, dia = _screw(spine, "left", "lateral", 3.5, diameter_mm=4.0)  # still partly in the pedicle
    assert grade_screw(spine, "L3", "left", e, t, dia).grade == "C"
    # through the anterior cortex: not a pedicle-wall breach, reported apart
    g = grade_screw(spine, "L3", "left", ax.entry, ax.entry + (ax.chord_length + 3 * MM) * ax.direction, 6.5 * MM)
    assert g.grade == "A" and g.anterior_mm > 2.0


def test_grade_for_breach_and_bad_input(spine):
    assert [grade_for_breach(x) for x in (0.0, 1e-6, 1.999, 2.0, 3.999, 4.0, 5.999, 6.0)] == list("ABBCCDDE")
    assert grade_for_breach(0.5, outside=True) == "E"
    ax = spine.pedicle_axis("L3", "left")
    with pytest.raises(ValueError, match="side"):
        grade_screw(spine, "L3", "middle", ax.entry, ax.isthmus, 6e-3)
    with pytest.raises(ValueError, match="coincides"):
        grade_screw(spine, "L3", "left", ax.entry, ax.entry, 6e-3)
    with pytest.raises(ValueError, match="NaN"):
        grade_screw(spine, "L3", "left", np.full(3, np.nan), ax.entry, 6e-3)
