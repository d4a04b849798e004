"""The Foxglove live view with a real Foxglove-protocol WebSocket client on loopback."""

from __future__ import annotations

import os
import signal
import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.bridges.errors import BridgeError
from machaon.bridges.foxglove_live import FoxgloveLiveView, _cycle_parts
from machaon.bridges.foxglove_proc import CYCLE_HEAD, decode_cycle
from machaon.kinematics import Chain
from machaon.robot.clock import MonotonicClock
from machaon.robot.loop import ControlLoop
from machaon.robot.topics import TARGET_KEYS, FramePose, Mesh, SceneEntity, schema_name
from machaon.types import CommandMode, JointCommand, JointState
from tests.bridges.conftest import Wave, assert_loop_undisturbed, link_frames, make_backend, relaxed_supervisor
from tests.bridges.fox_client import FoxClient, tf_matrix
from tests.hardware.util import eventually


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


# -- the view's own process ------------------------------------------------------------------------


def test_view_process_runs_at_idle_priority():
    with FoxgloveLiveView(port=0) as view:
        assert view.pid != os.getpid()
        assert os.sched_getscheduler(view.pid) == os.SCHED_IDLE
    assert view.pid is None and view.error == "closed"
    view.record_log(0.0, "after close")  # harmless, and close twice too
    view.close()


def test_a_stopped_view_process_never_blocks_the_loop(live_loop):
    """SIGSTOP the view's process: its socket fills, cycles are dropped and counted, the loop runs on."""
    loop, view = live_loop
    view._wall_period = view._period = 0.0  # every cycle is sent, so the socket fills soon
    os.kill(view.pid, signal.SIGSTOP)
    try:
        c0 = loop.cycles
        assert eventually(lambda: view._full_drops > 0, timeout=10.0)
        assert_loop_undisturbed(loop, c0, 100)
        assert view.error is None
    finally:
        os.kill(view.pid, signal.SIGCONT)
    assert view.flush(5.0)  # and once it runs again, it catches up


def test_a_killed_view_process_is_logged_and_the_run_goes_on(live_loop, caplog):
    loop, view = live_loop
    c0 = loop.cycles
    os.kill(view.pid, signal.SIGKILL)
    assert eventually(lambda: view.error is not None, timeout=5.0)
    assert "the run goes on without it" in caplog.text
    assert_loop_undisturbed(loop, c0, 50)
    assert not view.flush(0.5)
    view.record_log(1.0, "after the view died")  # still harmless


def test_large_scene_crosses_to_the_view_process_in_pieces(arm):
    """A vertebra-sized mesh (far more than one 64 KiB message) arrives whole."""
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(12000, 3)) * 0.01
    tris = rng.integers(0, len(pts), size=(20000, 3))
    with FoxgloveLiveView(port=0) as view, FoxClient(view.url) as client:
        client.subscribe(["/scene"])
        time.sleep(0.2)
        view.record_scene(0.5, [SceneEntity("L4", "L4", (Mesh(pts, tris),))])
        assert view.flush(10.0)
        msgs = client.collect(lambda m: any(t == "/scene" for t, _, _ in m), timeout=20.0)
    scene = next(m for t, _, m in msgs if t == "/scene")
    mesh = scene["entities"][0]["triangles"][0]
    got = np.array([[p["x"], p["y"], p["z"]] for p in mesh["points"]])
    assert got.shape == pts.shape and np.array_equal(got, pts)
    assert mesh["indices"] == tris.ravel().tolist()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), wrench=st.booleans(), mode=st.sampled_from(list(CommandMode)),
       target=st.sets(st.sampled_from(TARGET_KEYS)), t=st.floats(0, 1e6), ok=st.booleans())
def test_cycle_message_round_trip(n, wrench, mode, target, t, ok):
    rng = np.random.default_rng(n)
    v = lambda *shape: rng.normal(size=shape)  # noqa: E731
    state = JointState(t, v(n), v(n), v(n), v(6) if wrench else None, (), ok)
    cmd = JointCommand(mode, v(n), v(n) if mode is not CommandMode.TORQUE else None, None)
    cmd.info.update({k: v(4, 4) if k == "x_d" else v(3) for k in target})
    if "tau_ff" not in target:
        cmd.info["tau_ff"] = "not numbers"  # skipped: /machaon/target shows numbers only
    slots, arrays = _cycle_parts(state, cmd)
    body = CYCLE_HEAD.pack(t, ok) + b"".join(a.tobytes() for a in arrays)
    item = decode_cycle((mode, (), slots), body)
    _, t2, q, dq, tau, ok2, _faults, w, mode2, c_tau, c_q, c_dq, tgt = item
    assert (t2, ok2, mode2) == (t, ok, mode)
    for a, b in ((q, state.q), (dq, state.dq), (tau, state.tau), (c_tau, cmd.tau)):
        assert np.array_equal(a, b)
    assert (w is None) == (not wrench) and (c_q is None) == (cmd.q is None) and c_dq is None
    assert set(tgt or ()) == target
    for k in target:
        assert np.array_equal(tgt[k], cmd.info[k])
    with pytest.raises(ValueError, match="layout"):
        decode_cycle((mode, (), slots), body + b"\0" * 8)
