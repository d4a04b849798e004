"""ROS 2 without ROS: a run log (MCAP, ``machaon.robot.runlog``) exported as a rosbag2 bag.

``export_ros2(run_mcap, outdir)`` writes ``outdir`` as a rosbag2 bag (format version 8:
``metadata.yaml`` plus one MCAP storage file, CDR-encoded, message definitions of ROS 2 Jazzy)
with the ``rosbags`` library, which does the CDR serialisation and the bag bookkeeping. Topics:

==========================  ======================================  ===========================================
run-log topic               bag topic                               ROS 2 type
==========================  ======================================  ===========================================
``/joint_states``           ``/joint_states``                       ``sensor_msgs/msg/JointState``
``/tf``                     ``/tf``                                 ``tf2_msgs/msg/TFMessage``
``/wrench``                 ``/wrench``                             ``geometry_msgs/msg/WrenchStamped``
``/machaon/command``        ``/machaon/command``                    ``sensor_msgs/msg/JointState`` (the arrays
                                                                    the command mode fills)
``/machaon/target``         ``/machaon/target/joints``              ``sensor_msgs/msg/JointState`` (q_d, dq_d)
                            ``/machaon/target/pose``                ``geometry_msgs/msg/PoseStamped`` (x_d, quat_d)
                            ``/machaon/target/<key>``               ``std_msgs/msg/Float64MultiArray`` (error...)
``/machaon/supervisor``     ``/diagnostics``                        ``diagnostic_msgs/msg/DiagnosticArray``
``/machaon/loop_stats``     ``/diagnostics``                        (status ``control_loop``, key/values)
``/scene``                  ``/scene``                              ``visualization_msgs/msg/MarkerArray``
``/log``                    ``/rosout``                             ``rcl_interfaces/msg/Log``
==========================  ======================================  ===========================================

Bag times are the run log's (the backend clock: simulated time starts at 0). ``ros2 bag info``
and ``ros2 bag play`` of Jazzy and later read the bag (Humble reads bag format 5: use
``ros2 bag reindex`` there). ``OUTDIR`` must not exist (rosbag2 never overwrites a bag); a
missing or unreadable run log raises ``BridgeSetupError``.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.bridges.errors import BridgeSetupError
from machaon.robot import topics as tp

BAG_VERSION = 8


@dataclass(frozen=True)
class ExportSummary:
    """What ``export_ros2`` wrote: the bag directory and the number of messages per bag topic."""

    bag: Path
    counts: dict[str, int]

    @property
    def messages(self) -> int:
        return sum(self.counts.values())


def _run_log_messages(path: Path) -> Iterator[tuple[str, int, dict]]:
    """(topic, log time ns, JSON message) of a run log, in file order; a damaged tail ends the iteration."""
    from mcap.reader import make_reader
    from mcap.records import Channel, Message
    from mcap.stream_reader import StreamReader

    with open(path, "rb") as f:
        try:
            reader = make_reader(f)
            for _schema, channel, message in reader.iter_messages(log_time_order=True):
                yield channel.topic, message.log_time, json.loads(message.data)
            return
        except Exception:  # no summary (a crashed run): read record by record below
            pass
    channels: dict[int, str] = {}
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f, skip_magic=False).records:
                if isinstance(record, Channel):
                    channels[record.id] = record.topic
                elif isinstance(record, Message) and record.channel_id in channels:
                    yield channels[record.channel_id], record.log_time, json.loads(record.data)
        except Exception:
            return


class _Builder:
    """ROS 2 messages of the Jazzy typestore, every field not given set to its zero value."""

    def __init__(self) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.ROS2_JAZZY)

    def make(self, msgtype: str, **fields: object) -> object:
        from rosbags.typesys.base import Nodetype

        cls = self.store.types[msgtype]
        for name, (kind, spec) in self.store.fielddefs[msgtype][1]:
            if name in fields:
                continue
            if kind == Nodetype.NAME:
                fields[name] = self.make(spec)
            elif kind == Nodetype.BASE:
                base = spec[0]
                fields[name] = "" if base == "string" else False if base == "bool" else \
                    0.0 if base.startswith("float") else 0
            elif kind == Nodetype.ARRAY:
                (ekind, espec), n = spec
                fields[name] = np.zeros(n, dtype=_NP.get(espec[0], np.float64)) if ekind == Nodetype.BASE else \
                    [self.make(espec) for _ in range(n)]
            else:  # SEQUENCE
                (ekind, espec), _ = spec
                fields[name] = np.zeros(0, dtype=_NP[espec[0]]) if ekind == Nodetype.BASE and espec[0] in _NP else []
        return cls(**fields)

    def serialize(self, msg: object) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msg.__msgtype__))


_NP = {"float64": np.float64, "float32": np.float32, "int8": np.int8, "uint8": np.uint8, "int16": np.int16,
       "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
       "bool": np.bool_}


def _arr(values: list | None) -> np.ndarray:
    if values is None:
        return np.zeros(0)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


class _Converter:
    """Run-log JSON messages -> (bag topic, ROS 2 message) pairs."""

    def __init__(self, joint_names: list[str]) -> None:
        self.b = _Builder()
        self.joint_names = joint_names

    def _names(self, n: int) -> list[str]:
        return list(self.joint_names) if len(self.joint_names) == n else [f"joint{i + 1}" for i in range(n)]

    def header(self, ts: dict, frame_id: str = "") -> object:
        stamp = self.b.make("builtin_interfaces/msg/Time", sec=int(ts.get("sec", 0)), nanosec=int(ts.get("nsec", 0)))
        return self.b.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)

    def _stamp(self, m: dict) -> dict:
        return m["timestamp"] if "timestamp" in m else tp.stamp(float(m.get("t", 0.0)))

    def _vec(self, msgtype: str, d: dict) -> object:
        return self.b.make(msgtype, **{k: float(d[k]) if d.get(k) is not None else float("nan") for k in d})

    def _pose(self, p: dict) -> object:
        return self.b.make("geometry_msgs/msg/Pose", position=self._vec("geometry_msgs/msg/Point", p["position"]),
                           orientation=self._vec("geometry_msgs/msg/Quaternion", p["orientation"]))

    def joint_state(self, m: dict) -> list[tuple[str, object]]:
        names = m.get("name") or self.joint_names
        return [("/joint_states", self.b.make("sensor_msgs/msg/JointState", header=self.header(self._stamp(m)),
                                              name=list(names), position=_arr(m.get("position")),
                                              velocity=_arr(m.get("velocity")), effort=_arr(m.get("effort"))))]

    def tf(self, m: dict) -> list[tuple[str, object]]:
        out = []
        for tf in m["transforms"]:
            t = self.b.make("geometry_msgs/msg/Transform",
                            translation=self._vec("geometry_msgs/msg/Vector3", tf["translation"]),
                            rotation=self._vec("geometry_msgs/msg/Quaternion", tf["rotation"]))
            out.append(self.b.make("geometry_msgs/msg/TransformStamped",
                                   header=self.header(tf["timestamp"], tf["parent_frame_id"]),
                                   child_frame_id=tf["child_frame_id"], transform=t))
        return [("/tf", self.b.make("tf2_msgs/msg/TFMessage", transforms=out))]

    def wrench(self, m: dict) -> list[tuple[str, object]]:
        w = self.b.make("geometry_msgs/msg/Wrench", force=self._vec("geometry_msgs/msg/Vector3", m["force"]),
                        torque=self._vec("geometry_msgs/msg/Vector3", m["torque"]))
        return [("/wrench", self.b.make("geometry_msgs/msg/WrenchStamped",
                                        header=self.header(self._stamp(m), m.get("frame_id", "")), wrench=w))]

    def command(self, m: dict) -> list[tuple[str, object]]:
        names = self._names(max(len(m.get(k) or []) for k in ("q", "dq", "tau")))
        return [("/machaon/command", self.b.make("sensor_msgs/msg/JointState", header=self.header(self._stamp(m)),
                                                 name=names, position=_arr(m.get("q")), velocity=_arr(m.get("dq")),
                                                 effort=_arr(m.get("tau"))))]

    def target(self, m: dict) -> list[tuple[str, object]]:
        hdr = self.header(self._stamp(m))
        out = []
        if m.get("q_d") is not None:
            q_d = _arr(m["q_d"])
            names = self._names(len(q_d))
            out.append(("/machaon/target/joints", self.b.make(
                "sensor_msgs/msg/JointState", header=hdr, name=names, position=q_d, velocity=_arr(m.get("dq_d")))))
        if m.get("x_d") is not None and len(m["x_d"]) == 3:
            x = _arr(m["x_d"])
            qd = _arr(m.get("quat_d")) if m.get("quat_d") is not None and len(m["quat_d"]) == 4 else \
                np.array([0.0, 0.0, 0.0, 1.0])
            pose = {"position": dict(zip("xyz", x.tolist(), strict=True)),
                    "orientation": dict(zip("xyzw", qd.tolist(), strict=True))}
            out.append(("/machaon/target/pose", self.b.make("geometry_msgs/msg/PoseStamped", header=hdr,
                                                            pose=self._pose(pose))))
        for k, v in m.items():
            if k in ("t", "timestamp", "q_d", "dq_d", "x_d", "quat_d") or not isinstance(v, list):
                continue
            out.append((f"/machaon/target/{k}", self.b.make("std_msgs/msg/Float64MultiArray", data=_arr(v))))
        return out

    def _kv(self, k: str, v: object) -> object:
        return self.b.make("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v))

    def supervisor(self, m: dict) -> list[tuple[str, object]]:
        to = m.get("to", m.get("state", ""))
        level = 0 if to == "run" else 1 if to == "hold" else 2  # OK, WARN, ERROR
        st = self.b.make("diagnostic_msgs/msg/DiagnosticStatus", level=level, name="supervisor",
                         message=f"{m.get('from', '')} -> {to}: {m.get('reason', '')}", hardware_id="machaon",
                         values=[self._kv(k, m.get(k, "")) for k in ("from", "to", "code", "reason")])
        return [("/diagnostics", self.b.make("diagnostic_msgs/msg/DiagnosticArray",
                                             header=self.header(self._stamp(m)), status=[st]))]

    def stats(self, m: dict, ts: dict) -> list[tuple[str, object]]:
        st = self.b.make("diagnostic_msgs/msg/DiagnosticStatus", level=0, name="control_loop",
                         message="loop statistics (s)", hardware_id="machaon",
                         values=[self._kv(k, v) for k, v in m.items()])
        return [("/diagnostics", self.b.make("diagnostic_msgs/msg/DiagnosticArray", header=self.header(ts),
                                             status=[st]))]

    def log(self, m: dict) -> list[tuple[str, object]]:
        level = {1: 10, 2: 20, 3: 30, 4: 40, 5: 50}.get(int(m.get("level", 2)), 20)
        stamp = self.b.make("builtin_interfaces/msg/Time", sec=int(m["timestamp"]["sec"]),
                            nanosec=int(m["timestamp"]["nsec"]))
        return [("/rosout", self.b.make("rcl_interfaces/msg/Log", stamp=stamp, level=level,
                                        name=m.get("name", "machaon"), msg=m.get("message", ""),
                                        file=m.get("file", ""), line=int(m.get("line", 0))))]

    def scene(self, m: dict) -> list[tuple[str, object]]:
        markers = []
        for d in m.get("deletions", []):
            markers.append(self.b.make("visualization_msgs/msg/Marker", header=self.header(d["timestamp"]),
                                       ns=d["id"], id=0, action=3 if d.get("type") == 1 else 2))
        for e in m.get("entities", []):
            hdr = self.header(e["timestamp"], e["frame_id"])
            k = 0
            for kind, mtype in (("triangles", 11), ("lines", 5), ("cylinders", 3), ("cubes", 1)):
                for p in e.get(kind, []):
                    pts = [self._vec("geometry_msgs/msg/Point", v) for v in p.get("points", [])]
                    if kind == "triangles" and p.get("indices"):
                        pts = [pts[i] for i in p["indices"]]
                    scale = p.get("size", {"x": p.get("thickness", 1.0), "y": 1.0, "z": 1.0})
                    markers.append(self.b.make(
                        "visualization_msgs/msg/Marker", header=hdr, ns=e["id"], id=k, type=mtype, action=0,
                        pose=self._pose(p["pose"]), scale=self._vec("geometry_msgs/msg/Vector3", scale),
                        color=self._vec("std_msgs/msg/ColorRGBA", p["color"]), frame_locked=bool(e["frame_locked"]),
                        points=pts))
                    k += 1
        return [("/scene", self.b.make("visualization_msgs/msg/MarkerArray", markers=markers))]


_TYPES = {
    "/joint_states": "sensor_msgs/msg/JointState", "/tf": "tf2_msgs/msg/TFMessage",
    "/wrench": "geometry_msgs/msg/WrenchStamped", "/machaon/command": "sensor_msgs/msg/JointState",
    "/machaon/target/joints": "sensor_msgs/msg/JointState", "/machaon/target/pose": "geometry_msgs/msg/PoseStamped",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray", "/rosout": "rcl_interfaces/msg/Log",
    "/scene": "visualization_msgs/msg/MarkerArray",
}


def export_ros2(run_mcap: str | os.PathLike[str], outdir: str | os.PathLike[str]) -> ExportSummary:
    """Write the run log ``run_mcap`` as the rosbag2 bag ``outdir`` (module docstring).

    Raises ``BridgeSetupError`` when the run log is missing, not a run log, or ``outdir`` exists.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.errors import WriterError

    src, dst = Path(run_mcap), Path(outdir)
    if not src.is_file():
        raise BridgeSetupError(f"no such run log: {src}")
    if dst.exists():
        raise BridgeSetupError(f"{dst} exists; give a new directory for the bag (rosbag2 never overwrites one)")
    meta = _run_log_metadata(src)
    conv = _Converter(json.loads(meta.get("joint_names", "[]") or "[]"))
    handlers: dict[str, Callable[[dict], list]] = {
        tp.TOPIC_JOINT_STATES: conv.joint_state, tp.TOPIC_TF: conv.tf, tp.TOPIC_WRENCH: conv.wrench,
        tp.TOPIC_COMMAND: conv.command, tp.TOPIC_TARGET: conv.target, tp.TOPIC_SUPERVISOR: conv.supervisor,
        tp.TOPIC_LOG: conv.log, tp.TOPIC_SCENE: conv.scene,
    }
    counts: dict[str, int] = {}
    messages = _run_log_messages(src)
    first = next(messages, None)
    if first is None:
        raise BridgeSetupError(f"{src}: not a readable MCAP run log (no messages)")
    try:
        with Writer(dst, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
            writer.set_custom_data("machaon.source", src.name)
            conns: dict[str, object] = {}
            for topic, log_time, m in itertools.chain([first], messages):
                if topic == tp.TOPIC_STATS:
                    pairs = conv.stats(m, tp.stamp(log_time * 1e-9))
                elif topic in handlers:
                    pairs = handlers[topic](m)
                else:
                    continue
                for bag_topic, msg in pairs:
                    conn = conns.get(bag_topic)
                    if conn is None:
                        conn = conns[bag_topic] = writer.add_connection(
                            bag_topic, _TYPES.get(bag_topic, msg.__msgtype__), typestore=conv.b.store)
                    writer.write(conn, int(log_time), conv.b.serialize(msg))
                    counts[bag_topic] = counts.get(bag_topic, 0) + 1
    except WriterError as exc:
        raise BridgeSetupError(f"cannot write the bag {dst}: {exc}") from None
    return ExportSummary(dst, counts)


def _run_log_metadata(path: Path) -> dict[str, str]:
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as f:
            for meta in make_reader(f).iter_metadata():
                if meta.name == "machaon":
                    return dict(meta.metadata)
    except Exception:  # a truncated log has no summary; joint names then default
        pass
    return {}
