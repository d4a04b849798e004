# cython: language_level=3
"""Compiled CSG signed-distance kernel for the vertebra phantom.

A program is a list of primitives, each placed by a rotation R (row-major 3x3, columns = the
primitive's axes in the parent frame) and a centre c: p_prim = R^T (p - c). Kinds: 0 = elliptic
cylinder along the primitive's z (size = semi-axis a, semi-axis b, half length h; h = inf for an
unbounded cylinder), 1 = box (size = half sizes). The first ``n_union`` primitives are united
(min), the remaining ones subtracted (max with the negated distance).

The typed Python face is ``csg_sdf``: it checks shapes and dtypes once; the loop runs ``nogil``.
``machaon.ortho.anatomy`` holds the NumPy reference of the same mathematics and the callers.
"""

from libc.math cimport fabs, sqrt, fmin, fmax, isinf

import numpy as np


cdef inline double _clamp01(double x) noexcept nogil:
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)


cdef double _ellipse(double x, double y, double a, double b) noexcept nogil:
    # closest point on the ellipse by the evolute-based iteration (see anatomy.ellipse_sdf)
    cdef double px = fabs(x), py = fabs(y)
    cdef double tx = 0.7071067811865476, ty = 0.7071067811865476
    cdef double a2b2 = a * a - b * b
    cdef double ex, ey, rx, ry, qx, qy, r, q, t
    cdef int i
    for i in range(6):
        ex = a2b2 * tx * tx * tx / a
        ey = -a2b2 * ty * ty * ty / b
        rx = a * tx - ex
        ry = b * ty - ey
        qx = px - ex
        qy = py - ey
        r = sqrt(rx * rx + ry * ry)
        q = sqrt(qx * qx + qy * qy)
        if q < 1e-300:
            q = 1e-300
        tx = _clamp01((qx * r / q + ex) / a)
        ty = _clamp01((qy * r / q + ey) / b)
        t = sqrt(tx * tx + ty * ty)
        tx = tx / t
        ty = ty / t
    cdef double d = sqrt((px - a * tx) ** 2 + (py - b * ty) ** 2)
    if (px / a) * (px / a) + (py / b) * (py / b) < 1.0:
        return -d
    return d


cdef inline void _local(const double* R, const double* c, double x, double y, double z,
                        double* u, double* v, double* w) noexcept nogil:
    # p_prim = R^T (p - c)  (R row-major: R[3*i + j])
    cdef double dx = x - c[0], dy = y - c[1], dz = z - c[2]
    u[0] = R[0] * dx + R[3] * dy + R[6] * dz
    v[0] = R[1] * dx + R[4] * dy + R[7] * dz
    w[0] = R[2] * dx + R[5] * dy + R[8] * dz


cdef inline double _box(const double* s, double u, double v, double w) noexcept nogil:
    cdef double qx = fabs(u) - s[0], qy = fabs(v) - s[1], qz = fabs(w) - s[2]
    cdef double ox = fmax(qx, 0.0), oy = fmax(qy, 0.0), oz = fmax(qz, 0.0)
    return sqrt(ox * ox + oy * oy + oz * oz) + fmin(fmax(qx, fmax(qy, qz)), 0.0)


cdef inline double _ecyl_bound(const double* s, double u, double v, double w) noexcept nogil:
    # lower bound of the capped elliptic cylinder's SDF: distance to the circumscribed circular
    # cylinder (radius max(a, b)), which contains it
    cdef double rho = sqrt(u * u + v * v) - fmax(s[0], s[1])
    cdef double wz = fabs(w) - s[2]
    if isinf(s[2]):
        return rho
    return sqrt(fmax(rho, 0.0) ** 2 + fmax(wz, 0.0) ** 2) + fmin(fmax(rho, wz), 0.0)


cdef inline double _ecyl(const double* s, double u, double v, double w) noexcept nogil:
    cdef double d2 = _ellipse(u, v, s[0], s[1])
    if isinf(s[2]):
        return d2
    cdef double wz = fabs(w) - s[2]
    return sqrt(fmax(d2, 0.0) ** 2 + fmax(wz, 0.0) ** 2) + fmin(fmax(d2, wz), 0.0)


cdef inline double _dist(double x, double y, double z, const double* c) noexcept nogil:
    return sqrt((x - c[0]) * (x - c[0]) + (y - c[1]) * (y - c[1]) + (z - c[2]) * (z - c[2]))


def csg_sdf(const double[:, ::1] points, const int[::1] kind, const double[:, ::1] R,
            const double[:, ::1] centre, const double[:, ::1] size, const double[::1] radius,
            int n_union, double[::1] out):
    """Fill ``out`` (N,) with the CSG signed distance of ``points`` (N, 3); returns ``out``.

    ``kind`` (P,) int32, ``R`` (P, 9), ``centre`` (P, 3), ``size`` (P, 3), ``radius`` (P,)
    float64, C-contiguous; primitives [0, n_union) are united, [n_union, P) subtracted.
    ``radius`` bounds each primitive (a sphere about its centre, inf for unbounded ones): a
    primitive whose bound cannot change the running value is skipped (same result, faster).
    Raises ``ValueError`` on inconsistent shapes.
    """
    cdef Py_ssize_t n = points.shape[0], p = kind.shape[0], i, k
    if points.shape[1] != 3 or out.shape[0] != n:
        raise ValueError("points must be (N, 3) and out (N,)")
    if R.shape[0] != p or R.shape[1] != 9 or centre.shape[0] != p or centre.shape[1] != 3 \
            or size.shape[0] != p or size.shape[1] != 3 or radius.shape[0] != p:
        raise ValueError("kind, R, centre, size, radius must describe the same number of primitives")
    if not 1 <= n_union <= p:
        raise ValueError("n_union must be in [1, number of primitives]")
    cdef double d, e, x, y, z, u = 0.0, v = 0.0, w = 0.0, lb
    with nogil:
        for i in range(n):
            x = points[i, 0]
            y = points[i, 1]
            z = points[i, 2]
            _local(&R[0, 0], &centre[0, 0], x, y, z, &u, &v, &w)
            d = _box(&size[0, 0], u, v, w) if kind[0] == 1 else _ecyl(&size[0, 0], u, v, w)
            for k in range(1, n_union):
                # the primitive's distance is at least |p - c| - radius: skip it if that
                # cannot beat the running minimum
                if _dist(x, y, z, &centre[k, 0]) - radius[k] >= d:
                    continue
                _local(&R[k, 0], &centre[k, 0], x, y, z, &u, &v, &w)
                if kind[k] == 1:
                    e = _box(&size[k, 0], u, v, w)
                else:
                    if _ecyl_bound(&size[k, 0], u, v, w) >= d:
                        continue
                    e = _ecyl(&size[k, 0], u, v, w)
                if e < d:
                    d = e
            for k in range(n_union, p):
                # -sdf is at most radius - |p - c|
                if radius[k] - _dist(x, y, z, &centre[k, 0]) <= d:
                    continue
                _local(&R[k, 0], &centre[k, 0], x, y, z, &u, &v, &w)
                if kind[k] == 1:
                    e = -_box(&size[k, 0], u, v, w)
                else:
                    lb = _ecyl_bound(&size[k, 0], u, v, w)
                    # outside the circumscribed cylinder -sdf <= -lb; inside, -sdf <= max(a, b)
                    if (-lb if lb > 0.0 else fmax(size[k, 0], size[k, 1])) <= d:
                        continue
                    e = -_ecyl(&size[k, 0], u, v, w)
                if e > d:
                    d = e
            out[i] = d
    return np.asarray(out)
