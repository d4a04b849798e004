"""Virtual-trial benchmark: simulated screws per hour on Ray with 1 and 2 workers, and what Ray costs.

- **Ray's footprint**: installed size of the ``ray`` package, ``import ray`` time (fresh
  interpreter, best of 3) and ``ray.init`` + ``ray.shutdown`` of a local 2-CPU Ray;
- **per-task overhead**: a no-op task's round trip (``ray.get(f.remote())``, one at a time) and
  the cost per task of 2000 no-op tasks in flight, beside the cost of one simulated screw;
- **mode cost**: one screw in trial mode (no rendering) and the same screw in full mode
  (hand-eye calibration from rendered images), in this process, no Ray;
- **runs per hour**: the ortho study (``--screws`` trial-mode screws, clinical conditions) on a
  local Ray with 1 and 2 workers, and the same runs on the peer, the standard library's
  ``concurrent.futures.ProcessPoolExecutor`` with 2 processes; the rate counts from the first
  submitted run (Ray's start-up is reported apart) and the engine's overhead per run is the
  study's wall time x workers minus the runs' own time, per run.

Run: ``python -m benchmarks.trials [--screws N]``. The numbers move with machine load: the runs
are CPU-bound simulations, so with other work on the machine each run slows down.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks._common import table
from machaon.trials.engine import execute_run, run_study
from machaon.trials.ortho import OrthoStudy
from machaon.trials.study import RunRecord, run_seed


def _noop() -> int:
    return 0


def footprint() -> list[list[object]]:
    import ray

    pkg = Path(ray.__file__).parent
    size = sum(f.stat().st_size for f in pkg.rglob("*") if f.is_file())
    times = []
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import ray; "
                            "print(time.perf_counter() - t)"], capture_output=True, text=True, check=True)
        times.append(float(r.stdout.strip().splitlines()[-1]))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=128 * 1024 * 1024)
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.shutdown()
    t_down = time.perf_counter() - t0
    return [["installed size of the ray package", f"{size / 1e6:.0f} MB"],
            ["`import ray` (fresh interpreter, best of 3)", f"{min(times) * 1e3:.0f} ms"],
            ["`ray.init` (local, 2 CPUs) / `ray.shutdown`", f"{t_init:.2f} s / {t_down:.2f} s"]]


def task_overhead() -> tuple[float, float]:
    """(round trip of one no-op task, s; cost per task with 2000 in flight, s)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=128 * 1024 * 1024)
    try:
        f = ray.remote(num_cpus=1)(_noop)
        ray.get([f.remote() for _ in range(50)])  # workers up
        rt = []
        for _ in range(300):
            t0 = time.perf_counter()
            ray.get(f.remote())
            rt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ray.get([f.remote() for _ in range(2000)])
        per = (time.perf_counter() - t0) / 2000
    finally:
        ray.shutdown()
    return statistics.median(rt), per


def mode_costs(study: OrthoStudy) -> tuple[float, float, dict, dict]:
    """Wall time of the first screw in trial mode and in full mode (same conditions), this process."""
    p = study.plan(0)[0]
    seed = run_seed(0, 0)
    t0 = time.perf_counter()
    trial = study.run(p, seed)
    t_trial = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = study.run({**p, "mode": "full", "procedure_seed": seed}, seed)
    return t_trial, time.perf_counter() - t0, trial, full


def on_ray(study: OrthoStudy, workers: int) -> dict:
    """The study on a fresh local Ray with ``workers`` CPUs."""
    import ray

    out = Path(tempfile.mkdtemp(prefix="bench-trials-"))
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 object_store_memory=128 * 1024 * 1024)
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = run_study(study, out, seed=0, workers=workers, progress=False)
        wall = time.perf_counter() - t0
        ray.shutdown()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return _rates(res.records, wall, t_start, workers)


def _rates(recs: list[RunRecord] | tuple[RunRecord, ...], wall: float, t_start: float, workers: int) -> dict:
    n = len(recs)
    busy = sum(r.elapsed_s for r in recs)
    return {"wall": wall, "start": t_start, "runs": n, "errors": sum(not r.ok for r in recs),
            "per_hour": n / wall * 3600, "run_s": busy / n, "cpu_s": sum(r.cpu_s for r in recs) / n,
            "overhead_s": (wall * workers - busy) / n}


def _pool_run(args: tuple) -> dict:
    study, index, seed, params = args
    return execute_run(study, index, seed, params)


def on_pool(study: OrthoStudy, workers: int) -> dict:
    specs = [(study, i, run_seed(0, i), p) for i, p in enumerate(study.plan(0))]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        recs = [RunRecord.from_json(d) for d in pool.map(_pool_run, specs)]
    return _rates(recs, time.perf_counter() - t0, 0.0, workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screws", type=int, default=8, help="screws per configuration (default 8)")
    args = ap.parse_args()
    study = OrthoStudy.create(screws=args.screws, compare=0)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start\n")
    print("Ray's footprint\n")
    print(table(["", "value"], footprint()))
    t_rt, t_per = task_overhead()
    t_trial, t_full, r_trial, r_full = mode_costs(study)
    print("\nOne screw, this process (no Ray)\n")
    print(table(["mode", "wall s", "tip deviation mm", "grade"],
                [["trial (no rendering)", f"{t_trial:.2f}", f"{r_trial['tip_mm']:.2f}", r_trial["grade"]],
                 ["full (rendered hand-eye calibration)", f"{t_full:.2f}", f"{r_full['tip_mm']:.2f}",
                  r_full["grade"]],
                 ["full / trial", f"{t_full / t_trial:.2f}x", "", ""]]))
    print("\nRay per-task overhead against a screw\n")
    print(table(["", "time", "share of one trial-mode screw"],
                [["no-op task round trip (median of 300)", f"{t_rt * 1e3:.2f} ms", f"{t_rt / t_trial:.2e}"],
                 ["no-op task, 2000 in flight (per task)", f"{t_per * 1e3:.3f} ms", f"{t_per / t_trial:.2e}"]]))
    rows = []
    results = {}
    for name, fn, w in (("Ray, 1 worker", on_ray, 1), ("Ray, 2 workers", on_ray, 2),
                        ("ProcessPoolExecutor, 2 processes (peer)", on_pool, 2)):
        r = fn(study, w)
        results[name] = r
        rows.append([name, r["runs"], r["errors"], f"{r['wall']:.1f}", f"{r['start']:.1f}", f"{r['run_s']:.2f}",
                     f"{r['cpu_s']:.2f}", f"{r['overhead_s']:.2f}", f"{r['per_hour']:.0f}"])
    print(f"\nThe ortho study, {args.screws} trial-mode screws (clinical conditions, levels L1-L4)\n")
    print(table(["engine", "runs", "errors", "wall s", "Ray start s", "wall s per run (on its worker)",
                 "CPU s per run", "engine overhead s per run", "screws per hour"], rows))
    one, two, pool = (results[k]["per_hour"] for k in results)
    print(f"\nscaling 1 -> 2 workers: {two / one:.2f}x; Ray / ProcessPoolExecutor at 2 workers: {two / pool:.2f}x")
    cpu = statistics.mean(r["cpu_s"] for r in results.values())
    print(f"a screw costs {cpu:.2f} CPU s: {3600 / cpu:.0f} screws per hour per core with nothing else running, "
          f"{2 * 3600 / cpu:.0f} on 2 cores")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
