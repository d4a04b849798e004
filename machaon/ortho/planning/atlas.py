"""Planning on bone meshes: an atlas fit of the phantom to each mesh gives the starting trajectories.

The phantom vertebra is the template, the mesh is the truth: the fitted phantom's pedicle axes
start ``optimize_screw`` on the mesh, whose clearances then count.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from machaon.ortho.anatomy import (
    MM,
    SIDES,
    AnatomyError,
    BoneModel,
    Vertebra,
    VertebraParams,
    load_mesh,
    surface_samples,
)
from machaon.ortho.planning.auto import auto_plan
from machaon.ortho.planning.plan import Plan, PlanError

log = logging.getLogger(__name__)

def fit_phantom_to_mesh(
    mesh: trimesh.Trimesh, level: str, params: VertebraParams | None = None, n_points: int = 1500, seed: int = 0
) -> tuple[Vertebra, float]:
    """Place the phantom vertebra of ``level`` on a bone mesh (image frame, m); returns it and the RMS fit.

    Rigid point-to-plane ICP (``registration.icp_point_to_plane``) of phantom surface samples onto
    the mesh surface, started from the identity and from the proper rotations that map the
    phantom's principal axes onto the mesh's within 90 deg of the identity (the mesh must be in
    an LPS image frame, as CT-derived meshes are); the best fit (robust score over all points,
    misfits capped at 3 mm) wins. The placed phantom's pedicle axes are starting
    trajectories for ``optimize_screw`` on the mesh (an atlas approach: the phantom is a
    template, the mesh is the truth). Raises ``PlanError`` when the mesh is empty.
    """
    from machaon.ortho.registration import RegistrationError, icp_point_to_plane

    if len(mesh.faces) == 0:
        raise PlanError("mesh: no triangles")
    v0 = Vertebra(params, level)
    src, _ = surface_samples(v0, n_points, seed=seed, spacing=1.5e-3)
    dst, fidx = trimesh.sample.sample_surface(mesh, 8 * n_points, seed=seed)
    dst = np.asarray(dst, dtype=float)
    dst_n = np.asarray(mesh.face_normals, dtype=float)[fidx]
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    tree = cKDTree(dst)

    def score(T: np.ndarray) -> float:
        # robust fit score over all points (misfits count, capped at 3 mm, so that rejecting a
        # mismatched part as outliers cannot make a wrong pose look good)
        d, _ = tree.query(src @ T[:3, :3].T + T[:3, 3])
        return float(np.mean(np.minimum(d, 3 * MM) ** 2))

    inits = _principal_axis_starts(src - cs, dst - cd)
    best: tuple[float, np.ndarray] | None = None
    for R in inits:
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = cd - R @ cs
        try:
            r = icp_point_to_plane(src, dst, dst_n, T, max_iterations=25, max_distance=0.02, outlier_k=4.0)
        except RegistrationError:
            continue
        sc = score(r.T_dst_src)
        if best is None or sc < best[0]:
            best = (sc, r.T_dst_src)
    if best is None:
        raise PlanError(f"mesh: could not fit the {level} phantom to it")
    r = icp_point_to_plane(src, dst, dst_n, best[1], max_iterations=60, max_distance=0.01)
    log.info("phantom %s fitted to mesh: rms %.2f mm, %d/%d inliers", level, r.rms / MM, r.n_inliers, len(src))
    return Vertebra(v0.params, level, r.T_dst_src), r.rms


def _principal_axis_starts(src: np.ndarray, dst: np.ndarray) -> list[np.ndarray]:
    """Start rotations for fitting centred points ``src`` to ``dst``: the identity and the proper
    rotations mapping ``src``'s principal axes onto ``dst``'s within 90 deg of the identity."""
    _, _, Vs = np.linalg.svd(src, full_matrices=False)
    _, _, Vd = np.linalg.svd(dst, full_matrices=False)
    inits = [np.eye(3)]
    for perm in itertools.permutations(range(3)):
        for sx in (1.0, -1.0):
            for sy in (1.0, -1.0):
                M = np.zeros((3, 3))
                for k, j in enumerate(perm):
                    M[j, k] = (sx, sy, 1.0)[k]
                R = Vd.T @ M @ Vs
                if np.linalg.det(R) < 0:
                    R = Vd.T @ (M @ np.diag([1.0, 1.0, -1.0])) @ Vs
                # the mesh is in an LPS image frame: keep orientations within 90 deg of it
                if np.trace(R) > 1.0 - 1e-9:
                    inits.append(R)
    return inits


def plan_mesh(
    paths: str | Path | Sequence[str | Path],
    levels: Sequence[str],
    *,
    units: str = "mm",
    starts: Plan | None = None,
    length_fraction: float = 0.8,
    diameter: float | None = None,
    sides: Sequence[str] = SIDES,
) -> tuple[Plan, BoneModel]:
    """Auto-plan pedicle screws on bone meshes (STL/OBJ/PLY; ``units`` in the files).

    One file with several closed parts is split into parts assigned to ``levels`` from the most
    cranial (largest image z) down; several files are taken in the order of ``levels``. Without
    ``starts`` the phantom of each level is fitted to its part (``fit_phantom_to_mesh``) and its
    pedicle axes start the optimisation; the clearances are then those of the mesh. Raises
    ``PlanError`` when the parts and levels do not match.
    """
    levels = [str(lv).upper() for lv in levels]
    files = [paths] if isinstance(paths, (str, Path)) else list(paths)
    try:
        meshes = [load_mesh(f, {"mm": MM, "m": 1.0}[units]) for f in files]
    except KeyError:
        raise PlanError(f"units: expected 'mm' or 'm', got {units!r}") from None
    except AnatomyError as exc:
        raise PlanError(str(exc)) from None
    if len(meshes) == 1 and len(levels) > 1:
        parts = [m for m in meshes[0].split(only_watertight=False) if len(m.faces) > 100]
        parts.sort(key=lambda m: -float(m.centroid[2]))
    else:
        parts = meshes
    if len(parts) != len(levels):
        raise PlanError(f"mesh: {len(parts)} bone part(s) but {len(levels)} level(s) given ({levels})")
    frames, axes = {}, {}
    if starts is None:
        for lv, part in zip(levels, parts, strict=True):
            v, rms = fit_phantom_to_mesh(part, lv)
            if rms > 1.5 * MM:
                log.warning("phantom %s fits the mesh poorly (rms %.2f mm); check the plan", lv, rms / MM)
            frames[lv] = v.T_image_vertebra
            for side in SIDES:
                axes[(lv, side)] = v.pedicle_axis(lv, side)
    try:
        bone = BoneModel(dict(zip(levels, parts, strict=True)), level_frames=frames, pedicle_axes=axes)
    except AnatomyError as exc:
        raise PlanError(str(exc)) from None
    plan = auto_plan(bone, starts=starts, length_fraction=length_fraction, diameter=diameter, sides=sides)
    return Plan(plan.screws, None, {**plan.meta, "mesh": [str(f) for f in files]}), bone
