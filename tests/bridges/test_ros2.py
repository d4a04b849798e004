"""ROS 2 bag export, read back with rosbags' own reader (every message deserialised)."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from machaon.bridges.errors import BridgeError
from machaon.bridges.ros2 import export_ros2
from machaon.cli.main import main
from machaon.robot.loop import ControlLoop
from machaon.robot.runlog import RunLogRecorder
from machaon.robot.topics import LOG_WARNING, Box, FramePose, Mesh, Polyline, SceneEntity
from tests.bridges.conftest import Wave, link_frames, make_backend, relaxed_supervisor


@pytest.fixture
def run_log(tmp_path, arm):
    """A run log with every topic: cycles (with a wrench), /tf, a supervisor event, scene, log, stats."""
    desc, _chain, _ = arm
    path = tmp_path / "run.mcap"
    backend = make_backend(desc)
    backend.set_wrench_tool(np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3]))
    with RunLogRecorder(path, joint_names=desc.joint_names, link_frames=link_frames(arm)) as rec:
        sup = relaxed_supervisor()
        loop = ControlLoop(backend, Wave(desc.q_home), sup, rate_hz=500, recorder=rec)
        loop.run_for(0.2)
        sup.hold("pause for the test")
        loop.run_for(0.1)
        mesh = Mesh(np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0]]), np.array([[0, 1, 2]]))
        rec.record_scene(0.3, [SceneEntity("L3", "L3", (mesh,)),
                               SceneEntity("L3_left", "L3", (Polyline(np.zeros((2, 3)) + [[0, 0, 0], [0, 0, 0.04]]),)),
                               SceneEntity("box", "world", (Box(np.eye(4), (0.1, 0.2, 0.3)),))])
        rec.record_transforms(0.3, [FramePose("world", "L3", np.eye(4))])
        rec.record_log(0.3, "registration done", LOG_WARNING)
    return path


def _read_all(bag) -> dict[str, list]:
    store = get_typestore(Stores.ROS2_JAZZY)
    out: dict[str, list] = {}
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, store.deserialize_cdr(raw, conn.msgtype)))
    return out


def test_export_reads_back_with_rosbags(run_log, tmp_path, arm):
    desc, chain, tcp = arm
    bag = tmp_path / "bag"
    summary = export_ros2(run_log, bag)
    text = (bag / "metadata.yaml").read_text()
    assert "storage_identifier: mcap" in text and "version: 8" in text and list(bag.glob("*.mcap"))
    with Reader(bag) as reader:
        assert reader.message_count == summary.messages
    msgs = _read_all(bag)
    assert sum(len(v) for v in msgs.values()) == summary.messages  # every message deserialises
    with Reader(bag) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
    assert types["/joint_states"] == "sensor_msgs/msg/JointState"
    assert types["/tf"] == "tf2_msgs/msg/TFMessage"
    assert types["/wrench"] == "geometry_msgs/msg/WrenchStamped"
    assert types["/diagnostics"] == "diagnostic_msgs/msg/DiagnosticArray"
    assert types["/scene"] == "visualization_msgs/msg/MarkerArray"
    assert types["/rosout"] == "rcl_interfaces/msg/Log"
    js = msgs["/joint_states"]
    assert len(js) == 150 and list(js[0][1].name) == list(desc.joint_names)
    # a /tf message's tool frame is the chain's FK of the joint state at the same instant
    q_at = {t: np.asarray(m.position) for t, m in js}
    t_tf, tf = msgs["/tf"][3]
    tool = next(x for x in tf.transforms if x.child_frame_id == tcp)
    assert tool.header.frame_id == desc.base_link
    p = tool.transform.translation
    assert np.allclose([p.x, p.y, p.z], chain.fk(q_at[t_tf])[:3, 3], atol=1e-12)
    w = msgs["/wrench"][0][1].wrench
    assert (w.force.x, w.force.y, w.force.z, w.torque.z) == (1.0, 2.0, 3.0, 0.3)
    sup = [m.status[0] for _, m in msgs["/diagnostics"] if m.status[0].name == "supervisor"]
    assert sup and "pause for the test" in sup[0].message and sup[0].level == 1
    assert msgs["/rosout"][0][1].msg == "registration done" and msgs["/rosout"][0][1].level == 30
    markers = msgs["/scene"][0][1].markers
    assert [mk.type for mk in markers] == [11, 5, 1] and len(markers[0].points) == 3
    assert js[0][0] == js[0][1].header.stamp.sec * 10**9 + js[0][1].header.stamp.nanosec


def test_cli_export_and_bad_input(run_log, tmp_path, capsys):
    assert main(["log", "export-ros2", str(run_log), str(tmp_path / "b")]) == 0
    assert "/joint_states" in capsys.readouterr().out
    assert (tmp_path / "b" / "metadata.yaml").is_file()
    assert main(["log", "export-ros2", str(run_log), str(tmp_path / "b")]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert main(["log", "export-ros2", str(tmp_path / "missing.mcap"), str(tmp_path / "c")]) == 2
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all")
    assert main(["log", "export-ros2", str(junk), str(tmp_path / "d")]) == 2
    assert "not a readable" in capsys.readouterr().err and not (tmp_path / "d").exists()
    with pytest.raises(BridgeError):
        export_ros2(junk, tmp_path / "e")
