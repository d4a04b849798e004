"""Bone anatomy for planning: a parametric vertebra phantom, a spine segment, and meshes.

Every model answers the same questions about points given in the **image frame** (metres):

- ``sdf(points)``: signed distance to the outer bone surface, negative inside bone;
- ``canal_sdf(points)``: signed distance to the spinal canal, negative inside the canal;
- ``region(points)``: ``Region`` codes (OUTSIDE, CORTICAL, CANCELLOUS, CANAL);
- ``mesh()``: a ``trimesh.Trimesh`` of the bone surface (for display and PyBullet collision);
- ``pedicle_axis(level, side)``: the ground-truth pedicle axis where the model knows it.

Vertebra frame (each level's own frame, also the frame of ``VertebraParams``): origin at the
centre of the vertebral body, x to the patient's left, y posterior, z superior (cranial), i.e. the
DICOM LPS convention. ``T_image_vertebra`` places a vertebra in the image frame.

The phantom is a constructive-solid-geometry composition (hard min/max) of exact distance
primitives: elliptic cylinders (distance to the ellipse computed by an iterative closest-point
solve, accurate to ~1e-10 m) and boxes. Its zero level set (the surface, hence every in/out and
region answer) is exact; the magnitude is the exact distance at most points and a lower bound
near the seams of unions and where the canal is carved out, so clearances computed from it are
never over-estimated. ``SpineSegment`` evaluates each level exactly within
``exact_band_m`` of its bounding box and returns a lower bound (>= the band) farther away.

Bad input (NaN, Inf, wrong shape) raises ``ValueError`` naming the argument.

The package, one concept per module:

- ``base``: the ``Anatomy`` protocol every model follows, ``Region`` codes, ``PedicleAxis``;
- ``primitives``: the exact distance primitives and the CSG program of the compiled kernel;
- ``vertebra``: ``VertebraParams`` (morphometry presets) and the ``Vertebra`` phantom;
- ``spine``: ``SpineSegment``, several vertebrae along a sagittal curve;
- ``mesh``: marching cubes, mesh files, ``MeshSDF`` (exact distance to a triangle mesh);
- ``bone_model``: ``BoneModel``, bone from surface meshes;
- ``queries``: ray exits, surface samples and normals of any ``Anatomy``.

Everything public is importable from ``machaon.ortho.anatomy`` itself.
"""

from machaon.ortho.anatomy.base import MM, SIDES, Anatomy, AnatomyError, PedicleAxis, Region, region_from_sdf
from machaon.ortho.anatomy.bone_model import BoneModel
from machaon.ortho.anatomy.mesh import MeshSDF, load_mesh, marching_cubes_mesh, save_mesh
from machaon.ortho.anatomy.primitives import box_sdf, ellipse_sdf
from machaon.ortho.anatomy.queries import ray_exit, ray_exits, sdf_gradient, surface_samples
from machaon.ortho.anatomy.spine import SpineSegment
from machaon.ortho.anatomy.vertebra import Vertebra, VertebraParams

__all__ = [
    "MM",
    "SIDES",
    "Region",
    "AnatomyError",
    "Anatomy",
    "VertebraParams",
    "PedicleAxis",
    "Vertebra",
    "SpineSegment",
    "BoneModel",
    "MeshSDF",
    "ellipse_sdf",
    "box_sdf",
    "ray_exit",
    "region_from_sdf",
    "marching_cubes_mesh",
    "ray_exits",
    "load_mesh",
    "save_mesh",
    "surface_samples",
    "sdf_gradient",
]
