"""``machaon sim --robot desk``: the desk arm under Cartesian impedance in PyBullet (with its servos'
reflected rotor inertia and gear friction), headless, through the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sim_runs_the_desk_arm_through_a_scenario():
    proc = subprocess.run([sys.executable, "-m", "machaon.cli.main", "sim", "--robot", "desk", "--headless",
                           "--duration", "12", "--scenario", "square"], capture_output=True, text=True, cwd=ROOT,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "supervisor run" in proc.stdout and "protective_stop" not in proc.stdout + proc.stderr
    err_mm = float(re.search(r"([\d.]+) mm from the target", proc.stdout).group(1))
    assert err_mm < 2.0, proc.stdout  # back home after the 6 cm square, within the friction's give
