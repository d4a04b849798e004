"""Run logs: the loop writes MCAP that reads back; summary and plot through the ``machaon log`` CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from mcap.reader import make_reader

from machaon.cli import log as log_cli
from machaon.control import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.robot.fake import FakeBackend
from machaon.robot.loop import ControlLoop
from machaon.robot.runlog import (
    TOPIC_COMMAND,
    TOPIC_STATE,
    TOPIC_SUPERVISOR,
    RunLogError,
    RunLogRecorder,
    format_summary,
    read_run_log,
)


@pytest.fixture()
def recorded(tmp_path):
    path = tmp_path / "run.mcap"
    backend = FakeBackend(3, joint_names=("a", "b", "c"))
    ctrl = JointImpedance(3, 200.0, 0.5)
    ctrl.set_target([0.2, -0.1, 0.05])
    sup = Supervisor(SafetyConfig(target_timeout_s=None, dq_max=10.0))
    with RunLogRecorder(path, joint_names=backend.joint_names, metadata={"scene": "unit test"}) as rec:
        loop = ControlLoop(backend, ctrl, sup, recorder=rec)
        loop.run_for(0.3)
        sup.hold("operator")
        loop.run_for(0.1)
        sup.resume()
        loop.run_for(0.1)
    return path, loop


def test_loop_writes_an_mcap_that_reads_back(recorded):
    path, loop = recorded
    run = read_run_log(path)
    assert run.joint_names == ("a", "b", "c")
    assert len(run.t) == 500 == len(run.cmd_t) == loop.cycles
    np.testing.assert_allclose(np.diff(run.t), 1e-3, atol=1e-12)
    np.testing.assert_allclose(run.q[-1], loop.last_state.q)
    np.testing.assert_allclose(run.cmd_tau[-1], loop.last_command.tau)
    assert [e["to"] for e in run.events] == ["hold", "run"]
    assert run.events[0]["reason"] == "operator"
    assert run.events[0]["t"] == pytest.approx(0.3, abs=2e-3)
    assert run.stats["cycles"] == 500
    assert run.targets["q_d"].shape[1] == 3
    assert run.metadata["scene"] == "unit test"
    # Standard MCAP with JSON channels and schemas: what Foxglove needs.
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    topics = {c.topic: c for c in summary.channels.values()}
    assert {TOPIC_STATE, TOPIC_COMMAND, TOPIC_SUPERVISOR} <= set(topics)
    assert all(c.message_encoding == "json" for c in topics.values())
    assert all(s.encoding == "jsonschema" for s in summary.schemas.values())


def test_nan_values_are_kept_visible(tmp_path):
    from machaon.types import JointCommand, JointState

    path = tmp_path / "nan.mcap"
    with RunLogRecorder(path) as rec:
        for i in range(3):
            q = np.array([0.0, np.nan]) if i == 1 else np.zeros(2)
            rec.record_cycle(i * 1e-3, JointState(i * 1e-3, q, np.zeros(2), np.zeros(2)),
                             JointCommand.torque(np.zeros(2)))
    run = read_run_log(path)
    assert np.isnan(run.q[1, 1]) and not np.isnan(run.q[0]).any()


def test_corrupt_or_missing_files_raise_run_log_error(tmp_path):
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"this is not an mcap file at all")
    with pytest.raises(RunLogError):
        read_run_log(bad)
    with pytest.raises(RunLogError, match="no such file"):
        read_run_log(tmp_path / "missing.mcap")
    empty = tmp_path / "empty.mcap"
    RunLogRecorder(empty).close()
    with pytest.raises(RunLogError, match="no joint states"):
        read_run_log(empty)


def _cli(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    log_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_summary_and_plot(recorded, tmp_path, capsys):
    path, _ = recorded
    assert _cli(["log", "summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1000.0 Hz" in out and "run -> hold" in out and "operator" in out and "500 cycles" in out
    png = tmp_path / "plot.png"
    assert _cli(["log", "plot", str(path), "-o", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"\x00" * 64)
    assert _cli(["log", "summary", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_summary_mentions_faults(tmp_path):
    from machaon.types import DeviceFault

    path = tmp_path / "faults.mcap"
    backend = FakeBackend(2)
    with RunLogRecorder(path, decimation=2) as rec:
        loop = ControlLoop(backend, JointImpedance(2, 10.0), Supervisor(SafetyConfig(target_timeout_s=None)),
                           recorder=rec)
        loop.run_for(0.01)
        backend.inject_fault(DeviceFault("dxl:2", "overheat", "temperature 80 C", 1, True))
        loop.run_for(0.01)
    text = format_summary(read_run_log(path))
    assert "protective_stop" in text and "overheat" in text
    assert "(every 2)" in text


def test_a_crashed_run_reads_up_to_its_last_complete_chunk(recorded, tmp_path):
    path, loop = recorded
    data = path.read_bytes()
    cut = tmp_path / "crashed.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # no summary, no footer, a chunk cut in half
    run = read_run_log(cut)
    assert 50 < len(run.t) < loop.cycles
    np.testing.assert_allclose(np.diff(run.t), 1e-3, atol=1e-12)
    assert "truncated" in run.metadata and run.metadata["scene"] == "unit test"
    assert "WARNING" in format_summary(run)


def test_the_run_log_recorder_is_a_loop_recorder(tmp_path):
    from machaon.robot.loop import Recorder

    with RunLogRecorder(tmp_path / "r.mcap", joint_names=("a",)) as rec:
        assert isinstance(rec, Recorder)
    assert not isinstance(object(), Recorder)
