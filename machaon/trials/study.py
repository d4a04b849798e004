"""What a study is: a deterministic list of runs, a function that executes one, and a summary.

A study is a picklable object (a frozen dataclass) with:

- ``name`` and ``settings()``: what it is, as JSON (written to ``DIR/study.json`` and checked on
  ``--resume``, so a directory never mixes two studies);
- ``plan(seed)``: the runs, as a list of JSON-ready parameter dicts, a pure function of the
  study seed (conditions that several runs share, such as a simulated wearer tried with several
  gains, are drawn here);
- ``run(params, seed)``: executes one run in a Ray task and returns a JSON-ready dict. It uses
  only ``params`` and ``seed``, so its result does not depend on which worker or machine ran it,
  nor on how many ran beside it. It may raise: the engine records the error and goes on;
- ``summarise(records)``: the study's summary (JSON) from every run on disk, in index order;
- ``write_report(out_dir, summary, records)``: ``report.md`` and PNG plots, returns their paths;
- ``headline(summary)``: the few lines printed on the terminal at the end.

Each run's seed is ``run_seed(study_seed, index)``: NumPy's ``SeedSequence`` of the pair, so
seeds of different runs are independent streams and a run's seed never depends on the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from machaon.errors import TrialError


class StudyError(TrialError, ValueError):
    """A study cannot start or go on as asked: bad settings, an output directory that holds other
    runs or cannot be written, a resume of a different study (the command exits 2)."""


class ClusterError(TrialError, RuntimeError):
    """Ray could not be started, or the cluster at ``--address`` could not be reached (exit 1)."""


def run_seed(study_seed: int, index: int) -> int:
    """The seed of run ``index`` of a study seeded with ``study_seed``: a 32-bit unsigned integer.

    ``numpy.random.SeedSequence([study_seed, index])``: independent of the number of workers,
    machines or the order the runs finish in. Negative inputs raise ``ValueError``.
    """
    if study_seed < 0 or index < 0:
        raise ValueError(f"run_seed: seed and index must be >= 0, got {study_seed}, {index}")
    return int(np.random.SeedSequence([int(study_seed), int(index)]).generate_state(1, np.uint32)[0])


@dataclass(frozen=True)
class RunRecord:
    """One finished run as stored in ``DIR/runs.jsonl``.

    ``result`` is the study's dict when the run succeeded, ``error`` the exception text (with
    ``traceback``) when it raised; ``elapsed_s`` is the run's wall time on its worker, ``cpu_s``
    the CPU time its process spent on it (what a run costs, whatever else loads the machine), and
    ``worker`` names the worker (host:pid). Only ``result`` is the run's outcome; the other
    timing fields differ between executions.
    """

    index: int
    seed: int
    params: dict
    result: dict | None
    error: str | None = None
    traceback: str | None = None
    elapsed_s: float = 0.0
    worker: str = ""
    cpu_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        return jsonable({
            "index": self.index, "seed": self.seed, "params": self.params, "result": self.result,
            "error": self.error, "traceback": self.traceback, "elapsed_s": self.elapsed_s, "worker": self.worker,
            "cpu_s": self.cpu_s,
        })

    @staticmethod
    def from_json(d: dict) -> RunRecord:
        """Inverse of ``to_json``; a dict without ``index``/``seed``/``params`` raises ``ValueError``."""
        try:
            return RunRecord(int(d["index"]), int(d["seed"]), dict(d["params"]), d.get("result"), d.get("error"),
                             d.get("traceback"), float(d.get("elapsed_s", 0.0)), str(d.get("worker", "")),
                             float(d.get("cpu_s", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a run record ({exc})") from None


@runtime_checkable
class Study(Protocol):
    """The interface every study implements (see the module docstring)."""

    name: str

    def settings(self) -> dict: ...

    def plan(self, seed: int) -> list[dict]: ...

    def run(self, params: dict, seed: int) -> dict: ...

    def summarise(self, records: list[RunRecord]) -> dict: ...

    def write_report(self, out_dir: Path, summary: dict, records: list[RunRecord]) -> list[Path]: ...

    def headline(self, summary: dict) -> str: ...


def jsonable(v: Any) -> Any:
    """``v`` with NumPy scalars/arrays as Python numbers/lists, tuples as lists and NaN/Inf as None.

    JSON has no NaN; writing one would make a file other tools cannot read.
    """
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    return v
