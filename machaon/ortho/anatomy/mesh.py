"""Triangle meshes of bone: marching cubes of a distance field, mesh files, exact distance to a mesh.

Files are in millimetres by default (as CT segmentations export them); metres inside.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from machaon.ortho.anatomy.base import MM, AnatomyError


def marching_cubes_mesh(sdf_fn, lo: np.ndarray, hi: np.ndarray, spacing: float, level: float = 0.0) -> trimesh.Trimesh:
    """Mesh the ``level`` set of ``sdf_fn`` (points (N,3) -> (N,)) over the box [lo, hi] (m).

    Uses ``skimage.measure.marching_cubes``; the result has outward normals, metres.
    """
    from skimage.measure import marching_cubes

    if not (spacing > 0.0 and math.isfinite(spacing)):
        raise ValueError(f"spacing: must be a positive finite length, got {spacing}")
    # the odd offset keeps flat faces of the phantom (box sides, caps) off the grid planes, where
    # marching cubes would produce degenerate, non-manifold triangles
    lo = np.asarray(lo, float) - 2.3719 * spacing
    hi = np.asarray(hi, float) + 2 * spacing
    n = np.ceil((hi - lo) / spacing).astype(int) + 1
    if int(np.prod(n)) > 40_000_000:
        raise ValueError(f"spacing: {spacing} m gives a grid of {tuple(n)} points; use a coarser spacing")
    axes = [lo[i] + spacing * np.arange(n[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    vol = sdf_fn(grid).reshape(tuple(n))
    vol[np.abs(vol) < 1e-12] = 1e-12
    verts, faces, _normals, _ = marching_cubes(vol, level=level, spacing=(spacing,) * 3)
    mesh = trimesh.Trimesh(vertices=verts + lo, faces=faces, process=True)
    # skimage orients faces so that normals point towards increasing values, i.e. outward for an
    # SDF that is negative inside; make sure of it (volume must come out positive).
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def load_mesh(path: str | Path, scale: float = MM) -> trimesh.Trimesh:
    """Load one mesh file and scale it to metres (``scale`` = metres per file unit)."""
    try:
        m = trimesh.load(str(path), force="mesh")
    except Exception as exc:  # trimesh raises many types for bad files
        raise AnatomyError(f"{path}: cannot read mesh ({exc})") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise AnatomyError(f"{path}: no triangles")
    if not np.isfinite(m.vertices).all():
        raise AnatomyError(f"{path}: non-finite vertices")
    m = m.copy()
    m.apply_scale(scale)
    return m


def save_mesh(mesh: trimesh.Trimesh, path: str | Path, scale: float = 1.0 / MM) -> None:
    """Write ``mesh`` (m) to STL/OBJ/PLY scaled by ``scale`` (default: to mm)."""
    m = mesh.copy()
    m.apply_scale(scale)
    m.export(str(path))


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest points on triangles (a, b, c) to p (all (M, 3)); returns (points, barycentric (M, 3))."""
    ab = b - a
    ac = c - a
    ap = p - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-300, 1e-300, denom)
    v = vb / denom  # face interior by default
    w = vc / denom
    done = np.zeros(len(p), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = np.clip(d1 / (d1 - d3), 0, 1)
        t_ac = np.clip(d2 / (d2 - d6), 0, 1)
        t_bc = np.clip((d4 - d3) / ((d4 - d3) + (d5 - d6)), 0, 1)
    # Voronoi regions in priority order: vertex a, b, c, edge ab, ac, bc (Ericson 2005, 5.1.5)
    regions = (
        ((d1 <= 0) & (d2 <= 0), 0.0, 0.0),
        ((d3 >= 0) & (d4 <= d3), 1.0, 0.0),
        ((d6 >= 0) & (d5 <= d6), 0.0, 1.0),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), t_ab, 0.0),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), 0.0, t_ac),
        ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), 1.0 - t_bc, t_bc),
    )
    for mask, vv, ww in regions:
        m = mask & ~done
        if m.any():
            v = np.where(m, vv, v)
            w = np.where(m, ww, w)
            done |= m
    bary = np.stack([1.0 - v - w, v, w], axis=1)
    pts = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:3] * c
    return pts, bary


class MeshSDF:
    """Exact unsigned distance to a triangle mesh, signed by interpolated vertex normals.

    Candidate triangles come from a ``cKDTree`` over triangle centroids; a candidate set is
    certified complete when the next centroid is farther than the best distance plus the largest
    triangle circumradius, otherwise a ball query completes it. That makes the distance exact
    within ``exact_band`` of the surface; farther away it may exceed the truth by up to the
    largest triangle's size (the sign is still that of the nearest triangle found). The mesh must
    be watertight with outward normals (``AnatomyError`` otherwise). Points and distances in the
    mesh's units.
    """

    def __init__(self, mesh: trimesh.Trimesh, k: int = 8, exact_band: float = 0.01) -> None:
        if not mesh.is_watertight:
            raise AnatomyError("mesh: not watertight; signed distance needs a closed surface")
        if mesh.volume < 0:
            mesh = mesh.copy()
            mesh.invert()
        self.mesh = mesh
        tri = mesh.triangles
        self._a, self._b, self._c = tri[:, 0].copy(), tri[:, 1].copy(), tri[:, 2].copy()
        cen = tri.mean(axis=1)
        self._rtri = np.linalg.norm(tri - cen[:, None], axis=2).max(axis=1)
        self._rmax = float(self._rtri.max())
        self._cen = cen
        self._tree = cKDTree(cen)
        self._vn = np.asarray(mesh.vertex_normals, dtype=float)
        self._faces = np.asarray(mesh.faces)
        self._k = int(min(k, len(cen)))
        self.exact_band = float(exact_band)

    def __call__(self, p: np.ndarray, exact: bool = True) -> np.ndarray:
        """Signed distances of points p (N, 3); ``exact=False`` skips the certification (the sign
        and an upper bound of the distance from the k nearest triangles: much faster)."""
        return self._query(p, exact)[0]

    def closest(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance (N,), closest surface points (N, 3)) for points p (N, 3)."""
        return self._query(p, True)

    def _query(self, p: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(p, dtype=float)
        n = len(p)
        dk, ik = self._tree.query(p, k=self._k)
        if self._k == 1:
            dk, ik = dk[:, None], ik[:, None]
        # all k candidates of all points in one vectorised call
        f_all = ik.reshape(-1)
        p_rep = np.repeat(p, self._k, axis=0)
        q_all, bary_all = _closest_on_triangles(p_rep, self._a[f_all], self._b[f_all], self._c[f_all])
        d_all = np.linalg.norm(p_rep - q_all, axis=1).reshape(n, self._k)
        j = np.argmin(d_all, axis=1)
        flat = np.arange(n) * self._k + j
        best = d_all[np.arange(n), j]
        best_pt = q_all[flat]
        best_bary = bary_all[flat]
        best_f = f_all[flat]
        # a triangle outside the k nearest centroids is at least dk[-1] - rmax away: points
        # where that could still beat the best get a complete ball query (vectorised)
        unsure = np.nonzero((dk[:, -1] - self._rmax < best) & (best < self.exact_band))[0]
        if unsure.size and exact:
            lists = self._tree.query_ball_point(p[unsure], best[unsure] + self._rmax)
            lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            if lens.sum() > 0:
                cand = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lens.sum()))
                owner = np.repeat(unsure, lens)
                # a triangle is at least |p - centroid| - its circumradius away: keep only those
                # that could beat the best found so far
                lb = np.linalg.norm(p[owner] - self._cen[cand], axis=1) - self._rtri[cand]
                keep = lb < best[owner]
                cand, owner = cand[keep], owner[keep]
            if lens.sum() > 0 and cand.size:
                q, bary = _closest_on_triangles(p[owner], self._a[cand], self._b[cand], self._c[cand])
                dd = np.linalg.norm(p[owner] - q, axis=1)
                order = np.lexsort((dd, owner))
                firsts = order[np.concatenate([[0], np.nonzero(np.diff(owner[order]))[0] + 1])]
                i = owner[firsts]
                better = dd[firsts] < best[i]
                i, f = i[better], firsts[better]
                best[i], best_pt[i], best_bary[i], best_f[i] = dd[f], q[f], bary[f], cand[f]
        nrm = np.einsum("ij,ijk->ik", best_bary, self._vn[self._faces[best_f]])
        sign = np.where(np.einsum("ij,ij->i", p - best_pt, nrm) < 0.0, -1.0, 1.0)
        return sign * best, best_pt
