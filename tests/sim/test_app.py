"""``machaon sim --headless`` and the SimApp session: scenarios, recording, snapshots, replay files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from machaon.cli.main import main
from machaon.robot.runlog import read_run_log
from machaon.sim.app import SimApp, SimAppError


def test_headless_cli_writes_mcap_and_snapshots(tmp_path, capsys):
    mcap = tmp_path / "run.mcap"
    snaps = tmp_path / "snaps"
    rc = main(["sim", "--headless", "--seconds", "1.5", "--scenario", "wall", "--record", str(mcap),
               "--snapshots", str(snaps), "--snapshot-every", "0.5"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[headless] scenario wall" in out and "supervisor run" in out
    run = read_run_log(mcap)
    assert run.dof == 6 and len(run.t) == 1500  # every cycle at 1 kHz
    assert np.allclose(np.diff(run.t), 1e-3)
    assert set(run.cmd_mode) == {"torque"}
    from mcap.reader import make_reader

    with open(mcap, "rb") as f:  # what the live view shows beside the arm: the workspace box, the target frame
        msgs = [(ch.topic, json.loads(m.data)) for _s, ch, m in make_reader(f).iter_messages(topics=["/scene", "/tf"])]
    assert "workspace" in {e["id"] for t, m in msgs if t == "/scene" for e in m["entities"]}
    assert "target" in {tf["child_frame_id"] for t, m in msgs if t == "/tf" for tf in m["transforms"]}
    pngs = sorted(snaps.glob("*.png"))
    assert len(pngs) >= 4
    img = cv2.imread(str(pngs[-1]))
    assert img.shape == (600, 800, 3) and img.std() > 20


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert main(["sim", "--headless", "--seconds", "1", "--scenario", "nope"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["sim", "--headless", "--seconds", "-1"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "cartesian", "waypoints": [{"xyz_m": [0.5, "x", 0.3]}]}')
    assert main(["sim", "--headless", "--seconds", "1", "--replay", str(bad)]) == 2
    assert "bad cartesian trajectory" in capsys.readouterr().err
    assert main(["sim", "--list-scenarios"]) == 0
    assert "square" in capsys.readouterr().out


def test_replay_cartesian_trajectory_file_reaches_its_last_waypoint(tmp_path):
    f = tmp_path / "plan.json"
    f.write_text(json.dumps({
        "kind": "cartesian", "v_max_m_s": 0.1, "a_max_m_s2": 0.5,
        "waypoints": [{"xyz_m": [0.50, 0.05, 0.42]}, {"xyz_m": [0.45, -0.05, 0.40], "rpy_deg": [0, 170, 0]}],
    }))
    with SimApp(scenario="hold", replay=f) as app:
        app.run(3.5)
        T = app.sim.T_base_tcp()
        assert np.linalg.norm(T[:3, 3] - [0.45, -0.05, 0.40]) < 1e-3
        tilt = np.degrees(np.arccos(np.clip(-T[2, 2], -1, 1)))
        assert tilt == pytest.approx(10.0, abs=0.5)


def test_replay_joint_trajectory_switches_to_joint_impedance(tmp_path):
    f = tmp_path / "plan.json"
    f.write_text(json.dumps({"kind": "joint", "v_max_deg_s": 15, "a_max_deg_s2": 60,
                             "waypoints_deg": [[10, 15, 65, 5, 85, -10]]}))  # clear of the bone
    with SimApp(scenario="hold", replay=f) as app:
        app.run(2.0)
        assert app.controller_name == "joint"
        q = app.sim.read().q
        assert np.degrees(q) == pytest.approx([10, 15, 65, 5, 85, -10], abs=0.3)


def test_session_keys_protective_stop_reset_and_controller_switch():
    with SimApp(scenario="square") as app:
        app.run(0.5)
        app.sup.protective_stop("test")
        app.run(0.5)
        assert app.sup.state.value == "protective_stop"
        app.reset()
        assert app.sup.state.value == "run"
        np.testing.assert_allclose(app.sim.read().q, app.q_home, atol=1e-12)
        assert app.switch_controller() == "joint"
        app.run(0.3)
        assert app.switch_controller() == "cartesian"
        app.run(0.3)
        assert np.linalg.norm(app.sim.T_base_tcp()[:3, 3] - app.T_home[:3, 3]) < 2e-3
        bad = np.eye(4)
        bad[0, 3] = np.nan
        assert app.set_target(bad) is False  # refused and logged; the arm keeps its target
        with pytest.raises(SimAppError):
            SimApp(tool="scalpel")


def test_loop_stats_are_logged_at_a_bounded_rate(caplog):
    """However many slices the run takes (one per 0.1 s of simulated time headless), the loop's
    timing is logged at most once per ``stats_every`` wall seconds."""
    import logging
    import time

    caplog.set_level(logging.INFO, logger="machaon.sim.app")
    with SimApp(scenario="hold", stats_every=0.05) as app:
        t0 = time.monotonic()
        app.run(2.0)
        wall = time.monotonic() - t0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loop: ")]
    assert len(lines) <= wall / 0.05 + 1, (len(lines), wall)  # 20 slices: not one line each
    if wall > 0.1:
        assert lines, wall
    for line in lines:
        assert " cycles at 1000 Hz, real-time factor " in line and "overruns, supervisor run" in line
    with pytest.raises(SimAppError, match="stats_every"):
        SimApp(stats_every=0.0)
