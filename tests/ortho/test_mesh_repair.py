"""Bone meshes as segmentation tools export them: repaired where safe, a clear error where not."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from machaon.errors import MachaonError
from machaon.ortho.mesh_repair import MeshFileError, load_bone_mesh, repair_bone_mesh

MM = 1e-3


def _bone(radius_mm: float = 20.0) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=radius_mm)


def _without(m: trimesh.Trimesh, centre: np.ndarray, r: float) -> trimesh.Trimesh:
    keep = np.linalg.norm(m.triangles_center - centre, axis=1) > r
    out = m.copy()
    out.update_faces(keep)
    out.remove_unreferenced_vertices()
    return out


def test_clean_mesh_loads_in_metres(tmp_path):
    _bone().export(tmp_path / "L3.stl")
    rep = load_bone_mesh(tmp_path / "L3.stl")
    assert rep.name == "L3" and rep.mesh.is_watertight
    assert rep.mesh.extents.max() == pytest.approx(0.04, rel=0.01)


def test_small_holes_duplicates_fragments_and_flipped_normals_are_repaired(tmp_path):
    m = _without(_bone(), np.array([0.0, 0.0, 20.0]), 3.0)  # a ~6 mm hole at the top
    frag = trimesh.creation.icosphere(subdivisions=1, radius=1.0)
    frag.apply_translation([40.0, 0.0, 0.0])
    inner = trimesh.creation.icosphere(subdivisions=2, radius=8.0)
    inner.invert()
    m = trimesh.util.concatenate([m, frag, inner])
    m.invert()  # everything inside out
    m.export(tmp_path / "L4.stl")  # STL stores every triangle's own vertices: duplicates on load
    rep = load_bone_mesh(tmp_path / "L4.stl")
    assert rep.mesh.is_watertight and rep.mesh.volume > 0
    notes = " ".join(rep.notes)
    for word in ("merged", "fragment", "inner shell", "filled"):
        assert word in notes, (word, notes)
    assert rep.mesh.volume == pytest.approx(4 / 3 * np.pi * 0.02**3, rel=0.03)


def test_open_surface_is_a_clear_error(tmp_path):
    m = _without(_bone(), np.array([0.0, 0.0, 20.0]), 15.0)  # the whole top cut away
    m.export(tmp_path / "open.stl")
    with pytest.raises(MeshFileError, match="not closed.*hole"):
        load_bone_mesh(tmp_path / "open.stl")


def test_two_bones_in_one_file(tmp_path):
    for gap in (45.0, 41.0):  # apart, and with touching bounding boxes (facets overlap in a spine)
        a, b = _bone(), _bone()
        b.apply_translation([0.0, 0.0, gap])
        trimesh.util.concatenate([a, b]).export(tmp_path / "two.stl")
        with pytest.raises(MeshFileError, match="one vertebra per file"):
            load_bone_mesh(tmp_path / "two.stl")


def test_a_bone_in_two_pieces_is_kept_whole(tmp_path):
    a = trimesh.creation.box(extents=(40.0, 30.0, 30.0))  # "body"
    b = trimesh.creation.icosphere(subdivisions=3, radius=8.0)  # "arch", cut off by 1 mm
    b.apply_translation([0.0, 24.0, 0.0])
    trimesh.util.concatenate([a.subdivide().subdivide(), b]).export(tmp_path / "L2.stl")
    rep = load_bone_mesh(tmp_path / "L2.stl")
    assert len(rep.mesh.split(only_watertight=False)) == 2 and rep.mesh.is_watertight
    assert any("kept a separate piece" in n for n in rep.notes)


def test_wrong_units_by_a_factor_1000(tmp_path):
    _bone(0.02).export(tmp_path / "in_metres.stl")  # 40 mm written as 0.04
    with pytest.raises(MeshFileError, match="metres.*factor of 1000"):
        load_bone_mesh(tmp_path / "in_metres.stl")
    _bone().export(tmp_path / "mm.stl")
    with pytest.raises(MeshFileError, match="millimetres.*factor of 1000"):
        load_bone_mesh(tmp_path / "mm.stl", units="m")


def test_unreadable_and_degenerate_files(tmp_path):
    (tmp_path / "x.stl").write_bytes(b"solid nothing\nendsolid\n")
    with pytest.raises(MeshFileError):
        load_bone_mesh(tmp_path / "x.stl")
    with pytest.raises(MeshFileError, match="no such file"):
        load_bone_mesh(tmp_path / "missing.stl")
    tiny = trimesh.creation.box(extents=(30.0, 30.0, 30.0))
    with pytest.raises(MeshFileError, match="too few"):
        repair_bone_mesh(tiny, "box")
    assert issubclass(MeshFileError, MachaonError) and issubclass(MeshFileError, ValueError)


def test_obj_and_ply_load_too(tmp_path):
    for ext in ("obj", "ply"):
        _bone().export(tmp_path / f"T12.{ext}")
        assert load_bone_mesh(tmp_path / f"T12.{ext}").mesh.is_watertight
