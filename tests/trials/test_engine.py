"""The study engine on a local Ray with 2 workers: completes, worker-count independence, kill + resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from machaon.trials import RunRecord, run_seed, run_study
from machaon.trials.store import read_runs
from tests.trials import _studies
from tests.trials._studies import SMALL_TELEOP_ARGS, DrawStudy, small_teleop

ROOT = Path(__file__).resolve().parents[2]


def _core(summary: dict) -> dict:
    """The summary without the engine's timing (which differs between executions)."""
    return {k: v for k, v in summary.items() if k != "engine"}


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """The small teleop study run once to completion with 2 workers."""
    out = tmp_path_factory.mktemp("teleop2")
    return run_study(small_teleop(), out, seed=7, workers=2, progress=False)


def test_small_study_completes_with_two_workers(reference):
    res = reference
    assert res.summary["runs"] == {"total": 5, "done": 5, "ok": 5, "errors": 0}
    assert [r.index for r in res.records] == [0, 1, 2, 3, 4]
    assert [r.seed for r in res.records] == [run_seed(7, i) for i in range(5)]
    assert len({r.worker for r in res.records}) == 2  # both workers ran runs
    assert all(r.cpu_s > 0 and r.elapsed_s > 0 for r in res.records)
    # every file the engine promises, and the summary on disk is the one returned
    for name in ("runs.jsonl", "study.json", "summary.json", "report.md", "teleop_metrics.png", "teleop_paths.png"):
        assert (res.out_dir / name).stat().st_size > 0, name
    assert json.loads((res.out_dir / "summary.json").read_text()) == res.summary
    groups = {g["profile"]: g for g in res.summary["teleop"]["groups"]}
    assert set(groups) == {"zero_delay", "wired", "lte"} and groups["lte"]["n"] == 2
    # the link adds lag: LTE (~33 ms one way) lags the zero-delay run by more than wired (2 ms) does
    lag = {k: g["metrics"]["lag_ms"]["mean"] for k, g in groups.items()}
    assert lag["zero_delay"] < lag["wired"] < lag["lte"]
    assert groups["lte"]["link_share"]["lag_ms"] > groups["wired"]["link_share"]["lag_ms"] > 0


def test_one_worker_gives_identical_runs(reference, tmp_path):
    one = run_study(small_teleop(), tmp_path / "one", seed=7, workers=1, progress=False)
    assert len({r.worker for r in one.records}) == 1
    assert [r.result for r in one.records] == [r.result for r in reference.records]
    assert _core(one.summary) == _core(reference.summary)


def test_killed_study_resumes_without_losing_or_repeating_runs(ray_local, reference, tmp_path):
    out = tmp_path / "killed"
    runs = out / "runs.jsonl"
    addr = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "machaon", *SMALL_TELEOP_ARGS, "--out", str(out), "--seed", "7", "--workers", "2",
           "--address", addr]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120.0
        while time.monotonic() < deadline and proc.poll() is None:
            if runs.exists() and runs.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the study ended before it could be killed: {proc.stderr.read().decode()[-800:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    before = read_runs(runs)
    assert 2 <= len(before) < 5, "killed half-way"
    res = run_study(small_teleop(), out, seed=7, workers=2, resume=True, progress=False)
    assert res.ran_now == 5 - len(before)
    lines = [json.loads(x) for x in runs.read_text().splitlines()]
    assert sorted(x["index"] for x in lines) == [0, 1, 2, 3, 4]  # none lost, none repeated
    assert _core(res.summary) == _core(reference.summary)
    assert [r.result for r in res.records] == [r.result for r in reference.records]


def test_raising_run_is_recorded_and_the_study_completes(ray_local, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(_studies)  # workers need not import the tests package
    res = run_study(DrawStudy(n=6, fail=(2, 4)), tmp_path / "d", seed=3, workers=2, progress=False)
    assert res.summary["runs"] == {"total": 6, "done": 6, "ok": 4, "errors": 2}
    errs = {e["index"]: e for e in res.summary["errors"]}
    assert set(errs) == {2, 4}
    assert errs[2]["seed"] == run_seed(3, 2) and "fails on purpose" in errs[2]["error"]
    rec = {r.index: r for r in read_runs(tmp_path / "d" / "runs.jsonl")}
    assert rec[4].result is None and "RuntimeError" in rec[4].error and "Traceback" in rec[4].traceback
    assert rec[0].ok and rec[0].result["x"] == pytest.approx(
        float(__import__("numpy").random.default_rng(run_seed(3, 0)).normal()))
    # a resume re-runs nothing: failed runs are results too (same seed, same error)
    again = run_study(DrawStudy(n=6, fail=(2, 4)), tmp_path / "d", seed=3, workers=2, resume=True, progress=False)
    assert again.ran_now == 0 and _core(again.summary) == _core(res.summary)


def test_run_record_round_trips_and_seeds_are_distinct():
    rec = RunRecord(3, run_seed(0, 3), {"a": 1}, {"x": float("nan"), "y": [1, 2]}, None, None, 0.5, "h:1")
    back = RunRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert back.result == {"x": None, "y": [1, 2]} and back.index == 3 and back.ok
    seeds = {run_seed(s, i) for s in range(3) for i in range(1000)}
    assert len(seeds) == 3000
    with pytest.raises(ValueError):
        run_seed(-1, 0)
