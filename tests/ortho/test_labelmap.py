"""Planning from a CT label map (NIfTI via nibabel, surfaces by marching cubes)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy import ndimage

from machaon.ortho.labelmap import meshes_from_labelmap, parse_labels, write_labelmap
from machaon.ortho.mesh_anatomy import fill_voxels
from machaon.ortho.mesh_planning import plan_labelmap
from machaon.ortho.mesh_repair import MeshFileError
from tests._realdata import myo_sim_vertebra

MM = 1e-3


def _labelmap(tmp_path, levels=("L3", "L4"), values=(22, 23), pitch_mm=0.8):
    """Voxelise the real vertebrae into a label volume with a RAS affine, as a CT segmentation."""
    meshes = [myo_sim_vertebra(lv) for lv in levels]
    for i, m in enumerate(meshes):
        m.apply_translation([0.0, 0.0, -35.0 * i])
    both = trimesh.util.concatenate(meshes)
    B, org = fill_voxels(both, pitch_mm)
    lab, n = ndimage.label(B)
    vol = np.zeros(B.shape, dtype=np.int16)
    for comp, c in enumerate(ndimage.center_of_mass(B, lab, range(1, n + 1)), start=1):
        p = org + pitch_mm * np.asarray(c)
        owner = next(i for i, m in enumerate(meshes) if np.all(p >= m.bounds[0] - 1) and np.all(p <= m.bounds[1] + 1))
        vol[lab == comp] = values[owner]
    # voxel (i, j, k) sits at LPS = org + pitch * (i, j, k); RAS = (-x, -y, z)
    affine = np.array([[-pitch_mm, 0, 0, -org[0]], [0, -pitch_mm, 0, -org[1]], [0, 0, pitch_mm, org[2]],
                       [0, 0, 0, 1.0]])
    path = tmp_path / "seg.nii.gz"
    write_labelmap(path, vol, affine)
    return path, meshes


def test_label_surfaces_land_where_the_bones_are(tmp_path):
    path, meshes = _labelmap(tmp_path)
    reps = meshes_from_labelmap(path, {"L3": 22, "L4": 23})
    for (lv, rep), src in zip(reps.items(), meshes, strict=True):
        m = rep.mesh
        assert m.is_watertight and len(m.faces) > 5000, lv  # marching cubes: a dense surface
        assert np.allclose(m.centroid, src.centroid * MM, atol=0.5 * MM), lv
        assert m.volume == pytest.approx(src.volume * MM**3, rel=0.06), lv


def test_plan_from_the_label_map(tmp_path):
    path, _ = _labelmap(tmp_path)
    mp = plan_labelmap(path, parse_labels("L3=22,L4=23"))
    assert [s.name for s in mp.plan.screws] == ["L3-L", "L3-R", "L4-L", "L4-R"]
    for rep in mp.reports:
        assert rep.breach is None and rep.cortex_clearance > 0.4 * MM and rep.canal_clearance > 1 * MM, rep
        assert rep.tip_to_anterior_cortex > 5 * MM and rep.ok, rep


def test_bad_labels(tmp_path):
    path, _ = _labelmap(tmp_path, levels=("L3",), values=(22,))
    with pytest.raises(MeshFileError, match=r"label 30 \(L1\) is not in the map \(labels present: 22\)"):
        meshes_from_labelmap(path, {"L1": 30})
    for bad in ("L1", "L1=", "L1=x", "=3", "L1=0", "L1=3,L1=4", ""):
        with pytest.raises(ValueError):
            parse_labels(bad)
    assert parse_labels(" l1=20, L2=21 ") == {"L1": 20, "L2": 21}
    (tmp_path / "x.nii.gz").write_bytes(b"junk")
    with pytest.raises(MeshFileError, match="not a readable NIfTI"):
        meshes_from_labelmap(tmp_path / "x.nii.gz", {"L1": 1})
