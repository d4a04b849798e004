"""``--foxglove-port`` on the commands, watched by a Foxglove-protocol client; a run log's /tf exported."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
from rosbags.rosbag2 import Reader

from machaon.cli.main import main
from machaon.kinematics import Chain
from machaon.robot.description import load_description
from tests.bridges.fox_client import FoxClient, tf_matrix
from tests.teleop.conftest import free_port


def _start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"Foxglove live view on (ws://\S+)", line)
        if m:
            return proc, m.group(1)
    raise AssertionError("no live view:\n" + "".join(lines))


def test_sim_live_view_shows_the_arm_where_fk_puts_it():
    desc = load_description("machaon_arm")
    tool = desc.tool("drill_guide")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(tool.T_flange_tcp)
    proc, url = _start(["sim", "--headless", "--duration", "4", "--scenario", "square", "--foxglove-port", "0"])
    try:
        with FoxClient(url) as c:
            c.subscribe(["/tf", "/joint_states", "/scene"])
            msgs = c.collect(lambda m: sum(t == "/tf" for t, _, _ in m) >= 20 and any(t == "/scene" for t, _, _ in m))
    finally:
        proc.wait(30)
    assert proc.returncode == 0
    scene = next(m for t, _, m in msgs if t == "/scene")
    assert scene["entities"][0]["id"] == "workspace"
    q_at = {ts: np.array(m["position"]) for t, ts, m in msgs if t == "/joint_states"}
    checked = 0
    for t, ts, m in msgs:
        if t != "/tf" or ts not in q_at:
            continue
        for tf in m["transforms"]:
            if tf["child_frame_id"] == tool.tcp_link:
                assert np.allclose(tf_matrix(tf), chain.fk(q_at[ts]), atol=1e-9)
                checked += 1
    assert checked >= 10


def test_teleop_serve_live_view(key_file, tmp_path):
    import signal

    from mcap.reader import make_reader

    port = free_port()
    log = tmp_path / "serve.mcap"
    proc, url = _start(["teleop", "serve", "--backend", "sim", "--listen", f"127.0.0.1:{port}", "--key",
                        str(key_file), "--stats-s", "0", "--duration", "8", "--foxglove-port", "0",
                        "--record", str(log)])
    try:
        with FoxClient(url) as c:
            c.subscribe(["/joint_states", "/tf", "/scene"])
            msgs = c.collect(lambda m: sum(t != "/scene" for t, _, _ in m) >= 10
                             and any(t == "/scene" for t, _, _ in m))
        assert {t for t, _, _ in msgs} == {"/joint_states", "/tf", "/scene"}
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the server stops and closes its run log
        proc.wait(10)
    # the run log shows what the live view showed: the workspace box too
    live_ids = {e["id"] for t, _, m in msgs if t == "/scene" for e in m["entities"]}
    with open(log, "rb") as f:
        logged_ids = {e["id"] for _s, _c, m in make_reader(f).iter_messages(topics=["/scene"])
                      for e in json.loads(m.data)["entities"]}
    assert live_ids == logged_ids == {"workspace"}


def test_exo_sim_live_view_shows_both_legs():
    proc, url = _start(["exo", "sim", "--headless", "--duration", "6.2", "--skip", "4", "--no-assist",
                        "--foxglove-port", "0", "--fast"])
    try:
        with FoxClient(url) as c:
            c.subscribe(["/tf", "/joint_states"])
            msgs = c.collect(lambda m: sum(t == "/tf" for t, _, _ in m) >= 3
                             and any(t == "/joint_states" for t, _, _ in m))
    finally:
        proc.wait(60)
    assert proc.returncode == 0
    js = next(m for t, _, m in msgs if t == "/joint_states")
    assert js["name"] == ["hip_l", "knee_l", "hip_r", "knee_r"]
    tf = next(m for t, _, m in msgs if t == "/tf")
    assert {x["child_frame_id"] for x in tf["transforms"]} == {"thigh_l", "shank_l", "thigh_r", "shank_r"}
    assert {x["parent_frame_id"] for x in tf["transforms"]} == {"pelvis"}


def test_bad_foxglove_port_is_a_usage_error(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["sim", "--headless", "--duration", "0.1", "--foxglove-port", str(s.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err


def test_sim_run_log_has_tf_and_exports(tmp_path):
    log = tmp_path / "run.mcap"
    assert main(["sim", "--headless", "--duration", "0.3", "--record", str(log)]) == 0
    assert main(["log", "export-ros2", str(log), str(tmp_path / "bag")]) == 0
    with Reader(tmp_path / "bag") as r:
        topics = {c.topic: c.msgtype for c in r.connections}
    assert topics["/tf"] == "tf2_msgs/msg/TFMessage" and topics["/wrench"] == "geometry_msgs/msg/WrenchStamped"
