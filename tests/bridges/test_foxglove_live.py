"""The Foxglove live view with a real Foxglove-protocol WebSocket client on loopback."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from machaon.bridges.errors import BridgeError
from machaon.bridges.foxglove_live import FoxgloveLiveView
from machaon.kinematics import Chain
from machaon.robot.clock import MonotonicClock
from machaon.robot.loop import ControlLoop
from machaon.robot.topics import FramePose, Mesh, SceneEntity, schema_name
from tests.bridges.conftest import Wave, assert_loop_undisturbed, link_frames, make_backend, relaxed_supervisor
from tests.bridges.fox_client import FoxClient, tf_matrix


def test_tf_link_poses_match_chain_fk(arm):
    desc, chain, tcp = arm
    backend = make_backend(desc)
    with FoxgloveLiveView(port=0, joint_names=desc.joint_names, link_frames=link_frames(arm), rate_hz=100,
                          queue_len=1024, wall_rate_hz=None) as view, FoxClient(view.url) as client:
        assert client.ws.subprotocol in ("foxglove.sdk.v1", "foxglove.websocket.v1")
        client.wait_for_channels(["/tf", "/joint_states"])
        assert client.channels["/tf"]["schemaName"] == "foxglove.FrameTransforms" == schema_name("/tf")
        client.subscribe(["/tf", "/joint_states"])
        time.sleep(0.2)  # the subscription reaches the server before the run starts
        loop = ControlLoop(backend, Wave(desc.q_home), relaxed_supervisor(), rate_hz=500, recorder=view)
        loop.run_for(0.5)
        view.flush()
        msgs = client.collect(lambda m: sum(t == "/tf" for t, _, _ in m) >= 50
                              and sum(t == "/joint_states" for t, _, _ in m) >= 50)
    q_at = {ts: np.array(m["position"]) for topic, ts, m in msgs if topic == "/joint_states"}
    tfs = [(ts, m) for topic, ts, m in msgs if topic == "/tf"]
    # each link checked against its own chain from the base (pinocchio's parse of the URDF, our FK)
    link_chains = {}
    checked = 0
    tool_positions = []
    for ts, m in tfs:
        q = q_at[ts]
        names = {tf["child_frame_id"] for tf in m["transforms"]}
        assert {"shoulder_link", "wrist_roll_link", "flange", tcp} <= names
        for tf in m["transforms"]:
            assert tf["parent_frame_id"] == desc.base_link
            child = tf["child_frame_id"]
            if child == tcp:
                ref = chain.fk(q)
            else:
                c = link_chains.get(child)
                if c is None:
                    c = link_chains[child] = Chain.from_urdf(desc.urdf_path, desc.base_link, child)
                ref = c.fk(q[:c.dof])
            assert np.allclose(tf_matrix(tf), ref, atol=1e-9), child
            if child == tcp:
                tool_positions.append(ref[:3, 3])
            checked += 1
    assert checked >= 50 * 8
    assert np.ptp(np.array(tool_positions), axis=0).max() > 0.02  # the arm moved while we watched


def test_late_subscriber_gets_latched_scene_and_supervisor_state(arm):
    desc, _chain, _ = arm
    from machaon.control.supervisor import SupervisorState

    backend = make_backend(desc)
    with FoxgloveLiveView(port=0, joint_names=desc.joint_names, link_frames=link_frames(arm)) as view:
        sup = relaxed_supervisor()
        loop = ControlLoop(backend, Wave(desc.q_home), sup, rate_hz=500, recorder=view)
        loop.run_for(0.05)
        sup.hold("operator asked")
        loop.run_for(0.05)
        tri = Mesh(np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0.0]]), np.array([[0, 1, 2]]))
        view.record_scene(0.1, [SceneEntity("L3", "L3", (tri,))])
        view.record_transforms(0.1, [FramePose("world", "L3", np.eye(4))])
        view.flush()
        with FoxClient(view.url) as client:  # connects after everything was published
            client.subscribe(["/scene", "/machaon/supervisor", "/tf"])
            msgs = client.collect(lambda m: {"/scene", "/machaon/supervisor"} <= {t for t, _, _ in m})
    scene = next(m for t, _, m in msgs if t == "/scene")
    assert scene["entities"][0]["id"] == "L3" and len(scene["entities"][0]["triangles"][0]["points"]) == 3
    sup_msg = next(m for t, _, m in msgs if t == "/machaon/supervisor")
    assert sup_msg["state"] == SupervisorState.HOLD.value and sup_msg["reason"] == "operator asked"


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BridgeError, match=f"cannot listen on 127.0.0.1:{port}"):
            FoxgloveLiveView(port=port)


# -- clients that misbehave never disturb the loop -------------------------------------------------


@pytest.fixture
def live_loop(arm):
    """A control loop running in its thread at real time (500 Hz) with the live view as recorder."""
    desc, _chain, _ = arm
    backend = make_backend(desc, clock=MonotonicClock(spin_s=0.0))
    view = FoxgloveLiveView(port=0, joint_names=desc.joint_names, link_frames=link_frames(arm))
    sup = relaxed_supervisor()
    loop = ControlLoop(backend, Wave(desc.q_home), sup, rate_hz=500, recorder=view)
    loop.start()
    yield loop, view
    loop.stop()
    view.close()


def _assert_undisturbed(loop, view, cycles_before: int) -> None:
    assert_loop_undisturbed(loop, cycles_before, 50)
    with FoxClient(view.url) as fresh:  # and the view still serves a well-behaved client
        fresh.subscribe(["/tf"])
        fresh.collect(lambda m: len(m) >= 3)


def test_client_that_disconnects_abruptly(live_loop):
    loop, view = live_loop
    c0 = loop.cycles
    client = FoxClient(view.url)
    client.subscribe(["/tf", "/joint_states"])
    client.collect(lambda m: len(m) >= 5)
    client.ws.socket.close()  # no close frame: the peer just vanishes mid-stream
    time.sleep(0.3)
    _assert_undisturbed(loop, view, c0)


def test_client_that_connects_twice(live_loop):
    loop, view = live_loop
    c0 = loop.cycles
    with FoxClient(view.url) as a, FoxClient(view.url) as b:
        a.subscribe(["/tf"])
        b.subscribe(["/tf"])
        a.subscribe(["/tf"])  # and subscribes twice on one connection
        a.collect(lambda m: len(m) >= 5)
        b.collect(lambda m: len(m) >= 5)
    _assert_undisturbed(loop, view, c0)


def test_client_that_sends_garbage(live_loop):
    loop, view = live_loop
    c0 = loop.cycles
    with socket.create_connection(("127.0.0.1", view.port)) as raw:  # not even a WebSocket handshake
        raw.sendall(b"\x00\xffGET / garbage\r\n\r\n" + bytes(range(256)) * 8)
    with FoxClient(view.url) as bad:
        bad.ws.send("{not json")
        bad.ws.send(b"\x02\x00\x00\x00\x00\xff\xfe")
        bad.ws.send('{"op":"subscribe","subscriptions":[{"id":1,"channelId":999999}]}')
        bad.ws.send('{"op":"unsubscribe","subscriptionIds":[42]}')
        time.sleep(0.2)
    _assert_undisturbed(loop, view, c0)
