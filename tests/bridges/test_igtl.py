"""OpenIGTLink server received by pyigtl's own client; the tracker client fed by pyigtl's own server."""

from __future__ import annotations

import socket
import time

import numpy as np
import pyigtl
import pytest
from scipy.spatial.transform import Rotation

from machaon.bridges.errors import BridgeError
from machaon.bridges.igtl import IgtlServer, PlannedScrew, wait_for_clients
from machaon.bridges.igtl_tracker import IgtlTrackerClient, parse_tracker_address
from machaon.robot.clock import MonotonicClock
from machaon.robot.loop import ControlLoop
from tests.bridges import igtl_util
from tests.bridges.conftest import Wave, assert_loop_undisturbed, make_backend, relaxed_supervisor


def _pose(rng) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
    T[:3, 3] = rng.uniform(-0.5, 0.5, 3)
    return T


def _check_mm(msg, T_m: np.ndarray) -> None:
    M = np.asarray(msg.matrix, dtype=float)
    R = M[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-5) and np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(R, T_m[:3, :3], atol=1e-6)
    assert np.allclose(M[:3, 3], 1000.0 * T_m[:3, 3], atol=1e-3)  # mm on the wire (float32)


def test_pyigtl_client_receives_navigation_in_mm(monkeypatch):
    igtl_util.register_decoders(monkeypatch)
    rng = np.random.default_rng(3)
    poses = {k: _pose(rng) for k in ("ref", "tool", "tip", "base", "L3", "L4")}
    with IgtlServer(port=0) as srv:
        c = igtl_util.client(srv.port)
        try:
            assert wait_for_clients(srv, 1)
            srv.send_tracking(T_tracker_reference=poses["ref"], T_tracker_tool=poses["tool"],
                              T_reference_tool=poses["tip"], T_reference_robotbase=poses["base"])
            srv.send_registration({"L3": poses["L3"], "L4": poses["L4"]})
            srv.send_status("drill", "L3-left")
            for dev, key in (("ReferenceToTracker", "ref"), ("ToolToTracker", "tool"), ("ToolToReference", "tip"),
                             ("RobotBaseToReference", "base"), ("L3ToReference", "L3"), ("L4ToReference", "L4")):
                msg = c.wait_for_message(dev, timeout=5)
                assert msg is not None and msg.message_type == "TRANSFORM", dev
                _check_mm(msg, poses[key])
            assert c.wait_for_message("Status", timeout=5).string == "drill L3-left"
        finally:
            igtl_util.stop(c)


def test_anatomy_plan_and_fault_status(monkeypatch):
    igtl_util.register_decoders(monkeypatch)
    V = np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [0.0, 0.02, 0.0], [0.0, 0.0, 0.03]])
    F = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    with IgtlServer(port=0) as srv:
        srv.send_anatomy({"L3": (V, F)})
        srv.send_plan([PlannedScrew("L3-left", "L3", np.array([0.01, 0.02, 0.03]), np.array([0.02, 0.04, 0.07]))])
        srv.flush()
        c = igtl_util.client(srv.port)  # connects after: latched devices arrive all the same
        try:
            poly = c.wait_for_message("L3", timeout=5)
            assert poly.message_type == "POLYDATA"
            assert np.allclose(poly.points, V * 1000.0, atol=1e-4)
            assert np.array_equal(poly.polygons.reshape(-1, 4)[:, 1:], F)
            pts = c.wait_for_message("L3-left", timeout=5)
            assert pts.names == ["L3-left_entry", "L3-left_target"] and pts.groups == ["L3", "L3"]
            assert np.allclose(pts.positions, [[10, 20, 30], [20, 40, 70]], atol=1e-4)

            class Ev:
                def __init__(self, to: str, code: str, reason: str) -> None:
                    from machaon.control.supervisor import SupervisorState

                    self.to_state, self.code, self.reason = SupervisorState(to), code, reason

            srv.record_events([Ev("protective_stop", "workspace", "tool left the workspace box")])
            st = c.wait_for_message("Status", timeout=5)
            assert st.message_type == "STATUS" and st.code == 2 and st.error_name == "workspace"
            assert st.status_string == "tool left the workspace box"
        finally:
            igtl_util.stop(c)


def test_a_client_waiting_for_the_port_is_served(monkeypatch):
    """Slicer retrying its connection is accepted the instant the server listens, while the server is
    still being built (here: before its publisher starts); its I/O thread must already be complete."""
    from machaon.bridges.observers import BackgroundPublisher

    early: list[socket.socket] = []
    real_start = BackgroundPublisher.start

    def start(self):
        srv = getattr(self._handler, "__self__", None)
        if isinstance(srv, IgtlServer) and not early:
            early.append(socket.create_connection(("127.0.0.1", srv.port)))
            deadline = time.monotonic() + 2
            while not srv._clients and srv._io.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_start(self)

    monkeypatch.setattr(BackgroundPublisher, "start", start)
    with IgtlServer(port=0) as srv:
        try:
            assert srv._io.is_alive() and srv.connections == 1
            srv.send_status("plan")
            early[0].settimeout(5)
            assert early[0].recv(58)[2:8] == b"STRING"  # an OpenIGTLink header: version, then the type
        finally:
            early[0].close()


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(BridgeError, match="cannot listen"):
            IgtlServer(port=s.getsockname()[1])


# -- clients that misbehave never disturb the loop that feeds the server -----------------------------


class _Streamer:
    """An observer that streams the tool pose over OpenIGTLink every cycle, as the procedure does."""

    def __init__(self, srv: IgtlServer) -> None:
        self.srv = srv

    def record_cycle(self, t, state, cmd) -> None:
        T = np.eye(4)
        T[:3, 3] = state.q[:3] * 0.01
        self.srv.send_tracking(T_reference_tool=T)


@pytest.fixture
def streaming(arm):
    desc, _chain, _ = arm
    srv = IgtlServer(port=0, queue_len=64)
    loop = ControlLoop(make_backend(desc, MonotonicClock(spin_s=0.0)), Wave(desc.q_home), relaxed_supervisor(),
                       rate_hz=200, recorder=_Streamer(srv))
    loop.start()
    yield loop, srv
    loop.stop()
    srv.close()


def _assert_undisturbed(loop, srv, c0: int) -> None:
    assert_loop_undisturbed(loop, c0)
    c = igtl_util.client(srv.port)
    try:
        assert c.wait_for_message("ToolToReference", timeout=5) is not None
    finally:
        igtl_util.stop(c)


def test_client_that_disconnects(streaming):
    loop, srv = streaming
    c0 = loop.cycles
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.recv(1000)  # a message arrives...
    # ... and the client is gone mid-stream, without reading the rest
    _assert_undisturbed(loop, srv, c0)


def test_client_that_connects_twice(streaming):
    loop, srv = streaming
    c0 = loop.cycles
    a, b = igtl_util.client(srv.port), igtl_util.client(srv.port)
    try:
        assert wait_for_clients(srv, 2)
        assert a.wait_for_message("ToolToReference", timeout=5) is not None
        assert b.wait_for_message("ToolToReference", timeout=5) is not None
    finally:
        igtl_util.stop(a)
        igtl_util.stop(b)
    stalled = socket.create_connection(("127.0.0.1", srv.port))  # connected, never reads: its queue fills
    time.sleep(0.5)
    _assert_undisturbed(loop, srv, c0)
    stalled.close()


def test_client_that_sends_garbage(streaming):
    loop, srv = streaming
    c0 = loop.cycles
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(bytes(range(256)) * 64)  # not OpenIGTLink at all
        bogus = pyigtl.TransformMessage(np.eye(4), device_name="Hack").pack()
        s.sendall(bogus[:30] + b"\xff" * 28 + bogus[58:])  # a header announcing an absurd body
        time.sleep(0.1)
    _assert_undisturbed(loop, srv, c0)


# -- the tracker client, fed by pyigtl's server -------------------------------------------------------


def test_tracker_client_takes_poses_from_a_pyigtl_server():
    rng = np.random.default_rng(5)
    server = igtl_util.PyigtlServer()
    try:
        with IgtlTrackerClient("127.0.0.1", server.port, retry_s=0.05) as trk:
            deadline = time.monotonic() + 5
            while not trk.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            T_ref, T_tool = _pose(rng), _pose(rng)
            for _ in range(2):
                server.send(pyigtl.TransformMessage(_mm(T_ref), device_name="ReferenceToTracker"))
                server.send(pyigtl.TransformMessage(_mm(T_tool), device_name="ToolToTracker"))
                assert trk.wait_update(["ReferenceToTracker", "ToolToTracker"], timeout=5)
                ref, tool = trk.latest("ReferenceToTracker"), trk.latest("ToolToTracker")
                assert np.allclose(ref.T, T_ref, atol=1e-6) and np.allclose(tool.T, T_tool, atol=1e-6)
                T_ref, T_tool = _pose(rng), _pose(rng)
            # a non-rigid matrix and a string are not poses: skipped, the last good pose stays
            bad = np.eye(4)
            bad[0, 0] = 2.0
            server.send(pyigtl.TransformMessage(bad, device_name="ToolToTracker"))
            server.send(pyigtl.StringMessage("hello", device_name="ToolToTracker"))
            deadline = time.monotonic() + 5
            while trk.rejected < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert trk.rejected == 1 and not trk.wait_update(["ToolToTracker"], timeout=0.2)
    finally:
        server.close()


def _mm(T: np.ndarray) -> np.ndarray:
    T = T.copy()
    T[:3, 3] *= 1000.0
    return T


def test_tracker_client_survives_garbage_and_reconnects():
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        port = lsock.getsockname()[1]
        with IgtlTrackerClient("127.0.0.1", port, retry_s=0.05) as trk:
            conn, _ = lsock.accept()
            good = pyigtl.TransformMessage(_mm(np.eye(4)), device_name="ReferenceToTracker").pack()
            corrupt = bytearray(good)
            corrupt[60] ^= 0xFF  # body bit flip: the CRC no longer matches
            conn.sendall(bytes(corrupt))
            conn.sendall(bytes(range(256)) * 4)  # then pure garbage: the client drops the connection
            conn.close()
            conn, _ = lsock.accept()  # and comes back
            conn.sendall(good)
            assert trk.wait_update(["ReferenceToTracker"], timeout=5)
            assert trk.rejected >= 1 and trk.connections == 2
            conn.close()


def test_tracker_address_parsing():
    assert parse_tracker_address("igtl:127.0.0.1:18944") == ("127.0.0.1", 18944)
    for bad in ("igtl:host", "plus:h:1", "igtl::1", "igtl:h:port", "igtl:h:0", "igtl:h:70000"):
        with pytest.raises(BridgeError, match="tracker"):
            parse_tracker_address(bad)
