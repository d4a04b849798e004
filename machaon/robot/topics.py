"""Topics, schemas and messages shared by the MCAP run logs and the live views (Foxglove).

A live session (``machaon.bridges.foxglove_live``) and its run log (``machaon.robot.runlog``)
publish the same topics with the same JSON schemas, so they look the same in Foxglove:

==========================  ===========================  ===============================================
topic                       schema                       content
==========================  ===========================  ===============================================
``/tf``                     ``foxglove.FrameTransforms`` every link of the arm (parent: the base link),
                                                         the tool, and scene frames (camera, plates,
                                                         vertebrae; parent ``world``)
``/joint_states``           ``machaon.JointState``       ``name``, ``position``, ``velocity``, ``effort``
                                                         (SI) as ROS's JointState, plus ``ok``/``faults``
``/wrench``                 ``machaon.Wrench``           tool force/torque (N, N m), base frame
``/machaon/command``        ``machaon.JointCommand``     what the loop wrote: ``mode``, ``tau``, ``q``, ``dq``
``/machaon/target``         ``machaon.Target``           the controller's target and error (``cmd.info``)
``/machaon/supervisor``     ``machaon.SupervisorEvent``  each supervisor transition (``to`` = state now)
``/machaon/loop_stats``     ``machaon.LoopStats``        the loop's timing statistics at the end
``/scene``                  ``foxglove.SceneUpdate``     3D entities: vertebra meshes, planned screws,
                                                         drill, virtual fixtures
``/log``                    ``foxglove.Log``             what the application says (phases, faults)
==========================  ===========================  ===============================================

Every message carries ``timestamp`` ``{sec, nsec}`` (the backend clock; simulation time in a
simulator) and the machaon ones also ``t`` (s, float). Poses are in metres and quaternions
``(x, y, z, w)``. NaN or Inf in arrays become ``null`` (JSON has neither), so a bad cycle stays
visible. The functions here only build dicts; writing them is the recorder's or server's job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from machaon._validate import transform
from machaon.kinematics.so3 import quats_from_matrices

TOPIC_TF = "/tf"
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_WRENCH = "/wrench"
TOPIC_COMMAND = "/machaon/command"
TOPIC_TARGET = "/machaon/target"
TOPIC_SUPERVISOR = "/machaon/supervisor"
TOPIC_STATS = "/machaon/loop_stats"
TOPIC_SCENE = "/scene"
TOPIC_LOG = "/log"

# cmd.info keys published on the target topic (arrays of floats).
TARGET_KEYS = ("q_d", "dq_d", "x_d", "quat_d", "error", "wrench", "x", "tau_ff")

# foxglove.Log levels
LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL = 1, 2, 3, 4, 5

# -- JSON schemas --------------------------------------------------------------------------------

_NUM = {"type": "number"}
_NUM_ARRAY = {"type": "array", "items": {"type": ["number", "null"]}}
_TIME = {"type": "object", "title": "time",
         "properties": {"sec": {"type": "integer", "minimum": 0},
                        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999}}}
_VEC3 = {"type": "object", "title": "foxglove.Vector3", "properties": {"x": _NUM, "y": _NUM, "z": _NUM}}
_QUAT = {"type": "object", "title": "foxglove.Quaternion",
         "properties": {"x": _NUM, "y": _NUM, "z": _NUM, "w": _NUM}}
_POSE = {"type": "object", "title": "foxglove.Pose", "properties": {"position": _VEC3, "orientation": _QUAT}}
_COLOR = {"type": "object", "title": "foxglove.Color", "properties": {"r": _NUM, "g": _NUM, "b": _NUM, "a": _NUM}}
_POINTS = {"type": "array", "items": _VEC3}


def _obj(title: str, **props: object) -> dict:
    return {"type": "object", "title": title, "properties": props}


_FRAME_TRANSFORM = _obj("foxglove.FrameTransform", timestamp=_TIME, parent_frame_id={"type": "string"},
                        child_frame_id={"type": "string"}, translation=_VEC3, rotation=_QUAT)
_PRIMITIVES = {
    "arrows": _obj("foxglove.ArrowPrimitive", pose=_POSE, shaft_length=_NUM, shaft_diameter=_NUM,
                   head_length=_NUM, head_diameter=_NUM, color=_COLOR),
    "cubes": _obj("foxglove.CubePrimitive", pose=_POSE, size=_VEC3, color=_COLOR),
    "spheres": _obj("foxglove.SpherePrimitive", pose=_POSE, size=_VEC3, color=_COLOR),
    "cylinders": _obj("foxglove.CylinderPrimitive", pose=_POSE, size=_VEC3, bottom_scale=_NUM, top_scale=_NUM,
                      color=_COLOR),
    "lines": _obj("foxglove.LinePrimitive", type={"type": "integer"}, pose=_POSE, thickness=_NUM,
                  scale_invariant={"type": "boolean"}, points=_POINTS, color=_COLOR,
                  colors={"type": "array", "items": _COLOR}, indices={"type": "array", "items": {"type": "integer"}}),
    "triangles": _obj("foxglove.TriangleListPrimitive", pose=_POSE, points=_POINTS, color=_COLOR,
                      colors={"type": "array", "items": _COLOR},
                      indices={"type": "array", "items": {"type": "integer"}}),
    "texts": _obj("foxglove.TextPrimitive", pose=_POSE, billboard={"type": "boolean"}, font_size=_NUM,
                  scale_invariant={"type": "boolean"}, color=_COLOR, text={"type": "string"}),
    "models": {"type": "object", "title": "foxglove.ModelPrimitive"},
}
_ENTITY = _obj(
    "foxglove.SceneEntity", timestamp=_TIME, frame_id={"type": "string"}, id={"type": "string"},
    lifetime=_TIME, frame_locked={"type": "boolean"},
    metadata={"type": "array", "items": _obj("foxglove.KeyValuePair", key={"type": "string"},
                                             value={"type": "string"})},
    **{k: {"type": "array", "items": v} for k, v in _PRIMITIVES.items()},
)

SCHEMAS: dict[str, dict] = {
    TOPIC_TF: _obj("foxglove.FrameTransforms", transforms={"type": "array", "items": _FRAME_TRANSFORM}),
    TOPIC_JOINT_STATES: _obj(
        "machaon.JointState", timestamp=_TIME, t={"type": "number", "description": "backend clock, s"},
        name={"type": "array", "items": {"type": "string"}}, position=_NUM_ARRAY, velocity=_NUM_ARRAY,
        effort=_NUM_ARRAY, ok={"type": "boolean"}, faults={"type": "array", "items": {"type": "object"}},
    ),
    TOPIC_WRENCH: _obj("machaon.Wrench", timestamp=_TIME, t=_NUM, frame_id={"type": "string"}, force=_VEC3,
                       torque=_VEC3),
    TOPIC_COMMAND: _obj("machaon.JointCommand", timestamp=_TIME, t=_NUM,
                        mode={"type": "string", "enum": ["torque", "position", "velocity"]},
                        tau={"type": ["array", "null"], "items": {"type": ["number", "null"]}},
                        q={"type": ["array", "null"], "items": {"type": ["number", "null"]}},
                        dq={"type": ["array", "null"], "items": {"type": ["number", "null"]}}),
    TOPIC_TARGET: {**_obj("machaon.Target", timestamp=_TIME, t=_NUM), "additionalProperties": _NUM_ARRAY},
    TOPIC_SUPERVISOR: _obj("machaon.SupervisorEvent", timestamp=_TIME, t=_NUM, state={"type": "string"},
                           **{"from": {"type": "string"}}, to={"type": "string"}, code={"type": "string"},
                           reason={"type": "string"}),
    TOPIC_STATS: {"type": "object", "title": "machaon.LoopStats", "additionalProperties": _NUM},
    TOPIC_SCENE: _obj("foxglove.SceneUpdate",
                      deletions={"type": "array", "items": _obj("foxglove.SceneEntityDeletion", timestamp=_TIME,
                                                                type={"type": "integer"}, id={"type": "string"})},
                      entities={"type": "array", "items": _ENTITY}),
    TOPIC_LOG: _obj("foxglove.Log", timestamp=_TIME, level={"type": "integer"}, message={"type": "string"},
                    name={"type": "string"}, file={"type": "string"}, line={"type": "integer"}),
}


def schema_name(topic: str) -> str:
    """The schema name of ``topic`` (e.g. ``foxglove.FrameTransforms``); KeyError for unknown topics."""
    return SCHEMAS[topic]["title"]


# -- scene data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FramePose:
    """``T_parent_child``: the pose of frame ``child`` in frame ``parent`` (4x4, m)."""

    parent: str
    child: str
    T: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "T", transform("T", self.T))

    @classmethod
    def trusted(cls, parent: str, child: str, T: np.ndarray) -> FramePose:
        """A ``FramePose`` of a transform our own kinematics computed (not re-checked: the check costs
        ~0.1 ms, which matters on a publisher thread sharing the GIL with the control loop)."""
        f = object.__new__(cls)
        object.__setattr__(f, "parent", parent)
        object.__setattr__(f, "child", child)
        object.__setattr__(f, "T", T)
        return f


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: ``vertices_m`` (N, 3) in the entity's frame, ``faces`` (M, 3) vertex indices."""

    vertices_m: np.ndarray
    faces: np.ndarray
    rgba: tuple[float, float, float, float] = (0.9, 0.85, 0.75, 1.0)


@dataclass(frozen=True)
class Polyline:
    """Line segments between consecutive pairs of ``points_m`` (2K, 3) (a line list), ``thickness_m`` wide."""

    points_m: np.ndarray
    rgba: tuple[float, float, float, float] = (0.9, 0.1, 0.1, 1.0)
    thickness_m: float = 0.001


@dataclass(frozen=True)
class Cylinder:
    """A cylinder along the z axis of ``T`` (its centre), ``diameter_m`` x ``length_m``."""

    T: np.ndarray
    diameter_m: float
    length_m: float
    rgba: tuple[float, float, float, float] = (0.7, 0.7, 0.75, 1.0)


@dataclass(frozen=True)
class Box:
    """A box centred at ``T`` with edge lengths ``size_m`` (x, y, z)."""

    T: np.ndarray
    size_m: tuple[float, float, float]
    rgba: tuple[float, float, float, float] = (0.2, 0.6, 1.0, 0.25)


@dataclass(frozen=True)
class SceneEntity:
    """One 3D entity: its ``id``, the frame its primitives are expressed in, and the primitives.

    ``frame_locked`` entities move with their frame as new ``/tf`` arrives (a vertebra's mesh
    follows the vertebra's frame).
    """

    id: str
    frame_id: str
    primitives: tuple = ()
    frame_locked: bool = True
    metadata: dict[str, str] = field(default_factory=dict)


def workspace_box_entity(frame_id: str, lo_m: Sequence[float], hi_m: Sequence[float]) -> SceneEntity:
    """The supervisor's workspace box (a virtual fixture) as a translucent box in ``frame_id``."""
    lo, hi = np.asarray(lo_m, dtype=np.float64), np.asarray(hi_m, dtype=np.float64)
    T = np.eye(4)
    T[:3, 3] = 0.5 * (lo + hi)
    return SceneEntity("workspace", frame_id, (Box(T, tuple((hi - lo).tolist())),),
                       metadata={"what": "supervisor workspace box (virtual fixture)"})


# -- message builders ---------------------------------------------------------------------------


def stamp(t: float) -> dict[str, int]:
    """``{sec, nsec}`` for a time in seconds (negative or non-finite times become 0)."""
    if not math.isfinite(t) or t <= 0.0:
        return {"sec": 0, "nsec": 0}
    ns = int(round(t * 1e9))
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def stamp_seconds(ts: dict) -> float:
    """Seconds from a ``{sec, nsec}`` stamp."""
    return float(ts.get("sec", 0)) + 1e-9 * float(ts.get("nsec", 0))


def floats(a: np.ndarray | Sequence[float] | None) -> list[float | None] | None:
    """A JSON-safe list of floats (NaN/Inf -> None), or None."""
    if a is None:
        return None
    arr = np.asarray(a, dtype=np.float64).ravel()
    if np.isfinite(arr).all():
        return arr.tolist()
    return [float(x) if math.isfinite(x) else None for x in arr]


def _vec(p: np.ndarray) -> dict[str, float]:
    return {"x": float(p[0]), "y": float(p[1]), "z": float(p[2])}


def quats_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternions (x, y, z, w) of rotation matrices (..., 3, 3), SciPy's values and signs
    (``machaon.kinematics.so3.quats_from_matrices``: a third of SciPy's cost for a frame tree)."""
    return quats_from_matrices(R)


def pose(T: np.ndarray) -> dict:
    """foxglove.Pose of a 4x4 transform (m)."""
    x, y, z, w = quats_xyzw(np.asarray(T)[:3, :3]).tolist()
    return {"position": _vec(T[:3, 3]), "orientation": {"x": x, "y": y, "z": z, "w": w}}


def frame_transforms_msg(t: float, frames: Iterable[FramePose]) -> dict:
    """foxglove.FrameTransforms: one FrameTransform per ``FramePose`` at time ``t``."""
    ts = stamp(t)
    frames = list(frames)
    if not frames:
        return {"transforms": []}
    quats = quats_xyzw(np.stack([f.T[:3, :3] for f in frames])).tolist()
    out = []
    for f, (x, y, z, w) in zip(frames, quats, strict=True):
        out.append({"timestamp": ts, "parent_frame_id": f.parent, "child_frame_id": f.child,
                    "translation": _vec(f.T[:3, 3]), "rotation": {"x": x, "y": y, "z": z, "w": w}})
    return {"transforms": out}


def joint_state_msg(t: float, names: Sequence[str], state: object) -> dict:
    """``/joint_states`` for a ``JointState`` (SI), with ``ok`` and the device faults."""
    faults = [{"source": f.source, "code": f.code, "message": f.message, "joint": f.joint,
               "persistent": f.persistent} for f in state.faults]
    return {"timestamp": stamp(t), "t": t, "name": list(names), "position": floats(state.q),
            "velocity": floats(state.dq), "effort": floats(state.tau), "ok": bool(state.ok), "faults": faults}


def wrench_msg(t: float, wrench: np.ndarray, frame_id: str) -> dict:
    """``/wrench``: ``[f; m]`` (N, N m) in ``frame_id``."""
    w = floats(wrench)
    return {"timestamp": stamp(t), "t": t, "frame_id": frame_id,
            "force": {"x": w[0], "y": w[1], "z": w[2]}, "torque": {"x": w[3], "y": w[4], "z": w[5]}}


def command_msg(t: float, cmd: object) -> dict:
    """``/machaon/command`` for a ``JointCommand``."""
    return {"timestamp": stamp(t), "t": t, "mode": cmd.mode.value, "tau": floats(cmd.tau), "q": floats(cmd.q),
            "dq": floats(cmd.dq)}


def target_msg(t: float, info: dict) -> dict | None:
    """``/machaon/target`` from a command's ``info`` (the ``TARGET_KEYS`` present), or None if it has none."""
    if not info:
        return None
    msg: dict = {k: floats(info[k]) for k in TARGET_KEYS if info.get(k) is not None}
    if not msg:
        return None
    msg["timestamp"] = stamp(t)
    msg["t"] = t
    return msg


def supervisor_msg(ev: object) -> dict:
    """``/machaon/supervisor`` for a ``SupervisorEvent``."""
    return {"timestamp": stamp(ev.t), "t": ev.t, "state": ev.to_state.value, "from": ev.from_state.value,
            "to": ev.to_state.value, "code": ev.code, "reason": ev.reason}


def stats_msg(stats: object) -> dict:
    """``/machaon/loop_stats`` for a ``LoopStats``."""
    return {k: float(v) for k, v in stats.as_dict().items()}


def log_msg(t: float, message: str, level: int = LOG_INFO, name: str = "machaon") -> dict:
    """foxglove.Log: one line of what the application says."""
    return {"timestamp": stamp(t), "level": int(level), "message": str(message), "name": name, "file": "",
            "line": 0}


def _color(rgba: Sequence[float]) -> dict[str, float]:
    return {"r": float(rgba[0]), "g": float(rgba[1]), "b": float(rgba[2]), "a": float(rgba[3])}


_IDENTITY_POSE = {"position": {"x": 0.0, "y": 0.0, "z": 0.0}, "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}}


def _points(P: np.ndarray) -> list[dict[str, float]]:
    P = np.asarray(P, dtype=np.float64).reshape(-1, 3)
    return [{"x": x, "y": y, "z": z} for x, y, z in P.tolist()]


def scene_entity_msg(t: float, e: SceneEntity) -> dict:
    """foxglove.SceneEntity for a ``SceneEntity`` (unknown primitive types raise ``TypeError``)."""
    out: dict = {"timestamp": stamp(t), "frame_id": e.frame_id, "id": e.id, "lifetime": {"sec": 0, "nsec": 0},
                 "frame_locked": bool(e.frame_locked),
                 "metadata": [{"key": str(k), "value": str(v)} for k, v in e.metadata.items()],
                 **{k: [] for k in _PRIMITIVES}}
    for p in e.primitives:
        if isinstance(p, Mesh):
            out["triangles"].append({"pose": _IDENTITY_POSE, "points": _points(p.vertices_m), "color": _color(p.rgba),
                                     "colors": [], "indices": np.asarray(p.faces, dtype=np.int64).ravel().tolist()})
        elif isinstance(p, Polyline):
            out["lines"].append({"type": 2, "pose": _IDENTITY_POSE, "thickness": float(p.thickness_m),
                                 "scale_invariant": False, "points": _points(p.points_m), "color": _color(p.rgba),
                                 "colors": [], "indices": []})
        elif isinstance(p, Cylinder):
            out["cylinders"].append({"pose": pose(p.T), "size": _vec((p.diameter_m, p.diameter_m, p.length_m)),
                                     "bottom_scale": 1.0, "top_scale": 1.0, "color": _color(p.rgba)})
        elif isinstance(p, Box):
            out["cubes"].append({"pose": pose(p.T), "size": _vec(p.size_m), "color": _color(p.rgba)})
        else:
            raise TypeError(f"unknown scene primitive {type(p).__name__}")
    return out


def scene_update_msg(t: float, entities: Iterable[SceneEntity], deleted_ids: Iterable[str] = ()) -> dict:
    """foxglove.SceneUpdate adding/replacing ``entities`` and deleting ``deleted_ids``."""
    ts = stamp(t)
    return {"deletions": [{"timestamp": ts, "type": 0, "id": i} for i in deleted_ids],
            "entities": [scene_entity_msg(t, e) for e in entities]}
