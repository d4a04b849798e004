"""GUI smoke test: ``machaon sim`` opens the PyBullet GUI under Xvfb, runs 1 s, and draws something.

The test starts Xvfb itself on a free display with ``-fbdir``, so the X framebuffer is a file in
XWD format: a real screenshot of the window, read while the session runs, without extra tools.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

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
