"""Triangle meshes for scene objects: arrays from a mesh file or a pair, a primitive bone, vertex normals.

Vertices in metres, faces as int32 index triples. Bad meshes (wrong shapes, indices out of range,
NaN, unreadable files) raise ``ValueError`` naming the problem.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from machaon._validate import finite_array

__all__ = ["MeshInput", "mesh_arrays", "primitive_bone_mesh"]

# A triangle mesh as the sim takes it: (vertices (N, 3) m, faces (M, 3) vertex indices), or a mesh file.
MeshInput = tuple[ArrayLike, ArrayLike] | str | os.PathLike[str]


def mesh_arrays(mesh: MeshInput) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N,3) float64 m, faces (M,3) int32)`` from a pair of arrays or a mesh file path."""
    if isinstance(mesh, str | os.PathLike):
        import trimesh

        path = Path(mesh)
        if not path.is_file():
            raise ValueError(f"mesh: file not found: {path}")
        try:
            tm = trimesh.load_mesh(str(path), force="mesh")
        except Exception as exc:  # trimesh raises many types for bad files
            raise ValueError(f"mesh: cannot read {path} ({exc})") from None
        V, F = np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces)
    else:
        try:
            V, F = mesh  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError("mesh: expected (vertices, faces) or a file path") from None
        V = finite_array("mesh vertices", V, (None, 3))
        F = np.asarray(F)
    if F.ndim != 2 or F.shape[1] != 3 or not np.issubdtype(F.dtype, np.integer) or len(F) == 0:
        raise ValueError(f"mesh faces: expected a non-empty (M, 3) integer array, got {F.shape} {F.dtype}")
    if len(V) < 3 or F.min() < 0 or F.max() >= len(V):
        raise ValueError("mesh faces: indices out of range of the vertices")
    if not np.isfinite(V).all():
        raise ValueError("mesh vertices: contain NaN or Inf")
    return np.ascontiguousarray(V, dtype=np.float64), np.ascontiguousarray(F, dtype=np.int32)


def primitive_bone_mesh(length: float = 0.30, shaft_radius: float = 0.014, sections: int = 24) -> tuple:
    """A femur-like phantom along +x: a shaft with a condyle block at each end (vertices m, faces).

    Built with trimesh primitives (capsule shaft, two ellipsoidal ends) and concatenated. Centred
    at the origin; the shaft axis is x, the anterior surface faces +z.
    """
    import trimesh

    shaft = trimesh.creation.capsule(height=length * 0.8, radius=shaft_radius, count=[sections, sections])
    shaft.apply_transform(trimesh.transformations.rotation_matrix(math.pi / 2, [0, 1, 0]))
    ends = []
    for sgn in (-1.0, 1.0):
        e = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        e.apply_scale([shaft_radius * 2.2, shaft_radius * 2.6, shaft_radius * 2.0])
        e.apply_translation([sgn * length * 0.42, 0.0, 0.0])
        ends.append(e)
    tm = trimesh.util.concatenate([shaft, *ends])
    return np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int32)


def _vertex_normals(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    fn = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    vn = np.zeros_like(V)
    for k in range(3):
        np.add.at(vn, F[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return vn / norm
