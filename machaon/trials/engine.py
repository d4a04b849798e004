"""The study runner: every run of a study as one Ray task, results streamed to disk as they finish.

``run_study(study, out_dir, seed=..., workers=..., address=..., resume=...)``:

1. plans the runs (``study.plan(seed)``; run ``i`` gets ``run_seed(seed, i)``);
2. opens ``out_dir`` (``machaon.trials.store``): on ``resume`` the runs already on disk are
   skipped, so a killed study loses at most the runs that were in flight;
3. submits the remaining runs as Ray tasks (one CPU each), at most ``workers`` in flight, and
   appends each finished run to ``runs.jsonl`` (fsync'd) the moment it finishes. A run that
   raises is recorded with its error, traceback and seed, and the study goes on; so is a run
   whose worker died (a crash in native code);
4. writes ``summary.json`` (the study's summary plus run counts and errors; timing under
   ``engine``), ``report.md`` and the study's PNG plots.

Ray: ``address`` connects to an existing cluster (``"auto"`` for one started with ``ray start``
on this machine, ``"ray://host:10001"`` through Ray Client); without it a local Ray starts with
``workers`` CPUs (default: all) and stops at the end. When Ray is already initialised in this
process (tests, notebooks) that session is used and left running; ``workers`` then only limits
the runs in flight. Every node of a cluster needs Machaon installed (same version) in the Python
environment its workers run.

This package is the only part of Machaon that imports Ray (``tests/test_architecture.py``), and
only inside functions, so importing ``machaon.trials`` stays cheap.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from machaon.trials.progress import StudyProgress
from machaon.trials.store import SUMMARY, RunStore, write_json_atomic
from machaon.trials.study import ClusterError, RunRecord, Study, StudyError, jsonable, run_seed

log = logging.getLogger(__name__)

# The object store holds only the study object and small result dicts.
_OBJECT_STORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class StudyResult:
    """A finished study: its directory, summary, every run (index order) and the report files."""

    out_dir: Path
    summary: dict
    records: tuple[RunRecord, ...]
    report_paths: tuple[Path, ...]
    ran_now: int
    wall_s: float


def execute_run(study: Study, index: int, seed: int, params: dict) -> dict:
    """Run one study run here and return its ``RunRecord`` as JSON; never raises for the run's own errors.

    This is the body of each Ray task (and what a benchmark calls to time a run without Ray).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        result, error, tb = jsonable(study.run(params, seed)), None, None
    except Exception as exc:  # a run that raises is data: recorded with its seed, the study goes on
        result, error, tb = None, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=-8)
    return RunRecord(index, seed, params, result, error, tb, time.perf_counter() - t0, worker,
                     time.process_time() - c0).to_json()


@contextmanager
def ray_session(workers: int | None = None, address: str | None = None) -> Iterator[int]:
    """A Ray session for a study; yields how many runs may be in flight.

    Reuses a session already initialised in this process (and leaves it running). Otherwise
    connects to ``address`` or starts a local Ray with ``workers`` CPUs, and shuts it down on
    exit. A cluster that cannot be reached raises ``ClusterError``.
    """
    import ray

    if workers is not None and workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    own = not ray.is_initialized()
    if own:
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:
                if address.startswith("ray://"):
                    ray.init(address, **quiet)
                else:
                    ray.init(address=address, include_dashboard=False, **quiet)
            else:
                # Ray nices its workers by 15 by default; here the runs are the work, so they run
                # at the niceness of the command that started the study
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=_OBJECT_STORE_BYTES, _system_config={"worker_niceness": 0}, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()
            where = address or "a local Ray"
            raise ClusterError(f"cannot start or reach {where}: {first[0] if first else exc!r}") from None
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        yield max(1, min(workers, cpus) if workers else cpus)
    finally:
        if own:
            ray.shutdown()


def _error_record(index: int, seed: int, params: dict, exc: BaseException) -> RunRecord:
    """A run whose task failed outside the run itself (worker died, task lost)."""
    text = str(exc).strip().splitlines()
    return RunRecord(index, seed, params, None, f"{type(exc).__name__}: {text[0] if text else ''}", None, 0.0, "")


def run_study(
    study: Study,
    out_dir: str | Path,
    *,
    seed: int = 0,
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> StudyResult:
    """Run every run of ``study`` not yet in ``out_dir`` on Ray; write summary and report (module docstring).

    ``seed`` >= 0. Raises ``StudyError`` for an unusable directory or a resume of another study,
    ``ClusterError`` for an unreachable cluster; a run's own exception never propagates.
    """
    if seed < 0:
        raise StudyError(f"--seed must be >= 0, got {seed}")
    out = Path(out_dir)
    plan = study.plan(seed)
    if not plan:
        raise StudyError(f"study {study.name!r} has no runs with these settings")
    specs = [(i, run_seed(seed, i), jsonable(p)) for i, p in enumerate(plan)]
    settings = jsonable(study.settings())
    header = {"study": study.name, "settings": settings, "seed": seed, "runs": len(specs)}
    t0 = time.perf_counter()
    ran = 0
    with RunStore(out, header, resume) as store:
        for rec in store.done.values():
            if rec.index >= len(specs) or rec.seed != specs[rec.index][1] or rec.params != specs[rec.index][2]:
                raise StudyError(f"{store.runs_path}: run {rec.index} does not belong to this study")
        todo = [s for s in specs if s[0] not in store.done]
        if todo:
            ran = _run_on_ray(study, todo, store, len(specs), workers, address, progress)
    wall = time.perf_counter() - t0
    records = sorted(store.done.values(), key=lambda r: r.index)
    summary = _summary(study, header, records, workers, address, ran, wall)
    write_json_atomic(out / SUMMARY, summary)
    paths = tuple(study.write_report(out, summary, records))
    return StudyResult(out, summary, tuple(records), paths, ran, wall)


def _run_on_ray(study: Study, todo: list[tuple[int, int, dict]], store: RunStore, total: int,
                workers: int | None, address: str | None, progress: bool) -> int:
    import ray

    with ray_session(workers, address) as limit:
        task = ray.remote(num_cpus=1, max_retries=0)(execute_run)
        study_ref = ray.put(study)
        pending: dict = {}
        queue = iter(todo)
        errors = sum(1 for r in store.done.values() if not r.ok)
        ran = 0
        with StudyProgress(study.name, total, len(store.done), enabled=progress) as bar:
            while True:
                while len(pending) < limit:
                    spec = next(queue, None)
                    if spec is None:
                        break
                    pending[task.remote(study_ref, *spec)] = spec
                if not pending:
                    break
                # a bounded wait, so that Ctrl-C is noticed between waits (Ray's wait does not check)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    index, s, params = pending.pop(ref)
                    try:
                        rec = RunRecord.from_json(ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        rec = _error_record(index, s, params, exc)
                    store.append(rec)
                    ran += 1
                    errors += 0 if rec.ok else 1
                    if not rec.ok:
                        log.warning("run %d (seed %d) failed: %s", index, s, rec.error)
                    bar.update(len(store.done), errors)
    return ran


def _summary(study: Study, header: dict, records: list[RunRecord], workers: int | None, address: str | None,
             ran: int, wall: float) -> dict:
    failed = [r for r in records if not r.ok]
    elapsed = [r.elapsed_s for r in records if r.ok and r.elapsed_s > 0]
    cpu = [r.cpu_s for r in records if r.ok and r.cpu_s > 0]
    out = {
        "study": header["study"],
        "seed": header["seed"],
        "settings": header["settings"],
        "runs": {"total": header["runs"], "done": len(records), "ok": len(records) - len(failed),
                 "errors": len(failed)},
        "errors": [{"index": r.index, "seed": r.seed, "params": r.params, "error": r.error} for r in failed],
    }
    out.update(jsonable(study.summarise(records)))
    out["engine"] = {
        "address": address or "local",
        "workers": workers,
        "runs_this_session": ran,
        "wall_s_this_session": wall,
        "runs_per_hour_this_session": ran / wall * 3600 if ran and wall > 0 else None,
        "run_s_mean": sum(elapsed) / len(elapsed) if elapsed else None,
        "run_cpu_s_mean": sum(cpu) / len(cpu) if cpu else None,
    }
    return out
