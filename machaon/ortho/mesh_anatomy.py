"""A vertebra's anatomy from its closed bone surface alone: midsagittal plane, body, canal, pedicles.

``analyse_vertebra(mesh, level)`` takes one vertebra's closed surface (metres, CT image frame in
LPS: x to the patient's left, y posterior, z superior) and finds, without any atlas or rough
trajectory:

1. **Midsagittal plane**: the plane of best mirror symmetry. Surface samples reflected across a
   candidate plane are compared with the surface (nearest-neighbour distance, capped at 3 mm so
   that asymmetric osteophytes do not dominate); Nelder-Mead over the plane's normal and offset,
   started from the image's sagittal plane. ``symmetry_rms_m`` says how symmetric the bone is.
2. **Vertebra frame** ``T_image_vertebra``: x = the plane normal (to the left), y = the image's
   posterior direction within the plane, z = x cross y (superior); origin on the plane at the
   centre of the vertebral body.
3. **Voxels**: the surface filled at ``pitch`` (0.5 mm) in the vertebra frame (trimesh), which
   makes every later step independent of how many triangles the mesh has.
4. **Body and canal**: coronal slices (planes of constant y) are walked from anterior to
   posterior. The body is everything in front of the first slice with no bone at the midline
   (the body's posterior wall); from there the slices show two bony islands, one per side, the
   pedicles and then the neural arch, with the spinal canal (vertebral foramen) between them,
   until bone reaches the midline again at the laminae. The canal's depth is that gap along
   the midline, its width the gap between the islands at the pedicles' height.
5. **Pedicles and isthmus**: in each coronal slice from the body's posterior wall to the
   canal's mid-depth, the island of each side is the pedicle; its largest inscribed circle
   (2-D distance transform) is the widest screw that fits there. The isthmus is the slice where
   that circle is smallest: its centre is the point the screw must pass through, its radius the
   pedicle's half-width for the screw. The line through the circles' centres gives the
   pedicle's own axis (its medial convergence and cranial tilt).

Everything returned is in the image frame, metres (``to_dict`` gives millimetres for files).
A surface in which no canal or no pedicle can be found raises ``MeshAnatomyError``, a
``MachaonError``, saying which.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

from machaon.errors import OrthoError

log = logging.getLogger(__name__)

MM = 1e-3
PITCH_M = 0.5 * MM
MIN_PEDICLE_AREA_M2 = 20 * MM * MM  # a pedicle's cross-section is 50-200 mm^2
SIDES = ("left", "right")
_SIGN = {"left": 1.0, "right": -1.0}  # +x of the vertebra frame is the patient's left


class MeshAnatomyError(OrthoError, ValueError):
    """The surface does not show the anatomy the planner needs (no canal, no pedicle)."""


@dataclass(frozen=True)
class Pedicle:
    """One pedicle, image frame, metres.

    ``isthmus`` is the centre of the narrowest cross-section's largest inscribed circle, of
    radius ``inscribed_radius``; ``width``/``height`` are the bone runs through that centre
    across (x) and along (z) the vertebra; ``axis`` is the unit pedicle axis pointing anterior;
    ``convergence`` its medial angle (rad, positive towards the midline), ``tilt`` its cranial
    angle (rad, positive when the anterior end is higher).
    """

    side: str
    isthmus: np.ndarray
    inscribed_radius: float
    width: float
    height: float
    axis: np.ndarray
    convergence: float
    tilt: float


@dataclass(frozen=True)
class VoxelSDF:
    """Signed distance (m, negative inside) of the voxelised bone, interpolated trilinearly.

    Accurate to about half a voxel (0.25 mm at the default pitch): the planner's search uses it,
    the exact mesh distance (``MeshSDF``) checks the result. ``grid`` is in the vertebra frame
    (origin ``origin``, spacing ``pitch``); queries take image-frame points.
    """

    grid: np.ndarray
    origin: np.ndarray
    pitch: float
    T_image_vertebra: np.ndarray

    def sdf(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=float)
        lead = p.shape[:-1]
        T = self.T_image_vertebra
        q = (p.reshape(-1, 3) - T[:3, 3]) @ T[:3, :3]
        idx = (q - self.origin) / self.pitch
        d = ndimage.map_coordinates(self.grid, idx.T, order=1, mode="nearest")
        hi = np.array(self.grid.shape) - 1
        beyond = np.linalg.norm(np.maximum(np.maximum(-idx, idx - hi), 0.0), axis=1) * self.pitch
        return np.where(beyond > 0, np.maximum(d, beyond), d).reshape(lead)


@dataclass(frozen=True)
class VertebraAnatomy:
    """What ``analyse_vertebra`` found, image frame, metres (see the module docstring)."""

    level: str
    T_image_vertebra: np.ndarray
    symmetry_rms: float
    body_centre: np.ndarray
    body_depth: float
    body_width: float
    body_height: float
    canal_centre: np.ndarray
    canal_width: float
    canal_depth: float
    pedicles: dict[str, Pedicle]
    notes: tuple[str, ...] = field(default=())
    voxel_sdf: VoxelSDF | None = field(default=None, compare=False, repr=False)

    @property
    def midsagittal_normal(self) -> np.ndarray:
        """Unit normal of the midsagittal plane (towards the patient's left)."""
        return self.T_image_vertebra[:3, 0].copy()

    def to_vertebra(self, p_image: np.ndarray) -> np.ndarray:
        """Points (..., 3) from the image frame to the vertebra frame."""
        T = self.T_image_vertebra
        return (np.asarray(p_image, float) - T[:3, 3]) @ T[:3, :3]

    def canal_mesh(self, margin: float = 10 * MM) -> trimesh.Trimesh:
        """The canal as a closed elliptic cylinder along the vertebra's z axis (image frame, m).

        Semi-axes are half the measured width and depth; it runs ``margin`` beyond the bone
        above and below (the dural sac continues past the vertebra).
        """
        c = self.to_vertebra(self.canal_centre)
        cyl = trimesh.creation.cylinder(radius=1.0, height=self.body_height + 2 * margin, sections=48)
        cyl.apply_scale([0.5 * self.canal_width, 0.5 * self.canal_depth, 1.0])
        cyl.apply_translation([0.0, c[1], c[2]])
        cyl.apply_transform(self.T_image_vertebra)
        return cyl

    def to_dict(self) -> dict:
        """JSON-ready summary in mm and degrees."""

        def mm(x: np.ndarray) -> list[float]:
            return np.round(np.asarray(x) / MM, 2).tolist()

        return {
            "level": self.level,
            "T_image_vertebra_mm": [[*(np.round(r[:3], 6).tolist()), round(float(r[3]) / MM, 3)]
                                    for r in self.T_image_vertebra],
            "midsagittal_normal": np.round(self.midsagittal_normal, 5).tolist(),
            "symmetry_rms_mm": round(self.symmetry_rms / MM, 3),
            "body": {"centre_mm": mm(self.body_centre), "depth_mm": round(self.body_depth / MM, 2),
                     "width_mm": round(self.body_width / MM, 2), "height_mm": round(self.body_height / MM, 2)},
            "canal": {"centre_mm": mm(self.canal_centre), "width_mm": round(self.canal_width / MM, 2),
                      "depth_mm": round(self.canal_depth / MM, 2)},
            "pedicles": {
                s: {"isthmus_mm": mm(p.isthmus), "inscribed_diameter_mm": round(2 * p.inscribed_radius / MM, 2),
                    "width_mm": round(p.width / MM, 2), "height_mm": round(p.height / MM, 2),
                    "axis": np.round(p.axis, 5).tolist(), "convergence_deg": round(math.degrees(p.convergence), 2),
                    "tilt_deg": round(math.degrees(p.tilt), 2)}
                for s, p in self.pedicles.items()
            },
            "notes": list(self.notes),
        }


def midsagittal_plane(mesh: trimesh.Trimesh, n_samples: int = 1500, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(unit normal towards +x, offset d with n.p = d on the plane, RMS mirror misfit) of ``mesh`` (m)."""
    pts = np.asarray(trimesh.sample.sample_surface(mesh, n_samples, seed=seed)[0], float)
    tree = cKDTree(pts)
    c = pts.mean(axis=0)
    cap = 3 * MM

    def plane(x: np.ndarray) -> tuple[np.ndarray, float]:
        th, ph, off = x
        n = np.array([math.cos(th) * math.cos(ph), math.sin(th) * math.cos(ph), math.sin(ph)])
        return n, float(n @ c + off * MM)

    def cost(x: np.ndarray) -> float:
        n, d = plane(x)
        s = pts @ n - d
        dist, _ = tree.query(pts - 2 * s[:, None] * n)
        return float(np.mean(np.minimum(dist, cap) ** 2))

    best = None
    # three starts: the image's sagittal plane and the planes turned 15 deg either way about z
    # (axial rotation of the vertebra, as in scoliosis)
    for th0 in (0.0, math.radians(-15), math.radians(15)):
        res = optimize.minimize(cost, [th0, 0.0, 0.0], method="Nelder-Mead",
                                options={"xatol": 1e-3, "fatol": 1e-14, "maxiter": 250,
                                         "initial_simplex": [[th0, 0, 0], [th0 + 0.08, 0, 0], [th0, 0.08, 0],
                                                             [th0, 0, 3.0]]})
        if best is None or res.fun < best.fun:
            best = res
    n, d = plane(best.x)
    if n[0] < 0:
        n, d = -n, -d
    return n, d, math.sqrt(best.fun)


def fill_voxels(mesh_v: trimesh.Trimesh, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """(filled boolean grid, (3,) centre of voxel 0) of a closed mesh, by ray parity along z.

    Every grid column (x, y) is crossed by the surface an even number of times; a voxel centre
    is inside when an odd number of crossings lie below it. The grid is offset by an irrational
    fraction of the pitch so that no column runs exactly through a vertex or an edge. Cost grows
    with the number of (triangle, column) pairs, not with the number of voxels.
    """
    lo, hi = mesh_v.bounds
    h = float(pitch)
    org = lo - 0.5 * h + np.array([0.3819660113, 0.2360679775, 0.0]) * h
    n = np.ceil((hi - org) / h).astype(int) + 2
    tri = mesh_v.triangles  # (F, 3, 3)
    gi = (tri[:, :, 0] - org[0]) / h
    gj = (tri[:, :, 1] - org[1]) / h
    i0 = np.ceil(gi.min(axis=1)).astype(int)
    i1 = np.floor(gi.max(axis=1)).astype(int)
    j0 = np.ceil(gj.min(axis=1)).astype(int)
    j1 = np.floor(gj.max(axis=1)).astype(int)
    ni = np.maximum(i1 - i0 + 1, 0)
    nj = np.maximum(j1 - j0 + 1, 0)
    count = ni * nj
    f = np.repeat(np.arange(len(tri)), count)
    start = np.repeat(np.cumsum(count) - count, count)
    local = np.arange(int(count.sum())) - start
    ii = i0[f] + local // np.maximum(nj[f], 1)
    jj = j0[f] + local % np.maximum(nj[f], 1)
    # barycentric coordinates of the column (ii, jj) in the projected triangle
    x, y = ii.astype(float), jj.astype(float)
    ax, ay = gi[f, 0], gj[f, 0]
    bx, by = gi[f, 1], gj[f, 1]
    cx, cy = gi[f, 2], gj[f, 2]
    den = (by - cy) * (ax - cx) + (cx - bx) * (ay - cy)
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    l1 = ((by - cy) * (x - cx) + (cx - bx) * (y - cy)) / den
    l2 = ((cy - ay) * (x - cx) + (ax - cx) * (y - cy)) / den
    l3 = 1.0 - l1 - l2
    hit = ok & (l1 >= 0) & (l2 >= 0) & (l3 >= 0)
    z = l1 * tri[f, 0, 2] + l2 * tri[f, 1, 2] + l3 * tri[f, 2, 2]
    k = np.clip(np.ceil((z[hit] - org[2]) / h).astype(int), 0, n[2])
    D = np.zeros((n[0], n[1], n[2] + 1), dtype=np.int32)
    np.add.at(D, (ii[hit], jj[hit], k), 1)
    B = (np.cumsum(D, axis=2)[:, :, : n[2]] % 2) == 1
    return B, org


def _run(line: np.ndarray, i: int) -> tuple[int, int]:
    """[a, b) of the run of True in ``line`` that contains index ``i``."""
    a = i
    while a > 0 and line[a - 1]:
        a -= 1
    b = i + 1
    while b < line.size and line[b]:
        b += 1
    return a, b


@dataclass(frozen=True)
class _VertebraVoxels:
    """A vertebra filled with voxels in its own frame (x left, y posterior, z superior; metres).

    ``T_image_voxels`` places that frame in the image (origin: the centroid projected onto the
    midsagittal plane); ``B[i, j, k]`` is bone at ``(u[i], v[j], w[k])``, ``org`` the first voxel's
    centre and ``h`` the pitch.
    """

    T_image_voxels: np.ndarray
    B: np.ndarray
    org: np.ndarray
    h: float
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray


@dataclass(frozen=True)
class _CanalSpan:
    """The coronal slices of the spinal canal: ``start`` is the body's most anterior slice,
    ``j0..j1`` (inclusive) the slices with bone on both sides and none at the midline."""

    start: int
    j0: int
    j1: int


@dataclass(frozen=True)
class _Box:
    """Centre (voxel frame, metres) and extents (metres) of a piece of bone or of a gap."""

    centre_v: np.ndarray
    depth: float
    width: float
    height: float


def _voxelise_in_vertebra_frame(mesh: trimesh.Trimesh, level: str, pitch: float, n: np.ndarray, d: float,
                                notes: list[str]) -> _VertebraVoxels:
    """Fill ``mesh`` (image frame, LPS, metres) at ``pitch`` in the frame of its midsagittal plane
    ``n . p = d``; a mesh exported in RAS is read turned a half turn about z (and noted).

    Raises ``MeshAnatomyError`` when the plane is not sagittal (the mesh is not in an LPS/RAS frame).
    """
    y = np.array([0.0, 1.0, 0.0]) - n[1] * n
    if np.linalg.norm(y) < 0.5:
        raise MeshAnatomyError(f"{level}: the symmetry plane is not sagittal; is the mesh in the CT's LPS frame?")
    y /= np.linalg.norm(y)
    for attempt in range(2):
        z = np.cross(n, y)
        c = mesh.centroid - (mesh.centroid @ n - d) * n
        T = np.eye(4)
        T[:3, :3] = np.stack([n, y, z], axis=1)
        T[:3, 3] = c
        mv = mesh.copy()
        mv.apply_transform(np.linalg.inv(T))
        B, org = fill_voxels(mv, pitch)
        # the deepest point of a vertebra is in its body, in front of the arch: a body behind the
        # middle of the bone means the mesh was exported in RAS (x and y negated), which a half
        # turn about z brings back (left stays the patient's left)
        deep = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(B))), B.shape)
        if attempt == 0 and deep[1] > 0.5 * B.shape[1]:
            y, n, d = -y, -n, -d
            notes.append("the vertebral body lies at +y: the mesh looks like RAS; read it turned 180 deg about z")
            continue
        break
    h = pitch
    return _VertebraVoxels(T, B, org, h, org[0] + h * np.arange(B.shape[0]), org[1] + h * np.arange(B.shape[1]),
                           org[2] + h * np.arange(B.shape[2]))


def _find_canal(vox: _VertebraVoxels, level: str, notes: list[str]) -> _CanalSpan:
    """Walk the coronal slices from anterior to posterior to the canal: bone on both sides (beyond
    2 mm of the midline) and none at it. Raises ``MeshAnatomyError`` when there is no such slice
    behind the body; notes an arch that no lamina closes."""
    B, u = vox.B, vox.u
    mid = int(np.argmin(np.abs(u)))
    band = slice(max(0, mid - 1), mid + 2)
    midline = B[band].any(axis=(0, 2))  # per coronal slice: any bone at the midline
    left_bone = B[u > 2 * MM].any(axis=(0, 2))
    right_bone = B[u < -2 * MM].any(axis=(0, 2))
    occupied = np.flatnonzero(B.any(axis=(0, 2)))
    start = int(occupied[0])
    j0 = next((j for j in range(start, B.shape[1]) if not midline[j] and left_bone[j] and right_bone[j]), None)
    if j0 is None or j0 == start:
        raise MeshAnatomyError(
            f"{level}: no spinal canal found behind the vertebral body (no coronal slice with bone on both "
            "sides and none at the midline); is this a vertebra, and is its canal open in the segmentation?")
    j1 = j0
    while j1 + 1 < B.shape[1] and not midline[j1 + 1] and left_bone[j1 + 1] and right_bone[j1 + 1]:
        j1 += 1
    if j1 + 1 >= B.shape[1] or not midline[j1 + 1]:
        notes.append("no lamina closes the canal at the midline (open arch?)")
    return _CanalSpan(start, j0, j1)


def _measure_body(vox: _VertebraVoxels, span: _CanalSpan) -> _Box:
    """The vertebral body: the largest piece of bone in front of the first canal slice."""
    u, v, w, h = vox.u, vox.v, vox.w, vox.h
    body = vox.B[:, span.start:span.j0, :]
    lab, nl = ndimage.label(body)
    if nl > 1:
        sizes = ndimage.sum(body, lab, range(1, nl + 1))
        body = lab == (1 + int(np.argmax(sizes)))
    bi = np.argwhere(body)
    bi[:, 1] += span.start
    return _Box(
        centre_v=np.array([u[bi[:, 0]].mean(), v[bi[:, 1]].mean(), w[bi[:, 2]].mean()]),
        depth=float(v[bi[:, 1]].max() - v[bi[:, 1]].min() + h),
        width=float(u[bi[:, 0]].max() - u[bi[:, 0]].min() + h),
        height=float(w[bi[:, 2]].max() - w[bi[:, 2]].min() + h),
    )


def _measure_canal(vox: _VertebraVoxels, span: _CanalSpan, level: str) -> _Box:
    """The canal: depth along the midline, width (median) between the islands at the pedicles'
    height in its middle slice; ``centre_v[2]`` is that height. ``height`` is not measured (0).
    Raises ``MeshAnatomyError`` when the canal has no bony wall on both sides."""
    B, u, v, w, h = vox.B, vox.u, vox.v, vox.w, vox.h
    canal_depth = float((span.j1 + 1 - span.j0) * h)
    jm = (span.j0 + span.j1) // 2
    both = B[u > 0][:, jm, :].any(axis=0) & B[u < 0][:, jm, :].any(axis=0)
    ks = np.flatnonzero(both)
    gaps = []
    for k in ks:
        col = B[:, jm, k]
        lft = np.flatnonzero(col & (u > 0))
        rgt = np.flatnonzero(col & (u < 0))
        gaps.append(u[lft.min()] - u[rgt.max()] - h)
    if not gaps:
        raise MeshAnatomyError(f"{level}: the canal has no bony wall on both sides")
    canal_w = float(w[ks].mean())
    return _Box(np.array([0.0, v[span.j0] + 0.5 * canal_depth - 0.5 * h, canal_w]), canal_depth,
                float(np.median(gaps)), 0.0)


def _pedicle_island(sl: np.ndarray, h: float, w: np.ndarray, canal_w: float) -> np.ndarray | None:
    """In one coronal slice of one side, the island nearest the canal's height ``canal_w`` (z,
    metres) large enough to be a pedicle (not a transverse process, a facet sliver or noise)."""
    lab2, n2 = ndimage.label(sl)
    best = None
    for i in range(1, n2 + 1):
        ii, kk = np.nonzero(lab2 == i)
        if ii.size * h * h < MIN_PEDICLE_AREA_M2:
            continue  # a sliver of a facet or a voxel of noise, not a pedicle
        score = (abs(w[kk].mean() - canal_w), -ii.size)
        if best is None or score < best[0]:
            best = (score, i)
    return None if best is None else lab2 == best[1]


def _find_pedicle(vox: _VertebraVoxels, span: _CanalSpan, canal_w: float, side: str, level: str,
                  notes: list[str]) -> Pedicle:
    """One side's pedicle: the inscribed circle of its island in each slice from the canal's front
    to its mid-depth; the smallest is the isthmus, the line through the centres the axis (image
    frame). Raises ``MeshAnatomyError`` when no slice shows a pedicle on that side."""
    B, u, v, w, h, T = vox.B, vox.u, vox.v, vox.w, vox.h, vox.T_image_voxels
    sg = _SIGN[side]
    rows = []
    for j in range(span.j0, max(span.j0 + 1, (span.j0 + span.j1) // 2 + 1)):
        isl = _pedicle_island(B[:, j, :] & ((u * sg) > 0)[:, None], h, w, canal_w)
        if isl is None:
            continue
        dt = ndimage.distance_transform_edt(np.pad(isl, 1))[1:-1, 1:-1] * h
        ii, kk = np.unravel_index(int(np.argmax(dt)), dt.shape)
        rows.append((float(dt[ii, kk]), j, ii, kk, isl))
    if not rows:
        raise MeshAnatomyError(f"{level}: no {side} pedicle found between the body and the canal")
    r, j, ii, kk, isl = min(rows, key=lambda x: x[0])
    a, b = _run(isl[:, kk], ii)
    width = float((b - a) * h)
    a, b = _run(isl[ii, :], kk)
    height = float((b - a) * h)
    centres = np.array([[u[x[2]], v[x[1]], w[x[3]]] for x in rows])
    if len(rows) >= 3 and np.ptp(centres[:, 1]) > 2 * h:
        su = np.polyfit(centres[:, 1], centres[:, 0], 1)[0]
        sw = np.polyfit(centres[:, 1], centres[:, 2], 1)[0]
        ax_v = -np.array([su, 1.0, sw])
    else:
        ax_v = np.array([0.0, -1.0, 0.0])
        notes.append(f"{side} pedicle too short to fit its axis; anterior direction assumed")
    ax_v /= np.linalg.norm(ax_v)
    conv = math.atan2(-sg * ax_v[0], -ax_v[1])
    tilt = math.atan2(ax_v[2], math.hypot(ax_v[0], ax_v[1]))
    p_v = np.array([u[ii], v[j], w[kk]])
    return Pedicle(side, T[:3, :3] @ p_v + T[:3, 3], r, width, height, T[:3, :3] @ ax_v, conv, tilt)


def _signed_distance_grid(B: np.ndarray, h: float) -> np.ndarray:
    """Signed distance (metres, negative inside) at each voxel centre of the bone ``B``."""
    inside = ndimage.distance_transform_edt(np.pad(B, 1))[1:-1, 1:-1, 1:-1]
    outside = ndimage.distance_transform_edt(~B)
    return np.where(B, -(inside - 0.5), outside - 0.5).astype(np.float32) * h


def analyse_vertebra(mesh: trimesh.Trimesh, level: str, pitch: float = PITCH_M) -> VertebraAnatomy:
    """Find the anatomy of one closed vertebra surface (see the module docstring)."""
    if not mesh.is_watertight:
        raise MeshAnatomyError(f"{level}: the surface is not closed; repair it first")
    notes: list[str] = []
    n, d, rms = midsagittal_plane(mesh)
    if rms > 2.5 * MM:
        notes.append(f"weak mirror symmetry (rms {rms / MM:.1f} mm): check the midsagittal plane")
    vox = _voxelise_in_vertebra_frame(mesh, level, pitch, n, d, notes)
    span = _find_canal(vox, level, notes)
    body = _measure_body(vox, span)
    canal = _measure_canal(vox, span, level)
    pedicles = {side: _find_pedicle(vox, span, canal.centre_v[2], side, level, notes) for side in SIDES}
    T = vox.T_image_voxels
    # origin at the body centre, on the midsagittal plane
    T2 = T.copy()
    T2[:3, 3] = T[:3, :3] @ np.array([0.0, body.centre_v[1], body.centre_v[2]]) + T[:3, 3]
    to_img = T[:3, :3]
    return VertebraAnatomy(
        level=level,
        T_image_vertebra=T2,
        symmetry_rms=rms,
        body_centre=to_img @ body.centre_v + T[:3, 3],
        body_depth=body.depth,
        body_width=body.width,
        body_height=body.height,
        canal_centre=to_img @ canal.centre_v + T[:3, 3],
        canal_width=canal.width,
        canal_depth=canal.depth,
        pedicles=pedicles,
        notes=tuple(notes),
        voxel_sdf=VoxelSDF(_signed_distance_grid(vox.B, vox.h), vox.org.copy(), vox.h, T.copy()),
    )


__all__ = [
    "MeshAnatomyError",
    "Pedicle",
    "VertebraAnatomy",
    "VoxelSDF",
    "analyse_vertebra",
    "fill_voxels",
    "midsagittal_plane",
]
