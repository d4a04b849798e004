"""Bone surfaces from a CT segmentation label map (NIfTI, as TotalSegmentator and 3D Slicer write).

``meshes_from_labelmap(path, {"L1": 20, "L2": 21})`` reads the label map with nibabel, takes each
label's voxels (the largest connected piece; stray islands are dropped and noted), smooths the
binary mask slightly (Gaussian, ``smooth_voxels``) so that the surface is not a staircase, and
meshes it with marching cubes (scikit-image) at the 0.5 level. Vertices go through the image's
affine (voxel -> RAS millimetres, NIfTI's world frame) and then to the DICOM LPS frame Machaon
plans in (x to the patient's left, y posterior, z superior: x and y negated), in metres.

Bad input raises ``MeshFileError``: unreadable file, not a 3-D integer label volume, a label that
is not in the map (the message lists those that are), a spatial unit other than mm/m/um.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh
from scipy import ndimage

from machaon.ortho.mesh_repair import MeshFileError, MeshRepair, check_vertebra_scale, repair_bone_mesh

log = logging.getLogger(__name__)

_UNIT_TO_M = {"mm": 1e-3, "meter": 1.0, "micron": 1e-6, "unknown": 1e-3}
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def parse_labels(text: str) -> dict[str, int]:
    """``"L1=20,L2=21"`` -> ``{"L1": 20, "L2": 21}``; ``ValueError`` naming the bad item."""
    out: dict[str, int] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        try:
            label = int(value)
        except ValueError:
            label = -1
        if not sep or not name or label <= 0:
            raise ValueError(f"bad label {item!r}: expected NAME=VALUE with a positive integer VALUE, e.g. L1=20")
        if name in out:
            raise ValueError(f"level {name} given twice")
        out[name] = label
    if not out:
        raise ValueError("no labels given: expected e.g. L1=20,L2=21")
    return out


def meshes_from_labelmap(
    path: str | Path, labels: dict[str, int], smooth_voxels: float = 0.6, max_hole_perimeter_m: float = 0.03
) -> dict[str, MeshRepair]:
    """Closed bone surfaces (metres, LPS image frame) of the given labels; see the module doc."""
    import nibabel as nib
    from skimage.measure import marching_cubes

    p = Path(path)
    if not p.is_file():
        raise MeshFileError(f"{p}: no such file")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises several types for bad files
        raise MeshFileError(f"{p}: not a readable NIfTI label map ({exc})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise MeshFileError(f"{p}: expected a 3-D label volume, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all() or np.any(data != np.round(data)):
            raise MeshFileError(f"{p}: voxel values are not integer labels")
    data = np.asarray(data).astype(np.int64, copy=False)
    space_unit = img.header.get_xyzt_units()[0] if hasattr(img.header, "get_xyzt_units") else "unknown"
    to_m = _UNIT_TO_M.get(space_unit or "unknown")
    if to_m is None:
        raise MeshFileError(f"{p}: unsupported spatial unit {space_unit!r}")
    affine = np.asarray(img.affine, float)
    present = sorted(int(v) for v in np.unique(data) if v != 0)
    out: dict[str, MeshRepair] = {}
    for level, value in labels.items():
        mask = data == value
        if not mask.any():
            shown = ", ".join(str(v) for v in present[:40]) or "none"
            raise MeshFileError(f"{p}: label {value} ({level}) is not in the map (labels present: {shown})")
        lab, n = ndimage.label(mask)
        notes = []
        if n > 1:
            sizes = ndimage.sum(mask, lab, range(1, n + 1))
            mask = lab == (1 + int(np.argmax(sizes)))
            notes.append(f"kept the largest of {n} separate pieces of label {value}")
        idx = np.argwhere(mask)
        lo = np.maximum(idx.min(axis=0) - 3, 0)
        hi = np.minimum(idx.max(axis=0) + 4, mask.shape)
        crop = np.zeros(tuple(hi - lo + 4), dtype=float)  # 2 voxels of background on every side
        crop[2:-2, 2:-2, 2:-2] = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        if smooth_voxels > 0:
            crop = ndimage.gaussian_filter(crop, smooth_voxels)
        verts, faces, _, _ = marching_cubes(crop, level=0.5)
        ijk = verts + lo - 2
        ras = ijk @ affine[:3, :3].T + affine[:3, 3]
        lps_m = (ras @ RAS_TO_LPS.T) * to_m
        mesh = trimesh.Trimesh(vertices=lps_m, faces=faces, process=True)
        if mesh.volume < 0:  # the affine (and RAS -> LPS) may mirror the voxel grid
            mesh.invert()
        check_vertebra_scale(mesh, f"{p.name} label {value} ({level})", "mm")
        rep = repair_bone_mesh(mesh, level, max_hole_perimeter_m)
        out[level] = MeshRepair(level, rep.mesh, rep.faces_in, tuple(notes) + rep.notes)
    return out


def write_labelmap(path: str | Path, volume: np.ndarray, affine: np.ndarray) -> None:
    """Write an integer label volume as NIfTI (spatial unit mm) with ``affine`` (voxel -> RAS mm)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(volume, dtype=np.int16), np.asarray(affine, float))
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


__all__ = ["RAS_TO_LPS", "meshes_from_labelmap", "parse_labels", "write_labelmap"]
