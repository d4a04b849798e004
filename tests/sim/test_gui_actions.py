"""The actions behind the GUI keys, headless (PyBullet DIRECT): ``SimApp.handle_key`` and what each does.

The same actions driven by real X key presses in the GUI are tested in test_gui.py.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from machaon.robot.runlog import read_run_log
from machaon.sim.app import SimApp


def test_resume_after_a_stop_mid_path_holds_the_arm_where_it_stopped(caplog):
    with SimApp(scenario="square") as app:
        app.run(1.0)
        assert app.tracker is not None  # the square is playing
        with caplog.at_level(logging.INFO, logger="machaon.sim.app"):
            assert app.handle_key("stop")
            app.run(1.5)  # braked to rest while the path's target ran on
            q_stopped = app.sim.read().q.copy()
            assert app.handle_key("hold")  # h in a stop: resume
        assert app.sup.state.value == "run" and app.tracker is None
        app.run(1.0)
        assert app.sup.state.value == "run", app.sup.events[-1]
        assert np.abs(app.sim.read().q - q_stopped).max() < 2e-3
        texts = [r.getMessage() for r in caplog.records]
        assert "key space: protective stop (supervisor protective_stop)" in texts
        assert "key h: resume accepted (supervisor run)" in texts
        # h again: hold, and h once more: resume
        assert app.handle_key("hold") and app.sup.state.value == "hold"
        assert app.handle_key("hold") and app.sup.state.value == "run"


def test_keys_quit_reset_replay_and_unknown_action():
    with SimApp(scenario="square") as app:
        app.run(0.3)
        assert app.handle_key("controller") and app.controller_name == "joint"
        assert app.handle_key("replay") and app.tracker is not None and app.controller_name == "cartesian"
        app.run(0.3)
        assert app.handle_key("reset") and app.tracker is None
        np.testing.assert_allclose(app.sim.read().q, app.q_home, atol=1e-12)
        assert app.handle_key("quit") is False
        with pytest.raises(ValueError, match="unknown GUI key action"):
            app.handle_key("explode")


def test_each_recording_gets_its_own_file(tmp_path):
    first = tmp_path / "run.mcap"
    with SimApp(scenario="hold", record=first) as app:
        app.run(0.2)  # --record: recording from the start
        assert app.handle_key("record") and app.recorder is None  # r: stop
        assert app.handle_key("record")  # r: a second recording, not over the first
        second = app.recorder.path
        assert second == tmp_path / "run_2.mcap"
        app.sup.protective_stop("test")
        app.run(0.3)
    a, b = read_run_log(first), read_run_log(second)
    assert len(a.t) == 200 and len(b.t) == 300
    assert b.t[0] > a.t[-1]
    assert a.events == () and [e["to"] for e in b.events] == ["protective_stop"]


def test_a_slider_jump_moves_the_target_at_bounded_speed_without_a_stop(caplog):
    with SimApp(scenario="hold") as app:
        app.run(0.2)
        T0 = app.current_target().copy()
        goal = T0.copy()
        goal[:3, 3] += (0.12, 0.0, 0.0)  # most of the slider range in one jump
        assert app.move_target(goal)
        seen = []
        with caplog.at_level(logging.INFO, logger="machaon.sim.app"):
            for _ in range(40):
                app.run(0.1)
                seen.append(app.current_target()[0, 3])
        steps = np.diff([T0[0, 3], *seen])
        assert steps.max() <= app.slider_speed[0] * 0.1 * 1.0001 and steps.min() >= -1e-12
        assert app.sup.state.value == "run", app.sup.events
        assert app.tracker is None  # the move is over
        np.testing.assert_allclose(app.current_target(), goal, atol=1e-9)
        assert np.linalg.norm(app.sim.T_base_tcp()[:3, 3] - goal[:3, 3]) < 1e-3
        assert any(r.getMessage().startswith("sliders: target reached") for r in caplog.records)
        # the same in joint impedance, and an unreachable goal is refused with the target kept
        app.switch_controller()
        assert app.move_target(T0)
        app.run(3.0)
        assert app.sup.state.value == "run", app.sup.events
        assert np.linalg.norm(app.sim.T_base_tcp()[:3, 3] - T0[:3, 3]) < 1e-3
        far = T0.copy()
        far[:3, 3] += (3.0, 0.0, 0.0)
        assert app.move_target(far) is False
        bad = T0.copy()
        bad[0, 3] = np.nan
        app.switch_controller()
        assert app.move_target(bad) is False
        np.testing.assert_allclose(app.current_target()[:3, 3], T0[:3, 3], atol=1e-3)
