"""The operator console (textual), driven by textual's test pilot against a real robot server
process over loopback: clutch, jogging in base and tool frame, E-stop latch and reset."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from machaon.teleop.client import TeleopClient
from machaon.teleop.console import JOG_STEP_M, ConsoleApp
from machaon.teleop.messages import HoldReason, SupervisorCode

from .conftest import PSK


async def _until(pilot, pred, timeout=4.0) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        await pilot.pause(0.05)
    return False


async def _dispatched() -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize("server_process", [1000], indirect=True)  # no command-gap HOLD from a stalled test
def test_console_drives_the_robot(server_process, monkeypatch):
    # Textual's pilot waits after each key until this process is idle (under 5% CPU), for at most 1 s,
    # twice; the client's threads keep it busier than that, so every press cost 2 s. The key still
    # goes through the app's bindings, and the pilot still waits until every widget has handled it;
    # the test polls for each effect itself (_until).
    monkeypatch.setattr("textual.app.wait_for_idle", lambda *a, **k: _dispatched())
    async def run() -> None:
        with TeleopClient(server_process, PSK) as cli:
            app = ConsoleApp(cli)
            async with app.run_test(size=(130, 40)) as pilot:
                assert await _until(pilot, lambda: cli.latest is not None)
                p0 = np.array(cli.latest.p_base_tool)
                await pilot.press("w")  # jog without the clutch: ignored
                await pilot.press("space")  # clutch: resumes from the initial HOLD
                assert await _until(pilot, lambda: cli.latest.supervisor == SupervisorCode.OK)
                for _ in range(10):
                    await pilot.press("w")  # +x in the base frame, 1 mm each
                    await pilot.pause(0.02)
                want = p0 + [10 * JOG_STEP_M, 0, 0]
                assert await _until(pilot, lambda: np.linalg.norm(np.array(cli.latest.p_base_tool) - want) < 1e-3), \
                    np.array(cli.latest.p_base_tool) - p0
                # tool frame: the tool z axis points down (home pose), so tool +z is base -z
                await pilot.press("t")
                p1 = np.array(cli.latest.p_base_tool)
                for _ in range(5):
                    await pilot.press("r")
                    await pilot.pause(0.02)
                assert await _until(pilot, lambda: cli.latest.p_base_tool[2] < p1[2] - 4e-3), \
                    np.array(cli.latest.p_base_tool) - p1
                # the panels show what the robot reports
                await pilot.pause(0.3)
                text = str(app.query_one("#supervisor").render())
                assert "OK" in text
                link = str(app.query_one("#link").render())
                assert "RTT p50" in link
                # E-stop latches; jogging does nothing; reset returns to HOLD
                await pilot.press("e")
                assert await _until(pilot, lambda: cli.latest.estop_latched)
                p2 = np.array(cli.latest.p_base_tool)
                await pilot.press("space")
                await pilot.press("w")
                await pilot.pause(0.5)
                assert cli.latest.supervisor == SupervisorCode.ESTOP
                assert np.linalg.norm(np.array(cli.latest.p_base_tool) - p2) < 2e-3
                await pilot.press("x")
                assert await _until(pilot, lambda: not cli.latest.estop_latched)
                assert cli.latest.supervisor == SupervisorCode.HOLD
                assert cli.latest.hold_reason == HoldReason.OPERATOR  # waits for a clutch press
                await pilot.press("q")

    asyncio.run(run())
