"""``machaon teleop`` subcommands that need no robot: profiles, keygen, key refusal, bad input."""

from __future__ import annotations

import json
import os
import stat

from machaon.cli.main import main


def test_profiles_and_keygen(tmp_path, capsys):
    assert main(["teleop", "profiles"]) == 0
    out = capsys.readouterr().out
    assert "5g_sa_surgery" in out and "satellite_geo" in out
    key = tmp_path / "op.key"
    assert main(["teleop", "keygen", str(key)]) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert main(["teleop", "keygen", str(key)]) == 2  # never overwrites silently
    assert "exists" in capsys.readouterr().err


def test_world_readable_key_is_refused_before_anything_starts(tmp_path, capsys):
    key = tmp_path / "k"
    key.write_text("00" * 32)
    os.chmod(key, 0o644)
    assert main(["teleop", "serve", "--key", str(key), "--listen", "127.0.0.1:0"]) == 2
    assert "unsafe permissions" in capsys.readouterr().err
    assert main(["teleop", "console", "--key", str(key), "--connect", "127.0.0.1:9"]) == 2
    assert "unsafe permissions" in capsys.readouterr().err


def test_bad_arguments_get_clear_errors(tmp_path, capsys):
    assert main(["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "nohost", "--profile", "lte"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--profile", "nope"]) == 2
    assert "known" in capsys.readouterr().err
    assert main(["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--profile", "lte",
                 "--loss", "1.5"]) == 2
    key = tmp_path / "k"
    assert main(["teleop", "keygen", str(key)]) == 0
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"keyframes": [{"t": 1.0}, {"t": 0.5}]}))
    assert main(["teleop", "console", "--key", str(key), "--script", str(script)]) == 2
    assert "non-decreasing" in capsys.readouterr().err


def test_netem_runs_and_reports(capsys):
    assert main(["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--profile", "wifi",
                 "--delay-ms", "7", "--duration", "0.3", "--stats-s", "0.1", "--rt-priority", "0"]) == 0
    out = capsys.readouterr().out
    assert "delay 7.00 ms" in out and out.count("up ") >= 2
