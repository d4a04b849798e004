"""The study directory: durable lines, a partly written last line after a kill, refusals that protect results."""

from __future__ import annotations

import json

import pytest

from machaon.trials.store import RunStore, read_runs
from machaon.trials.study import RunRecord, StudyError

HEADER = {"study": "draw", "settings": {"n": 3}, "seed": 0, "runs": 3}


def _rec(i: int) -> RunRecord:
    return RunRecord(i, 100 + i, {"k": i}, {"x": i * 0.5})


def test_append_then_resume_skips_done_runs(tmp_path):
    with RunStore(tmp_path, HEADER, resume=False) as st:
        st.append(_rec(0))
        st.append(_rec(2))
    with RunStore(tmp_path, HEADER, resume=True) as st:
        assert sorted(st.done) == [0, 2]
        st.append(_rec(1))
    assert [r.index for r in read_runs(tmp_path / "runs.jsonl")] == [0, 2, 1]
    assert json.loads((tmp_path / "study.json").read_text()) == HEADER


def test_partly_written_last_line_is_cut_off_on_resume(tmp_path):
    with RunStore(tmp_path, HEADER, resume=False) as st:
        st.append(_rec(0))
    runs = tmp_path / "runs.jsonl"
    line = json.dumps(_rec(1).to_json())
    with open(runs, "a") as f:
        f.write(line[: len(line) // 2])  # the kill came mid-write
    assert [r.index for r in read_runs(runs)] == [0]
    with RunStore(tmp_path, HEADER, resume=True) as st:
        assert sorted(st.done) == [0]
        st.append(_rec(1))
    text = runs.read_text()
    assert text.endswith("\n") and [json.loads(x)["index"] for x in text.splitlines()] == [0, 1]


def test_refusals(tmp_path):
    with RunStore(tmp_path, HEADER, resume=False) as st:
        st.append(_rec(0))
    with pytest.raises(StudyError, match="--resume"):
        RunStore(tmp_path, HEADER, resume=False).open()
    other = dict(HEADER, seed=1)
    with pytest.raises(StudyError, match="differs in: seed"):
        RunStore(tmp_path, other, resume=True).open()
    (tmp_path / "runs.jsonl").write_text('{"index": 0, "seed": 1, "params": {}}\nnot json\n')
    with pytest.raises(StudyError, match="runs.jsonl:2"):
        read_runs(tmp_path / "runs.jsonl")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StudyError, match="cannot create"):
        RunStore(blocker / "sub", HEADER, resume=False).open()
