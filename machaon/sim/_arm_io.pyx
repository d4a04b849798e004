# cython: language_level=3
"""``ArmSim``'s per-cycle I/O in compiled code: one PyBullet reading -> a ``JointState``; torque commands.

``ArmIO.state`` turns the tuple ``pybullet.getJointStates`` returns (the arm's joints, then the
flange's F/T sensor joint when the sensor is on) into the cycle's ``JointState``: new q, dq and
tau arrays (tau = the commanded torque applied + the motors' own, i.e. friction) and, with the
sensor, the tool wrench in the base frame at the TCP. The sensor frame's orientation comes from
the compiled forward kinematics of the arm at the q just read (no second PyBullet call); the
wrench arithmetic is ``ArmSim``'s documented model (module docstring of ``machaon.sim.arm``).
``ArmIO.torque`` checks a torque command (``ValueError`` naming ``cmd.tau``) and saturates it at
the effort limits into a buffer the caller keeps.
"""

cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE

from machaon._records cimport joint_state_c
from machaon.kinematics._chain cimport MAX_DOF, ChainKernel, as_input, fk_c

import numpy as np

cnp.import_array()


cdef inline double _f(object x) except? -1.0:
    return PyFloat_AS_DOUBLE(x) if type(x) is float else <double>x


cdef int _rotation(object R, double* dst) except -1:
    """A 3x3 rotation (None: identity) into 9 row-major doubles."""
    cdef int i
    a = np.ascontiguousarray(np.eye(3) if R is None else R, dtype=np.float64).reshape(9)
    for i in range(9):
        dst[i] = a[i]
    return 0


cdef class ArmIO:
    """Constants of one ``ArmSim`` for its compiled read/write (see the module docstring).

    ``n`` joints; ``effort`` (n,) N m; ``sensor``: whether the reading ends with the F/T joint;
    ``chain``: the compiled chain base link -> sensor link (its FK gives the sensor orientation);
    ``R_world_base``: the chain base link's fixed orientation in the world (3x3);
    ``R_link_sensor``: the sensor (inertial) frame in the sensor link frame (3x3);
    ``payload_mass`` (kg) and ``com_sensor`` (m, sensor frame) below the sensor; ``gravity``
    (m/s^2, magnitude along -z of the world); ``p_tcp_sensor`` (m, sensor frame);
    ``R_base_world``: world -> arm base rotation (3x3) for the reported wrench.
    """

    cdef readonly int n
    cdef double effort[MAX_DOF]
    cdef bint sensor
    cdef ChainKernel chain
    cdef double R_wb[9]
    cdef double R_ls[9]
    cdef double mass
    cdef double gravity
    cdef double com[3]
    cdef double ptcp[3]
    cdef double R_bw[9]
    cdef bint rotated

    def __cinit__(self, int n, effort, bint sensor, ChainKernel chain=None, R_world_base=None,
                  R_link_sensor=None, double payload_mass=0.0, com_sensor=(0.0, 0.0, 0.0), double gravity=9.81,
                  p_tcp_sensor=(0.0, 0.0, 0.0), R_base_world=None):
        cdef int i
        if not 0 < n <= MAX_DOF:
            raise ValueError(f"n: 1..{MAX_DOF} joints")
        e = np.ascontiguousarray(effort, dtype=np.float64).reshape(n)
        self.n = n
        for i in range(n):
            self.effort[i] = e[i]
        self.sensor = sensor
        if sensor and (chain is None or chain._n() != n):
            raise ValueError("chain: the sensor orientation needs the chain of the n joints")
        self.chain = chain
        _rotation(R_world_base, self.R_wb)
        _rotation(R_link_sensor, self.R_ls)
        _rotation(R_base_world, self.R_bw)
        self.rotated = R_base_world is not None and not np.array_equal(np.asarray(R_base_world), np.eye(3))
        self.mass = payload_mass
        self.gravity = gravity
        c = np.ascontiguousarray(com_sensor, dtype=np.float64).reshape(3)
        p = np.ascontiguousarray(p_tcp_sensor, dtype=np.float64).reshape(3)
        for i in range(3):
            self.com[i] = c[i]
            self.ptcp[i] = p[i]

    def state(self, tuple sts, tau_applied, t, tuple faults):
        """The ``JointState`` of one ``getJointStates`` reading at time ``t`` with these ``faults``."""
        cdef int n = self.n, i
        cdef cnp.npy_intp dims[1]
        cdef tuple js
        cdef cnp.ndarray q, dq, tau, wrench = None
        cdef cnp.ndarray ta = as_input("tau_applied", tau_applied, 1, n, -1, -1)
        cdef const double* pa = <const double*>cnp.PyArray_DATA(ta)
        cdef double* pq
        cdef double* pv
        cdef double* pt
        if PyTuple_GET_SIZE(sts) != n + (1 if self.sensor else 0):
            raise ValueError("sts: one joint state per joint (and the sensor joint)")
        dims[0] = n
        q = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        dq = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        tau = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        pq = <double*>cnp.PyArray_DATA(q)
        pv = <double*>cnp.PyArray_DATA(dq)
        pt = <double*>cnp.PyArray_DATA(tau)
        for i in range(n):
            js = <tuple>PyTuple_GET_ITEM(sts, i)   # (position, velocity, reaction wrench, motor torque)
            pq[i] = _f(<object>PyTuple_GET_ITEM(js, 0))
            pv[i] = _f(<object>PyTuple_GET_ITEM(js, 1))
            pt[i] = pa[i] + _f(<object>PyTuple_GET_ITEM(js, 3))
        if self.sensor:
            js = <tuple>PyTuple_GET_ITEM(sts, n)
            wrench = self._wrench(<tuple>PyTuple_GET_ITEM(js, 2), pq)
        return joint_state_c(t, q, dq, tau, wrench, faults, True)

    cdef cnp.ndarray _wrench(self, tuple raw, const double* q):
        # PyBullet reports the wrench the parent exerts on the sensor's child through the joint, in
        # the child's inertial frame, moment about its origin. Balance of the subtree below the
        # sensor at rest: w_joint + w_weight + w_env = 0; the result is w_env at the TCP.
        cdef double T[16]
        cdef double A[9]
        cdef double R[9]
        cdef double f[3]
        cdef double m[3]
        cdef double c[3]
        cdef double r[3]
        cdef double w
        cdef int i, j, k
        cdef cnp.npy_intp dims[1]
        fk_c(&self.chain.c, q, T)
        for i in range(3):                     # A = R_world_base @ R_base_link
            for j in range(3):
                A[3 * i + j] = (self.R_wb[3 * i] * T[j] + self.R_wb[3 * i + 1] * T[4 + j]
                                + self.R_wb[3 * i + 2] * T[8 + j])
        for i in range(3):                     # R = A @ R_link_sensor: the sensor frame in the world
            for j in range(3):
                R[3 * i + j] = A[3 * i] * self.R_ls[j] + A[3 * i + 1] * self.R_ls[3 + j] + A[3 * i + 2] * self.R_ls[6 + j]
        cdef double fx = _f(<object>PyTuple_GET_ITEM(raw, 0)), fy = _f(<object>PyTuple_GET_ITEM(raw, 1))
        cdef double fz = _f(<object>PyTuple_GET_ITEM(raw, 2)), mx = _f(<object>PyTuple_GET_ITEM(raw, 3))
        cdef double my = _f(<object>PyTuple_GET_ITEM(raw, 4)), mz = _f(<object>PyTuple_GET_ITEM(raw, 5))
        w = -self.mass * self.gravity          # weight along world z (negative)
        for i in range(3):
            f[i] = -(R[3 * i] * fx + R[3 * i + 1] * fy + R[3 * i + 2] * fz)
            m[i] = -(R[3 * i] * mx + R[3 * i + 1] * my + R[3 * i + 2] * mz)
            c[i] = R[3 * i] * self.com[0] + R[3 * i + 1] * self.com[1] + R[3 * i + 2] * self.com[2]
            r[i] = R[3 * i] * self.ptcp[0] + R[3 * i + 1] * self.ptcp[1] + R[3 * i + 2] * self.ptcp[2]
        f[2] -= w
        m[0] -= c[1] * w                       # minus c x (0, 0, w)
        m[1] += c[0] * w
        m[0] -= r[1] * f[2] - r[2] * f[1]      # refer the moment to the TCP: m -= r x f
        m[1] -= r[2] * f[0] - r[0] * f[2]
        m[2] -= r[0] * f[1] - r[1] * f[0]
        dims[0] = 6
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef double* o = <double*>cnp.PyArray_DATA(out)
        if self.rotated:
            for i in range(3):
                o[i] = self.R_bw[3 * i] * f[0] + self.R_bw[3 * i + 1] * f[1] + self.R_bw[3 * i + 2] * f[2]
                o[3 + i] = self.R_bw[3 * i] * m[0] + self.R_bw[3 * i + 1] * m[1] + self.R_bw[3 * i + 2] * m[2]
        else:
            for k in range(3):
                o[k] = f[k]
                o[3 + k] = m[k]
        return out

    def torque(self, tau, out):
        """``tau`` (n,) checked (``ValueError`` naming ``cmd.tau``), saturated at +-effort into ``out``; returns out."""
        cdef int n = self.n, i
        cdef cnp.ndarray a = as_input("cmd.tau", tau, 1, n, -1, -1)
        cdef cnp.ndarray o = <cnp.ndarray?>out
        if cnp.PyArray_TYPE(o) != cnp.NPY_DOUBLE or cnp.PyArray_SIZE(o) != n or not cnp.PyArray_IS_C_CONTIGUOUS(o):
            raise ValueError("out: a C-contiguous float64 buffer of n values")
        cdef const double* p = <const double*>cnp.PyArray_DATA(a)
        cdef double* d = <double*>cnp.PyArray_DATA(o)
        cdef double v
        for i in range(n):
            v = p[i]
            if v > self.effort[i]:
                v = self.effort[i]
            elif v < -self.effort[i]:
                v = -self.effort[i]
            d[i] = v
        return o
