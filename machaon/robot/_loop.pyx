# cython: language_level=3
"""The compiled base of ``machaon.robot.loop.ControlLoop``: its per-cycle state and ``_cycle``.

``LoopCore._cycle`` is the loop's cycle (read, controller, supervisor, write, timing rings, wait)
as the module docstring of ``machaon.robot.loop`` describes it, without a Python frame and with
the timing rings written straight into their float64 buffers. The rare branches stay in Python,
on ``ControlLoop``: the wall-clock stamp (``_wall_tick``), a controller or backend that raised
(``_controller_failed``, ``_backend_failed``) and the recorder (``_record_cycle``).
"""

cimport numpy as cnp

import time

cnp.import_array()

cdef object _monotonic = time.monotonic


cdef inline void _put(object ring, long long k, double v) except *:
    """``ring[k % len(ring)] = v``: directly into a C-contiguous float64 ring, else by indexing."""
    cdef Py_ssize_t m
    if (cnp.PyArray_Check(ring) and cnp.PyArray_TYPE(<cnp.ndarray>ring) == cnp.NPY_DOUBLE
            and cnp.PyArray_NDIM(<cnp.ndarray>ring) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>ring)):
        m = cnp.PyArray_DIM(<cnp.ndarray>ring, 0)
        (<double*>cnp.PyArray_DATA(<cnp.ndarray>ring))[k % m] = v
    else:
        ring[k % len(ring)] = v


cdef class LoopCore:
    """Per-cycle state of ``ControlLoop`` (set up by its ``__init__``) and the compiled ``_cycle``."""

    cdef public object backend
    cdef public object supervisor
    cdef public object recorder
    cdef public object _controller
    cdef public object _active
    cdef public object last_state
    cdef public object last_command
    cdef public object _periods        # ring of cycle-start periods (s, loop clock)
    cdef public object _compute        # ring of compute times (s, cycle start to write)
    cdef public object _t_last_start   # None or the last cycle's start time (s)
    cdef public object _next           # None or the next cycle's start time (s)
    cdef public double period
    cdef public bint wall_clock
    cdef public long long _n_periods
    cdef public long long _n_compute
    cdef public long long cycles
    cdef public long long overruns

    def __cinit__(self, *args, **kwargs):
        self.period = 1e-3

    def _cycle(self):
        """One control cycle; False when the loop must end (backend error)."""
        cdef object backend = self.backend
        cdef object clock = backend.clock
        cdef object t = clock.now()
        cdef double td = t
        cdef double nxt
        cdef object sup, state, controller, cmd, hook, now
        if self.wall_clock:
            self._wall_tick(_monotonic(), t)
        if self._t_last_start is not None:
            _put(self._periods, self._n_periods, td - <double>self._t_last_start)
            self._n_periods += 1
        self._t_last_start = t
        if self._next is None:
            self._next = t
        sup = self.supervisor
        try:
            state = backend.read()
        except Exception as exc:
            return self._backend_failed("read", exc)
        controller = self._controller
        cmd = None
        try:
            if controller is not self._active:
                hook = getattr(controller, "on_activate", None)
                if hook is not None:
                    hook(state, t)
                self._active = controller
            cmd = controller.update(state, t)
        except Exception as exc:
            self._controller_failed(controller, exc)
        cmd = sup.check(state, cmd, t)
        try:
            backend.write(cmd)
        except Exception as exc:
            return self._backend_failed("write", exc)
        _put(self._compute, self._n_compute, <double>clock.now() - td)
        self._n_compute += 1
        self.cycles += 1
        self.last_state = state
        self.last_command = cmd
        if self.recorder is not None:
            self._record_cycle(t, state, cmd)
        nxt = <double>self._next + self.period
        now = clock.now()
        if <double>now > nxt:
            self.overruns += 1
            nxt = now
        self._next = nxt
        clock.wait_until(nxt)
        return True
