"""The simulated procedure on a real vertebra surface (myo_sim's L3; skipped when absent):
``machaon ortho run --mesh`` plans on the surface, builds the collision shape from it, registers
to it and drills in its distance field; the screw lands as planned and stays in the bone."""

from __future__ import annotations

import json

import pytest

from machaon.cli.main import main
from tests._realdata import myo_sim_vertebra

MM = 1e-3


@pytest.mark.slow
def test_ortho_run_on_a_real_vertebra_mesh(tmp_path, capsys):
    myo_sim_vertebra("L3").export(tmp_path / "L3.stl")
    rc = main(["ortho", "run", "--headless", "--mesh", str(tmp_path / "L3.stl"), "--screws", "L3-R",
               "--fast-calibration", "--no-breathing", "--no-bump", "--feed-mm-s", "5", "--rate-hz", "500",
               "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "planned on their surfaces" in out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (screw,) = report["screws"]
    assert screw["name"] == "L3-R"
    assert screw["entry_error_mm"] <= 1.0 and screw["tip_error_mm"] <= 1.0 and screw["angle_error_deg"] <= 1.0
    assert not screw["breach"], screw
