"""The queue that keeps bridges off the control thread, and the observer fan-out they plug into.

**BackgroundPublisher.** A live bridge's ``record_*`` methods (the observer interface,
``machaon.robot.observers``) only put an item in a bounded queue (``collections.deque(maxlen)``:
when a viewer is slow the oldest item is dropped, never the control loop delayed) and one publisher
thread does the encoding and the sending. Items submitted with ``droppable=False`` (supervisor
events, scene entities, log lines) go to a second, larger queue drained first.

``Observers`` (re-exported from ``machaon.robot.observers``) fans a loop's and an application's
calls out to a run log and any number of live views.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from machaon.robot.observers import Observers, is_observer

__all__ = ["BackgroundPublisher", "Observers", "is_observer"]

_log = logging.getLogger(__name__)


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
                        time.sleep(0)  # hand the GIL back to the control thread between items
                except Exception as exc:
                    self.errors += 1
                    key = f"{type(exc).__name__}"
                    if key not in self._seen_errors:
                        self._seen_errors.add(key)
                        _log.warning("%s: publishing failed (%r); later %s errors are only counted",
                                     self.name, exc, key)
