"""Bone surface meshes as segmentation tools export them: load, check the units, repair with trimesh.

A mesh from a CT segmentation (3D Slicer, TotalSegmentator, ITK-SNAP exports) is rarely clean:
duplicate vertices, degenerate or repeated triangles, flipped normals, small holes, stray
fragments and inner shells. ``repair_bone_mesh`` fixes what trimesh can fix safely and says what
it did (``MeshRepair.notes``):

- duplicate vertices merged, degenerate and duplicate triangles removed, unreferenced vertices
  dropped, winding and normals made consistent and outward (positive volume);
- fragments (shells with less than ``FRAGMENT_FRACTION`` of the main shell's area) and shells
  enclosed by the main one (an inner cortical surface) dropped; larger pieces overlapping the
  main shell's bounding box (an arch the segmentation cut off its body) kept as part of the bone;
- holes whose boundary loop is shorter than ``max_hole_perimeter_m`` closed by trimesh's fan
  filling.

What cannot be fixed safely raises ``MeshFileError`` (a ``MachaonError``/``ValueError``) with a
message saying what to do: a hole larger than that (the surface is open), several shells of
similar size (more than one bone in one file), too few triangles to be a bone, or a size that
is a vertebra's only after a factor of 1000 (metres written as millimetres, or the reverse).
Inside, everything is metres in the file's (image) frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from machaon.errors import OrthoError

log = logging.getLogger(__name__)

MM = 1e-3
FRAGMENT_FRACTION = 0.05  # shells smaller than this share of the main shell's area are debris
SECOND_BONE_FRACTION = 0.25  # a separate shell this large, away from the main one, is another bone
SAME_BONE_FRACTION = 0.6  # a touching shell nearly as large as the main one is the next vertebra
PIECE_GAP_M = 2 * MM  # a shell overlapping the main one's box grown by this is a piece of the same bone
VERTEBRA_SIZE_M = (0.015, 0.25)  # largest extent of a vertebra (or a small spine part), m
MIN_FACES = 20


class MeshFileError(OrthoError, ValueError):
    """A bone mesh file cannot be used as it is (unreadable, open, several bones, wrong units)."""


@dataclass(frozen=True)
class MeshRepair:
    """A repaired, closed bone mesh (metres, image frame) and what was done to it."""

    name: str
    mesh: trimesh.Trimesh
    faces_in: int
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "faces_in": self.faces_in, "faces": int(len(self.mesh.faces)),
                "notes": list(self.notes)}


def check_vertebra_scale(mesh: trimesh.Trimesh, name: str, units: str) -> None:
    """Raise ``MeshFileError`` when ``mesh`` (already in metres) is not the size of a vertebra."""
    size = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
    lo, hi = VERTEBRA_SIZE_M
    if lo <= size <= hi:
        return
    if lo <= size * 1e3 <= hi:
        raise MeshFileError(
            f"{name}: the bone is {size * 1e3:.3g} mm across with units={units!r}: the file looks like it is "
            "in metres (a factor of 1000); export it in millimetres (or say the units)")
    if lo <= size * 1e-3 <= hi:
        raise MeshFileError(
            f"{name}: the bone is {size:.3g} m across with units={units!r}: the file looks like it is in "
            "millimetres (a factor of 1000); say the right units")
    raise MeshFileError(f"{name}: the bone is {size * 1e3:.3g} mm across; not the size of a vertebra")


def _boundary_loops(mesh: trimesh.Trimesh) -> list[float]:
    """Perimeters (m) of the open boundary loops of ``mesh``."""
    if mesh.is_watertight:
        return []
    out = mesh.outline()
    return [float(e.length(out.vertices)) for e in out.entities]


def _clean_triangles(mesh: trimesh.Trimesh, notes: list[str]) -> trimesh.Trimesh:
    """A copy of ``mesh`` with duplicate vertices merged and degenerate, duplicate triangles and
    unreferenced vertices removed (each repair noted)."""
    m = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, float), faces=np.asarray(mesh.faces), process=False)
    n_v = len(m.vertices)
    m.merge_vertices()
    if len(m.vertices) < n_v:
        notes.append(f"merged {n_v - len(m.vertices)} duplicate vertices")
    keep = m.nondegenerate_faces()
    if not keep.all():
        notes.append(f"removed {int((~keep).sum())} degenerate triangles")
        m.update_faces(keep)
    uniq = m.unique_faces()
    if uniq.sum() < len(m.faces):
        notes.append(f"removed {len(m.faces) - int(uniq.sum())} duplicate triangles")
        m.update_faces(uniq)
    m.remove_unreferenced_vertices()
    return m


def _keep_the_bone(m: trimesh.Trimesh, name: str, notes: list[str]) -> trimesh.Trimesh:
    """Of the separate shells of ``m``, the largest and the pieces of the same bone beside it;
    fragments, inner shells and small stray pieces are dropped (noted). Raises ``MeshFileError``
    when a second shell is as large as a second bone (two vertebrae in one file)."""
    shells = m.split(only_watertight=False)
    if len(shells) <= 1:
        return m
    shells = sorted(shells, key=lambda s: -float(s.area))
    main = shells[0]
    kept = [main]
    lo, hi = main.bounds
    for s in shells[1:]:
        inside = bool(np.all(s.bounds[0] >= lo) and np.all(s.bounds[1] <= hi))
        if s.area < FRAGMENT_FRACTION * main.area:
            notes.append(f"dropped a fragment of {len(s.faces)} triangles")
        elif inside and (not main.is_watertight or bool(main.contains(s.vertices[:50]).all())):
            notes.append(f"dropped an inner shell of {len(s.faces)} triangles")
        elif (s.area < SAME_BONE_FRACTION * main.area and np.all(s.bounds[0] <= hi + PIECE_GAP_M)
              and np.all(s.bounds[1] >= lo - PIECE_GAP_M)):
            # a piece of the same bone the segmentation cut off (an arch apart from its body)
            kept.append(s)
            notes.append(f"kept a separate piece of {len(s.faces)} triangles as part of the bone")
        elif s.area >= SECOND_BONE_FRACTION * main.area:
            raise MeshFileError(
                f"{name}: {len(shells)} separate surfaces of similar size: one vertebra per file "
                "(or give a label map with one label per vertebra)")
        else:
            notes.append(f"dropped a separate piece of {len(s.faces)} triangles")
    return kept[0] if len(kept) == 1 else trimesh.util.concatenate(kept)


def _close_holes(m: trimesh.Trimesh, name: str, max_hole_perimeter_m: float, notes: list[str]) -> None:
    """Fill the holes of ``m`` in place when none is larger than ``max_hole_perimeter_m`` around
    (m); ``MeshFileError`` when one is, or when filling leaves the surface open."""
    if m.is_watertight:
        return
    loops = _boundary_loops(m)
    big = [p for p in loops if p > max_hole_perimeter_m]
    if big:
        raise MeshFileError(
            f"{name}: the surface is not closed: {len(loops)} hole(s), the largest {max(loops) / MM:.0f} mm "
            f"around (holes up to {max_hole_perimeter_m / MM:.0f} mm are filled); close it in the "
            "segmentation tool")
    trimesh.repair.fill_holes(m, use_fan=True)
    if not m.is_watertight:
        raise MeshFileError(f"{name}: the surface is not closed and its holes could not be filled "
                            "(non-manifold edges); repair it in the segmentation tool")
    notes.append(f"filled {len(loops)} hole(s) up to {max(loops) / MM:.1f} mm around")


def repair_bone_mesh(
    mesh: trimesh.Trimesh, name: str = "mesh", max_hole_perimeter_m: float = 30 * MM
) -> MeshRepair:
    """Repair ``mesh`` (metres) as described in the module docstring; ``MeshFileError`` if it cannot be."""
    faces_in = int(len(mesh.faces))
    if faces_in < MIN_FACES:
        raise MeshFileError(f"{name}: {faces_in} triangles; too few to be a bone surface")
    if not np.isfinite(mesh.vertices).all():
        raise MeshFileError(f"{name}: vertices with NaN or Inf coordinates")
    notes: list[str] = []
    m = _keep_the_bone(_clean_triangles(mesh, notes), name, notes)
    _close_holes(m, name, max_hole_perimeter_m, notes)
    if not m.is_winding_consistent:
        trimesh.repair.fix_winding(m)
    trimesh.repair.fix_normals(m)
    if m.volume < 0:
        m.invert()
        notes.append("inverted the normals (they pointed inwards)")
    if not (m.is_watertight and m.volume > 0):
        raise MeshFileError(f"{name}: could not make a closed outward surface")
    return MeshRepair(name, m, faces_in, tuple(notes))


def load_bone_mesh(path: str | Path, units: str = "mm", max_hole_perimeter_m: float = 30 * MM) -> MeshRepair:
    """Load an STL/OBJ/PLY bone mesh in ``units`` ('mm' or 'm'), check its size, repair it (metres).

    The name is the file stem (as segmentation tools name their exports). ``MeshFileError`` for
    unreadable files, wrong units (factor of 1000) and what cannot be repaired.
    """
    scale = {"mm": MM, "m": 1.0}.get(units)
    if scale is None:
        raise MeshFileError(f"units: expected 'mm' or 'm', got {units!r}")
    p = Path(path)
    if not p.is_file():
        raise MeshFileError(f"{p}: no such file")
    try:
        raw = trimesh.load(str(p), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for bad files
        raise MeshFileError(f"{p}: cannot read a mesh ({exc})") from None
    if not isinstance(raw, trimesh.Trimesh) or len(raw.faces) == 0:
        raise MeshFileError(f"{p}: no triangles in the file")
    raw = raw.copy()
    raw.apply_scale(scale)
    if not np.isfinite(raw.vertices).all():
        raise MeshFileError(f"{p}: vertices with NaN or Inf coordinates")
    check_vertebra_scale(raw, str(p), units)
    rep = repair_bone_mesh(raw, p.stem, max_hole_perimeter_m)
    for n in rep.notes:
        log.info("%s: %s", p.name, n)
    return rep


def mesh_summary(mesh: trimesh.Trimesh) -> dict:
    """Triangles, extents (mm) and volume (cm^3) of a mesh in metres, for reports."""
    return {"faces": int(len(mesh.faces)), "extents_mm": np.round(mesh.extents / MM, 2).tolist(),
            "volume_cm3": round(float(mesh.volume) * 1e6, 3) if mesh.is_watertight else None,
            "watertight": bool(mesh.is_watertight), "genus": int(round(1 - mesh.euler_number / 2))
            if mesh.is_watertight and math.isfinite(mesh.euler_number) else None}


__all__ = [
    "MeshFileError",
    "MeshRepair",
    "check_vertebra_scale",
    "load_bone_mesh",
    "mesh_summary",
    "repair_bone_mesh",
]
