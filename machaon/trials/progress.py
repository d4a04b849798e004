"""The study's progress bar on the terminal (``rich.progress``): runs done / total, rate, ETA, errors.

Drawn on standard error so that standard output keeps only the study's results. When standard
error is not a terminal (a log file, CI), rich draws nothing live; the engine then logs a line
every few runs instead.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Runs per hour over the recent window rich keeps (runs finished in this session only)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- runs/h" if not speed else f"{speed * 3600:,.0f} runs/h", style="progress.data.speed")


class StudyProgress:
    """``update(done, errors)`` after each finished run; use as a context manager.

    ``enabled=False`` (tests, ``--no-progress``) prints nothing. Off a terminal, one line per
    ``every`` runs goes to standard error.
    """

    def __init__(self, name: str, total: int, done: int, enabled: bool = True, every: int = 10) -> None:
        self.name, self.total, self.done0 = name, total, done
        self.enabled = enabled
        self.every = max(1, every)
        self._console = Console(stderr=True)
        self._live = enabled and self._console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> StudyProgress:
        if self._live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                TextColumn("errors {task.fields[errors]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=self._console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total, completed=self.done0, errors=0)
        return self

    def update(self, done: int, errors: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, errors=errors)
        elif self.enabled and ((done - self.done0) % self.every == 0 or done == self.total):
            dt = time.perf_counter() - self._t0
            rate = (done - self.done0) / dt * 3600 if dt > 0 else 0.0
            left = (self.total - done) / (rate / 3600) if rate > 0 else float("nan")
            print(f"{self.name}: {done}/{self.total} runs, {rate:,.0f} runs/h, errors {errors}, "
                  f"ETA {left:,.0f} s", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
