"""Every script in ``examples/`` runs as a newcomer would run it (a subprocess, headless, small
arguments) and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pybullet_data
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(name: str, *args: str, timeout: float = 120.0) -> str:
    r = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_every_example_is_tested_here():
    tested = set(re.findall(r'_run\("(\w+\.py)"', Path(__file__).read_text()))
    assert tested == {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("urdf", [None, Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"])
def test_kinematics_on_any_urdf(urdf):
    args = [] if urdf is None else ["--urdf", str(urdf), "--base", "panda_link0", "--tip", "panda_hand"]
    out = _run("kinematics_any_urdf.py", *args)
    assert "IK success True" in out and ("7 joints" in out) == (urdf is not None)


def test_impedance_on_sim():
    out = _run("impedance_on_sim.py", "--duration", "1.0")
    err_um = float(re.search(r"([\d.]+) um from the target", out).group(1))
    assert err_um < 500 and "supervisor run" in out


def test_servo_chain_on_emulator():
    out = _run("servo_chain_on_emulator.py", "--speed", "2")
    goal = [float(x) for x in re.search(r"goal \(deg\)\s+\[([^\]]+)\]", out).group(1).split()]
    reached = [float(x) for x in re.search(r"reached \(deg\)\s*\[([^\]]+)\]", out).group(1).split()]
    assert max(abs(a - b) for a, b in zip(goal, reached, strict=True)) < 0.5 and "supervisor run" in out


def test_plan_a_screw(tmp_path):
    out = _run("plan_a_screw.py", "--level", "L3", "--side", "right", "--out", str(tmp_path / "plan.json"))
    assert "L3-R" in out and "breach: False; ok: True" in out and (tmp_path / "plan.json").is_file()


def test_process_emg():
    out = _run("process_emg.py")
    lines = [ln for ln in out.splitlines() if "peak activation" in ln]
    assert len(lines) == 8 and all(ln.count(" s") == 3 for ln in lines), out  # three bursts a muscle


def test_teleop_session():
    out = _run("teleop_session.py", "--move-mm", "20")
    moved = [float(x) for x in re.search(r"the tool moved \[([^\]]+)\]", out).group(1).split()]
    assert abs(moved[0] - 10.0) < 2.0 and "robot supervisor OK" in out  # 2:1 motion scaling
