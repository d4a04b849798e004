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

``ArmCore`` is the compiled base of ``ArmSim`` (its per-cycle state and ``read``, ``write``,
``step``) and ``SimClockCore`` that of ``SimClock`` (``now``, ``wait_until``): the loop's calls run
here without a Python frame. PyBullet is called with positional arguments: its keyword parsing
builds a string per keyword per call (about 6 us a cycle in all).
"""

cimport numpy as cnp
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport ceil, isfinite
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from machaon._records cimport attr_or_none, joint_state_c
from machaon.kinematics._chain cimport MAX_DOF, ChainKernel, as_input, fk_c, new_f64

import time

import numpy as np
import pybullet as p

from machaon.types import CommandMode, JointCommand

cnp.import_array()

cdef object _getJointStates = p.getJointStates
cdef object _setJointMotorControlArray = p.setJointMotorControlArray
cdef object _stepSimulation = p.stepSimulation
cdef object _TORQUE_CONTROL = p.TORQUE_CONTROL
cdef object _TORQUE = CommandMode.TORQUE
cdef object _JointCommand = JointCommand
cdef object _sleep = time.sleep


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
        return self._state(sts, tau_applied, t, faults)

    cdef object _state(self, tuple sts, object tau_applied, object t, tuple faults):
        cdef int n = self.n, i
        cdef tuple js
        cdef cnp.ndarray q, dq, tau, wrench = None
        cdef cnp.ndarray ta = as_input("tau_applied", tau_applied, 1, n, -1, -1)
        cdef const double* pa = <const double*>cnp.PyArray_DATA(ta)
        cdef double* pq
        cdef double* pv
        cdef double* pt
        if PyTuple_GET_SIZE(sts) != n + (1 if self.sensor else 0):
            raise ValueError("sts: one joint state per joint (and the sensor joint)")
        q = new_f64(1, n, 0, 0)
        dq = new_f64(1, n, 0, 0)
        tau = new_f64(1, n, 0, 0)
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
        cdef cnp.ndarray out = new_f64(1, 6, 0, 0)
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
        return self._torque(tau, out)

    cdef object _torque(self, object tau, object out):
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


# ----------------------------------------------------------------------------------------------
# ArmSim's and SimClock's per-cycle calls

cdef inline double _monotonic() noexcept nogil:
    """``time.monotonic()`` (the same clock: CLOCK_MONOTONIC), without the Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef class ArmCore:
    """The compiled base of ``machaon.sim.ArmSim``: its per-cycle state and ``read``, ``write``, ``step``.

    ``ArmSim`` sets these fields up (physics client, body, joint indices, the ``ArmIO``, the held
    torque) and keeps every other method; see its docstrings for the frames, units and the model.
    """

    cdef public double _t              # simulated time, s
    cdef public long long _steps
    cdef public double dt
    cdef public bint _closed
    cdef public bint auto_sync
    cdef public int body
    cdef public int _client
    cdef public int _n
    cdef public object _tau_applied    # the torque applied every step (N m): a float64 array
    cdef public object _tau_buf
    cdef public object _motor_mode
    cdef public object _faults         # DeviceFaults injected since the last read
    cdef public object _read_idx
    cdef public object _jidx
    cdef public object _step_hooks
    cdef public object _post_step_hooks
    cdef public object _ext_forces     # link name -> (link index, force N in world): pushed every step
    cdef public bint _has_armature     # the drives' armature is simulated in torque mode (ArmSim.add_armature)
    cdef public ArmIO _io
    cdef list _zeros                   # n zeros: the sequences TORQUE_CONTROL parses but ignores

    def __cinit__(self, *args, **kwargs):
        self._client = -1
        self.body = -1

    def read(self):
        """The joints now (q rad, dq rad/s, applied tau N m) and the tool wrench (see ``ArmSim``).

        One PyBullet call (``getJointStates``, the F/T joint included when the sensor is on); the
        rest is compiled. A closed simulation raises ``SimError``.
        """
        if self._closed:
            self._check_open()
        sts = _getJointStates(self.body, self._read_idx, self._client)
        faults = ()
        if self._faults:
            faults = tuple(self._faults)
            self._faults.clear()
        return self._io._state(sts, self._tau_applied, self._t, faults)

    def write(self, cmd):
        """Hold ``cmd`` until the next write. ``ValueError`` for a wrong length or NaN/Inf.

        A torque command while the motors are already in torque mode makes no PyBullet call: the
        saturated torque is kept for the next ``step`` (compiled here); every other command takes
        ``ArmSim._write_python``.
        """
        if self._closed:
            self._check_open()
        if (type(cmd) is _JointCommand and attr_or_none(cmd, "mode") is _TORQUE
                and self._motor_mode is _TORQUE and self._tau_buf is not None):
            # Checked (ValueError naming cmd.tau) and saturated at the effort limits, as drives do.
            self._tau_applied = self._io._torque(attr_or_none(cmd, "tau"), self._tau_buf)
            return
        self._write_python(cmd)

    def step(self, n=1):
        """Advance the physics by ``n`` steps of ``dt``, holding the current command."""
        if self._closed:
            self._check_open()
        cdef long long k, steps = int(n)
        cdef object body = self.body, idx = self._jidx, cid = self._client
        cdef list pre = self._step_hooks if self._step_hooks else None
        cdef list post = self._post_step_hooks if self._post_step_hooks else None
        cdef object tau = self._torque_list()
        cdef object zeros = self._zero_list(len(tau))
        cdef bint use_tau = False
        # With armature (torque mode), each step applies the torque of the armature solve instead.
        cdef bint armature = self._has_armature and self._motor_mode is _TORQUE
        cdef object ext = self._ext_forces
        cdef Py_ssize_t i
        for i in range(len(tau)):      # as any(tau): a non-zero (or NaN) torque is applied
            if tau[i]:
                use_tau = True
                break
        for k in range(steps):
            if ext:
                self._apply_external_forces()
            if armature:
                _setJointMotorControlArray(body, idx, _TORQUE_CONTROL, zeros, zeros,
                                           self._armature_torque(self._tau_applied), zeros, zeros, cid)
            elif use_tau:  # PyBullet clears applied joint torques after every step
                _setJointMotorControlArray(body, idx, _TORQUE_CONTROL, zeros, zeros, tau, zeros, zeros, cid)
            if pre is not None:
                for hook in pre:
                    hook()
            _stepSimulation(cid)
            if post is not None:
                for hook in post:
                    hook()
            self._steps += 1
            self._t = self._steps * self.dt

    cdef object _torque_list(self):
        """``self._tau_applied.tolist()``: a list of Python floats (built directly from a float64 array)."""
        cdef object a = self._tau_applied
        cdef Py_ssize_t i, m
        cdef const double* d
        cdef list out
        if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_DOUBLE
                and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)):
            return a.tolist()
        m = cnp.PyArray_DIM(<cnp.ndarray>a, 0)
        d = <const double*>cnp.PyArray_DATA(<cnp.ndarray>a)
        out = PyList_New(m)
        for i in range(m):
            v = PyFloat_FromDouble(d[i])
            Py_INCREF(v)
            PyList_SET_ITEM(out, i, v)
        return out

    cdef list _zero_list(self, Py_ssize_t m):
        if self._zeros is None or len(self._zeros) != m:
            self._zeros = [0.0] * m
        return self._zeros


cdef class SimClockCore:
    """The compiled base of ``machaon.sim.SimClock``: ``now`` and ``wait_until`` (see its docstring)."""

    cdef public object _sim
    cdef public bint realtime
    cdef public double rate
    cdef public object _wall0
    cdef public double _sim0

    def __cinit__(self, *args, **kwargs):
        self.rate = 1.0

    def now(self):
        """Simulated time (s)."""
        cdef object sim = self._sim
        if isinstance(sim, ArmCore):
            return (<ArmCore>sim)._t
        return sim._t

    def wait_until(self, t):
        """Step the physics until ``now() >= t`` (to 1 ns); with pacing, sleep so that simulated time
        does not run ahead of the wall clock (times ``rate``). ``ValueError`` for a non-finite ``t``."""
        cdef double tt = t
        cdef double ahead, wall, now, dt
        cdef long long n
        cdef bint auto_sync
        if not isfinite(tt):
            raise ValueError(f"t: must be finite, got {t!r}")
        sim = self._sim
        if isinstance(sim, ArmCore):
            now, dt = (<ArmCore>sim)._t, (<ArmCore>sim).dt
        else:
            now, dt = sim._t, sim.dt
        n = <long long>ceil((tt - now) / dt - 1e-6)
        if n > 0:
            sim.step(n)
        auto_sync = (<ArmCore>sim).auto_sync if isinstance(sim, ArmCore) else sim.auto_sync
        if auto_sync and _monotonic() - <double>sim._last_sync >= <double>sim.viewer_sync_period:
            sim.sync_viewer()
        if self.realtime:
            wall = _monotonic()
            if self._wall0 is None:
                self._wall0, self._sim0 = wall, sim.t
                return
            ahead = (<double>sim.t - self._sim0) / self.rate - (wall - <double>self._wall0)
            if ahead > 0:
                _sleep(ahead)
            elif ahead < -0.25:  # fell far behind (slow machine, paused window): do not try to catch up
                self._wall0, self._sim0 = wall, sim.t
