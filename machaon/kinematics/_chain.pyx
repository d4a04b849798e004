# cython: language_level=3
"""Compiled serial-chain kernels: FK, Jacobian, their batch and fused forms, LM inverse kinematics,
and the checked faces of the rigid-body dynamics (``_dynamics.pyx``).

``ChainKernel`` is the compiled base of ``machaon.kinematics.chain.Chain``: its methods are the
documented calls users make (``chain.fk(q)``, ``chain.rnea(q, dq, ddq)``, ...). Each checks every
input (shape, dtype, NaN/Inf, naming the argument in the ``ValueError``) once, allocates its
result through the NumPy C API unless an ``out=`` buffer is given, then runs the loops on raw
pointers. Batch and IK calls release the GIL; the single-pose calls (~0.1 us of arithmetic) keep
it, since releasing and re-taking it would cost more than the work.
"""

cimport numpy as cnp
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from libc.math cimport atan2, cos, fabs, isfinite, sin, sqrt
from libc.string cimport memcpy
from libc.stdint cimport uint64_t

from machaon.kinematics._dynamics cimport INERTIA_SIZE, MAX_BODIES, crba_c, rnea_c

import numpy as np

cnp.import_array()

if <int>MAX_BODIES != <int>MAX_DOF:  # the dynamics kernels size their stack buffers for MAX_DOF bodies
    raise ImportError("machaon.kinematics: _dynamics.MAX_BODIES != _chain.MAX_DOF")

cdef double PI = 3.141592653589793
cdef double G_DEFAULT = 9.81


# ----------------------------------------------------------------------------------------------
# result allocation: straight to the NumPy C API with the float64 dtype looked up once

cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyArray_Type
    object _new_from_descr "PyArray_NewFromDescr" (PyTypeObject* subtype, cnp.PyArray_Descr* descr, int nd,
                                                   cnp.npy_intp* dims, cnp.npy_intp* strides, void* data,
                                                   int flags, PyObject* obj)

cdef cnp.dtype _F64 = cnp.PyArray_DescrFromType(cnp.NPY_DOUBLE)


cdef cnp.ndarray new_f64(int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2):
    """A new, uninitialised C-contiguous float64 array of shape (d0[, d1[, d2]]) (what ``np.empty`` gives)."""
    cdef cnp.npy_intp dims[3]
    dims[0] = d0
    dims[1] = d1
    dims[2] = d2
    Py_INCREF(_F64)  # PyArray_NewFromDescr steals a reference to the dtype
    return <cnp.ndarray>_new_from_descr(&PyArray_Type, <cnp.PyArray_Descr*>_F64, ndim, dims, NULL, NULL, 0, NULL)


# ----------------------------------------------------------------------------------------------
# input checks (the only place that checks; the loops below trust their arguments)

cdef inline bint _is_f64_c(object x):
    return (
        cnp.PyArray_Check(x)
        and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE
        and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
    )


cdef cnp.ndarray _converted(str name, object x):
    """x (not a C-contiguous float64 array) as one, if it holds real numbers; else ValueError."""
    if cnp.PyArray_Check(x) and (<cnp.ndarray>x).dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real numbers, got dtype {(<cnp.ndarray>x).dtype}")
    try:
        return np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not a numeric array ({exc})") from None


cdef int _input_shape_error(str name, cnp.ndarray a, int ndim, int d0, int d1, int d2) except -1:
    """Raise the ValueError of ``as_input`` for a wrong shape (kept out of the checked path)."""
    want = (d0, d1, d2)[:ndim]
    shape = "x".join("N" if w < 0 else str(w) for w in want)
    raise ValueError(f"{name}: expected shape {shape}, got {np.shape(a)}")


cdef cnp.ndarray as_input(str name, object x, int ndim, int d0, int d1, int d2):
    """x as a C-contiguous float64 array with the given shape (-1: free), all finite."""
    cdef cnp.ndarray a
    cdef Py_ssize_t i, size
    cdef const double* p
    cdef int want[3]
    cdef bint bad
    if _is_f64_c(x):
        a = <cnp.ndarray>x
    else:
        a = _converted(name, x)
    want[0] = d0
    want[1] = d1
    want[2] = d2
    bad = cnp.PyArray_NDIM(a) != ndim
    if not bad:
        for i in range(ndim):
            if want[i] >= 0 and cnp.PyArray_DIM(a, i) != want[i]:
                bad = True
    if bad:
        _input_shape_error(name, a, ndim, d0, d1, d2)
    size = cnp.PyArray_SIZE(a)
    p = <const double*>cnp.PyArray_DATA(a)
    for i in range(size):
        if not isfinite(p[i]):
            raise ValueError(f"{name}: contains NaN or Inf")
    return a


cdef int _output_shape_error(str name, cnp.ndarray a, int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2) except -1:
    """Raise the ValueError of ``as_output`` for a buffer of the wrong shape (kept out of the checked path)."""
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got {cnp.PyArray_NDIM(a)}")
    raise ValueError(f"{name}: expected shape {(d0, d1, d2)[:ndim]}, got {np.shape(a)}")


cdef cnp.ndarray as_output(str name, object out, int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2):
    """``out`` checked (writable, C-contiguous float64, exact shape), or a new array."""
    cdef cnp.ndarray a
    if out is None:
        return new_f64(ndim, d0, d1, d2)
    if not _is_f64_c(out) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        raise ValueError(f"{name}: must be a writable C-contiguous float64 array")
    a = <cnp.ndarray>out
    if (cnp.PyArray_NDIM(a) != ndim or cnp.PyArray_DIM(a, 0) != d0 or (ndim > 1 and cnp.PyArray_DIM(a, 1) != d1)
            or (ndim > 2 and cnp.PyArray_DIM(a, 2) != d2)):
        _output_shape_error(name, a, ndim, d0, d1, d2)
    return a


cdef cnp.ndarray as_transform(str name, object T):
    """A finite 4x4 homogeneous transform with a proper rotation (to 1e-6) and last row 0 0 0 1."""
    cdef cnp.ndarray a = as_input(name, T, 2, 4, 4, -1)
    cdef const double* t = <const double*>cnp.PyArray_DATA(a)
    cdef int i, j
    cdef double s, det
    if t[12] != 0.0 or t[13] != 0.0 or t[14] != 0.0 or t[15] != 1.0:
        raise ValueError(f"{name}: last row must be [0, 0, 0, 1]")
    for i in range(3):
        for j in range(3):
            s = t[4 * i] * t[4 * j] + t[4 * i + 1] * t[4 * j + 1] + t[4 * i + 2] * t[4 * j + 2]
            if fabs(s - (1.0 if i == j else 0.0)) > 1e-6:
                raise ValueError(f"{name}: rotation part is not a proper rotation matrix (not orthonormal)")
    det = (t[0] * (t[5] * t[10] - t[6] * t[9]) - t[1] * (t[4] * t[10] - t[6] * t[8])
           + t[2] * (t[4] * t[9] - t[5] * t[8]))
    if det < 0.0:
        raise ValueError(f"{name}: rotation part is not a proper rotation matrix (a reflection, det < 0)")
    return a


cdef int as_gain(str name, object x, int n, double* dst) except -1:
    """A scalar (broadcast to n) or an (n,) vector, finite and >= 0, copied into dst."""
    cdef double v
    cdef int i
    cdef cnp.ndarray a
    cdef const double* p
    if isinstance(x, float) or isinstance(x, int):
        v = x
        if not (isfinite(v) and v >= 0.0):
            raise ValueError(f"{name}: must be finite and >= 0, got {x!r}")
        for i in range(n):
            dst[i] = v
        return 0
    a = as_input(name, x, 1, n, -1, -1) if np.ndim(x) == 1 else as_input(name, x, 0, -1, -1, -1)
    p = <const double*>cnp.PyArray_DATA(a)
    for i in range(n):
        v = p[i] if cnp.PyArray_NDIM(a) == 1 else p[0]
        if v < 0.0:
            raise ValueError(f"{name}: must be >= 0")
        dst[i] = v
    return 0


# ----------------------------------------------------------------------------------------------
# small dense helpers (row-major)

cdef inline void _compose(double* R, double* p, const double* A) noexcept nogil:
    """[R p] <- [R p] @ [A] with A a 3x4 affine block (row-major)."""
    cdef double r00 = R[0], r01 = R[1], r02 = R[2]
    cdef double r10 = R[3], r11 = R[4], r12 = R[5]
    cdef double r20 = R[6], r21 = R[7], r22 = R[8]
    p[0] += r00 * A[3] + r01 * A[7] + r02 * A[11]
    p[1] += r10 * A[3] + r11 * A[7] + r12 * A[11]
    p[2] += r20 * A[3] + r21 * A[7] + r22 * A[11]
    R[0] = r00 * A[0] + r01 * A[4] + r02 * A[8]
    R[1] = r00 * A[1] + r01 * A[5] + r02 * A[9]
    R[2] = r00 * A[2] + r01 * A[6] + r02 * A[10]
    R[3] = r10 * A[0] + r11 * A[4] + r12 * A[8]
    R[4] = r10 * A[1] + r11 * A[5] + r12 * A[9]
    R[5] = r10 * A[2] + r11 * A[6] + r12 * A[10]
    R[6] = r20 * A[0] + r21 * A[4] + r22 * A[8]
    R[7] = r20 * A[1] + r21 * A[5] + r22 * A[9]
    R[8] = r20 * A[2] + r21 * A[6] + r22 * A[10]


cdef inline void _joint(double* R, double* p, int jtype, double qk) noexcept nogil:
    """Apply joint motion about/along local z."""
    cdef double c, s, x, y
    cdef int i
    if jtype == 0:
        c = cos(qk)
        s = sin(qk)
        for i in range(3):
            x = R[3 * i]
            y = R[3 * i + 1]
            R[3 * i] = c * x + s * y
            R[3 * i + 1] = -s * x + c * y
    else:
        p[0] += R[2] * qk
        p[1] += R[5] * qk
        p[2] += R[8] * qk


cdef inline void _identity(double* R, double* p) noexcept nogil:
    R[0] = 1.0; R[1] = 0.0; R[2] = 0.0
    R[3] = 0.0; R[4] = 1.0; R[5] = 0.0
    R[6] = 0.0; R[7] = 0.0; R[8] = 1.0
    p[0] = 0.0; p[1] = 0.0; p[2] = 0.0


cdef inline void _store(const double* R, const double* p, double* T) noexcept nogil:
    T[0] = R[0]; T[1] = R[1]; T[2] = R[2]; T[3] = p[0]
    T[4] = R[3]; T[5] = R[4]; T[6] = R[5]; T[7] = p[1]
    T[8] = R[6]; T[9] = R[7]; T[10] = R[8]; T[11] = p[2]
    T[12] = 0.0; T[13] = 0.0; T[14] = 0.0; T[15] = 1.0


# ----------------------------------------------------------------------------------------------
# kernels

cdef void fk_c(const ChainData* c, const double* q, double* T_out) noexcept nogil:
    # fk_jac_c's pass without the Jacobian: the running frame [R p] in local scalars.
    cdef double r00 = 1.0, r01 = 0.0, r02 = 0.0
    cdef double r10 = 0.0, r11 = 1.0, r12 = 0.0
    cdef double r20 = 0.0, r21 = 0.0, r22 = 1.0
    cdef double px = 0.0, py = 0.0, pz = 0.0
    cdef double a00, a01, a10, a11, a20, a21, cq, sq, x
    cdef const double* A
    cdef int k, n = c.n
    for k in range(n + 1):
        A = c.T_fixed + 12 * k
        px = px + (r00 * A[3] + r01 * A[7] + r02 * A[11])
        py = py + (r10 * A[3] + r11 * A[7] + r12 * A[11])
        pz = pz + (r20 * A[3] + r21 * A[7] + r22 * A[11])
        a00 = r00 * A[0] + r01 * A[4] + r02 * A[8]
        a01 = r00 * A[1] + r01 * A[5] + r02 * A[9]
        a10 = r10 * A[0] + r11 * A[4] + r12 * A[8]
        a11 = r10 * A[1] + r11 * A[5] + r12 * A[9]
        a20 = r20 * A[0] + r21 * A[4] + r22 * A[8]
        a21 = r20 * A[1] + r21 * A[5] + r22 * A[9]
        r02, r12, r22 = (r00 * A[2] + r01 * A[6] + r02 * A[10], r10 * A[2] + r11 * A[6] + r12 * A[10],
                         r20 * A[2] + r21 * A[6] + r22 * A[10])
        if k < n and c.jtype[k] == 0:
            cq = cos(q[k])
            sq = sin(q[k])
            r00 = cq * a00 + sq * a01
            r01 = -sq * a00 + cq * a01
            r10 = cq * a10 + sq * a11
            r11 = -sq * a10 + cq * a11
            r20 = cq * a20 + sq * a21
            r21 = -sq * a20 + cq * a21
        else:
            r00 = a00
            r01 = a01
            r10 = a10
            r11 = a11
            r20 = a20
            r21 = a21
            if k < n:
                x = q[k]
                px = px + r02 * x
                py = py + r12 * x
                pz = pz + r22 * x
    T_out[0] = r00; T_out[1] = r01; T_out[2] = r02; T_out[3] = px
    T_out[4] = r10; T_out[5] = r11; T_out[6] = r12; T_out[7] = py
    T_out[8] = r20; T_out[9] = r21; T_out[10] = r22; T_out[11] = pz
    T_out[12] = 0.0; T_out[13] = 0.0; T_out[14] = 0.0; T_out[15] = 1.0


cdef void fk_jac_c(const ChainData* c, const double* q, double* T_out, double* J_out) noexcept nogil:
    # The running frame [R p] lives in local scalars (registers), not in arrays the compiler must
    # assume the outputs may alias; each joint's axis z_k and origin o_k go straight into J_out's
    # angular rows and a small stack array, and the linear rows are filled once the tip is known.
    cdef double r00 = 1.0, r01 = 0.0, r02 = 0.0
    cdef double r10 = 0.0, r11 = 1.0, r12 = 0.0
    cdef double r20 = 0.0, r21 = 0.0, r22 = 1.0
    cdef double px = 0.0, py = 0.0, pz = 0.0
    cdef double a00, a01, a02, a10, a11, a12, a20, a21, a22, cq, sq, x, y
    cdef double o[3 * MAX_DOF]
    cdef const double* A
    cdef int k, n = c.n
    cdef double dx, dy, dz, zx, zy, zz
    for k in range(n + 1):
        A = c.T_fixed + 12 * k
        px = px + (r00 * A[3] + r01 * A[7] + r02 * A[11])
        py = py + (r10 * A[3] + r11 * A[7] + r12 * A[11])
        pz = pz + (r20 * A[3] + r21 * A[7] + r22 * A[11])
        a00 = r00 * A[0] + r01 * A[4] + r02 * A[8]
        a01 = r00 * A[1] + r01 * A[5] + r02 * A[9]
        a02 = r00 * A[2] + r01 * A[6] + r02 * A[10]
        a10 = r10 * A[0] + r11 * A[4] + r12 * A[8]
        a11 = r10 * A[1] + r11 * A[5] + r12 * A[9]
        a12 = r10 * A[2] + r11 * A[6] + r12 * A[10]
        a20 = r20 * A[0] + r21 * A[4] + r22 * A[8]
        a21 = r20 * A[1] + r21 * A[5] + r22 * A[9]
        a22 = r20 * A[2] + r21 * A[6] + r22 * A[10]
        r02 = a02
        r12 = a12
        r22 = a22
        if k == n:
            r00 = a00
            r01 = a01
            r10 = a10
            r11 = a11
            r20 = a20
            r21 = a21
            break
        J_out[3 * n + k] = a02
        J_out[4 * n + k] = a12
        J_out[5 * n + k] = a22
        o[3 * k] = px
        o[3 * k + 1] = py
        o[3 * k + 2] = pz
        if c.jtype[k] == 0:
            cq = cos(q[k])
            sq = sin(q[k])
            r00 = cq * a00 + sq * a01
            r01 = -sq * a00 + cq * a01
            r10 = cq * a10 + sq * a11
            r11 = -sq * a10 + cq * a11
            r20 = cq * a20 + sq * a21
            r21 = -sq * a20 + cq * a21
        else:
            r00 = a00
            r01 = a01
            r10 = a10
            r11 = a11
            r20 = a20
            r21 = a21
            x = q[k]
            px = px + a02 * x
            py = py + a12 * x
            pz = pz + a22 * x
    T_out[0] = r00; T_out[1] = r01; T_out[2] = r02; T_out[3] = px
    T_out[4] = r10; T_out[5] = r11; T_out[6] = r12; T_out[7] = py
    T_out[8] = r20; T_out[9] = r21; T_out[10] = r22; T_out[11] = pz
    T_out[12] = 0.0; T_out[13] = 0.0; T_out[14] = 0.0; T_out[15] = 1.0
    for k in range(n):
        zx = J_out[3 * n + k]
        zy = J_out[4 * n + k]
        zz = J_out[5 * n + k]
        if c.jtype[k] == 0:
            dx = px - o[3 * k]
            dy = py - o[3 * k + 1]
            dz = pz - o[3 * k + 2]
            J_out[k] = zy * dz - zz * dy
            J_out[n + k] = zz * dx - zx * dz
            J_out[2 * n + k] = zx * dy - zy * dx
        else:
            J_out[k] = zx
            J_out[n + k] = zy
            J_out[2 * n + k] = zz
            J_out[3 * n + k] = 0.0
            J_out[4 * n + k] = 0.0
            J_out[5 * n + k] = 0.0


cdef void _fk_all_c(const ChainData* c, const double* Cm, const double* q, double* out) noexcept nogil:
    """Frame of each joint after its motion (URDF joint orientation), then the tip."""
    cdef double R[9]
    cdef double p[3]
    cdef double Ru[9]
    cdef double A[12]
    cdef int k, i
    _identity(R, p)
    for k in range(c.n):
        _compose(R, p, c.T_fixed + 12 * k)
        _joint(R, p, c.jtype[k], q[k])
        # URDF joint frame = normalised frame @ C[k] (C maps the URDF axis onto z).
        for i in range(9):
            Ru[i] = R[i]
        for i in range(3):
            A[4 * i] = Cm[9 * k + 3 * i]
            A[4 * i + 1] = Cm[9 * k + 3 * i + 1]
            A[4 * i + 2] = Cm[9 * k + 3 * i + 2]
            A[4 * i + 3] = 0.0
        _compose(Ru, p, A)
        _store(Ru, p, out + 16 * k)
    _compose(R, p, c.T_fixed + 12 * c.n)
    _store(R, p, out + 16 * c.n)


cdef void log3_c(const double* R, double* w) noexcept nogil:
    cdef double vx = R[7] - R[5]
    cdef double vy = R[2] - R[6]
    cdef double vz = R[3] - R[1]
    cdef double s2 = sqrt(vx * vx + vy * vy + vz * vz)   # 2 sin(theta)
    cdef double c2 = R[0] + R[4] + R[8] - 1.0             # 2 cos(theta)
    cdef double theta = atan2(s2, c2)
    cdef double f, ax, ay, az, nrm, d0, d1, d2, ct
    if theta < 1e-5:
        f = 0.5 * (1.0 + theta * theta / 6.0)
        w[0] = f * vx
        w[1] = f * vy
        w[2] = f * vz
    elif theta < PI - 1e-4:
        f = theta / s2
        w[0] = f * vx
        w[1] = f * vy
        w[2] = f * vz
    else:
        # Near pi the skew part vanishes: the axis comes from the symmetric part
        # (R + R^T)/2 = cos(t) I + (1 - cos(t)) a a^T; its sign from the skew part.
        ct = 0.5 * c2
        d0 = R[0] - ct
        d1 = R[4] - ct
        d2 = R[8] - ct
        if d0 >= d1 and d0 >= d2:
            ax = d0
            ay = 0.5 * (R[1] + R[3])
            az = 0.5 * (R[2] + R[6])
        elif d1 >= d2:
            ax = 0.5 * (R[1] + R[3])
            ay = d1
            az = 0.5 * (R[5] + R[7])
        else:
            ax = 0.5 * (R[2] + R[6])
            ay = 0.5 * (R[5] + R[7])
            az = d2
        nrm = sqrt(ax * ax + ay * ay + az * az)
        ax /= nrm
        ay /= nrm
        az /= nrm
        if ax * vx + ay * vy + az * vz < 0.0:
            ax = -ax
            ay = -ay
            az = -az
        w[0] = theta * ax
        w[1] = theta * ay
        w[2] = theta * az


cdef inline void _pose_error(const double* T, const double* Tt, double* e) noexcept nogil:
    """e = [p_t - p; log3(R_t R^T)] (base frame)."""
    cdef double Re[9]
    cdef int i, j
    e[0] = Tt[3] - T[3]
    e[1] = Tt[7] - T[7]
    e[2] = Tt[11] - T[11]
    for i in range(3):
        for j in range(3):
            Re[3 * i + j] = Tt[4 * i] * T[4 * j] + Tt[4 * i + 1] * T[4 * j + 1] + Tt[4 * i + 2] * T[4 * j + 2]
    log3_c(Re, e + 3)


cdef inline bint _cholesky_solve(double* A, double* b, int n) noexcept nogil:
    """Solve A x = b in place (A symmetric positive definite, n x n row-major); False if not SPD."""
    cdef int i, j, k
    cdef double s
    for j in range(n):
        s = A[j * n + j]
        for k in range(j):
            s -= A[j * n + k] * A[j * n + k]
        if s <= 0.0:
            return False
        s = sqrt(s)
        A[j * n + j] = s
        for i in range(j + 1, n):
            for k in range(j):
                A[i * n + j] -= A[i * n + k] * A[j * n + k]
            A[i * n + j] /= s
    for i in range(n):
        s = b[i]
        for k in range(i):
            s -= A[i * n + k] * b[k]
        b[i] = s / A[i * n + i]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, n):
            s -= A[k * n + i] * b[k]
        b[i] = s / A[i * n + i]
    return True


cdef inline double _norm3(const double* v) noexcept nogil:
    return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


cdef int _ik_lm(const ChainData* c, const double* Tt, const double* lo, const double* hi,
                double* q, int max_iter, double tol_pos, double tol_rot, double* err) noexcept nogil:
    """Levenberg-Marquardt from q (in/out, kept inside [lo, hi]).

    Damping lambda = mu * (E + w_bar) with E = |e|^2 / 2 (Sugihara's error-dependent damping,
    singularity-robust), mu adapted by step acceptance. Returns the iteration count on success,
    -1 on failure; err[0], err[1] get the position and rotation error norms of the final q.
    """
    cdef int n = c.n
    cdef double T[16]
    cdef double J[6 * MAX_DOF]
    cdef double Tn[16]
    cdef double Jn[6 * MAX_DOF]
    cdef double e[6]
    cdef double en[6]
    cdef double A[MAX_DOF * MAX_DOF]
    cdef double g[MAX_DOF]
    cdef double qn[MAX_DOF]
    cdef double E, En, lam, s, mu = 1.0
    cdef double w_bar = 1e-6
    cdef int it, i, j, r
    fk_jac_c(c, q, T, J)
    _pose_error(T, Tt, e)
    E = 0.5 * (e[0] * e[0] + e[1] * e[1] + e[2] * e[2] + e[3] * e[3] + e[4] * e[4] + e[5] * e[5])
    for it in range(max_iter + 1):
        err[0] = _norm3(e)
        err[1] = _norm3(e + 3)
        if err[0] <= tol_pos and err[1] <= tol_rot:
            return it
        if it == max_iter:
            break
        lam = mu * (E + w_bar)
        for i in range(n):
            s = 0.0
            for r in range(6):
                s += J[r * n + i] * e[r]
            g[i] = s
            for j in range(i + 1):
                s = 0.0
                for r in range(6):
                    s += J[r * n + i] * J[r * n + j]
                A[i * n + j] = s
                A[j * n + i] = s
            A[i * n + i] += lam
        if not _cholesky_solve(A, g, n):
            mu *= 10.0
            continue
        for i in range(n):
            qn[i] = q[i] + g[i]
            if qn[i] < lo[i]:
                qn[i] = lo[i]
            elif qn[i] > hi[i]:
                qn[i] = hi[i]
        fk_jac_c(c, qn, Tn, Jn)
        _pose_error(Tn, Tt, en)
        En = 0.5 * (en[0] * en[0] + en[1] * en[1] + en[2] * en[2] + en[3] * en[3] + en[4] * en[4] + en[5] * en[5])
        if En < E:
            memcpy(q, qn, n * sizeof(double))
            memcpy(J, Jn, 6 * n * sizeof(double))
            memcpy(e, en, 6 * sizeof(double))
            E = En
            mu *= 0.3
            if mu < 1e-3:
                mu = 1e-3
        else:
            mu *= 8.0
            if mu > 1e8:
                # Stuck (a limit or a local minimum): give up on this start.
                break
    return -1


cdef inline double _uniform(uint64_t* state) noexcept nogil:
    """splitmix64 -> [0, 1). Deterministic for a seed, independent of global state."""
    cdef uint64_t z
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    z = z ^ (z >> 31)
    return (z >> 11) * (1.0 / 9007199254740992.0)


cdef inline double _wrap_pi(double x) noexcept nogil:
    while x > PI:
        x -= 2.0 * PI
    while x < -PI:
        x += 2.0 * PI
    return x


# ----------------------------------------------------------------------------------------------
# the typed Python face

cdef void bias_torque_c(const ChainData* c, const double* q, const double* dq, double* tau) noexcept nogil:
    rnea_c(c.n, c.T_fixed, c.jtype, c.inertia, q, dq, NULL, c.gravity, tau)


cdef class ChainKernel:
    """The compiled half of ``machaon.kinematics.Chain``: every per-cycle call, checked.

    Frames and units: poses ``T_base_x`` (4x4, m) in the chain's base link frame; Jacobians 6 x n
    ``[linear; angular]`` in the base frame, referenced at the tip (tool) origin; joint values in
    rad (revolute) or m (prismatic); torques in N m (revolute) or N (prismatic).

    Bad input: every array argument is checked here, in compiled code: a wrong shape, a value
    that is not a real number, or NaN/Inf raises ``ValueError`` naming the argument
    (``"q: contains NaN or Inf"``); lists and other real dtypes or layouts are converted. An
    ``out=`` buffer must be a writable C-contiguous float64 array of exactly the result's shape
    (``ValueError`` otherwise, never a silent copy); it is filled and returned. Without ``out=``
    the result is a new array.
    """

    def __cinit__(self, *args, **kwargs):
        self.c.n = -1              # not built yet
        self.c.inertia = NULL
        self.c.gravity[0] = 0.0
        self.c.gravity[1] = 0.0
        self.c.gravity[2] = -G_DEFAULT
        cdef int i
        for i in range(MAX_DOF):
            self.c.armature[i] = 0.0

    def _init_kernel(self, T_fixed, jtype, axes, C, lower, upper, inertia):
        """Set the chain up once (called by ``Chain.__init__``).

        ``T_fixed`` (n+1, 3, 4) placements, ``jtype`` (n,) 0 revolute / 1 prismatic, ``axes``
        (n, 3) URDF axes, ``C`` (n, 3, 3) rotations mapping each URDF joint frame onto the
        normalised one, ``lower``/``upper`` (n,) limits (+-inf for continuous joints),
        ``inertia`` (n, 13) body inertias in the normalised frames (``_dynamics.pxd``).
        """
        if self.c.n >= 0:
            raise RuntimeError("the chain is already built")
        T = np.ascontiguousarray(T_fixed, dtype=np.float64)
        n = T.shape[0] - 1
        if T.ndim != 3 or T.shape != (n + 1, 3, 4) or n < 0 or n > MAX_DOF:
            raise ValueError(f"T_fixed: expected (n+1, 3, 4) with n <= {MAX_DOF}, got {T.shape}")
        self._T_fixed = T
        self._jtype = np.ascontiguousarray(jtype, dtype=np.intc).reshape(n)
        self._axes = np.ascontiguousarray(axes, dtype=np.float64).reshape(n, 3)
        self._C = np.ascontiguousarray(C, dtype=np.float64).reshape(n, 3, 3)
        self._lower = np.ascontiguousarray(lower, dtype=np.float64).reshape(n)
        self._upper = np.ascontiguousarray(upper, dtype=np.float64).reshape(n)
        self._inertia_n = np.ascontiguousarray(inertia, dtype=np.float64).reshape(n, INERTIA_SIZE)
        self.c.T_fixed = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._T_fixed)
        self.c.axes = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._axes)
        self.c.jtype = <const int*>cnp.PyArray_DATA(<cnp.ndarray>self._jtype)
        self.c.inertia = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._inertia_n)
        self.lo = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._lower)
        self.hi = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._upper)
        self.c.n = n

    cdef int _n(self) except -1:
        if self.c.n < 0:
            raise RuntimeError("the chain is not built (use Chain.from_urdf)")
        return self.c.n

    @property
    def dof(self):
        """Number of joints (int)."""
        return self._n()

    @property
    def kernel(self):
        """The compiled chain: the chain itself (kept for code written against older releases)."""
        return self

    @property
    def gravity(self):
        """Gravity acceleration in the base frame (3,) m/s^2, ``(0, 0, -9.81)`` unless set.

        Setting it (any finite 3-vector; ``ValueError`` otherwise) changes every dynamics call of
        this chain, including controllers that already hold it.
        """
        return np.array([self.c.gravity[0], self.c.gravity[1], self.c.gravity[2]])

    @gravity.setter
    def gravity(self, value):
        cdef cnp.ndarray a = as_input("gravity", value, 1, 3, -1, -1)
        cdef const double* p = <const double*>cnp.PyArray_DATA(a)
        self.c.gravity[0] = p[0]
        self.c.gravity[1] = p[1]
        self.c.gravity[2] = p[2]

    @property
    def armature(self):
        """Reflected rotor inertia of each joint's drive (dof,), kg m^2 (kg for prismatic), zeros
        unless set: added to the mass matrix's diagonal and, with ``ddq``, to ``rnea`` (a gear
        motor's rotor turns ``ratio`` times faster than its joint, so its inertia counts
        ``ratio^2`` times, and for its own joint only). Setting it (finite, >= 0, (dof,);
        ``ValueError`` otherwise) changes every dynamics call, controllers that hold the chain too.
        """
        cdef int n = self._n()
        return np.array([self.c.armature[i] for i in range(n)])

    @armature.setter
    def armature(self, value):
        cdef int i, n = self._n()
        cdef cnp.ndarray a = as_input("armature", value, 1, n, -1, -1)
        cdef const double* p = <const double*>cnp.PyArray_DATA(a)
        for i in range(n):
            if p[i] < 0.0:
                raise ValueError("armature: must be >= 0")
        for i in range(n):
            self.c.armature[i] = p[i]

    # ------------------------------------------------------------------------------- kinematics

    def fk(self, q, out=None):
        """Tip pose ``T_base_tip`` (4x4) at joint values ``q`` (dof,).

        ``out``: a (4, 4) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef cnp.ndarray qa = as_input("q", q, 1, self._n(), -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 2, 4, 4, 0)
        fk_c(&self.c, <const double*>cnp.PyArray_DATA(qa), <double*>cnp.PyArray_DATA(o))
        return o

    def fk_all(self, q, out=None):
        """(dof+1, 4, 4): every joint frame after its motion, in URDF orientation, then the tip.

        ``out``: a (dof+1, 4, 4) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef cnp.ndarray qa = as_input("q", q, 1, self._n(), -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 3, self.c.n + 1, 4, 4)
        cdef const double* Cm = <const double*>cnp.PyArray_DATA(<cnp.ndarray>self._C)
        _fk_all_c(&self.c, Cm, <const double*>cnp.PyArray_DATA(qa), <double*>cnp.PyArray_DATA(o))
        return o

    def jacobian(self, q, out=None):
        """(6, dof) geometric Jacobian ``[linear; angular]``, base frame, at the tip origin.

        ``out``: a (6, dof) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef double T[16]
        cdef cnp.ndarray qa = as_input("q", q, 1, self._n(), -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 2, 6, self.c.n, 0)
        fk_jac_c(&self.c, <const double*>cnp.PyArray_DATA(qa), T, <double*>cnp.PyArray_DATA(o))
        return o

    def fk_jacobian(self, q, T_out=None, J_out=None):
        """``(T_base_tip, J)``: the tip pose (4x4) and the Jacobian (6, dof) from one pass.

        ``T_out``/``J_out``: buffers to fill (either or both). Bad input: ``ValueError``.
        """
        cdef cnp.ndarray qa = as_input("q", q, 1, self._n(), -1, -1)
        cdef cnp.ndarray To = as_output("T_out", T_out, 2, 4, 4, 0)
        cdef cnp.ndarray Jo = as_output("J_out", J_out, 2, 6, self.c.n, 0)
        fk_jac_c(&self.c, <const double*>cnp.PyArray_DATA(qa), <double*>cnp.PyArray_DATA(To),
                 <double*>cnp.PyArray_DATA(Jo))
        return To, Jo

    def fk_batch(self, Q, out=None):
        """(N, 4, 4) tip poses for the rows of ``Q`` (N, dof); runs without the GIL.

        ``out``: an (N, 4, 4) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef cnp.ndarray Qa = as_input("Q", Q, 2, -1, self._n(), -1)
        cdef Py_ssize_t N = cnp.PyArray_DIM(Qa, 0), i
        cdef cnp.ndarray o = as_output("out", out, 3, N, 4, 4)
        cdef const double* qp = <const double*>cnp.PyArray_DATA(Qa)
        cdef double* op = <double*>cnp.PyArray_DATA(o)
        cdef int n = self.c.n
        with nogil:
            for i in range(N):
                fk_c(&self.c, qp + i * n, op + 16 * i)
        return o

    def jacobian_batch(self, Q, out=None):
        """(N, 6, dof) Jacobians for the rows of ``Q`` (N, dof); runs without the GIL.

        ``out``: an (N, 6, dof) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef double T[16]
        cdef cnp.ndarray Qa = as_input("Q", Q, 2, -1, self._n(), -1)
        cdef Py_ssize_t N = cnp.PyArray_DIM(Qa, 0), i
        cdef cnp.ndarray o = as_output("out", out, 3, N, 6, self.c.n)
        cdef const double* qp = <const double*>cnp.PyArray_DATA(Qa)
        cdef double* op = <double*>cnp.PyArray_DATA(o)
        cdef int n = self.c.n
        with nogil:
            for i in range(N):
                fk_jac_c(&self.c, qp + i * n, T, op + 6 * n * i)
        return o

    def _ik_solve(self, T_target, q0, double tol_pos, double tol_rot, int max_iter, int restarts,
                  unsigned long long seed, out=None):
        """LM IK with random restarts; returns (q, success, pos_err, rot_err, iterations).

        The worker behind ``Chain.ik``. The first attempt starts at q0 (clamped into the
        limits), so a solution reachable from q0 is preferred; restarts draw uniformly inside the
        limits ([-pi, pi] for continuous joints) from a splitmix64 stream seeded by ``seed``.
        Continuous joints of the answer are wrapped to within pi of q0. The returned q is always
        inside the limits; on failure it is the attempt with the smallest error.
        """
        cdef int n = self._n()
        cdef cnp.ndarray Ta = as_transform("T_base_target", T_target)
        cdef cnp.ndarray qa = as_input("q0", q0, 1, n, -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
        if max_iter < 1 or restarts < 0:
            raise ValueError("max_iter must be >= 1 and restarts >= 0")
        if not (tol_pos > 0.0 and tol_rot > 0.0):
            raise ValueError("tol_pos and tol_rot must be > 0")
        cdef const double* Tt = <const double*>cnp.PyArray_DATA(Ta)
        cdef const double* qs = <const double*>cnp.PyArray_DATA(qa)
        cdef double* qo = <double*>cnp.PyArray_DATA(o)
        cdef double q[MAX_DOF]
        cdef double best[MAX_DOF]
        cdef double err[2]
        cdef double best_err[2]
        cdef double best_cost = 1e300, cost, lo, hi
        cdef uint64_t state = <uint64_t>seed
        cdef int attempt, i, it, total = 0, result = -1
        with nogil:
            best_err[0] = 1e300
            best_err[1] = 1e300
            for attempt in range(restarts + 1):
                for i in range(n):
                    lo = self.lo[i]
                    hi = self.hi[i]
                    if attempt == 0:
                        q[i] = qs[i]
                        if q[i] < lo:
                            q[i] = lo
                        elif q[i] > hi:
                            q[i] = hi
                    else:
                        if not isfinite(lo) or not isfinite(hi):
                            lo = -PI
                            hi = PI
                        q[i] = lo + (hi - lo) * _uniform(&state)
                it = _ik_lm(&self.c, Tt, self.lo, self.hi, q, max_iter, tol_pos, tol_rot, err)
                total += it if it >= 0 else max_iter
                cost = err[0] + err[1]
                if it >= 0 or cost < best_cost:
                    best_cost = cost
                    memcpy(best, q, n * sizeof(double))
                    best_err[0] = err[0]
                    best_err[1] = err[1]
                if it >= 0:
                    result = 0
                    break
            for i in range(n):
                if not isfinite(self.lo[i]) and not isfinite(self.hi[i]):
                    best[i] = qs[i] + _wrap_pi(best[i] - qs[i])
                qo[i] = best[i]
        return o, result == 0, best_err[0], best_err[1], total

    # ------------------------------------------------------------------------------- dynamics

    def rnea(self, q, dq, ddq, out=None):
        """Inverse dynamics ``tau = M(q) ddq + C(q, dq) dq + g(q)`` (dof,), recursive Newton-Euler.

        ``q`` (rad/m), ``dq`` (per s), ``ddq`` (per s^2), each (dof,); gravity from ``gravity``.
        Torques in N m (revolute) / N (prismatic). ``out``: a (dof,) buffer to fill.
        Bad input: ``ValueError`` naming the argument.
        """
        cdef int n = self._n()
        cdef cnp.ndarray qa = as_input("q", q, 1, n, -1, -1)
        cdef cnp.ndarray va = as_input("dq", dq, 1, n, -1, -1)
        cdef cnp.ndarray aa = as_input("ddq", ddq, 1, n, -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
        cdef double* t = <double*>cnp.PyArray_DATA(o)
        cdef const double* a = <const double*>cnp.PyArray_DATA(aa)
        cdef int i
        rnea_c(n, self.c.T_fixed, self.c.jtype, self.c.inertia, <const double*>cnp.PyArray_DATA(qa),
               <const double*>cnp.PyArray_DATA(va), a, self.c.gravity, t)
        for i in range(n):
            t[i] += self.c.armature[i] * a[i]
        return o

    def gravity_torque(self, q, out=None):
        """Generalised gravity torques ``g(q)`` (dof,): what holds the chain still against ``gravity``.

        ``out``: a (dof,) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef int n = self._n()
        cdef cnp.ndarray qa = as_input("q", q, 1, n, -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
        rnea_c(n, self.c.T_fixed, self.c.jtype, self.c.inertia, <const double*>cnp.PyArray_DATA(qa),
               NULL, NULL, self.c.gravity, <double*>cnp.PyArray_DATA(o))
        return o

    def coriolis_torque(self, q, dq, out=None):
        """Coriolis and centrifugal torques ``C(q, dq) dq`` (dof,), without gravity.

        ``out``: a (dof,) buffer to fill. Bad input: ``ValueError`` naming the argument.
        """
        cdef int n = self._n()
        cdef cnp.ndarray qa = as_input("q", q, 1, n, -1, -1)
        cdef cnp.ndarray va = as_input("dq", dq, 1, n, -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
        rnea_c(n, self.c.T_fixed, self.c.jtype, self.c.inertia, <const double*>cnp.PyArray_DATA(qa),
               <const double*>cnp.PyArray_DATA(va), NULL, NULL, <double*>cnp.PyArray_DATA(o))
        return o

    def mass_matrix(self, q, out=None):
        """Joint-space inertia ``M(q)`` (dof, dof), symmetric positive definite, composite rigid body.

        kg m^2 / kg blocks by joint type. ``out``: a (dof, dof) buffer to fill.
        Bad input: ``ValueError`` naming the argument.
        """
        cdef int n = self._n()
        cdef cnp.ndarray qa = as_input("q", q, 1, n, -1, -1)
        cdef cnp.ndarray o = as_output("out", out, 2, n, n, 0)
        cdef double* M = <double*>cnp.PyArray_DATA(o)
        cdef int i
        crba_c(n, self.c.T_fixed, self.c.jtype, self.c.inertia, <const double*>cnp.PyArray_DATA(qa), M)
        for i in range(n):
            M[i * n + i] += self.c.armature[i]
        return o


def log3(R, out=None):
    """Rotation vector (3,) of a rotation matrix R (3x3): the SO(3) log map, robust near 0 and pi."""
    cdef cnp.ndarray Ra = as_input("R", R, 2, 3, 3, -1)
    cdef cnp.ndarray o = as_output("out", out, 1, 3, 0, 0)
    log3_c(<const double*>cnp.PyArray_DATA(Ra), <double*>cnp.PyArray_DATA(o))
    return o
