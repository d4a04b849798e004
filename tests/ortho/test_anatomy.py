"""Vertebra phantom, spine segment and mesh bone model: exactness, regions, frames, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from machaon.ortho.anatomy import (
    AnatomyError,
    BoneModel,
    Region,
    SpineSegment,
    Vertebra,
    VertebraParams,
    ellipse_sdf,
    surface_samples,
)
from machaon.ortho.anatomy import mesh as A

MM = 1e-3


@pytest.fixture(scope="module")
def l3() -> Vertebra:
    return Vertebra(level="L3")


@pytest.fixture(scope="module")
def l3_mesh(l3: Vertebra):
    return l3.mesh(1e-3)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(
    a=st.floats(2e-3, 30e-3),
    ratio=st.floats(0.25, 4.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_ellipse_distance_matches_dense_sampling(a: float, ratio: float, seed: int) -> None:
    b = a * ratio
    th = np.linspace(0.0, 2 * math.pi, 150_001)
    curve = np.stack([a * np.cos(th), b * np.sin(th)], axis=1)
    rng = np.random.default_rng(seed)
    p = rng.uniform(-2 * max(a, b), 2 * max(a, b), (64, 2))
    d = ellipse_sdf(p[:, 0], p[:, 1], a, b)
    ref = cKDTree(curve).query(p)[0]
    # dense sampling overestimates by at most ~ (arc step)^2 / (8 R) < 1e-8 m here
    assert np.all(np.abs(d) <= ref + 1e-12)
    assert np.allclose(np.abs(d), ref, atol=1e-8)
    inside = (p[:, 0] / a) ** 2 + (p[:, 1] / b) ** 2 < 1
    assert np.array_equal(d < 0, inside)


@pytest.mark.parametrize("level", ["L1", "L3", "L5", "T4", "T8", "T12"])
def test_compiled_kernel_matches_numpy_reference(level: str) -> None:
    v = Vertebra(level=level)
    lo, hi = v.local_bounds()
    p = np.random.default_rng(3).uniform(lo - 5 * MM, hi + 5 * MM, (5000, 3))
    assert np.allclose(v.sdf_local(p), v.sdf_local_reference(p), atol=1e-12)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_sdf_is_1_lipschitz(seed: int) -> None:
    # any valid distance bound changes no faster than the point moves
    v = Vertebra(level="L4")
    rng = np.random.default_rng(seed)
    lo, hi = v.local_bounds()
    p = rng.uniform(lo, hi, (400, 3))
    q = p + rng.normal(0, 2 * MM, p.shape)
    dp, dq = v.sdf(p), v.sdf(q)
    assert np.all(np.abs(dp - dq) <= np.linalg.norm(p - q, axis=1) + 1e-12)


def test_regions_at_known_points(l3: Vertebra) -> None:
    P = l3.params
    canal_y = P.body_semi_depth + P.canal_semi_depth
    pts = np.array(
        [
            [0.0, 0.0, 0.0],  # body centre
            [0.0, canal_y, 0.0],  # canal centre
            [0.0, -P.body_semi_depth - 5 * MM, 0.0],  # in front of the body
            [0.0, -P.body_semi_depth + 0.5 * P.cortical_thickness, 0.0],  # anterior cortex
            [0.0, 0.0, P.body_half_height - 0.5 * P.cortical_thickness],  # endplate
            [0.0, 0.0, P.body_half_height + 1 * MM],  # disc space
        ]
    )
    r = l3.region(pts)
    assert r.tolist() == [
        Region.CANCELLOUS,
        Region.CANAL,
        Region.OUTSIDE,
        Region.CORTICAL,
        Region.CORTICAL,
        Region.OUTSIDE,
    ]
    # exact distances where the nearest surface is known: the anterior body wall and the endplate
    d = l3.sdf(pts)
    assert d[0] == pytest.approx(-min(P.body_semi_depth, P.body_half_height), abs=1e-9)
    assert d[2] == pytest.approx(5 * MM, abs=1e-9)
    assert d[5] == pytest.approx(1 * MM, abs=1e-9)


def test_mesh_is_watertight_and_on_the_zero_level_set(l3: Vertebra, l3_mesh) -> None:
    assert l3_mesh.is_watertight
    assert l3_mesh.volume > 0
    # marching cubes interpolates linearly along grid edges: exact on flat faces, off by a
    # fraction of the step on curved walls, and up to ~1/3 step at the sharp CSG creases
    err = np.abs(l3.sdf(l3_mesh.vertices))
    assert np.percentile(err, 95) < 0.05 * MM
    assert err.max() < 0.4 * MM
    # volume of a lumbar vertebra is ~40-60 cm^3
    assert 30e-6 < l3_mesh.volume < 70e-6


def test_pedicle_axis_ground_truth(l3: Vertebra) -> None:
    for side, sign in (("left", 1.0), ("right", -1.0)):
        ax = l3.pedicle_axis("L3", side)
        assert abs(l3.sdf(ax.entry[None])[0]) < 1e-8
        assert l3.sdf(ax.isthmus[None])[0] == pytest.approx(-l3.params.pedicle_semi_width, abs=1e-6)
        assert np.linalg.norm(ax.direction) == pytest.approx(1.0)
        assert ax.direction[1] < 0 and sign * ax.direction[0] < 0  # anterior and towards the midline
        assert math.degrees(math.acos(-ax.direction[1])) == pytest.approx(14.0, abs=1e-6)
        assert 45 * MM < ax.chord_length < 70 * MM
        assert sign * ax.entry[0] > 0
    with pytest.raises(AnatomyError):
        l3.pedicle_axis("L3", "middle")
    with pytest.raises(AnatomyError):
        l3.pedicle_axis("L4", "left")


def test_bad_input_is_rejected(l3: Vertebra) -> None:
    with pytest.raises(ValueError, match="points"):
        l3.sdf(np.array([[0.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="points"):
        l3.region(np.zeros((4, 2)))
    with pytest.raises(ValueError):
        VertebraParams(pedicle_semi_width=-1.0)
    with pytest.raises(AnatomyError):
        VertebraParams.for_level("X9")
    with pytest.raises(ValueError, match="T_image_vertebra"):
        Vertebra(level="L3", T_image_vertebra=np.diag([1.0, 1.0, -1.0, 1.0]))


def test_pose_moves_the_field() -> None:
    T = np.eye(4)
    c, s = math.cos(0.3), math.sin(0.3)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = [0.1, -0.05, 0.2]
    v0 = Vertebra(level="L2")
    v1 = Vertebra(level="L2", T_image_vertebra=T)
    p = np.random.default_rng(1).uniform(-0.04, 0.06, (500, 3))
    assert np.allclose(v1.sdf(p @ T[:3, :3].T + T[:3, 3]), v0.sdf(p), atol=1e-12)
    assert v1.level_frame("L2") == pytest.approx(T)


def test_segment_layout_lordosis_and_exact_band() -> None:
    seg = SpineSegment(("L1", "L2", "L3", "L4", "L5"), curvature_deg=40.0)
    centres = np.array([seg.level_frame(lv)[:3, 3] for lv in seg.levels])
    assert np.all(np.diff(centres[:, 2]) < 0)  # cranial first
    # lordosis: the ends lie posterior (+y) of the apex
    assert centres[0, 1] > centres[2, 1] + 5 * MM and centres[4, 1] > centres[2, 1] + 5 * MM
    z1 = seg.level_frame("L1")[:3, 2]
    z5 = seg.level_frame("L5")[:3, 2]
    assert math.degrees(math.acos(np.clip(z1 @ z5, -1, 1))) == pytest.approx(40.0, abs=1e-6)
    for T in (seg.level_frame(lv) for lv in seg.levels):
        assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3))
    # the disc space between bodies is outside the bone
    for a, b in zip(seg.levels[:-1], seg.levels[1:], strict=True):
        mid = 0.5 * (seg.level_frame(a)[:3, 3] + seg.level_frame(b)[:3, 3])
        assert seg.sdf(mid[None])[0] > 0
        assert seg.region(mid[None])[0] == Region.OUTSIDE
    # within the exact band the segment field equals each vertebra's own field
    v = seg.vertebra("L3")
    lo, hi = v.local_bounds()
    q = v.to_image(np.random.default_rng(2).uniform(lo, hi, (2000, 3)))
    own = v.sdf(q)
    near = own < seg.exact_band_m
    assert np.allclose(np.minimum(seg.sdf(q), own)[near], seg.sdf(q)[near])
    assert np.all(seg.sdf(q) <= own + 1e-15)


def test_segment_round_trip_through_dict() -> None:
    seg = SpineSegment(("T11", "T12", "L1"), curvature_deg=-5.0)
    seg2 = SpineSegment.from_dict(seg.to_dict())
    p = np.random.default_rng(5).uniform(seg.bounds()[0], seg.bounds()[1], (3000, 3))
    assert np.allclose(seg.sdf(p), seg2.sdf(p), atol=1e-12)
    assert np.array_equal(seg.region(p), seg2.region(p))
    with pytest.raises(AnatomyError):
        SpineSegment.from_dict({"kind": "spine_segment", "levels": ["L3"]})
    with pytest.raises(AnatomyError):
        SpineSegment(("L3", "L3"))


def test_mesh_sdf_is_exact_against_brute_force(l3_mesh) -> None:
    msdf = A.MeshSDF(l3_mesh)
    rng = np.random.default_rng(7)
    p = l3_mesh.vertices[rng.integers(0, len(l3_mesh.vertices), 60)] + rng.normal(0, 3 * MM, (60, 3))
    tri = l3_mesh.triangles
    for i in range(len(p)):
        pi = np.repeat(p[i][None], len(tri), axis=0)
        q, _ = A._closest_on_triangles(pi, tri[:, 0], tri[:, 1], tri[:, 2])
        ref = np.linalg.norm(pi - q, axis=1).min()
        assert abs(abs(msdf(p[i][None])[0]) - ref) < 1e-12


def test_bone_model_from_stl_in_mm(tmp_path, l3: Vertebra, l3_mesh) -> None:
    path = tmp_path / "L3.stl"
    A.save_mesh(l3_mesh, path)  # metres -> mm in the file
    raw = np.abs(A.load_mesh(path, scale=1.0).vertices).max()
    assert raw > 20  # the file really is in millimetres
    bone = BoneModel.from_files([path], units="mm")
    assert bone.levels == ("L3",)
    assert bone.pedicle_axis("L3", "left") is None
    p, _ = surface_samples(l3, 400, seed=1)
    rng = np.random.default_rng(1)
    q = p + rng.normal(0, 2 * MM, p.shape)
    d_mesh = bone.sdf(q)
    d_true = l3.sdf(q)
    # the mesh is the 1 mm marching-cubes surface: its field agrees with the phantom's to ~0.2 mm
    # away from sharp box edges, and the signs agree wherever the point is clearly in or out
    clear = np.abs(d_true) > 0.4 * MM
    assert np.all(np.sign(d_mesh[clear]) == np.sign(d_true[clear]))
    assert np.median(np.abs(d_mesh - d_true)) < 0.1 * MM
    assert bone.region(np.zeros((1, 3)))[0] == Region.CANCELLOUS
    assert np.isinf(bone.canal_sdf(np.zeros((1, 3)))[0])
    bad = tmp_path / "bad.stl"
    bad.write_text("not a mesh")
    with pytest.raises(AnatomyError):
        BoneModel.from_files({"L3": bad})


def test_surface_samples_lie_on_the_surface(l3: Vertebra) -> None:
    p, n = surface_samples(l3, 500, seed=2, mask_fn=lambda x: x[:, 1] > 0.02)
    assert p.shape == (500, 3) and np.all(p[:, 1] > 0.02 - 1e-3)
    assert np.abs(l3.sdf(p)).max() < 1e-6
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    # normals point outward: a step along them leaves the bone
    assert np.all(l3.sdf(p + 0.2 * MM * n) > 0)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_closest_point_on_triangle_matches_dense_sampling(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(0, 1, (3, 3))
    u, v = np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301))
    keep = (u + v) <= 1
    dense = a + u[keep][:, None] * (b - a) + v[keep][:, None] * (c - a)
    p = rng.normal(0, 1.5, (40, 3))
    q, bary = A._closest_on_triangles(p, *(np.repeat(x[None], len(p), axis=0) for x in (a, b, c)))
    d = np.linalg.norm(p - q, axis=1)
    ref = cKDTree(dense).query(p)[0]
    assert np.all(d <= ref + 1e-12)  # never worse than any sample of the triangle
    assert np.allclose(d, ref, atol=0.01)  # and within the sampling step of the best
    assert np.all(bary >= -1e-12) and np.allclose(bary.sum(axis=1), 1.0)


def test_bone_model_with_a_canal_mesh(tmp_path, l3: Vertebra, l3_mesh) -> None:
    A.save_mesh(l3_mesh, tmp_path / "L3.stl")
    A.save_mesh(l3.canal_mesh(1e-3), tmp_path / "L3_canal.stl")
    bone = BoneModel.from_files({"L3": tmp_path / "L3.stl"}, canals={"L3": tmp_path / "L3_canal.stl"})
    P = l3.params
    canal_y = P.body_semi_depth + P.canal_semi_depth
    pts = np.array([[0.0, canal_y, 0.0], [0.0, 0.0, 0.0], [0.0, canal_y, 0.05]])
    assert bone.region(pts).tolist() == [Region.CANAL, Region.CANCELLOUS, Region.OUTSIDE]
    assert bone.canal_sdf(pts[:1])[0] == pytest.approx(l3.canal_sdf(pts[:1])[0], abs=0.1 * MM)


def test_phantom_distance_is_never_overestimated_and_mostly_exact(l3: Vertebra, l3_mesh) -> None:
    """Against the exact distance to the (1 mm) marching-cubes surface: the CSG field never
    exceeds the true distance (min/max composition gives a lower bound at union seams and where
    the canal is carved out), so clearances computed from it are never optimistic; and it is
    exact almost everywhere."""
    msdf = A.MeshSDF(l3_mesh, exact_band=1.0)
    lo, hi = l3.local_bounds()
    p = np.random.default_rng(11).uniform(lo - 3 * MM, hi + 3 * MM, (3000, 3))
    d = l3.sdf(p)
    m = msdf(p)
    tol = 0.3 * MM  # the mesh is the surface to within a third of its grid step
    clear = np.abs(d) > tol
    assert np.all(np.sign(d[clear]) == np.sign(m[clear]))
    assert np.all(np.abs(d) <= np.abs(m) + tol)
    # agreement is limited by the mesh (marching cubes chamfers the box edges by up to ~0.5 mm)
    assert np.mean(np.abs(d - m) < 0.5 * MM) > 0.95
    assert np.mean(np.abs(d - m)[d < 0] < tol) > 0.9
