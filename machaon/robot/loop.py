"""``ControlLoop``: the one fixed-rate loop that runs any controller on any backend.

Each cycle::

    t = clock.now(); state = backend.read()
    cmd = controller.update(state, t)            # an exception here -> protective stop
    cmd = supervisor.check(state, cmd, t)        # limits, watchdogs, safe commands
    backend.write(cmd); recorder.record_cycle(t, state, cmd)
    clock.wait_until(t_next)                     # sim: steps physics; hardware: sleep-then-spin

The schedule is absolute (``t_next = t_prev_next + period``), so there is no drift; a cycle that
ends after its next start time counts as an overrun and re-anchors the schedule at "now" (no
burst of catch-up cycles). The clock is the backend's: ``FakeClock`` and simulators advance when
waited on, so ``run_for`` is deterministic there; on hardware it is ``MonotonicClock``.

Controllers satisfy ``machaon.control.Controller`` (``update(state, t) -> JointCommand``); an optional
``on_activate(state, t)`` is called on the first cycle a controller runs (on the loop's first
cycle, after ``start()`` and after ``set_controller``; consecutive ``run_for`` calls continue), so
it can align its target with the current pose. ``set_controller`` may be called from any thread
while the loop runs; the swap happens at the next cycle boundary.

``realtime_priority`` (1-99, Linux ``SCHED_FIFO``) runs the cycling thread at a real-time priority
so that other processes cannot preempt it between cycles; it needs CAP_SYS_NICE (root), and
without it the loop logs a warning and runs at normal priority. Either way the cycling thread's
timer slack is set to 1 ns (Linux ``PR_SET_TIMERSLACK``; a no-op elsewhere), so that its
normal-priority wake-ups are not rounded up by the default 50 us. ``run_for`` restores the calling
thread's policy and timer slack afterwards.

Device faults never raise (they arrive in ``JointState``); if ``backend.read``/``write`` raise
anyway, the loop asks the supervisor for a protective stop, logs, and ends with ``error`` set.

Wall-clock timing: when the run is meant to be real time (the clock says so with a true
``realtime`` attribute, as ``MonotonicClock`` and a paced ``SimClock`` do; ``wall_clock=`` forces
it), every cycle start is also stamped with ``time.monotonic()``. A simulated clock never overruns
(computing takes no simulated time), so only the wall clock shows a loop that falls behind: the
``wall_*`` fields of ``LoopStats`` give the wall-clock periods, jitter and overruns (a cycle that
starts more than one period after its wall-clock slot), and ``realtime_factor`` the loop time
advanced per wall second. With a ``recorder``, cheap running statistics (the last
``stats_every_s`` of cycles) are recorded every ``stats_every_s`` of loop time, so a run that is
killed still leaves its timing in the log.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from machaon.control.controller import Controller
from machaon.control.supervisor import Supervisor, SupervisorEvent
from machaon.robot._loop import LoopCore
from machaon.robot.backend import Backend
from machaon.robot.clock import set_timer_slack_ns
from machaon.types import JointCommand, JointState

_log = logging.getLogger(__name__)

_RING = 1 << 17  # periods kept for statistics (~131 s at 1 kHz)


@dataclass(frozen=True)
class LoopStats:
    """Timing of a loop run, from the backend clock (s).

    ``period_*`` describe the time between consecutive cycle starts; ``error_*`` the absolute
    difference of the period from nominal (jitter); ``compute_*`` the time from a cycle's start
    to its write. Percentiles cover the last ~131 000 cycles (the last ``window_s`` of loop time
    in a running record, where ``window_s`` > 0).

    ``realtime`` is 1.0 when the run was meant to be real time; then the ``wall_*`` fields are the
    same measures on the wall clock (``time.monotonic()``, s; nominal period / ``clock.rate``),
    ``wall_overruns`` counts cycles that started more than one period late on the wall clock,
    ``wall_elapsed_s`` the wall time of the run and ``realtime_factor`` the loop (clock) time per
    wall second (1.0: kept up). Otherwise they are NaN (0 for the counts).
    """

    cycles: int
    overruns: int
    nominal_period: float
    period_mean: float
    period_median: float
    period_p99: float
    period_max: float
    jitter_std: float
    error_median: float
    error_p99: float
    compute_median: float
    compute_p99: float
    realtime: float = 0.0
    wall_overruns: int = 0
    wall_period_median: float = math.nan
    wall_period_p99: float = math.nan
    wall_period_max: float = math.nan
    wall_error_median: float = math.nan
    wall_error_p99: float = math.nan
    wall_jitter_std: float = math.nan
    wall_elapsed_s: float = math.nan
    realtime_factor: float = math.nan
    window_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _last(ring: np.ndarray, count: int, n: int) -> np.ndarray:
    """The last ``n`` values written to a ring buffer after ``count`` writes."""
    if n <= 0:
        return ring[:0]
    end = count % _RING
    if count <= _RING:
        return ring[count - n : count]
    if n <= end:
        return ring[end - n : end]
    return np.concatenate([ring[end - n :], ring[:end]])


@runtime_checkable
class Recorder(Protocol):
    """What ``ControlLoop`` hands every cycle, every supervisor event and its statistics to.

    ``machaon.robot.runlog.RunLogRecorder`` writes them to an MCAP file. A recorder that raises is
    dropped for the rest of the run (the loop logs it and goes on controlling the robot).
    """

    def record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """One cycle: loop time ``t`` (s), the state read and the command written."""
        ...

    def record_events(self, events: Iterable[SupervisorEvent]) -> None:
        """Supervisor transitions since the last call."""
        ...

    def record_stats(self, stats: LoopStats) -> None:
        """The loop's timing statistics at the end of a run, and running statistics of the last few
        seconds while it goes on (``window_s`` > 0)."""
        ...


class ControlLoop(LoopCore):
    """Runs ``controller`` on ``backend`` under ``supervisor`` at ``rate_hz`` (see module docstring).

    ``recorder`` (a ``Recorder``, e.g. ``machaon.robot.runlog.RunLogRecorder``) gets every cycle and every
    supervisor event. Use as a context manager (``with ControlLoop(...) as loop:`` starts the
    thread and stops it on exit) or call ``run_for(seconds)`` synchronously.

    >>> from machaon.control import JointImpedance
    >>> from machaon.robot import FakeBackend
    >>> robot = FakeBackend(2)                       # ideal joints; its clock advances when waited on
    >>> controller = JointImpedance(2, stiffness=100.0, damping_ratio=1.0)
    >>> controller.set_target([0.3, -0.2])
    >>> stats = ControlLoop(robot, controller, rate_hz=1000.0).run_for(2.0)
    >>> stats.cycles, [round(float(q), 3) for q in robot.read().q]
    (2000, [0.3, -0.2])
    """

    def __init__(
        self,
        backend: Backend,
        controller: Controller,
        supervisor: Supervisor | None = None,
        rate_hz: float = 1000.0,
        recorder: Recorder | None = None,
        *,
        realtime_priority: int | None = None,
        wall_clock: bool | None = None,
        stats_every_s: float = 2.0,
    ) -> None:
        if realtime_priority is not None and not (isinstance(realtime_priority, int) and 1 <= realtime_priority <= 99):
            raise ValueError(f"realtime_priority: an int in 1..99 or None, got {realtime_priority!r}")
        self.realtime_priority = realtime_priority
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz: must be a positive finite number, got {rate_hz!r}")
        if not callable(getattr(controller, "update", None)):
            raise ValueError("controller: needs an update(state, t) method")
        self.backend = backend
        self.supervisor = supervisor if supervisor is not None else Supervisor()
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self.recorder = recorder
        self._controller = controller
        self._active: Controller | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.last_state: JointState | None = None
        self.last_command: JointCommand | None = None
        self._periods = np.zeros(_RING)
        self._compute = np.zeros(_RING)
        self._n_periods = 0
        self._n_compute = 0
        # wall-clock timing (module docstring)
        self.wall_clock = bool(getattr(backend.clock, "realtime", False)) if wall_clock is None else bool(wall_clock)
        if not (math.isfinite(stats_every_s) and stats_every_s > 0):
            raise ValueError(f"stats_every_s: must be positive, got {stats_every_s!r}")
        self.stats_every_s = float(stats_every_s)
        self._wall_periods = np.zeros(_RING)
        self._n_wall = 0
        self.wall_overruns = 0
        self._wall_last: float | None = None
        self._wall_next: float | None = None
        self._wall0: float | None = None
        self._clock0: float | None = None
        self._t_stats: float | None = None
        self.cycles = 0
        self.overruns = 0
        self._t_last_start: float | None = None
        self._next: float | None = None
        self._events_recorded = 0
        self.supervisor.bind_clock(backend.clock)
        self.supervisor.bind_period(self.period)

    # -- control ----------------------------------------------------------------------------------

    @property
    def controller(self) -> Controller:
        return self._controller

    def set_controller(self, controller: Controller) -> None:
        """Swap the controller at the next cycle boundary (thread-safe)."""
        if not callable(getattr(controller, "update", None)):
            raise ValueError("controller: needs an update(state, t) method")
        self._controller = controller

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run the loop in its own thread until ``stop()``."""
        with self._lock:
            if self.running:
                raise RuntimeError("control loop already running")
            self._stop.clear()
            self.error = None
            self._active = None  # (re)starting: the controller aligns itself with the robot again
            self._begin()
            self._thread = threading.Thread(target=self._run_thread, name="machaon-control-loop", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread, then command a hold at the current pose (supervisor HOLD) and record stats."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stop.set()
            thread.join(timeout)
            if thread.is_alive():
                _log.error("control loop thread did not stop within %.1f s", timeout)
                return
            self._thread = None
            self._finish(hold=True)

    def __enter__(self) -> ControlLoop:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_for(self, seconds: float) -> LoopStats:
        """Run ``round(seconds * rate_hz)`` cycles in the calling thread and return the statistics.

        The supervisor keeps its state afterwards; nothing is commanded beyond the last cycle.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds: must be finite and >= 0, got {seconds!r}")
        if self.running:
            raise RuntimeError("control loop is running in its thread; stop() it first")
        n = int(round(seconds * self.rate_hz))
        self._begin()
        saved = self._enter_realtime()
        try:
            for _ in range(n):
                if not self._cycle():
                    break
        finally:
            self._leave_realtime(saved)
        self._finish(hold=False)
        if self.error is not None:
            raise RuntimeError(f"control loop ended on a backend error: {self.error!r}") from self.error
        return self.stats()

    # -- statistics -----------------------------------------------------------------------------------

    def stats(self, window: int | None = None, window_s: float = 0.0) -> LoopStats:
        """Statistics of the run so far (of the last ``window`` cycles when given)."""
        n = min(self._n_periods, _RING, window or _RING)
        m = min(self._n_compute, _RING, window or _RING)
        p = _last(self._periods, self._n_periods, n)
        c = _last(self._compute, self._n_compute, m)
        if n == 0:
            p = np.array([self.period])
        if m == 0:
            c = np.zeros(1)
        err = np.abs(p - self.period)
        wall: dict[str, float] = {}
        if self.wall_clock:
            k = min(self._n_wall, _RING, window or _RING)
            nominal = self.period / float(getattr(self.backend.clock, "rate", 1.0) or 1.0)
            wall["realtime"] = 1.0
            wall["wall_overruns"] = self.wall_overruns
            if k:
                w = _last(self._wall_periods, self._n_wall, k)
                we = np.abs(w - nominal)
                wall.update(
                    wall_period_median=float(np.median(w)), wall_period_p99=float(np.percentile(w, 99)),
                    wall_period_max=float(w.max()), wall_error_median=float(np.median(we)),
                    wall_error_p99=float(np.percentile(we, 99)), wall_jitter_std=float(w.std()),
                )
            if self._wall0 is not None and self._wall_last is not None and self._wall_last > self._wall0:
                elapsed = self._wall_last - self._wall0
                wall["wall_elapsed_s"] = elapsed
                wall["realtime_factor"] = (self._t_last_start - self._clock0) / elapsed
        return LoopStats(
            cycles=self.cycles,
            overruns=self.overruns,
            nominal_period=self.period,
            period_mean=float(p.mean()),
            period_median=float(np.median(p)),
            period_p99=float(np.percentile(p, 99)),
            period_max=float(p.max()),
            jitter_std=float(p.std()),
            error_median=float(np.median(err)),
            error_p99=float(np.percentile(err, 99)),
            compute_median=float(np.median(c)),
            compute_p99=float(np.percentile(c, 99)),
            window_s=float(window_s),
            **wall,
        )

    def reset_stats(self) -> None:
        self._n_periods = 0
        self._n_compute = 0
        self.cycles = 0
        self.overruns = 0
        self._n_wall = 0
        self.wall_overruns = 0
        self._wall0 = self._clock0 = None

    # -- internals ------------------------------------------------------------------------------------

    def _begin(self) -> None:
        self.supervisor.restart_timing()
        self._t_last_start = None
        self._next = None
        self._wall_last = None
        self._wall_next = None

    def _run_thread(self) -> None:
        self._enter_realtime()
        while not self._stop.is_set():
            if not self._cycle():
                break

    def _enter_realtime(self) -> tuple[tuple[int, object] | None, int | None]:
        """Minimal timer slack for the calling thread and, if asked, SCHED_FIFO.

        Returns what ``_leave_realtime`` restores: the previous policy (or None) and timer slack.
        """
        slack = set_timer_slack_ns(1)
        if self.realtime_priority is None:
            return None, slack
        try:
            saved = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
            return saved, slack
        except (AttributeError, OSError) as exc:
            _log.warning("real-time priority %d not available (%s); running at normal priority",
                         self.realtime_priority, exc)
            return None, slack

    @staticmethod
    def _leave_realtime(saved: tuple[tuple[int, object] | None, int | None]) -> None:
        policy, slack = saved
        if slack is not None:
            set_timer_slack_ns(max(slack, 1))
        if policy is not None:
            try:
                os.sched_setscheduler(0, policy[0], policy[1])
            except OSError as exc:  # pragma: no cover - restoring a lower priority does not fail
                _log.warning("could not restore the scheduling policy: %s", exc)

    def _finish(self, hold: bool) -> None:
        if hold and self.error is None and self.last_state is not None:
            self.supervisor.hold("control loop stopped")
            try:
                state = self.backend.read()
                cmd = self.supervisor.check(state, None, self.backend.clock.now())
                self.backend.write(cmd)
                self.last_command = cmd
            except Exception as exc:  # the backend is going away; nothing more to do safely
                _log.error("final hold command failed: %r", exc)
        rec = self.recorder
        if rec is not None:
            try:
                rec.record_events(self.supervisor.drain_events())
                rec.record_stats(self.stats())
            except Exception:
                _log.exception("run log recorder failed; recording disabled")
                self.recorder = None

    # ``_cycle`` (one control cycle; False when the loop must end) is compiled: ``LoopCore`` in
    # ``machaon/robot/_loop.pyx``. It calls the methods below on its rare branches.

    def _controller_failed(self, controller: Controller, exc: Exception) -> None:
        """The controller raised this cycle: protective stop (the supervisor then commands the stop)."""
        _log.error("controller %s raised: %r", type(controller).__name__, exc)
        self.supervisor.protective_stop(f"controller {type(controller).__name__} raised {exc!r}",
                                        code="bad_command")

    def _record_cycle(self, t: float, state: JointState, cmd: JointCommand) -> None:
        """Hand the cycle, new supervisor events and (every ``stats_every_s``) running statistics to the
        recorder; a recorder that raises is dropped for the rest of the run."""
        rec, sup = self.recorder, self.supervisor
        try:
            rec.record_cycle(t, state, cmd)
            if len(sup.events) != self._events_recorded:
                self._events_recorded = len(sup.events)
                rec.record_events(sup.drain_events())
            if self._t_stats is None:
                self._t_stats = t
            elif t - self._t_stats >= self.stats_every_s:  # running record (crash-safe timing)
                self._record_running_stats(rec, t)
        except Exception:
            _log.exception("run log recorder failed; recording disabled")
            self.recorder = None

    def _record_running_stats(self, rec: object, t: float) -> None:
        """Statistics of the last ``stats_every_s`` to a recorder that takes them. A recorder without
        ``record_stats``, or one that fails on it, keeps recording cycles and events (running
        statistics are then off for this run)."""
        n = max(1, int(round((t - self._t_stats) * self.rate_hz)))
        record = getattr(rec, "record_stats", None)
        try:
            if callable(record):
                # one argument, as at the end of a run: any recorder with record_stats(stats) works
                record(self.stats(window=n, window_s=t - self._t_stats))
                self._t_stats = t
                return
        except Exception:
            _log.exception("recorder %s failed on running statistics; they are off for this run",
                           type(rec).__name__)
        self._t_stats = math.inf

    def _wall_tick(self, wall: float, t: float) -> None:
        """Stamp a cycle start on the wall clock: period, lateness against the wall schedule."""
        nominal = self.period / float(getattr(self.backend.clock, "rate", 1.0) or 1.0)
        if self._wall0 is None:
            self._wall0, self._clock0 = wall, t
        if self._wall_last is not None:
            self._wall_periods[self._n_wall % _RING] = wall - self._wall_last
            self._n_wall += 1
        self._wall_last = wall
        nxt = self._wall_next
        if nxt is not None and wall > nxt + nominal:  # more than a period behind its wall-clock slot
            self.wall_overruns += 1
            nxt = wall
        self._wall_next = (wall if nxt is None else nxt) + nominal

    def _backend_failed(self, what: str, exc: BaseException) -> bool:
        _log.error("backend %s raised %r; stopping the control loop", what, exc)
        self.error = exc
        self.supervisor.protective_stop(f"backend {what} raised {exc!r}", code="device")
        return False
