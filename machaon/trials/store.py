"""A study's directory on disk: ``study.json``, ``runs.jsonl`` (one line per finished run), ``summary.json``.

``runs.jsonl`` is appended one JSON line per run as each run finishes; every line is flushed and
``fsync``'d before the next, so a killed study (power cut, ``kill -9``) loses at most the runs
that were in flight and, at worst, leaves one partly written last line. ``RunStore.open`` with
``resume=True`` cuts such a partial line off and returns the complete runs; without ``resume``
a directory that already holds runs is refused (``StudyError``), so results are never mixed or
overwritten by accident. ``study.json`` names the study, its settings, seed and run count; a
resume of a different study (other settings or seed) is refused.

``study.json`` and ``summary.json`` are written whole to a temporary file and renamed into place
(``machaon._io.atomic_write``), so a reader never sees half a summary.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO

from machaon._io import atomic_write
from machaon.trials.study import RunRecord, StudyError, jsonable

log = logging.getLogger(__name__)

RUNS = "runs.jsonl"
STUDY = "study.json"
SUMMARY = "summary.json"


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path``, whole or not at all (``machaon._io.atomic_write``)."""
    with atomic_write(path) as f:
        json.dump(jsonable(data), f, indent=2, allow_nan=False)
        f.write("\n")


def read_runs(path: Path, *, repair: bool = False) -> list[RunRecord]:
    """The complete run lines of a ``runs.jsonl``.

    A last line without its newline is a write cut short by a kill: it is ignored, and with
    ``repair=True`` cut off the file (so appending goes on at a line boundary). A complete line
    that is not a run record means the file is damaged: ``StudyError`` naming the line.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: ignoring a partly written last line (%d bytes)", path, len(data) - end)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
    out = []
    for n, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(RunRecord.from_json(json.loads(line)))
        except (json.JSONDecodeError, ValueError) as exc:
            raise StudyError(f"{path}:{n}: damaged run line ({exc}); move the file away to start afresh") from None
    return out


class RunStore:
    """Appends finished runs to ``DIR/runs.jsonl`` (flush + fsync per line). Use as a context manager."""

    def __init__(self, out_dir: Path, header: dict, resume: bool) -> None:
        self.dir = Path(out_dir)
        self.header = jsonable(header)
        self.resume = resume
        self._f: IO[str] | None = None
        self.done: dict[int, RunRecord] = {}

    @property
    def runs_path(self) -> Path:
        return self.dir / RUNS

    def open(self) -> RunStore:
        """Create or reopen the directory; load the runs already there when resuming.

        Raises ``StudyError`` when the directory holds runs and ``resume`` is False, when
        ``study.json`` describes another study, or when the directory cannot be created.
        """
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StudyError(f"cannot create {self.dir}: {exc.strerror}") from None
        study_path = self.dir / STUDY
        existing = self.runs_path.exists() and self.runs_path.stat().st_size > 0
        if existing and not self.resume:
            raise StudyError(f"{self.dir} already holds runs of a study; add --resume to go on, "
                             "or choose another --out")
        if study_path.exists() and (self.resume or existing):
            try:
                old = json.loads(study_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise StudyError(f"{study_path}: not JSON ({exc})") from None
            if old != self.header:
                diff = sorted(k for k in set(old) | set(self.header) if old.get(k) != self.header.get(k))
                raise StudyError(f"{self.dir} holds another study (differs in: {', '.join(diff)}); "
                                 "resume with the same study, settings and --seed, or choose another --out")
        write_json_atomic(study_path, self.header)
        for rec in read_runs(self.runs_path, repair=True):
            if rec.index in self.done:
                log.warning("run %d appears twice in %s; keeping the first", rec.index, self.runs_path)
                continue
            self.done[rec.index] = rec
        self._f = open(self.runs_path, "a", encoding="utf-8")
        return self

    def append(self, rec: RunRecord) -> None:
        """Write one run as a line and make it durable before returning."""
        if self._f is None:
            raise StudyError("run store is not open")
        self._f.write(json.dumps(rec.to_json(), allow_nan=False, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done[rec.index] = rec

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> RunStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
