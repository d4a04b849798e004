"""``machaon kin`` end to end: degrees/mm in, SI inside, answers that agree with the chain."""

from __future__ import annotations

import numpy as np

from machaon.cli import kin
from machaon.kinematics import Chain
from machaon.robot.description import load_description


def _run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="machaon")
    sub = parser.add_subparsers(dest="command", required=True)
    kin.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _field(out: str, key: str) -> list[float]:
    for line in out.splitlines():
        if line.startswith(key):
            return [float(v) for v in line.split()[1:]]
    raise AssertionError(f"{key} not in output:\n{out}")


def test_fk_prints_pose_in_mm_and_degrees(capsys):
    assert _run(["kin", "fk", "--q-deg", "10", "20", "60", "5", "80", "-30"]) == 0
    out = capsys.readouterr().out
    desc = load_description("machaon_arm")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    T = chain.fk(np.radians([10, 20, 60, 5, 80, -30]))
    np.testing.assert_allclose(_field(out, "position_mm"), T[:3, 3] * 1e3, atol=1e-3)
    assert "manipulability" in out and "vx" in out


def test_ik_roundtrip_through_the_command_line(capsys):
    assert _run(["kin", "fk", "--q-deg", "10", "20", "60", "5", "80", "-30"]) == 0
    out = capsys.readouterr().out
    xyz = _field(out, "position_mm")
    rpy = _field(out, "rpy_deg")
    assert _run(["kin", "ik", "--xyz-mm", *map(str, xyz), "--rpy-deg", *map(str, rpy)]) == 0
    out2 = capsys.readouterr().out
    assert "success      True" in out2
    np.testing.assert_allclose(_field(out2, "position_mm"), xyz, atol=1e-2)


def test_unreachable_ik_exits_nonzero(capsys):
    assert _run(["kin", "ik", "--xyz-mm", "5000", "0", "0"]) == 1
    assert "success      False" in capsys.readouterr().out


def test_axis_ik_with_the_drill_guide(capsys):
    argv = ["kin", "--tool", "drill_guide", "axis", "--point-mm", "550", "50", "250", "--axis", "0", "0", "-1"]
    assert _run(argv) == 0
    assert "success      True" in capsys.readouterr().out


def test_wrong_joint_count_is_a_clear_error(capsys):
    assert _run(["kin", "fk", "--q-deg", "1", "2"]) == 2  # a usage error, no longer a SystemExit (#16)
    assert "machaon: error: --q-deg needs 6 values" in capsys.readouterr().err
