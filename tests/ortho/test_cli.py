"""``machaon ortho`` subcommands through their argparse registration."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from machaon.cli import ortho as cli


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="machaon")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_plan_writes_a_checked_plan(tmp_path, capsys) -> None:
    from machaon.ortho.anatomy import SpineSegment
    from machaon.ortho.planning import Plan, check_plan

    out = tmp_path / "plan.json"
    assert _run(["ortho", "plan", "--levels", "L4", "--out", str(out)]) == 0
    plan = Plan.load(out)
    assert [s.name for s in plan] == ["L4-L", "L4-R"]
    seg = SpineSegment(("L4",))
    assert all(check_plan(seg, s).min_clearance > 0 for s in plan)
    text = capsys.readouterr().out
    assert "wrote" in text and "L4-L" in text


def test_report_prints_and_renders(tmp_path, capsys) -> None:
    from machaon.ortho import report as rep
    from machaon.ortho.anatomy import SpineSegment
    from machaon.ortho.planning import auto_plan

    seg = SpineSegment(("L3",))
    plan = auto_plan(seg)
    s = plan.screws[0]
    results = [rep.evaluate_screw(seg, s, s.entry + [2e-4, 0, 0], s.target, {"drill": 9.0}, "depth_stop")]
    rep.write_report(tmp_path, rep.make_report(results, {"fre": 1e-4}, seg), seg, pictures=False)
    assert _run(["ortho", "report", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "L3-L" in text and "picture:" in text
    assert list(tmp_path.glob("*.png"))
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["screws"][0]["entry_error_mm"] == pytest.approx(0.2)


def test_bad_arguments_give_exit_code_2(tmp_path, capsys) -> None:
    assert _run(["ortho", "run", "--headless", "--feed-mm-s", "100"]) == 2
    assert _run(["ortho", "run", "--headless", "--plan", str(tmp_path / "missing.json")]) == 2
    assert _run(["ortho", "report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "feed" in err and "cannot read" in err
    with pytest.raises(SystemExit):
        _run(["ortho", "run", "--levels", ","])


def test_levels_parser() -> None:
    assert cli._levels("l3, L4") == ("L3", "L4")
    assert np.all([isinstance(x, str) for x in cli._levels("T8")])
