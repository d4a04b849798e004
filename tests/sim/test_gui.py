"""GUI tests under Xvfb: ``machaon sim`` opens the PyBullet GUI and draws something (smoke test), and
real X key presses (``xdotool``) drive the session (end-to-end key test).

The test starts Xvfb itself on a free display with ``-fbdir``, so the X framebuffer is a file in
XWD format: a real screenshot of the window, read while the session runs, without extra tools.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from machaon.robot.runlog import read_run_log

pytestmark = pytest.mark.gui


def _start_xvfb(xvfb: str, fbdir: Path) -> tuple[subprocess.Popen, int]:
    """Xvfb on a free display (above the range ``xvfb-run -a`` uses first), with the screen in fbdir."""
    for n in range(150, 250):
        if Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists():
            continue
        server = subprocess.Popen(
            [xvfb, f":{n}", "-screen", "0", "1024x768x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while server.poll() is None and time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                return server, n
            time.sleep(0.05)
        server.kill()
        server.wait()
    raise RuntimeError("could not start Xvfb on any display")


def _read_xwd(path: Path) -> np.ndarray:
    """RGB image from an XWD (ZPixmap, 24/32 bits per pixel) file."""
    data = path.read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bpp, bytes_per_line, ncolors = fields[7], fields[11], fields[12], fields[19]
    assert bpp in (24, 32), bpp
    off = header_size + 12 * ncolors
    raw = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=off).reshape(height, bytes_per_line)
    px = raw[:, : width * (bpp // 8)].reshape(height, width, bpp // 8)
    # LSBFirst (0): bytes are B, G, R(, pad); MSBFirst: (pad,) R, G, B
    return px[:, :, 2::-1] if byte_order == 0 else px[:, :, -3:]


def test_gui_opens_runs_and_renders(tmp_path):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed (make test installs it)")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    server, n = _start_xvfb(xvfb, fbdir)
    try:
        snaps = tmp_path / "snaps"
        env = dict(os.environ, DISPLAY=f":{n}")
        cmd = [sys.executable, "-m", "machaon.cli.main", "sim", "--seconds", "1", "--scenario", "square",
               "--snapshots", str(snaps), "--snapshot-every", "0.5"]
        app = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The first snapshot is written once the window is set up; from then on, grab the screen
            # every 0.3 s while the session runs and keep the richest grab (the last ones may catch
            # the window closing).
            deadline = time.monotonic() + 90
            while not (snaps.exists() and any(snaps.glob("*.png"))):
                assert app.poll() is None, app.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the GUI session did not start"
                time.sleep(0.1)
            screen, richest = None, 0
            while app.poll() is None and time.monotonic() < deadline + 60:
                grab = _read_xwd(fbdir / "Xvfb_screen0")
                n_colours = len(np.unique(grab[::4, ::4].reshape(-1, 3), axis=0))
                if n_colours > richest:
                    screen, richest = grab, n_colours
                time.sleep(0.3)
            out, err = app.communicate(timeout=120)
        finally:
            if app.poll() is None:
                app.kill()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert app.returncode == 0, err[-3000:]
    assert "[GUI] scenario square" in out, out[-2000:] + err[-2000:]
    assert screen is not None, "the session ended before the screen shot"
    assert screen.shape == (768, 1024, 3)
    cv2.imwrite(str(tmp_path / "screen.png"), screen[:, :, ::-1])
    # Not blank: the window's 3D view shows many colours and the arm's blue actuator housings.
    assert len(np.unique(screen.reshape(-1, 3), axis=0)) > 100 and screen.std() > 15
    r, g, b = (screen[:, :, k].astype(int) for k in range(3))
    assert np.count_nonzero((b > r + 60) & (b > g + 20)) > 300
    # and the session's own camera snapshot (getCameraImage) is not blank either
    img = cv2.imread(str(sorted(snaps.glob("*.png"))[-1]))
    assert img.shape == (600, 800, 3) and img.std() > 20


class _Lines:
    """The lines a process writes to a pipe, collected by a thread; ``wait_for`` a regex from a cursor on."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()
        self.pos = 0  # lines before this index were matched already

    def _pump(self, pipe) -> None:
        for line in pipe:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line after the cursor matching ``pattern``; moves the cursor past it."""
        rx, deadline = re.compile(pattern), time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(self.pos, len(self.lines)):
                    m = rx.search(self.lines[i])
                    if m:
                        self.pos = i + 1
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (not self._thread.is_alive() and self.pos >= len(self.lines)):
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s; last lines:\n{tail}")
                self._cond.wait(min(left, 0.2))

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def test_gui_real_key_presses_drive_the_session(tmp_path):
    """Real X key events (xdotool, XTEST) to the PyBullet window: each key's action and its effects.

    r starts recording; space is a protective stop in the middle of the scenario's path; h resumes
    and the arm stays where it stopped (no second stop from a target that ran on); c switches to
    joint impedance; r stops the recording, whose MCAP file holds the cycles and both supervisor
    events; t replays the scenario path; x resets; dragging the "target dx" slider moves the target
    and the arm (at a bounded speed: no protective stop) and dragging "stiffness trans" retunes
    the controller; q quits with exit code 0. Keys are quick taps, as a person types them.
    """
    xvfb, xdotool = shutil.which("Xvfb"), shutil.which("xdotool")
    if xvfb is None or xdotool is None:
        pytest.skip("Xvfb or xdotool not installed (apt-get install -y xvfb xdotool)")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    server, n = _start_xvfb(xvfb, fbdir)
    env = dict(os.environ, DISPLAY=f":{n}")

    def xdo(*args: str) -> str:
        return subprocess.run([xdotool, *args], env=env, check=True, capture_output=True, text=True,
                              timeout=30).stdout

    try:
        cmd = [sys.executable, "-m", "machaon.cli.main", "sim", "--scenario", "square"]
        app = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        try:
            err = _Lines(app.stderr)
            err.wait_for(r"INFO machaon\.sim\.app: GUI session running \(scenario square\)", 90)
            window = xdo("search", "--onlyvisible", "--name", "Bullet Physics").split()[0]
            # No window manager: keyboard focus follows the pointer; put it on the 3D view.
            xdo("mousemove", "--window", window, "512", "384")
            xdo("windowfocus", window)

            def drag(start: tuple[int, int], end: tuple[int, int]) -> None:
                xdo("mousemove", str(start[0]), str(start[1]))
                xdo("mousedown", "1")
                for x in np.linspace(start[0], end[0], 6)[1:]:
                    time.sleep(0.05)
                    xdo("mousemove", str(int(x)), str(end[1]))
                time.sleep(0.1)
                xdo("mouseup", "1")

            def key(name: str, expect: str) -> re.Match:
                xdo("key", name)
                return err.wait_for(rf"INFO machaon\.sim\.app: key {name}: {expect}", 20)

            rec = Path(key("r", r"recording started: (\S+\.mcap)").group(1))
            time.sleep(0.5)  # some cycles in the recording before the stop
            # stop while the scenario's square is playing: its target runs on while the arm is stopped
            key("space", r"protective stop \(supervisor protective_stop\)")
            time.sleep(1.0)
            key("h", r"resume accepted \(supervisor run\)")
            resumed_at = err.pos
            time.sleep(0.5)  # the resumed arm must stay in RUN
            key("c", r"controller switched to joint impedance")
            key("r", rf"recording stopped: {re.escape(str(rec))}")
            after_resume = err.lines[resumed_at:err.pos]
            assert not [ln for ln in after_resume if "-> protective_stop" in ln or "-> hold" in ln], after_resume
            key("t", r"replaying the trajectory \(\d+\.\d+ s, cartesian impedance\)")
            key("x", r"reset: arm at home, supervisor run")
            slid_at = err.pos
            # Sliders (the "Params" panel of the 1024x768 window; handles at their initial values):
            # drag "target dx" right, then "stiffness trans" left.
            drag((889, 105), (960, 105))
            m = err.wait_for(r"sliders: target offset \((\d\.\d+), 0\.000, 0\.000\) m, \(0\.0, 0\.0, 0\.0\) deg; "
                             r"cartesian target goes to \[(\S+), (\S+), (\S+)\] m", 20)
            dx, goal = float(m.group(1)), np.array([float(m.group(i).rstrip(",")) for i in (2, 3, 4)])
            assert 0.03 < dx <= 0.15, dx
            err.wait_for(r"sliders: target reached", 20)
            drag((888, 369), (830, 369))
            m = err.wait_for(r"Cartesian stiffness (\d+) N/m, 60\.0 N m/rad, damping ratio 0\.80", 20)
            assert 50 <= int(m.group(1)) < 1400, m.group(0)
            assert not [ln for ln in err.lines[slid_at:] if "-> protective_stop" in ln], err.lines[slid_at:]
            xdo("mousemove", "--window", window, "512", "384")
            key("q", r"quit")
            out, _ = app.communicate(timeout=60)
        finally:
            if app.poll() is None:
                app.kill()
                app.wait()
    finally:
        server.terminate()
        server.wait(timeout=10)
    err.join(10)
    assert app.returncode == 0, "\n".join(err.lines[-40:])
    assert "[GUI] scenario square" in out and "supervisor run" in out, out
    # the arm went where the target slider sent it, and holds there
    m = re.search(r"tool at \[(.*)\] m \(base\), (\d+\.\d+) mm from the target", out)
    assert m is not None and float(m.group(2)) < 2.0, out
    tool = np.array([float(v) for v in m.group(1).split(",")])
    assert np.linalg.norm(tool - goal) < 2e-3, (tool, goal)

    # the recording: written by r ... r, readable, every cycle at the loop rate, the stop and the resume
    run = read_run_log(tmp_path / rec)
    assert run.dof == 6 and len(run.t) > 200, len(run.t)
    assert np.allclose(np.diff(run.t), 1e-3)
    assert set(run.cmd_mode) == {"torque"}
    moves = [(e["from"], e["to"], e["code"]) for e in run.events]
    assert moves == [("run", "protective_stop", "request"), ("protective_stop", "run", "request")], moves
    assert run.t[0] < run.events[0]["t"] < run.events[1]["t"] <= run.t[-1]
    # the arm braked to rest during the stop
    i_run = int(np.searchsorted(run.t, run.events[1]["t"]))
    assert np.abs(run.dq[i_run - 1]).max() < 0.05
