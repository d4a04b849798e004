"""``machaon exo events`` / ``machaon exo analyze`` as a user runs them: outputs, exit codes, bad files."""

from __future__ import annotations

import csv
import json

import pytest

from machaon.cli.main import main
from tests.exo._gaitlab import SynthWalk


@pytest.fixture(scope="module")
def c3d(tmp_path_factory):
    return SynthWalk().write_c3d(tmp_path_factory.mktemp("c") / "walk.c3d", plate_steps=[("left", 1)])


def test_events_writes_the_csv_and_states_the_source(tmp_path, c3d, capsys):
    assert main(["exo", "events", str(c3d), "--out", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    assert "from force_plates+markers" in out
    rows = list(csv.reader(open(tmp_path / "ev" / "events.csv")))
    assert rows[0] == ["side", "event", "time_s"] and len(rows) > 15
    info = json.loads((tmp_path / "ev" / "events.json").read_text())
    assert info["source"] == "force_plates+markers"
    assert {e["source"] for e in info["events"]} == {"force_plates", "markers"}


def test_analyze_writes_summary_and_plots(tmp_path, c3d, capsys):
    assert main(["exo", "analyze", str(c3d), "--out", str(tmp_path / "an")]) == 0
    s = json.loads((tmp_path / "an" / "summary.json").read_text())
    for key in ("cadence_steps_min", "stride_time_s", "step_time_s", "stance_pct", "swing_pct",
                "symmetry_index", "joint_angles", "emg", "event_source"):
        assert key in s
    assert {p.name for p in (tmp_path / "an").iterdir()} == {
        "summary.json", "events.csv", "timing.png", "angles.png", "emg.png"}


@pytest.mark.parametrize("cmd", ["events", "analyze"])
def test_bad_files_one_line_exit_2_nothing_written(tmp_path, cmd, capsys):
    walk = SynthWalk(duration=4.0)
    cases = {
        "metres.c3d": dict(scale_mm=1.0),
        "nomarkers.c3d": dict(drop=("LHEE", "LTOE", "LANK", "RHEE", "RTOE", "RANK"), emg=False),
        "gap.c3d": dict(nan_frames=(("RTOE", 100, 200),), emg=False),
    }
    for name, kw in cases.items():
        path = walk.write_c3d(tmp_path / name, **kw)
        out = tmp_path / f"out-{name}"
        assert main(["exo", cmd, str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("machaon: error: ") and "Traceback" not in err[0]
        assert not out.exists()
    (tmp_path / "empty.c3d").write_bytes(b"")
    assert main(["exo", cmd, str(tmp_path / "empty.c3d"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["exo", "events", "x.c3d"])  # --out is required
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["exo", "analyze", "x.c3d", "--out", str(tmp_path), "--source", "psychic"])
    assert e.value.code == 2
