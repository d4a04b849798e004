# cython: language_level=3
"""Per-cycle safety checks for ``machaon.control.supervisor`` (no input checks: the supervisor is the face).

``StateCheck.check(q, dq, tau)`` tests, in order: NaN/Inf in q, dq or tau; joint position below/above
its limits; joint speed; measured torque; and, with a chain kernel, the tool origin against the
workspace box and the tool's linear speed |J_v dq|. It returns the first violation's code and
leaves the joint index and the offending value in ``joint`` / ``value``. Limits are per joint;
+inf (or -inf for lower limits) disables a bound.
"""

from libc.math cimport INFINITY, fabs, sqrt

from machaon.kinematics._chain cimport MAX_DOF, ChainKernel, fk_jac_c

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
