"""Crash safety of run logs, tested by killing a real run: ``machaon sim --headless --record`` is
SIGKILLed mid-run; ``machaon log summary`` and ``log plot`` read the complete part of its log, and
``machaon log recover`` rewrites it as a complete, indexed MCAP file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mcap.reader import make_reader

from machaon.cli.main import main
from machaon.robot.runlog import read_run_log


def _kill_a_recording_run(tmp_path) -> tuple[object, float]:
    log = tmp_path / "killed.mcap"
    cmd = [sys.executable, "-m", "machaon.cli.main", "sim", "--headless", "--seconds", "600",
           "--scenario", "square", "--record", str(log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t_end = time.monotonic() + 60
        while time.monotonic() < t_end and (not log.exists() or log.stat().st_size < 1_800_000):
            assert proc.poll() is None, "the run ended by itself"
            time.sleep(0.1)
        size = log.stat().st_size
        os.kill(proc.pid, signal.SIGKILL)  # mid-run, mid-chunk: no close, no summary section
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return log, size


def test_a_killed_runs_log_is_readable_and_recoverable(tmp_path, capsys):
    log, size = _kill_a_recording_run(tmp_path)
    with open(log, "rb") as f:  # as the run left it: no footer, so an indexed reader refuses it
        try:
            make_reader(f).get_summary()
            complete = True
        except Exception:
            complete = False
    assert not complete

    run = read_run_log(log)
    assert "truncated" in run.metadata
    assert run.t[-1] - run.t[0] > 2.0  # seconds of simulated run survived, not just the header
    assert main(["log", "summary", str(log)]) == 0
    out = capsys.readouterr().out
    assert "truncated file" in out and "duration" in out
    assert "loop " in out  # the loop's timing survived too (the app records it after every slice)
    png = tmp_path / "killed.png"
    assert main(["log", "plot", str(log), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000

    fixed = tmp_path / "fixed.mcap"
    assert main(["log", "recover", str(log), "-o", str(fixed)]) == 0
    assert "messages (read up to a damaged record" in capsys.readouterr().out
    with open(fixed, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()  # a complete file: summary section, chunk indexes, footer
        assert summary is not None and summary.statistics.message_count > 1000
        assert summary.chunk_indexes
    again = read_run_log(fixed)
    assert "truncated" not in again.metadata and "recovered" in again.metadata
    assert len(again.t) == len(run.t)
    assert (again.q == run.q).sum() == (run.q == run.q).sum()
    assert main(["log", "summary", str(fixed)]) == 0
    assert "recovered" in capsys.readouterr().out


def test_recover_refuses_garbage_and_missing_files(tmp_path, capsys):
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(os.urandom(5000))
    assert main(["log", "recover", str(junk), "-o", str(tmp_path / "out.mcap")]) == 2
    assert "no readable messages" in capsys.readouterr().err
    assert not (tmp_path / "out.mcap").exists()
    assert main(["log", "recover", str(tmp_path / "missing.mcap")]) == 2
    assert "no such file" in capsys.readouterr().err
