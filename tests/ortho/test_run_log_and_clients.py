"""``machaon ortho run --record``, and clients that misbehave during a procedure.

Two short runs of the same seed through the CLI (one level, one screw, ``--fast-calibration``):

- ``quiet``: ``--record`` only. Its run log holds what the Foxglove live view shows (joint states and
  commands each recorded cycle, ``/tf`` of the arm and of the scene frames, the vertebra mesh and the
  planned screw on ``/scene``, the phases on ``/log``); ``machaon log summary`` reads it and
  ``machaon log export-ros2`` turns it into a bag that rosbags' reader deserialises.
- ``disturbed``: ``--igtl-port`` and ``--foxglove-port`` (``--fast``), with clients misbehaving while the
  procedure runs (a ``Chaos`` thread, driven by the phases 3D Slicer's side sees): pyigtl clients
  connected two and three at a time, one of them leaving mid-run, a socket that reads a little and
  vanishes, raw garbage to both ports, a WebSocket client sending garbage frames, Foxglove clients
  vanishing without a close frame. The procedure's result is the quiet run's, to the last digit,
  nothing logged an error, and the well-behaved clients were served to the end.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import numpy as np
import pytest
from mcap.reader import make_reader

from machaon.cli.main import main
from tests.bridges import igtl_util
from tests.bridges.fox_client import FoxClient

ARGS = ["ortho", "run", "--headless", "--levels", "L3", "--plan-mode", "axis", "--screws", "L3-L",
        "--fast-calibration", "--no-bump", "--feed-mm-s", "10", "--seed", "0"]
PHASES = ("plan", "calibrate", "register", "approach", "align", "drill", "home", "done")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_topics(path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with open(path, "rb") as f:
        for _schema, channel, message in make_reader(f).iter_messages():
            out.setdefault(channel.topic, []).append(json.loads(message.data))
    return out


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    d = tmp_path_factory.mktemp("quiet")
    rc = main([*ARGS, "--out", str(d / "run"), "--record", str(d / "run.mcap")])
    return rc, d


# -- the run log ---------------------------------------------------------------------------------


def test_record_writes_what_the_live_view_shows(quiet):
    from machaon.robot.runlog import read_run_log

    rc, d = quiet
    assert rc == 0
    run = read_run_log(d / "run.mcap")
    assert run.joint_names[0] == "shoulder_pan" and run.dof == 6
    assert len(run.t) > 100 and np.isfinite(run.q).all()
    assert run.metadata["source"] == "machaon ortho run" and run.metadata["decimation"] == "5"  # 500 Hz -> 100
    assert np.allclose(np.diff(run.t), 5 / 500.0)
    assert "q_d" in run.targets  # the controller's target, for the tracking plot
    msgs = _read_topics(d / "run.mcap")
    children = {tf["child_frame_id"] for m in msgs["/tf"] for tf in m["transforms"]}
    assert {"camera", "reference_plate", "tool_plate", "L3", "image", "flange", "drill_tip"} <= children
    entities = {e["id"]: e for m in msgs["/scene"] for e in m["entities"]}
    assert {"L3", "L3-L", "drill"} <= set(entities)
    mesh = entities["L3"]["triangles"][0]
    assert entities["L3"]["frame_id"] == "L3" and len(mesh["points"]) > 500 and len(mesh["indices"]) % 3 == 0
    assert len(entities["L3-L"]["lines"][0]["points"]) == 2
    phases = [m["message"] for m in msgs["/log"]]
    assert phases[0] == "plan" and "drill L3-L" in phases and phases[-1] == "done"
    # the vertebra's frame on /tf follows the patient, who breathes
    l3_z = np.array([tf["translation"]["z"] for m in msgs["/tf"] for tf in m["transforms"]
                     if tf["child_frame_id"] == "L3"])
    assert len(l3_z) > 100 and np.ptp(l3_z) > 1e-4


def test_record_reads_with_log_summary_and_exports_to_ros2(quiet, capsys):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    _, d = quiet
    capsys.readouterr()
    assert main(["log", "summary", str(d / "run.mcap")]) == 0
    out = capsys.readouterr().out
    assert "joints        6 (shoulder_pan" in out and "(every 5)" in out
    bag = d / "bag"
    assert main(["log", "export-ros2", str(d / "run.mcap"), str(bag)]) == 0
    store = get_typestore(Stores.ROS2_JAZZY)
    counts: dict[str, int] = {}
    with Reader(bag) as reader:
        for conn, _t, raw in reader.messages():
            store.deserialize_cdr(raw, conn.msgtype)
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    assert counts["/joint_states"] > 100 and counts["/tf"] > 100 and counts["/scene"] >= 1


def test_record_bad_input_is_usage_error(tmp_path, capsys):
    assert main([*ARGS, "--out", str(tmp_path / "o"), "--record", str(tmp_path / "no" / "such" / "x.mcap")]) == 2
    assert "--record" in capsys.readouterr().err
    assert main([*ARGS, "--out", str(tmp_path / "o"), "--record", str(tmp_path / "x.mcap"),
                 "--record-decimation", "0"]) == 2
    assert "--record-decimation" in capsys.readouterr().err


# -- misbehaving clients during the procedure ----------------------------------------------------


class Chaos(threading.Thread):
    """Clients that misbehave while ``ortho run`` goes on (module docstring), in two rounds: once the
    patient is being registered, and again while drilling. ``errors``: what went wrong on this side."""

    def __init__(self, igtl_port: int, fox_port: int) -> None:
        super().__init__(daemon=True)
        self.igtl_port, self.fox_port = igtl_port, fox_port
        self.errors: list[BaseException] = []
        self.acted_in: list[str] = []
        self.tool_pose_after = None
        self.second_status = None
        self.watched: list = []

    def run(self) -> None:
        try:
            self._script()
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _phase(self, slicer, target: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = slicer.wait_for_message("Status", timeout=0.05)
            if msg is not None and getattr(msg, "string", None):
                phase = msg.string.split()[0]
                if phase in PHASES and PHASES.index(phase) >= PHASES.index(target):
                    return msg.string
        raise TimeoutError(f"phase {target} not reached")

    def _igtl_garbage(self) -> None:
        import pyigtl

        with socket.create_connection(("127.0.0.1", self.igtl_port)) as s:
            s.sendall(bytes(range(256)) * 64)  # not OpenIGTLink at all
            bogus = pyigtl.TransformMessage(np.eye(4), device_name="Hack").pack()
            s.sendall(bogus[:30] + b"\xff" * 28 + bogus[58:])  # a header announcing an absurd body
        with socket.create_connection(("127.0.0.1", self.igtl_port)) as s:
            s.recv(1000)  # reads a little, then vanishes mid-stream

    def _fox_garbage(self) -> None:
        with socket.create_connection(("127.0.0.1", self.fox_port)) as raw:  # no WebSocket handshake
            raw.sendall(b"\x00\xffGET / garbage\r\n\r\n" + bytes(range(256)) * 8)
        with FoxClient(self._url) as bad:
            bad.ws.send("{not json")
            bad.ws.send(b"\x02\x00\x00\x00\x00\xff\xfe")
            bad.ws.send('{"op":"subscribe","subscriptions":[{"id":1,"channelId":999999}]}')
            bad.ws.send('{"op":"unsubscribe","subscriptionIds":[42]}')
        gone = FoxClient(self._url)
        gone.subscribe(["/tf", "/joint_states"])
        gone.collect(lambda m: len(m) >= 3)
        gone.ws.socket.close()  # no close frame: the peer just vanishes

    def _script(self) -> None:
        self._url = f"ws://127.0.0.1:{self.fox_port}"
        slicer = igtl_util.client(self.igtl_port)
        deadline = time.monotonic() + 60
        while not slicer.is_connected() and time.monotonic() < deadline:  # the CLI starts its servers
            time.sleep(0.02)
        second, leaver = igtl_util.client(self.igtl_port), igtl_util.client(self.igtl_port)  # three at once
        try:
            self.acted_in.append(self._phase(slicer, "register"))
            self._igtl_garbage()
            with FoxClient(self._url) as a, FoxClient(self._url) as b:  # two viewers; one subscribes twice
                a.subscribe(["/tf"])
                b.subscribe(["/tf"])
                a.subscribe(["/tf"])
                a.collect(lambda m: len(m) >= 3)
                b.collect(lambda m: len(m) >= 3)
            self._fox_garbage()
            watcher = FoxClient(self._url)  # stays to the end
            watcher.subscribe(["/log"])
            self.acted_in.append(self._phase(slicer, "drill"))
            leaver.stop()  # a Slicer that disconnects mid-run
            self._igtl_garbage()
            self._fox_garbage()
            slicer.wait_for_message("ToolToReference", timeout=0.01)  # drop what came before
            self.tool_pose_after = slicer.wait_for_message("ToolToReference", timeout=10)
            # both still served after the garbage: the phases after drilling reach them
            self.second_status = self._phase(second, "home")
            self.watched = watcher.collect(lambda m: any(t == "/log" and x["message"] == "home" for t, _, x in m),
                                           timeout=30)
            watcher.close()
        finally:
            for c in (slicer, second, leaver):
                c.stop()


@pytest.fixture(scope="module")
def disturbed(tmp_path_factory):
    d = tmp_path_factory.mktemp("disturbed")
    igtl_port, fox_port = _free_port(), _free_port()
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            igtl_util.register_decoders(mp)
            chaos = Chaos(igtl_port, fox_port)
            chaos.start()
            rc = main([*ARGS, "--out", str(d / "run"), "--igtl-port", str(igtl_port), "--foxglove-port",
                       str(fox_port), "--fast"])
            chaos.join(90)  # it finishes as the run ends; the bound is for a broken server
    finally:
        logging.getLogger().removeHandler(handler)
    return rc, d, chaos, handler.records


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _report(d) -> dict:
    return json.loads((d / "run" / "report.json").read_text())


def test_misbehaving_clients_never_disturb_the_procedure(quiet, disturbed):
    rc_q, dq = quiet
    rc, d, chaos, records = disturbed
    assert not chaos.is_alive(), "the clients' script never finished"
    assert chaos.errors == [], chaos.errors
    # the clients acted during the procedure: while registering and while drilling
    assert chaos.acted_in[0].split()[0] in ("register", "approach") and chaos.acted_in[1] == "drill L3-L"
    assert rc == rc_q == 0
    quiet_report, report = _report(dq), _report(d)
    assert report["screws"] == quiet_report["screws"]  # the same seed's result, to the last digit
    drop = {"time_s"}
    assert {k: v for k, v in report["registration"].items() if k not in drop} == \
        {k: v for k, v in quiet_report["registration"].items() if k not in drop}
    # nothing raised in the bridges or the loop (an observer that raises is logged at ERROR and dropped);
    # pyigtl's clients log their own errors on the root logger when the server closes at the end
    bad = [r for r in records if r.name.startswith("machaon")
           and (r.levelno >= logging.ERROR or "publishing failed" in r.getMessage())]
    assert bad == [], [r.getMessage() for r in bad]
    # the well-behaved clients were served after the garbage, to the end
    assert chaos.tool_pose_after is not None
    assert chaos.second_status.split()[0] in ("home", "done")
    assert [x["message"] for t, _, x in chaos.watched if t == "/log"][-1] == "home"
