"""What ``machaon ortho run --record`` costs the procedure: the same short run without and with its run log.

The run is one level, one screw (``L3-L``, axis plan, calibration from the tracker noise model, no
bump, 10 mm/s feed, seed 0: what ``tests/ortho/test_run_log_and_clients.py`` runs), through
``run_procedure`` with a ``ProcedureLive`` whose only observer is a ``RunLogRecorder``, as the CLI
builds it: every 5th cycle of the 500 Hz loop (the default, ~100 per second of robot time) and, for
scale, every cycle. The log is written on the procedure's (the control loop's) thread, so its cost
is CPU time of the process: reported per run (median of ``--repeats``), with the ratio to the run
without a log, and the file's size. The result of every run is checked to be the same (recording
never changes what the robot does).

Run: ``python -m benchmarks.ortho_record [--repeats 2]``. On a shared machine CPU time moves by some
percent between runs; compare within one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import table
from machaon.ortho.live import ProcedureLive
from machaon.ortho.procedure import ProcedureConfig, run_procedure
from machaon.robot.runlog import RunLogRecorder


def _config() -> ProcedureConfig:
    return ProcedureConfig(levels=("L3",), plan_mode="axis", screws=("L3-L",), bump=False,
                           calibration_from_images=False, feed_m_s=10e-3, seed=0)


def _run(decimation: int | None, path: Path) -> tuple[float, float, tuple, int]:
    """(CPU s, wall s, the screw's errors, log bytes) of one run; ``decimation`` None: no run log."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if decimation is None:
        result = run_procedure(_config())
        size = 0
    else:
        with RunLogRecorder(path, decimation=decimation) as rec:
            result = run_procedure(_config(), live=ProcedureLive(observers=rec))
        size = path.stat().st_size
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    s = result.screws[0].result
    return cpu, wall, (s.entry_error, s.tip_error, s.angle_error), size


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    cases = [("no run log", None), ("run log, every 5th cycle (default)", 5), ("run log, every cycle", 1)]
    rows, base, results = [], None, set()
    with tempfile.TemporaryDirectory() as d:
        for label, dec in cases:
            runs = [_run(dec, Path(d) / f"run{dec}.mcap") for _ in range(args.repeats)]
            cpu = float(np.median([r[0] for r in runs]))
            wall = float(np.median([r[1] for r in runs]))
            results.update(r[2] for r in runs)
            base = cpu if base is None else base
            rows.append([label, f"{cpu:.2f}", f"{wall:.2f}", f"{cpu / base:.3f}",
                         "-" if dec is None else f"{runs[0][3] / 1e6:.2f}"])
    print(table(["case", "CPU s (median)", "wall s (median)", "CPU / no log", "log MB"], rows))
    print(f"same result in every run: {len(results) == 1}")


if __name__ == "__main__":
    main()
