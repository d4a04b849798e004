"""Warnings that repeat every control cycle, logged as one line per cause at a bounded rate.

A backend that loses a servo reports the same non-persistent fault at every cycle of a 250 Hz to
1 kHz loop: one log line each would write megabytes a minute and bury the line that matters.
``RateLimitedLog`` writes the first occurrence of a cause at once, then at most one summary per
``interval_s`` (wall-clock seconds) per cause, with the number of occurrences since the last line,
the subjects they concerned (e.g. the joints) and the latest message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class _Pending:
    t_logged: float
    count: int = 0
    subjects: set = field(default_factory=set)
    last: str = ""


class RateLimitedLog:
    """Log ``(cause, subject, message)`` events: per cause, the first at once, then a summary at
    most once per ``interval_s`` seconds of ``clock`` (``time.monotonic`` by default).

    ``interval_s`` must be > 0 (``ValueError``). Not thread-safe by itself: call from one thread
    (the supervisor calls it under its lock). ``flush()`` writes the summaries still pending.
    """

    def __init__(self, logger: logging.Logger, *, interval_s: float = 1.0, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s: must be > 0, got {interval_s!r}")
        self.logger = logger
        self.interval_s = float(interval_s)
        self.level = level
        self.clock = clock
        self.total: dict[Hashable, int] = {}
        self._pending: dict[Hashable, _Pending] = {}

    def log(self, cause: Hashable, subject: object, message: str) -> bool:
        """Count one event; True when a line was written for it."""
        now = self.clock()
        self.total[cause] = self.total.get(cause, 0) + 1
        p = self._pending.get(cause)
        if p is None:
            self._pending[cause] = _Pending(now)
            self.logger.log(self.level, "%s", message)
            return True
        p.count += 1
        p.subjects.add(subject)
        p.last = message
        if now - p.t_logged < self.interval_s:
            return False
        self._summarise(cause, p, now)
        return True

    def flush(self) -> None:
        """Write the summary of every cause with events not yet logged."""
        now = self.clock()
        for cause, p in self._pending.items():
            if p.count:
                self._summarise(cause, p, now)

    def _summarise(self, cause: Hashable, p: _Pending, now: float) -> None:
        subjects = ", ".join(sorted(str(s) for s in p.subjects if s is not None))
        self.logger.log(self.level, "%s: %d more in the last %.1f s%s; latest: %s", cause, p.count,
                        now - p.t_logged, f" ({subjects})" if subjects else "", p.last)
        p.t_logged, p.count, p.last = now, 0, ""
        p.subjects.clear()
