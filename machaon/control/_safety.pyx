# cython: language_level=3
"""Per-cycle safety checks for ``machaon.control.supervisor``: the compiled ``Supervisor.check`` and its kernels.

``SupervisorCore`` is the compiled base of ``Supervisor``: it holds the per-cycle state and runs
``check`` (see its docstring); the Python class keeps everything that is not per cycle.

``StateCheck.check(q, dq, tau)`` tests, in order: NaN/Inf in q, dq or tau; joint position below/above
its limits; joint speed; measured torque; and, with a chain kernel, the tool origin against the
workspace box and the tool's linear speed |J_v dq|. It returns the first violation's code and
leaves the joint index and the offending value in ``joint`` / ``value``. Limits are per joint;
+inf (or -inf for lower limits) disables a bound.
"""

cimport numpy as cnp
from cpython.object cimport PyObject
from libc.math cimport INFINITY, fabs, sqrt
from libc.string cimport memcpy

from machaon._records cimport attr_or_none as _item
from machaon.kinematics._chain cimport MAX_DOF, ChainKernel, fk_jac_c

import numpy as np

from machaon.types import CommandMode, JointCommand, JointState

cnp.import_array()

cdef enum:
    OK = 0
    NAN = 1
    BELOW_LIMIT = 2
    ABOVE_LIMIT = 3
    JOINT_SPEED = 4
    TORQUE = 5
    WORKSPACE = 6
    TOOL_SPEED = 7

# The codes, for Python callers.
CODES = {"ok": OK, "nan": NAN, "below_limit": BELOW_LIMIT, "above_limit": ABOVE_LIMIT,
         "joint_speed": JOINT_SPEED, "torque": TORQUE, "workspace": WORKSPACE, "tool_speed": TOOL_SPEED}


cdef inline bint _finite(double x) noexcept nogil:
    return x - x == 0.0


def all_finite(const double[::1] a):
    """True if every element of a is finite."""
    cdef Py_ssize_t i
    for i in range(a.shape[0]):
        if not _finite(a[i]):
            return False
    return True


def within(const double[::1] x, const double[::1] lo, const double[::1] hi):
    """True if lo[i] <= x[i] <= hi[i] for every i."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        if not (lo[i] <= x[i] <= hi[i]):
            return False
    return True


cdef class StateCheck:
    """Limits of one robot, checked in one call per cycle (see module docstring)."""

    cdef readonly int n
    cdef double qmin[MAX_DOF]
    cdef double qmax[MAX_DOF]
    cdef double dqmax[MAX_DOF]
    cdef double taumax[MAX_DOF]
    cdef ChainKernel kernel
    cdef bint has_kernel
    cdef double wsmin[3]
    cdef double wsmax[3]
    cdef double vmax
    cdef double T[16]
    cdef double J[6 * MAX_DOF]
    cdef public int joint
    cdef public double value
    cdef public double speed

    def __cinit__(self, const double[::1] qmin, const double[::1] qmax, const double[::1] dqmax,
                  const double[::1] taumax, ChainKernel kernel=None, const double[::1] wsmin=None,
                  const double[::1] wsmax=None, double vmax=INFINITY):
        cdef int i
        self.n = qmin.shape[0]
        if self.n > MAX_DOF:
            raise ValueError("too many joints")
        for i in range(self.n):
            self.qmin[i] = qmin[i]
            self.qmax[i] = qmax[i]
            self.dqmax[i] = dqmax[i]
            self.taumax[i] = taumax[i]
        self.kernel = kernel
        self.has_kernel = kernel is not None
        if self.has_kernel and kernel.c.n != self.n:
            raise ValueError("chain and limits disagree on the number of joints")
        for i in range(3):
            self.wsmin[i] = wsmin[i] if wsmin is not None else -INFINITY
            self.wsmax[i] = wsmax[i] if wsmax is not None else INFINITY
        self.vmax = vmax
        self.joint = -1
        self.value = 0.0
        self.speed = 0.0

    def tool_position(self):
        """Tool origin (base frame, m) from the last check that evaluated the chain."""
        return (self.T[3], self.T[7], self.T[11])

    def check(self, const double[::1] q, const double[::1] dq, const double[::1] tau):
        """Code of the first violated limit (0: none); sets ``joint`` and ``value``."""
        cdef int code
        with nogil:
            code = self._check(&q[0], &dq[0], &tau[0])
        return code

    cdef int _check(self, const double* q, const double* dq, const double* tau) noexcept nogil:
        cdef int i, j, n = self.n
        cdef double v, s
        for i in range(n):
            if not (_finite(q[i]) and _finite(dq[i]) and _finite(tau[i])):
                self.joint = i
                return NAN
        for i in range(n):
            if q[i] < self.qmin[i]:
                self.joint, self.value = i, q[i]
                return BELOW_LIMIT
            if q[i] > self.qmax[i]:
                self.joint, self.value = i, q[i]
                return ABOVE_LIMIT
        for i in range(n):
            if fabs(dq[i]) > self.dqmax[i]:
                self.joint, self.value = i, dq[i]
                return JOINT_SPEED
        for i in range(n):
            if fabs(tau[i]) > self.taumax[i]:
                self.joint, self.value = i, tau[i]
                return TORQUE
        if not self.has_kernel:
            return OK
        fk_jac_c(&self.kernel.c, q, self.T, self.J)
        for i in range(3):
            v = self.T[4 * i + 3]
            if v < self.wsmin[i] or v > self.wsmax[i]:
                self.joint, self.value = i, v
                return WORKSPACE
        s = 0.0
        for i in range(3):
            v = 0.0
            for j in range(n):
                v = v + self.J[i * n + j] * dq[j]
            s = s + v * v
        self.speed = sqrt(s)
        if self.speed > self.vmax:
            self.value = self.speed
            return TOOL_SPEED
        return OK


# ----------------------------------------------------------------------------------------------
# the supervisor's per-cycle check

cdef object _JointState = JointState
cdef object _JointCommand = JointCommand
cdef object _TORQUE = CommandMode.TORQUE
cdef object _POSITION = CommandMode.POSITION
cdef object _VELOCITY = CommandMode.VELOCITY


cdef inline bint _f64_vec(object a, Py_ssize_t n):
    """a is a C-contiguous float64 (n,) ndarray."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_DOUBLE
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1 and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == n
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef inline const double* _ptr(object a):
    return <const double*>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline bint _finite_n(const double* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not _finite(p[i]):
            return False
    return True


cdef inline bint _within_n(const double* x, const double* lo, const double* hi, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not (lo[i] <= x[i] <= hi[i]):
            return False
    return True




cdef class SupervisorCore:
    """The compiled base of ``machaon.control.supervisor.Supervisor``: its per-cycle state and ``check``.

    ``check`` runs the common cycle entirely in compiled code: RUN, no watchdog fault, a
    well-formed finite state within every limit, a fresh target, and a well-formed finite command
    within its limits; it then updates the state exactly as the full check would and returns the
    command itself. Anything else (a fault, a transition, a safe command, a command to saturate,
    inputs of another type or layout) is handed, before anything was changed, to the Python
    ``_check_python``, which is the full check. Both take the supervisor's lock.
    """

    cdef public object config
    cdef public object _lock
    cdef public object _state
    cdef public object _run_state
    cdef public object _t_prev
    cdef public object _period_max
    cdef public object _t_target
    cdef public object _mode
    cdef public object _q_safe
    cdef public object _last_q
    cdef public object _active_fault
    cdef public double _t_last
    cdef public long cycles
    cdef public long saturated_cycles
    cdef public int _bad_reads
    # limits bound by _bind_limits (the Python side builds them once per joint count)
    cdef StateCheck _sc
    cdef Py_ssize_t _sc_n
    cdef object _lim_arrays       # (taumin, taumax, qmin, qmax, dqmin, dqmax) kept alive
    cdef const double* _taumin
    cdef const double* _taumax
    cdef const double* _qmin
    cdef const double* _qmax
    cdef const double* _dqmin
    cdef const double* _dqmax
    cdef cnp.ndarray _q_safe_buf  # the copy of the last safe q, reused every fast cycle

    def __cinit__(self, *args, **kwargs):
        self._sc = None
        self._sc_n = -1
        self._q_safe_buf = None
        self.cycles = 0
        self.saturated_cycles = 0
        self._bad_reads = 0
        self._t_last = 0.0

    def _bind_limits(self, Py_ssize_t n, StateCheck check, taumin, taumax, qmin, qmax, dqmin, dqmax):
        """The limits the fast path uses for n joints (C-contiguous float64 (n,) arrays, +-inf where off)."""
        arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (taumin, taumax, qmin, qmax, dqmin, dqmax))
        for a in arrays:
            if a.shape != (n,):
                raise ValueError("limits: expected one value per joint")
        self._lim_arrays = arrays
        self._taumin, self._taumax = _ptr(arrays[0]), _ptr(arrays[1])
        self._qmin, self._qmax = _ptr(arrays[2]), _ptr(arrays[3])
        self._dqmin, self._dqmax = _ptr(arrays[4]), _ptr(arrays[5])
        self._sc = check
        self._sc_n = n

    def check(self, state, cmd, t):
        """The command to send this cycle: ``cmd`` (limited) in RUN, a safe command otherwise.

        ``cmd=None`` means the controller failed this cycle (protective stop). Never raises for
        bad data in ``state`` or ``cmd``: that is what it is there to catch.
        """
        lock = self._lock
        lock.acquire()
        try:
            if self._fast(state, cmd, t):
                return cmd
            return self._check_python(state, cmd, t)
        finally:
            lock.release()

    cdef bint _fast(self, object state, object cmd, object t) except -1:
        """Run the common cycle and return True, or return False having changed nothing."""
        cdef double tt, period
        cdef Py_ssize_t n
        cdef object q, dq, tau, faults, mode, required, v
        cdef const double* pr
        cdef const double* lo
        cdef const double* hi
        cdef cnp.ndarray buf
        if self._state is not self._run_state or type(t) is not float:
            return False
        tt = <double>t
        if self._t_prev is not None and self._period_max is not None:
            period = tt - <double>self._t_prev
            if period > <double>self._period_max:
                return False
        if type(state) is not _JointState or type(cmd) is not _JointCommand:
            return False
        q = _item(state, "q")
        n = self._sc_n
        if n <= 0 or not _f64_vec(q, n):
            return False
        dq = _item(state, "dq")
        tau = _item(state, "tau")
        faults = _item(state, "faults")
        if not (_f64_vec(dq, n) and _f64_vec(tau, n)):
            return False
        if _item(state, "ok") is not True or not (type(faults) is tuple and len(<tuple>faults) == 0):
            return False
        if not (_finite_n(_ptr(q), n) and _finite_n(_ptr(dq), n) and _finite_n(_ptr(tau), n)):
            return False
        if self._sc._check(_ptr(q), _ptr(dq), _ptr(tau)) != OK:
            return False
        timeout = self.config.target_timeout_s
        if timeout is not None and self._t_target is not None:
            if tt - <double>self._t_target > <double>timeout:
                return False
        # The command: every given field a finite float64 (n,) array, the mode's one present and
        # within its limits (otherwise the full check saturates it or stops).
        mode = _item(cmd, "mode")
        if mode is _TORQUE:
            required, lo, hi = _item(cmd, "tau"), self._taumin, self._taumax
        elif mode is _POSITION:
            required, lo, hi = _item(cmd, "q"), self._qmin, self._qmax
        elif mode is _VELOCITY:
            required, lo, hi = _item(cmd, "dq"), self._dqmin, self._dqmax
        else:
            return False
        if required is None:
            return False
        for key in ("tau", "q", "dq"):
            v = _item(cmd, key)
            if v is not None and not (_f64_vec(v, n) and _finite_n(_ptr(v), n)):
                return False
        if not _within_n(_ptr(required), lo, hi, n):
            return False
        # Passed: the state changes of a clean RUN cycle, in the full check's order.
        self.cycles += 1
        self._t_last = tt
        self._t_prev = t
        self._last_q = q
        self._bad_reads = 0
        self._active_fault = None
        if self.config.hold_mode is None:
            self._mode = mode
        buf = self._q_safe_buf
        if buf is None or cnp.PyArray_DIM(buf, 0) != n:
            buf = self._q_safe_buf = np.empty(n)
        memcpy(cnp.PyArray_DATA(buf), _ptr(q), n * sizeof(double))   # the backend may reuse its arrays
        self._q_safe = buf
        return True

