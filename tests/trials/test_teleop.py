"""The teleop study's `teleop sweep` front: its CLI, table and files keep working, on Ray."""

from __future__ import annotations

import json

from machaon.cli.main import main


def test_teleop_sweep_front_writes_its_files_and_new_metrics(ray_local, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["teleop", "sweep", "--profiles", "wired", "--task", "hold", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "path mm" in text and "lag ms" in text and "wired" in text
    d = json.loads((out / "sweep.json").read_text())
    assert d["task"] == "hold" and [r["profile"] for r in d["results"]] == ["wired"]
    r = d["results"][0]
    for key in ("rtt_p50_ms", "rms_error_mm", "overshoot_mm", "completion_s", "holds", "path_dev_rms_mm", "lag_ms"):
        assert key in r, key
    assert d["zero_delay"]["profile"] == "zero_delay"
    # the wired link adds its 2 ms each way to the arm's own lag, and little path deviation
    assert 0.0 < r["lag_ms"] - d["zero_delay"]["lag_ms"] < 20.0
    assert r["path_dev_rms_mm"] < 0.5 * r["rms_error_mm"]
    assert (out / "sweep.png").stat().st_size > 10_000
    # running it again into the same directory resumes (nothing re-run) and rewrites the outputs
    assert main(["teleop", "sweep", "--profiles", "wired", "--task", "hold", "--out", str(out)]) == 0
    assert len((out / "runs.jsonl").read_text().splitlines()) == 2


def test_trial_cli_bad_input(tmp_path, capsys):
    assert main(["trial", "teleop", "--profiles", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown profiles" in capsys.readouterr().err
    assert main(["trial", "teleop", "--tasks", "circle", "--out", str(tmp_path / "x")]) == 2
    assert "tasks must be among" in capsys.readouterr().err
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["trial", "teleop", "--profiles", "wired", "--out", str(blocker / "d")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["trial", "teleop", "--profiles", "wired", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_trial_without_out_writes_a_new_study_directory(ray_local, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["trial", "teleop", "--profiles", "wired", "--tasks", "hold", "--speeds", "1", "--seeds", "1",
                 "--no-progress"]) == 0
    (study,) = (tmp_path / "out").glob("trial-teleop-*")
    assert f"study directory: out/{study.name}" in capsys.readouterr().out
    summary = json.loads((study / "summary.json").read_text())
    assert summary["runs"]["done"] == 2 and summary["runs"]["errors"] == 0
