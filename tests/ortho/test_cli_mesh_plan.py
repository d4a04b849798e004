"""``machaon ortho plan --mesh ...`` / ``--labelmap ... --labels ...`` as a user runs them."""

from __future__ import annotations

import json

import pytest
import trimesh

from machaon.cli.main import main
from tests._realdata import myo_sim_vertebra


@pytest.fixture(scope="module")
def l4(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    myo_sim_vertebra("L4").export(d / "L4.stl")
    return d / "L4.stl"


def test_plan_meshes_without_starts(tmp_path, l4, capsys):
    out = tmp_path / "plan.json"
    assert main(["ortho", "plan", "--mesh", str(l4), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "L4-L" in text and "L4-R" in text and "wrote" in text
    d = json.loads(out.read_text())
    assert [s["name"] for s in d["screws"]] == ["L4-L", "L4-R"]
    assert all(s["ok"] and s["cortex_clearance_mm"] > 0 and s["canal_clearance_mm"] > 0 for s in d["screws"])


def test_bad_meshes_exit_2_and_write_nothing(tmp_path, l4, capsys):
    m = trimesh.load(str(l4))
    m.apply_scale(1e-3)
    m.export(tmp_path / "L4.stl")  # metres written as if millimetres
    open_mesh = trimesh.load(str(l4))
    keep = [True] * len(open_mesh.faces)
    keep[:40] = [False] * 40  # a big part of the surface missing
    open_mesh.update_faces(keep)
    open_mesh.export(tmp_path / "L5.stl")
    (tmp_path / "L1.stl").write_text("not a mesh")
    for bad, needle in ((tmp_path / "L4.stl", "factor of 1000"), (tmp_path / "L5.stl", "not closed"),
                        (tmp_path / "L1.stl", "L1.stl")):
        out = tmp_path / "plan.json"
        assert main(["ortho", "plan", "--mesh", str(bad), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
        assert not out.exists()


def test_labelmap_flags_go_together(tmp_path, capsys):
    assert main(["ortho", "plan", "--labelmap", str(tmp_path / "seg.nii.gz"), "--out", str(tmp_path / "p.json")]) == 2
    assert "--labels" in capsys.readouterr().err
    assert main(["ortho", "plan", "--labelmap", str(tmp_path / "seg.nii.gz"), "--labels", "L1=x",
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "L1=x" in capsys.readouterr().err
    assert main(["ortho", "plan", "--labelmap", str(tmp_path / "missing.nii.gz"), "--labels", "L1=20",
                 "--out", str(tmp_path / "p.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()
