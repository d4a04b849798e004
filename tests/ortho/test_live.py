"""``ortho run``'s bridges end to end: a PLUS-like OpenIGTLink server (pyigtl's) feeds the tracking,
3D Slicer's side (pyigtl's client) receives the navigation, a Foxglove-protocol client watches.

One short run (one level, one screw) serves every check: the tracked poses come from an
external server, go through the procedure's navigation, and come out to Slicer in millimetres."""

from __future__ import annotations

import time

import numpy as np
import pyigtl

from machaon.bridges.foxglove_live import FoxgloveLiveView
from machaon.bridges.igtl import IgtlServer
from machaon.bridges.igtl_tracker import IgtlTrackerClient
from machaon.ortho.live import ProcedureLive
from machaon.ortho.procedure import ProcedureConfig, run_procedure
from machaon.robot.observers import Observers
from tests.bridges import igtl_util
from tests.bridges.fox_client import FoxClient

MM = 1e-3


class PlusLike:
    """Plays PLUS: at each camera frame it serves the plates' true poses (from the procedure's world
    frames on /tf) as ReferenceToTracker / ToolToTracker in mm, with pyigtl's own server."""

    def __init__(self) -> None:
        self.server = igtl_util.PyigtlServer()
        self.fed: dict[str, np.ndarray] = {}
        self.truth: dict[str, np.ndarray] = {}

    def record_transforms(self, t, frames) -> None:
        T = {f.child: f.T for f in frames}
        if "camera" not in T:
            return
        self.truth.update(T)
        cam_inv = np.linalg.inv(T["camera"])
        for dev, child in (("ReferenceToTracker", "reference_plate"), ("ToolToTracker", "tool_plate")):
            M = cam_inv @ T[child]
            self.fed[dev] = M
            mm = M.copy()
            mm[:3, 3] *= 1000.0
            self.server.send(pyigtl.TransformMessage(mm, device_name=dev))


def _rigid_mm(msg) -> np.ndarray:
    M = np.asarray(msg.matrix, dtype=float)
    R = M[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-5) and abs(np.linalg.det(R) - 1) < 1e-5
    return M


def test_ortho_run_with_slicer_plus_and_foxglove(monkeypatch):
    igtl_util.register_decoders(monkeypatch)
    plus = PlusLike()
    try:
        with IgtlServer(port=0) as srv, IgtlTrackerClient("127.0.0.1", plus.server.port, retry_s=0.05) as trk, \
                FoxgloveLiveView(port=0) as view:
            slicer = igtl_util.client(srv.port)
            fox = FoxClient(view.url)
            fox.subscribe(["/tf", "/scene", "/log"])
            deadline = time.monotonic() + 5
            while not trk.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            live = ProcedureLive(observers=Observers(view, plus), igtl=srv, tracker=trk, tracker_wait_s=0.5)
            cfg = ProcedureConfig(levels=("L3",), plan_mode="axis", screws=("L3-L",), bump=False,
                                  calibration_from_images=False, calibration_poses=8, n_surface_points=40,
                                  feed_m_s=6e-3)
            result = run_procedure(cfg, live=live)
            srv.flush()
            view.flush()
            # the procedure navigated on the external tracker's poses, and drilled within tolerance
            assert result.all_within_tolerance, result.summary()
            assert trk.received > 100
            # Slicer's side: the raw tracking is what PLUS served, in mm
            tool = _rigid_mm(slicer.wait_for_message("ToolToTracker", timeout=5))
            ref = _rigid_mm(slicer.wait_for_message("ReferenceToTracker", timeout=5))
            for M, dev in ((tool, "ToolToTracker"), (ref, "ReferenceToTracker")):
                assert np.allclose(M[:3, :3], plus.fed[dev][:3, :3], atol=1e-5)
                assert np.allclose(M[:3, 3], 1000.0 * plus.fed[dev][:3, 3], atol=1e-2)
            # ... the drill tip in the reference frame is the procedure's own navigation pose
            tip = _rigid_mm(slicer.wait_for_message("ToolToReference", timeout=5))
            assert np.allclose(tip[:3, 3] * MM, live.last_sent["ToolToReference"][:3, 3], atol=1e-5)
            assert 0.05 < np.linalg.norm(tip[:3, 3]) * MM < 1.0  # mm on the wire: tens of cm away
            # ... the registered vertebra sits where it truly is relative to the plate (TRE-sized error)
            l3 = _rigid_mm(slicer.wait_for_message("L3ToReference", timeout=5))
            true = np.linalg.inv(plus.truth["reference_plate"]) @ plus.truth["L3"]
            assert np.linalg.norm(l3[:3, 3] * MM - true[:3, 3]) < 1.0 * MM
            assert slicer.wait_for_message("RobotBaseToReference", timeout=5) is not None
            poly = slicer.wait_for_message("L3", timeout=5)
            assert poly.message_type == "POLYDATA" and len(poly.points) > 500
            pts = slicer.wait_for_message("L3-L", timeout=5)
            assert pts.names == ["L3-L_entry", "L3-L_target"]
            assert slicer.wait_for_message("Status", timeout=5).string == "done"
            igtl_util.stop(slicer)
            # Foxglove's side: the vertebra mesh and the planned screw, the scene frames and the arm
            msgs = fox.collect(lambda m: any(t == "/scene" for t, _, _ in m)
                               and any(t == "/log" and "done" in x["message"] for t, _, x in m))
            fox.close()
            ids = {e["id"] for t, _, m in msgs if t == "/scene" for e in m["entities"]}
            assert {"L3", "L3-L", "drill"} <= ids
            children = {tf["child_frame_id"] for t, _, m in msgs if t == "/tf" for tf in m["transforms"]}
            assert {"L3", "camera", "reference_plate", "tool_plate", "flange", "drill_tip"} <= children
    finally:
        plus.server.close()


def test_ortho_run_bridge_flags_bad_input(capsys):
    import socket

    from machaon.cli.main import main

    assert main(["ortho", "run", "--headless", "--tracker", "igtl:nohostport"]) == 2
    assert "expected igtl:HOST:PORT" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert main(["ortho", "run", "--headless", "--igtl-port", str(s.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err
