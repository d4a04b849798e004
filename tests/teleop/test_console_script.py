"""``machaon teleop console --script``: exit 1 when refused or locked out (the robot never answers),
exit 1 when no server answers, exit 2 before connecting when ``--out`` cannot be written, and the
summary is strict JSON (no bare NaN), written whole or not at all."""

from __future__ import annotations

import json
import time

from machaon.cli.main import main
from machaon.teleop.client import TeleopClient

from .conftest import PSK, free_port


def _strict(text: str) -> dict:
    def bad(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=bad)


def _script(tmp_path) -> str:
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"rate_hz": 50, "keyframes": [{"t": 0.0, "clutch": True}, {"t": 0.4}]}))
    return str(p)


def test_refused_operator_exits_1_and_a_free_robot_exits_0(server_process, key_file, tmp_path, capsys):
    host, port = server_process
    out = tmp_path / "summary.json"
    args = ["teleop", "console", "--connect", f"{host}:{port}", "--key", str(key_file),
            "--script", _script(tmp_path), "--out", str(out)]
    with TeleopClient(server_process, PSK, rate_hz=100) as other:  # another operator holds the robot
        t_end = time.monotonic() + 5
        while other.latest is None and time.monotonic() < t_end:
            time.sleep(0.02)
        assert other.latest is not None
        assert main(args) == 1
    cap = capsys.readouterr()
    assert "no state" in cap.err and "another operator" in cap.err
    summary = _strict(cap.out)
    assert summary["states_received"] == 0 and summary["rtt_p50_ms"] is None
    assert _strict(out.read_text()) == summary
    time.sleep(1.2)  # the other operator has left: after the takeover delay the robot is free
    assert main(args) == 0
    summary = _strict(capsys.readouterr().out)
    assert summary["states_received"] > 5 and summary["rtt_p50_ms"] > 0
    assert _strict(out.read_text()) == summary


def test_no_server_exits_1_and_writes_nothing(key_file, tmp_path, capsys):
    out = tmp_path / "summary.json"
    rc = main(["teleop", "console", "--connect", f"127.0.0.1:{free_port()}", "--key", str(key_file),
               "--script", _script(tmp_path), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no answer" in err[0]
    assert not out.exists()


def test_unwritable_out_is_refused_before_connecting(key_file, tmp_path, capsys):
    rc = main(["teleop", "console", "--connect", f"127.0.0.1:{free_port()}", "--key", str(key_file),
               "--script", _script(tmp_path), "--out", str(tmp_path / "missing" / "s.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no answer" not in err  # refused before any connect attempt
