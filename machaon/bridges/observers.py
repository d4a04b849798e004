"""The hook interface applications call, and the queue that keeps bridges off the control thread.

**Observers.** A run log (``machaon.robot.runlog.RunLogRecorder``) and a live view
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

**BackgroundPublisher.** A live bridge's ``record_*`` methods only put an item in a bounded queue
(``collections.deque(maxlen)``: when a viewer is slow the oldest item is dropped, never the
control loop delayed) and one publisher thread does the encoding and the sending. Items submitted
with ``droppable=False`` (supervisor events, scene entities, log lines) go to a second, larger
queue drained first.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

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


class BackgroundPublisher:
    """A bounded drop-oldest queue drained by one daemon thread calling ``handler(item)``.

    ``submit`` never blocks and never raises; ``maxlen`` bounds the droppable queue,
    ``control_maxlen`` the queue of items that should not be dropped (it too drops its oldest
    beyond that bound, so memory stays bounded when nobody drains). A ``handler`` that raises is
    logged (once per kind of error) and counted in ``errors``; the thread goes on. Use as a
    context manager or call ``start``/``close``.
    """

    def __init__(self, handler: Callable[[object], None], *, maxlen: int = 256, control_maxlen: int = 4096,
                 name: str = "machaon-publisher") -> None:
        if maxlen < 1 or control_maxlen < 1:
            raise ValueError("maxlen, control_maxlen: must be >= 1")
        self._handler = handler
        self._data: deque = deque(maxlen=maxlen)
        self._control: deque = deque(maxlen=control_maxlen)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.name = name
        self.submitted = 0
        self.dropped = 0
        self.published = 0
        self.errors = 0
        self._seen_errors: set[str] = set()

    def start(self) -> BackgroundPublisher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def submit(self, item: object, *, droppable: bool = True) -> None:
        """Queue ``item`` for the publisher thread (the oldest queued item goes if the queue is full)."""
        q = self._data if droppable else self._control
        if len(q) == q.maxlen:
            self.dropped += 1
        q.append(item)
        self.submitted += 1
        if not self._wake.is_set():
            self._wake.set()

    def pending(self) -> int:
        return len(self._data) + len(self._control)

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until the queues are empty (True) or ``timeout`` s pass (False); for tests and shutdown."""
        done = threading.Event()
        self.submit(done.set, droppable=False)
        return done.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Publish what is queued (up to ``timeout`` s), then stop the thread."""
        if self._thread is None:
            return
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> BackgroundPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> object | None:
        try:
            return self._control.popleft()
        except IndexError:
            pass
        try:
            return self._data.popleft()
        except IndexError:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            while (item := self._next()) is not None:
                try:
                    if callable(item) and not isinstance(item, tuple):
                        item()  # a flush marker
                    else:
                        self._handler(item)
                        self.published += 1
                except Exception as exc:
                    self.errors += 1
                    key = f"{type(exc).__name__}"
                    if key not in self._seen_errors:
                        self._seen_errors.add(key)
                        _log.warning("%s: publishing failed (%r); later %s errors are only counted",
                                     self.name, exc, key)
