"""Scene objects in an ``ArmSim`` world: operating table, bone phantom, marker plates, obstacles, cameras.

All poses are 4x4 ``T_world_obj`` in the PyBullet world frame (m). Static objects have mass 0.
Every object gets a name; ``Scene.objects`` maps names to PyBullet body ids (in the sim's own
physics client). Adding an object with a name already in use raises ``ValueError``; bad shapes,
NaN poses or malformed meshes/images raise ``ValueError`` naming the argument.

The bone phantom accepts any triangle mesh: ``(vertices (N,3) m, faces (M,3) int)`` or a path to
an OBJ/STL/PLY file (read with trimesh). Until the ortho layer supplies a real phantom,
``primitive_bone_mesh()`` builds a femur-like shaft with two condyles.

Marker plates show a caller-supplied image (e.g. an ArUco marker, ``np.uint8`` grey or RGB) on
the plate's +z face, image rows along -y and columns along +x of the plate frame, so a camera
looking down the plate's -z axis sees the image upright. A plate can be fixed in the world or
follow a link of the arm (or any body) kinematically, without exerting forces on it.

A scene never imports the arm that owns it (as dm_control's composer entities receive the physics
handle instead of holding their container): it is built on a PyBullet client id and, optionally,
a :class:`SceneHost` (what it needs of its owner: the arm's body and link indices, and a way to
run after every physics step). ``ArmSim`` is one.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pybullet as p

from machaon._validate import finite_array, transform
from machaon.kinematics.so3 import pq_from_transform, transform_from_pq
from machaon.sim.meshes import MeshInput, _vertex_normals, mesh_arrays, primitive_bone_mesh

__all__ = ["Camera", "Scene", "SceneHost", "ScenePlate"]


class SceneHost(Protocol):
    """What a :class:`Scene` needs of the world that owns it (``machaon.sim.ArmSim`` is one).

    ``body`` is the PyBullet body id of the arm in the scene's client; ``link_index(name)`` the
    PyBullet index of one of its links (``KeyError`` if unknown); ``add_step_hook(fn, after=True)``
    calls ``fn()`` after every physics step (the scene's kinematic attachments use it).
    """

    body: int

    def link_index(self, link_name: str) -> int: ...

    def add_step_hook(self, fn: Callable[[], None], *, after: bool = False) -> None: ...


@dataclass(frozen=True)
class ScenePlate:
    """A textured plate: body id, size (m), and its attachment (None: fixed in the world)."""

    name: str
    body: int
    size: float
    parent_body: int | None
    parent_link: int | None
    T_link_plate: np.ndarray | None


# The old names, for one release (#16: ``machaon.ortho`` has a ``MarkerPlate`` (a ChArUco board)
# and a ``load_mesh`` (a mesh file in metres) of its own).
MarkerPlate = ScenePlate
load_mesh = mesh_arrays


class Camera:
    """A pinhole camera with OpenCV intrinsics rendering the sim through ``getCameraImage``.

    ``K`` (3x3, pixels), ``width``/``height`` (pixels), ``T_world_cam`` (4x4, m) in OpenCV's camera
    convention: z forward along the optical axis, x right, y down. ``near``/``far`` clip (m).
    ``render()`` returns an ``(height, width, 3)`` uint8 RGB array, C-contiguous (use
    ``cv2.cvtColor(img, cv2.COLOR_RGB2BGR)`` for OpenCV's BGR functions), or BGR with ``bgr=True``.
    TinyRenderer (software) is used in DIRECT mode, the OpenGL renderer in a GUI session.
    """

    def __init__(
        self,
        K: np.ndarray,
        width: int,
        height: int,
        T_world_cam: np.ndarray,
        near: float = 0.02,
        far: float = 5.0,
    ) -> None:
        K = finite_array("K", K, (3, 3))
        if K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[0, 1]) > 1e-12 or not np.allclose(K[2], (0, 0, 1)):
            raise ValueError("K: expected [[fx 0 cx] [0 fy cy] [0 0 1]] with fx, fy > 0")
        if not (isinstance(width, int) and isinstance(height, int) and 0 < width <= 4096 and 0 < height <= 4096):
            raise ValueError(f"width/height: expected ints in 1..4096, got {width!r}x{height!r}")
        if not (0 < near < far):
            raise ValueError("near/far: need 0 < near < far")
        self.K, self.width, self.height = K.copy(), width, height
        self.near, self.far = float(near), float(far)
        self.T_world_cam = transform("T_world_cam", T_world_cam).copy()

    def set_pose(self, T_world_cam: np.ndarray) -> None:
        self.T_world_cam = transform("T_world_cam", T_world_cam).copy()

    def projection_matrix(self) -> np.ndarray:
        """The OpenGL projection (4x4, row-major) that reproduces K; pixel centres at integers."""
        fx, fy = self.K[0, 0], self.K[1, 1]
        # OpenGL pixel i spans [i, i+1] while OpenCV puts pixel i's centre at i: shift by half a pixel.
        cx, cy = self.K[0, 2] + 0.5, self.K[1, 2] + 0.5
        W, H, n, f = self.width, self.height, self.near, self.far
        return np.array(
            [
                [2 * fx / W, 0.0, 1.0 - 2 * cx / W, 0.0],
                [0.0, 2 * fy / H, 2 * cy / H - 1.0, 0.0],
                [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
                [0.0, 0.0, -1.0, 0.0],
            ]
        )

    def view_matrix(self) -> np.ndarray:
        """World -> OpenGL camera (x right, y up, looking down -z), row-major 4x4."""
        T_cv_gl = np.diag([1.0, -1.0, -1.0, 1.0])
        return np.linalg.inv(self.T_world_cam @ T_cv_gl)

    def project(self, p_world: np.ndarray) -> np.ndarray:
        """Pixel coordinates (u, v) of world points (N,3) by the pinhole model (for checks)."""
        P = np.atleast_2d(finite_array("p_world", p_world))
        T_cam_world = np.linalg.inv(self.T_world_cam)
        pc = P @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
        uv = pc @ self.K.T
        return uv[:, :2] / uv[:, 2:3]

    def render(self, client: int, *, bgr: bool = False, depth: bool = False, opengl: bool = False):
        """Render from PyBullet client ``client``; see class doc. ``depth=True`` also returns depth (m)."""
        renderer = p.ER_BULLET_HARDWARE_OPENGL if opengl else p.ER_TINY_RENDERER
        w, h, rgba, zbuf, _ = p.getCameraImage(
            self.width,
            self.height,
            viewMatrix=self.view_matrix().T.reshape(-1).tolist(),
            projectionMatrix=self.projection_matrix().T.reshape(-1).tolist(),
            renderer=renderer,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=client,
        )
        img = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3]
        img = np.ascontiguousarray(img[:, :, ::-1] if bgr else img)
        if not depth:
            return img
        zb = np.asarray(zbuf, dtype=np.float64).reshape(h, w)
        n, f = self.near, self.far
        return img, f * n / (f - (f - n) * zb)


class Scene:
    """Named scene objects in one physics client (see module doc).

    ``host`` (an ``ArmSim``, or anything that is a :class:`SceneHost`) lets plates follow the
    arm's links (``parent="arm"``); without it, objects can follow other bodies only.
    With ``viewer`` (a GUI client id), every object is also built, visual only, in the viewer,
    and ``sync_viewer()`` copies the poses of the objects that moved (by dynamics, attachments or
    a caller's ``resetBasePositionAndOrientation`` in the physics client).
    """

    def __init__(self, client: int, host: SceneHost | None = None, viewer: int | None = None) -> None:
        self._client = client
        self._viewer = viewer
        self._host = host
        self.objects: dict[str, int] = {}
        self.plates: dict[str, ScenePlate] = {}
        self._view_ids: dict[str, int] = {}
        self._synced: dict[str, tuple] = {}
        self._attached: dict[str, tuple] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="machaon_scene_")
        self._following = False

    # ---------------------------------------------------------------- generic

    def _clients(self) -> list[tuple[int, bool]]:
        """(client id, is the physics client) for the physics client and the viewer, if any."""
        out = [(self._client, True)]
        if self._viewer is not None and p.isConnected(physicsClientId=self._viewer):
            out.append((self._viewer, False))
        return out

    def _check_name(self, name: str) -> None:
        if not name or name in self.objects:
            raise ValueError(f"name: {name!r} is empty or already used in this scene")

    def _add_body(
        self,
        name: str,
        make: Callable[[int, bool], tuple[int, int]],
        T_world_obj: np.ndarray,
        mass: float = 0.0,
    ) -> int:
        """Build ``make(client, physics) -> (collision shape, visual shape)`` in every client."""
        self._check_name(name)
        pos, orn = pq_from_transform(transform("T_world_obj", T_world_obj))
        if not (math.isfinite(mass) and mass >= 0):
            raise ValueError("mass: must be >= 0 kg")
        body = -1
        for cid, physics in self._clients():
            col, vis = make(cid, physics)
            if (physics and col < 0 and vis < 0) or vis == -2:
                raise ValueError(f"{name}: PyBullet rejected the shape")
            b = p.createMultiBody(
                baseMass=mass if physics else 0.0,
                baseCollisionShapeIndex=col if physics else -1,
                baseVisualShapeIndex=vis,
                basePosition=pos,
                baseOrientation=orn,
                physicsClientId=cid,
            )
            if physics:
                body = b
            else:
                self._view_ids[name] = b
        self.objects[name] = body
        return body

    def remove(self, name: str) -> None:
        """Remove the object called ``name`` (``KeyError`` if absent)."""
        body = self.objects.pop(name)
        self.plates.pop(name, None)
        self._synced.pop(name, None)
        self._attached.pop(name, None)
        p.removeBody(body, physicsClientId=self._client)
        vid = self._view_ids.pop(name, None)
        if vid is not None and self._viewer is not None and p.isConnected(physicsClientId=self._viewer):
            p.removeBody(vid, physicsClientId=self._viewer)

    def pose(self, name: str) -> np.ndarray:
        """World pose (4x4) of a scene object's base frame."""
        pos, orn = p.getBasePositionAndOrientation(self.objects[name], physicsClientId=self._client)
        return transform_from_pq(pos, orn)

    def set_pose(self, name: str, T_world_obj: np.ndarray) -> None:
        """Move an object (teleport; intended for static objects and setup)."""
        pos, orn = pq_from_transform(transform("T_world_obj", T_world_obj))
        p.resetBasePositionAndOrientation(self.objects[name], pos, orn, physicsClientId=self._client)
        self._sync_one(name)

    def _sync_one(self, name: str, force: bool = True) -> None:
        vid = self._view_ids.get(name)
        if vid is None or self._viewer is None or not p.isConnected(physicsClientId=self._viewer):
            return
        pose = p.getBasePositionAndOrientation(self.objects[name], physicsClientId=self._client)
        if not force and self._synced.get(name) == pose:
            return
        self._synced[name] = pose
        p.resetBasePositionAndOrientation(vid, pose[0], pose[1], physicsClientId=self._viewer)

    def sync_viewer(self) -> None:
        """Copy the poses of objects that moved since the last sync into the viewer.

        Reading poses from the physics client is cheap; only changed objects cost a GUI round trip,
        so objects moved by anyone (step hooks of the layers above, attachments, dynamics) show.
        """
        for name in self.objects:
            self._sync_one(name, force=False)

    # ---------------------------------------------------------------- objects

    def add_box(
        self,
        name: str,
        size: tuple[float, float, float],
        T_world_obj: np.ndarray,
        rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.3, 1.0),
        mass: float = 0.0,
    ) -> int:
        """A box obstacle with edge lengths ``size`` (m), centred at ``T_world_obj``."""
        half = (finite_array("size", size, (3,)) / 2).tolist()
        if min(half) <= 0:
            raise ValueError("size: edges must be > 0")

        def make(cid: int, physics: bool) -> tuple[int, int]:
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid) if physics else -1
            return col, p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=cid)

        return self._add_body(name, make, T_world_obj, mass)

    def add_sphere(
        self,
        name: str,
        radius: float,
        T_world_obj: np.ndarray,
        rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.3, 1.0),
        mass: float = 0.0,
    ) -> int:
        """A sphere obstacle of ``radius`` (m)."""
        if not (math.isfinite(radius) and radius > 0):
            raise ValueError("radius: must be > 0")

        def make(cid: int, physics: bool) -> tuple[int, int]:
            col = p.createCollisionShape(p.GEOM_SPHERE, radius=radius, physicsClientId=cid) if physics else -1
            return col, p.createVisualShape(p.GEOM_SPHERE, radius=radius, rgbaColor=rgba, physicsClientId=cid)

        return self._add_body(name, make, T_world_obj, mass)

    def add_cylinder(
        self,
        name: str,
        radius: float,
        length: float,
        T_world_obj: np.ndarray,
        rgba: tuple[float, float, float, float] = (0.8, 0.3, 0.3, 1.0),
    ) -> int:
        """A static cylinder along the object's z axis."""
        if not (math.isfinite(radius) and math.isfinite(length) and radius > 0 and length > 0):
            raise ValueError("radius/length: must be > 0")

        def make(cid: int, physics: bool) -> tuple[int, int]:
            col = (
                p.createCollisionShape(p.GEOM_CYLINDER, radius=radius, height=length, physicsClientId=cid)
                if physics else -1
            )
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=radius, length=length, rgbaColor=rgba,
                                      physicsClientId=cid)
            return col, vis

        return self._add_body(name, make, T_world_obj)

    def add_floor(self, name: str = "floor", z: float = 0.0) -> int:
        """A large static floor at height ``z`` (a thin box, so closest-point queries work)."""
        T = np.eye(4)
        T[2, 3] = z - 0.01
        return self.add_box(name, (6.0, 6.0, 0.02), T, rgba=(0.55, 0.57, 0.6, 1.0))

    def add_operating_table(
        self,
        name: str = "table",
        T_world_table: np.ndarray | None = None,
        size: tuple[float, float, float] = (0.55, 1.9, 0.08),
        height: float = 0.30,
    ) -> int:
        """A surgical table: a top of ``size`` (m) whose upper surface is the table frame's z = 0.

        Default: the table top surface at ``height`` m above the world origin (the arm's base stands
        on a pedestal level with the floor of the scene), centred 0.62 m in front of the arm (+x),
        long side along y. A single-column pedestal below the top. Returns the body id.
        """
        if T_world_table is None:
            T_world_table = np.eye(4)
            T_world_table[:3, 3] = (0.62, 0.0, height)
        T_wt = transform("T_world_table", T_world_table)
        sx, sy, sz = (float(v) for v in finite_array("size", size, (3,)))
        top_h = (sx / 2, sy / 2, sz / 2)
        col_h = (0.12, 0.2, max(T_wt[2, 3] - sz, 0.01) / 2)
        frames = [[0, 0, -sz / 2], [0, 0, -sz - col_h[2]]]

        def make(cid: int, physics: bool) -> tuple[int, int]:
            col = (
                p.createCollisionShapeArray(
                    [p.GEOM_BOX, p.GEOM_BOX], halfExtents=[top_h, col_h], collisionFramePositions=frames,
                    physicsClientId=cid,
                )
                if physics else -1
            )
            vis = p.createVisualShapeArray(
                [p.GEOM_BOX, p.GEOM_BOX], halfExtents=[top_h, col_h], visualFramePositions=frames,
                rgbaColors=[[0.35, 0.55, 0.62, 1.0], [0.5, 0.5, 0.52, 1.0]], physicsClientId=cid,
            )
            return col, vis

        return self._add_body(name, make, T_wt)

    def add_mesh(
        self,
        name: str,
        mesh: MeshInput,
        T_world_obj: np.ndarray,
        rgba: tuple[float, float, float, float] = (0.93, 0.89, 0.78, 1.0),
    ) -> int:
        """A static triangle mesh (vertices m + faces, or an OBJ/STL/PLY path), concave allowed."""
        V, F = mesh_arrays(mesh)
        idx = F.reshape(-1).tolist()
        verts = V.tolist()
        normals = _vertex_normals(V, F).tolist()

        def make(cid: int, physics: bool) -> tuple[int, int]:
            col = (
                p.createCollisionShape(p.GEOM_MESH, vertices=verts, indices=idx,
                                       flags=p.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=cid)
                if physics else -1
            )
            vis = p.createVisualShape(p.GEOM_MESH, vertices=verts, indices=idx, normals=normals, rgbaColor=rgba,
                                      physicsClientId=cid)
            if (physics and col < 0) or vis < 0:
                return -1, -2
            return col, vis

        return self._add_body(name, make, T_world_obj)

    def add_bone_phantom(
        self,
        mesh: MeshInput | None = None,
        T_world_bone: np.ndarray | None = None,
        name: str = "bone",
    ) -> int:
        """The patient's bone phantom: ``mesh`` from the caller (ortho layer), else ``primitive_bone_mesh()``.

        Default pose: lying on the default operating table, 0.55 m in front of the arm, shaft along
        y, 3.5 cm above the table top (on supports in a real set-up).
        """
        if T_world_bone is None:
            T_world_bone = np.eye(4)
            T_world_bone[:3, :3] = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
            T_world_bone[:3, 3] = (0.55, 0.0, 0.30 + 0.035)
        return self.add_mesh(name, primitive_bone_mesh() if mesh is None else mesh, T_world_bone)

    def add_marker_plate(
        self,
        name: str,
        image: np.ndarray,
        size: float,
        T_parent_plate: np.ndarray,
        *,
        parent: str | int | None = None,
        parent_link: str | int | None = None,
        thickness: float = 0.002,
    ) -> ScenePlate:
        """A square plate of edge ``size`` (m) showing ``image`` on its +z face (see module doc).

        ``parent`` None fixes the plate in the world at ``T_parent_plate``; ``parent="arm"`` (or a
        scene object name, or a body id) and ``parent_link`` (a link name of the arm, or a link index)
        make it follow that link at ``T_parent_plate`` in the link frame. The plate frame's origin is
        the centre of the image face.
        """
        if not (math.isfinite(size) and size > 0 and thickness > 0):
            raise ValueError("size/thickness: must be > 0")
        self._check_name(name)
        T_pp = transform("T_parent_plate", T_parent_plate)
        png = self._texture_file(name, image)
        pbody, plink = self._resolve_parent(parent, parent_link)
        T_world = T_pp if pbody is None else self._link_pose(pbody, plink) @ T_pp
        body = self._add_body(name, _plate_shapes(size, thickness), T_world)
        for cid, physics in self._clients():
            b = body if physics else self._view_ids[name]
            tex = p.loadTexture(str(png), physicsClientId=cid)
            p.changeVisualShape(b, -1, textureUniqueId=tex, rgbaColor=[1, 1, 1, 1], physicsClientId=cid)
        if pbody is not None:
            self._attach(name, body, pbody, plink, T_pp)
        plate = ScenePlate(name, body, float(size), pbody, plink, None if pbody is None else T_pp.copy())
        self.plates[name] = plate
        return plate

    def _texture_file(self, name: str, image: np.ndarray) -> Path:
        """``image`` (uint8 grey or RGB/RGBA) written as the PNG PyBullet loads as a texture."""
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ValueError("image: expected a uint8 array HxW (grey) or HxWx3/4 (RGB/RGBA)")
        if min(img.shape[:2]) < 2:
            raise ValueError("image: too small")
        import cv2

        rgb = img if img.ndim == 3 else np.stack([img] * 3, axis=2)
        png = Path(self._tmp.name) / f"{name}.png"
        if not cv2.imwrite(str(png), cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2BGR)):
            raise ValueError("image: could not be encoded")
        return png

    def _attach(self, name: str, body: int, pbody: int, plink: int, T_pp: np.ndarray) -> None:
        """Kinematic attachment: no collisions with its carrier, pose refreshed after each step."""
        for link in range(-1, p.getNumJoints(pbody, physicsClientId=self._client)):
            p.setCollisionFilterPair(body, pbody, -1, link, 0, physicsClientId=self._client)
        self._attached[name] = (pbody, plink, *pq_from_transform(T_pp))
        if self._host is not None and not self._following:
            self._host.add_step_hook(self.update_attachments, after=True)
            self._following = True

    def _resolve_parent(self, parent: str | int | None, link: str | int | None) -> tuple[int | None, int]:
        if parent is None:
            return None, -1
        if parent == "arm":
            if self._host is None:
                raise ValueError("parent: 'arm' needs a scene owned by an ArmSim (a SceneHost)")
            body = self._host.body
            if isinstance(link, str):
                return body, self._host.link_index(link)
            return body, -1 if link is None else int(link)
        body = self.objects[parent] if isinstance(parent, str) else int(parent)
        if isinstance(link, str):
            raise ValueError("parent_link: give a link index for bodies other than the arm")
        return body, -1 if link is None else int(link)

    def _link_pose(self, body: int, link: int) -> np.ndarray:
        if link == -1:
            pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=self._client)
        else:
            st = p.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=self._client)
            pos, orn = st[4], st[5]
        return transform_from_pq(pos, orn)

    def update_attachments(self) -> None:
        """Move attached marker plates to their carriers' current poses (called after each step).

        Runs every physics step, so it stays in PyBullet's C maths (``multiplyTransforms``).
        """
        cid = self._client
        for name, (pbody, plink, pos_rel, orn_rel) in self._attached.items():
            if plink == -1:
                pos, orn = p.getBasePositionAndOrientation(pbody, physicsClientId=cid)
            else:
                st = p.getLinkState(pbody, plink, computeForwardKinematics=True, physicsClientId=cid)
                pos, orn = st[4], st[5]
            pw, ow = p.multiplyTransforms(pos, orn, pos_rel, orn_rel)
            p.resetBasePositionAndOrientation(self.objects[name], pw, ow, physicsClientId=cid)

    def close(self) -> None:
        self._tmp.cleanup()


def _plate_shapes(size: float, thickness: float) -> Callable[[int, bool], tuple[int, int]]:
    """The shapes of a marker plate of edge ``size`` (m): the image face, a quad at z = 0 with UVs
    mapping image column -> +x, row -> -y, and (physics client only) a thin box behind it."""
    h = size / 2
    verts = [[-h, -h, 0.0], [h, -h, 0.0], [h, h, 0.0], [-h, h, 0.0]]
    uvs = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]  # as PyBullet's renderers sample them
    idx = [0, 1, 2, 0, 2, 3]

    def make(cid: int, physics: bool) -> tuple[int, int]:
        vis = p.createVisualShape(
            p.GEOM_MESH, vertices=verts, indices=idx, uvs=uvs, normals=[[0, 0, 1]] * 4, physicsClientId=cid
        )
        col = (
            p.createCollisionShape(
                p.GEOM_BOX, halfExtents=[h, h, thickness / 2], collisionFramePosition=[0, 0, -thickness / 2],
                physicsClientId=cid,
            )
            if physics else -1
        )
        return col, vis

    return make
