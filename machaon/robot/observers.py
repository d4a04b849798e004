"""The observer interface: what a control loop and an application tell run logs and live views.

A run log (``machaon.robot.runlog.RunLogRecorder``) and a live view
(``machaon.bridges.foxglove_live.FoxgloveLiveView``, ``machaon.bridges.igtl.IgtlServer``) take the
same calls, each optional:

- ``record_cycle(t, state, cmd)``: every control cycle (``ControlLoop`` calls it as its
  ``recorder``); ``record_events(events)``: supervisor transitions; ``record_stats(stats, t=None)``;
- ``record_transforms(t, frames)``: scene frames (``machaon.robot.topics.FramePose``) such as the
  camera, marker plates and vertebrae, in SI units;
- ``record_scene(t, entities, deleted_ids=())``: 3D entities (``machaon.robot.topics.SceneEntity``);
- ``record_log(t, message, level)``: what the application says.

``Observers(a, b, ...)`` fans each call out to every observer that has the method. An observer
that raises is logged once and dropped; the others, and the caller (the control loop), go on.
Live views must return at once from ``record_cycle`` (``machaon.bridges`` queue the work for a
publisher thread); a run log writes on the calling thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from machaon.robot.topics import LOG_INFO

_log = logging.getLogger(__name__)

_METHODS = ("record_cycle", "record_events", "record_stats", "record_transforms", "record_scene", "record_log")


class Observers:
    """Fans the observer calls (module docstring) out to ``observers`` (``None`` entries are skipped)."""

    def __init__(self, *observers: object) -> None:
        self.observers = [o for o in observers if o is not None]

    def add(self, observer: object) -> None:
        """Add an observer (e.g. a recording started later)."""
        self.observers.append(observer)

    def remove(self, observer: object) -> None:
        """Stop calling ``observer`` (no error if it was not there)."""
        self.observers = [o for o in self.observers if o is not observer]

    def __bool__(self) -> bool:
        return bool(self.observers)

    def _call(self, method: str, *args: object) -> None:
        for obs in self.observers:
            fn = getattr(obs, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                _log.exception("observer %s failed in %s; it is disabled", type(obs).__name__, method)
                self.remove(obs)

    def record_cycle(self, t: float, state: object, cmd: object) -> None:
        self._call("record_cycle", t, state, cmd)

    def record_events(self, events: Iterable[object]) -> None:
        self._call("record_events", list(events))

    def record_stats(self, stats: object, t: float | None = None) -> None:
        self._call("record_stats", stats, t)

    def record_transforms(self, t: float, frames: Iterable[object]) -> None:
        self._call("record_transforms", t, list(frames))

    def record_scene(self, t: float, entities: Iterable[object], deleted_ids: Iterable[str] = ()) -> None:
        self._call("record_scene", t, list(entities), list(deleted_ids))

    def record_log(self, t: float, message: str, level: int = LOG_INFO) -> None:
        self._call("record_log", t, message, level)


def is_observer(obj: object) -> bool:
    """True when ``obj`` has at least one of the observer methods."""
    return any(callable(getattr(obj, m, None)) for m in _METHODS)



class RealTimePacer:
    """An observer that keeps backend time from running ahead of the wall clock (for a simulation with
    a live view: a viewer cannot follow a faster run). ``record_cycle`` sleeps when simulated time is
    ahead by more than ``slack_s``; after falling behind by more than 0.25 s it re-anchors instead of
    rushing to catch up. This sleep is the pacing itself, on purpose; it never waits for a client."""

    def __init__(self, slack_s: float = 0.002) -> None:
        self.slack_s = slack_s
        self._anchor: tuple[float, float] | None = None

    def record_cycle(self, t: float, state: object, cmd: object) -> None:
        wall = time.monotonic()
        if self._anchor is None:
            self._anchor = (t, wall)
            return
        ahead = (t - self._anchor[0]) - (wall - self._anchor[1])
        if ahead > self.slack_s:
            time.sleep(ahead)
        elif ahead < -0.25:
            self._anchor = (t, wall)
