# cython: language_level=3
"""Rigid-body dynamics kernels of a z-normalised serial chain: recursive Newton-Euler and CRBA.

Layout and units in ``_dynamics.pxd``. The checked faces are ``ChainKernel``'s methods
(``rnea``, ``gravity_torque``, ``mass_matrix``, ``coriolis_torque`` in ``_chain.pyx``); these
functions assume prior validation and run without the GIL.

Frames: body k's quantities live in joint k's normalised frame after the joint's motion. The
motion of joint k relative to the frame before it is ``T_fixed[k]`` (3x4) followed by a rotation
about z by q_k (revolute) or a translation along z by q_k (prismatic). Gravity enters as an
acceleration of the base (``a_base = -g``), so the same pass gives gravity, Coriolis and inertia.
"""

from libc.math cimport cos, sin

cdef inline void _cross(const double* a, const double* b, double* out) noexcept nogil:
    out[0] = a[1] * b[2] - a[2] * b[1]
    out[1] = a[2] * b[0] - a[0] * b[2]
    out[2] = a[0] * b[1] - a[1] * b[0]


cdef inline void _matvec(const double* R, const double* v, double* out) noexcept nogil:
    """out = R v (R 3x3 row-major)."""
    out[0] = R[0] * v[0] + R[1] * v[1] + R[2] * v[2]
    out[1] = R[3] * v[0] + R[4] * v[1] + R[5] * v[2]
    out[2] = R[6] * v[0] + R[7] * v[1] + R[8] * v[2]


cdef inline void _matTvec(const double* R, const double* v, double* out) noexcept nogil:
    """out = R^T v."""
    out[0] = R[0] * v[0] + R[3] * v[1] + R[6] * v[2]
    out[1] = R[1] * v[0] + R[4] * v[1] + R[7] * v[2]
    out[2] = R[2] * v[0] + R[5] * v[1] + R[8] * v[2]


cdef inline void _joint_transforms(int n, const double* T_fixed, const int* jtype, const double* q,
                                   double* R, double* p) noexcept nogil:
    """R[9k..], p[3k..]: rotation and origin of frame k (after joint k's motion) in frame k-1."""
    cdef int k
    cdef const double* A
    cdef double c, s
    for k in range(n):
        A = T_fixed + 12 * k
        if jtype[k] == 0:
            c = cos(q[k])
            s = sin(q[k])
            # A_R @ Rz(q): columns x' = c x + s y, y' = -s x + c y, z' = z
            R[9 * k + 0] = c * A[0] + s * A[1]
            R[9 * k + 1] = -s * A[0] + c * A[1]
            R[9 * k + 2] = A[2]
            R[9 * k + 3] = c * A[4] + s * A[5]
            R[9 * k + 4] = -s * A[4] + c * A[5]
            R[9 * k + 5] = A[6]
            R[9 * k + 6] = c * A[8] + s * A[9]
            R[9 * k + 7] = -s * A[8] + c * A[9]
            R[9 * k + 8] = A[10]
            p[3 * k + 0] = A[3]
            p[3 * k + 1] = A[7]
            p[3 * k + 2] = A[11]
        else:
            R[9 * k + 0] = A[0]
            R[9 * k + 1] = A[1]
            R[9 * k + 2] = A[2]
            R[9 * k + 3] = A[4]
            R[9 * k + 4] = A[5]
            R[9 * k + 5] = A[6]
            R[9 * k + 6] = A[8]
            R[9 * k + 7] = A[9]
            R[9 * k + 8] = A[10]
            p[3 * k + 0] = A[3] + A[2] * q[k]
            p[3 * k + 1] = A[7] + A[6] * q[k]
            p[3 * k + 2] = A[11] + A[10] * q[k]


cdef void _gravity(int n, const double* T_fixed, const int* jtype, const double* inertia, const double* q,
                   const double* g, double* tau) noexcept nogil:
    """tau = g(q), the chain at rest (what ``rnea_c`` gives with dq = ddq = NULL), in two light passes.

    At rest every body only feels the base acceleration a = -g, so the subtree below joint k pushes
    on it with the force M_k a and the moment H_k x a about its origin, where M_k is the subtree's
    mass and H_k its first moment about that origin (frame k). Forward: a_k = R_k^T a_{k-1}.
    Backward: H_k = h_k + R_{k+1} H_{k+1} + M_{k+1} p_{k+1}; tau_k = (H_k x a_k)_z for a revolute
    joint, (M_k a_k)_z for a prismatic one. R_k = A_k Rz(q_k) is applied as its two factors and never
    formed; the sine and cosine of each joint are computed once and shared by both passes.
    """
    cdef double acc[3 * MAX_BODIES]   # a_k, frame k
    cdef double cs[2 * MAX_BODIES]    # cos q_k, sin q_k (revolute joints)
    cdef double x, y, z, c, s, u, v, mass
    cdef double H[3]
    cdef const double* A
    cdef const double* I
    cdef int k
    if g != NULL:
        x = -g[0]
        y = -g[1]
        z = -g[2]
    else:
        x = 0.0
        y = 0.0
        z = 0.0
    for k in range(n):
        A = T_fixed + 12 * k
        # A_R^T a, then (revolute) Rz(q)^T of that
        u = A[0] * x + A[4] * y + A[8] * z
        v = A[1] * x + A[5] * y + A[9] * z
        z = A[2] * x + A[6] * y + A[10] * z
        if jtype[k] == 0:
            c = cos(q[k])
            s = sin(q[k])
            cs[2 * k] = c
            cs[2 * k + 1] = s
            x = c * u + s * v
            y = c * v - s * u
        else:
            x = u
            y = v
        acc[3 * k] = x
        acc[3 * k + 1] = y
        acc[3 * k + 2] = z
    H[0] = 0.0
    H[1] = 0.0
    H[2] = 0.0
    mass = 0.0
    for k in range(n - 1, -1, -1):
        I = inertia + INERTIA_SIZE * k
        H[0] += I[1]
        H[1] += I[2]
        H[2] += I[3]
        mass += I[0]
        if jtype[k] == 0:
            tau[k] = H[0] * acc[3 * k + 1] - H[1] * acc[3 * k]
        else:
            tau[k] = mass * acc[3 * k + 2]
        if k > 0:
            # H <- R_k H + M_k p_k (into frame k-1), R_k = A_R Rz(q_k), p_k = A_p (+ A_R z q_k if prismatic)
            A = T_fixed + 12 * k
            if jtype[k] == 0:
                c = cs[2 * k]
                s = cs[2 * k + 1]
                u = c * H[0] - s * H[1]
                v = s * H[0] + c * H[1]
                z = H[2]
                x = A[3]
                y = A[7]
                H[2] = A[8] * u + A[9] * v + A[10] * z + mass * A[11]
                H[0] = A[0] * u + A[1] * v + A[2] * z + mass * x
                H[1] = A[4] * u + A[5] * v + A[6] * z + mass * y
            else:
                u = H[0]
                v = H[1]
                z = H[2]
                x = A[3] + A[2] * q[k]
                y = A[7] + A[6] * q[k]
                H[2] = A[8] * u + A[9] * v + A[10] * z + mass * (A[11] + A[10] * q[k])
                H[0] = A[0] * u + A[1] * v + A[2] * z + mass * x
                H[1] = A[4] * u + A[5] * v + A[6] * z + mass * y


cdef void rnea_c(int n, const double* T_fixed, const int* jtype, const double* inertia,
                 const double* q, const double* dq, const double* ddq, const double* g,
                 double* tau) noexcept nogil:
    cdef double R[9 * MAX_BODIES]
    cdef double p[3 * MAX_BODIES]
    cdef double f[3 * MAX_BODIES]      # force and moment on body k from its parent, frame k
    cdef double m[3 * MAX_BODIES]
    cdef double w[3]                   # angular velocity, acceleration, origin acceleration
    cdef double wd[3]
    cdef double a[3]
    cdef double t1[3]
    cdef double t2[3]
    cdef double t3[3]
    cdef double wz[3]
    cdef double Jw[3]
    cdef double qd, qdd, mass
    cdef const double* I
    cdef const double* h
    cdef const double* J
    cdef int k
    if n <= 0:
        return
    if dq == NULL and ddq == NULL:
        _gravity(n, T_fixed, jtype, inertia, q, g, tau)   # the per-cycle case, in its own pass
        return
    _joint_transforms(n, T_fixed, jtype, q, R, p)
    w[0] = 0.0
    w[1] = 0.0
    w[2] = 0.0
    wd[0] = 0.0
    wd[1] = 0.0
    wd[2] = 0.0
    if g != NULL:
        a[0] = -g[0]
        a[1] = -g[1]
        a[2] = -g[2]
    else:
        a[0] = 0.0
        a[1] = 0.0
        a[2] = 0.0
    for k in range(n):
        qd = dq[k] if dq != NULL else 0.0
        qdd = ddq[k] if ddq != NULL else 0.0
        # a_k = R^T (a + wd x p + w x (w x p)), in the parent's frame first
        _cross(wd, p + 3 * k, t1)
        _cross(w, p + 3 * k, t2)
        _cross(w, t2, t3)
        t1[0] = a[0] + t1[0] + t3[0]
        t1[1] = a[1] + t1[1] + t3[1]
        t1[2] = a[2] + t1[2] + t3[2]
        _matTvec(R + 9 * k, t1, a)
        _matTvec(R + 9 * k, w, wz)          # parent's w in frame k
        _matTvec(R + 9 * k, wd, t2)         # parent's wd in frame k
        if jtype[k] == 0:
            # w = wz + z qd; wd = R^T wd + z qdd + wz x z qd
            w[0] = wz[0]
            w[1] = wz[1]
            w[2] = wz[2] + qd
            wd[0] = t2[0] + wz[1] * qd
            wd[1] = t2[1] - wz[0] * qd
            wd[2] = t2[2] + qdd
        else:
            w[0] = wz[0]
            w[1] = wz[1]
            w[2] = wz[2]
            wd[0] = t2[0]
            wd[1] = t2[1]
            wd[2] = t2[2]
            # sliding: + 2 w x (z qd) + z qdd
            a[0] = a[0] + 2.0 * w[1] * qd
            a[1] = a[1] - 2.0 * w[0] * qd
            a[2] = a[2] + qdd
        I = inertia + INERTIA_SIZE * k
        mass = I[0]
        h = I + 1
        J = I + 4
        # f = m a + wd x h + w x (w x h)
        _cross(wd, h, t1)
        _cross(w, h, t2)
        _cross(w, t2, t3)
        f[3 * k + 0] = mass * a[0] + t1[0] + t3[0]
        f[3 * k + 1] = mass * a[1] + t1[1] + t3[1]
        f[3 * k + 2] = mass * a[2] + t1[2] + t3[2]
        # m = J wd + w x (J w) + h x a
        _matvec(J, wd, t1)
        _matvec(J, w, Jw)
        _cross(w, Jw, t2)
        _cross(h, a, t3)
        m[3 * k + 0] = t1[0] + t2[0] + t3[0]
        m[3 * k + 1] = t1[1] + t2[1] + t3[1]
        m[3 * k + 2] = t1[2] + t2[2] + t3[2]
    _backward(n, jtype, R, p, f, m, tau)


cdef inline void _backward(int n, const int* jtype, const double* R, const double* p, double* f, double* m,
                           double* tau) noexcept nogil:
    """Accumulate the bodies' forces f and moments m from the tip down; tau = the joints' components."""
    cdef double t1[3]
    cdef double t2[3]
    cdef double t3[3]
    cdef int k
    for k in range(n - 1, -1, -1):
        tau[k] = m[3 * k + 2] if jtype[k] == 0 else f[3 * k + 2]
        if k > 0:
            _matvec(R + 9 * k, f + 3 * k, t1)      # child's force in the parent's frame
            _matvec(R + 9 * k, m + 3 * k, t2)
            _cross(p + 3 * k, t1, t3)
            f[3 * (k - 1) + 0] += t1[0]
            f[3 * (k - 1) + 1] += t1[1]
            f[3 * (k - 1) + 2] += t1[2]
            m[3 * (k - 1) + 0] += t2[0] + t3[0]
            m[3 * (k - 1) + 1] += t2[1] + t3[1]
            m[3 * (k - 1) + 2] += t2[2] + t3[2]


cdef void crba_c(int n, const double* T_fixed, const int* jtype, const double* inertia,
                 const double* q, double* M) noexcept nogil:
    cdef double R[9 * MAX_BODIES]
    cdef double p[3 * MAX_BODIES]
    cdef double C[INERTIA_SIZE * MAX_BODIES]   # composite inertias about each frame origin
    cdef double hs[3]
    cdef double RJ[9]
    cdef double f[3]
    cdef double mo[3]
    cdef double t1[3]
    cdef double t2[3]
    cdef double mk, pp, ph
    cdef double* Ck
    cdef double* Cp
    cdef const double* Rk
    cdef const double* pk
    cdef int i, j, k, r, c
    if n <= 0:
        return
    _joint_transforms(n, T_fixed, jtype, q, R, p)
    for i in range(INERTIA_SIZE * n):
        C[i] = inertia[i]
    for k in range(n - 1, 0, -1):
        Ck = C + INERTIA_SIZE * k
        Cp = C + INERTIA_SIZE * (k - 1)
        Rk = R + 9 * k
        pk = p + 3 * k
        mk = Ck[0]
        _matvec(Rk, Ck + 1, hs)                   # first moment seen from the parent's axes
        # J_parent += R J R^T + m (|p|^2 I - p p^T) + 2 (p.hs) I - p hs^T - hs p^T
        for r in range(3):
            for c in range(3):
                RJ[3 * r + c] = Rk[3 * r] * Ck[4 + c] + Rk[3 * r + 1] * Ck[7 + c] + Rk[3 * r + 2] * Ck[10 + c]
        pp = pk[0] * pk[0] + pk[1] * pk[1] + pk[2] * pk[2]
        ph = pk[0] * hs[0] + pk[1] * hs[1] + pk[2] * hs[2]
        for r in range(3):
            for c in range(3):
                Cp[4 + 3 * r + c] += (RJ[3 * r] * Rk[3 * c] + RJ[3 * r + 1] * Rk[3 * c + 1]
                                      + RJ[3 * r + 2] * Rk[3 * c + 2]
                                      - mk * pk[r] * pk[c] - pk[r] * hs[c] - hs[r] * pk[c])
            Cp[4 + 4 * r] += mk * pp + 2.0 * ph
        Cp[0] += mk
        Cp[1] += hs[0] + mk * pk[0]
        Cp[2] += hs[1] + mk * pk[1]
        Cp[3] += hs[2] + mk * pk[2]
    for i in range(n):
        Ck = C + INERTIA_SIZE * i
        # F = I^C_i S_i: revolute S = (0; z), prismatic S = (z; 0)
        if jtype[i] == 0:
            f[0] = -Ck[2]
            f[1] = Ck[1]
            f[2] = 0.0
            mo[0] = Ck[4 + 2]
            mo[1] = Ck[4 + 5]
            mo[2] = Ck[4 + 8]
            M[n * i + i] = mo[2]
        else:
            f[0] = 0.0
            f[1] = 0.0
            f[2] = Ck[0]
            mo[0] = Ck[2]
            mo[1] = -Ck[1]
            mo[2] = 0.0
            M[n * i + i] = f[2]
        j = i
        while j > 0:
            _matvec(R + 9 * j, f, t1)
            _matvec(R + 9 * j, mo, t2)
            _cross(p + 3 * j, t1, f)
            mo[0] = t2[0] + f[0]
            mo[1] = t2[1] + f[1]
            mo[2] = t2[2] + f[2]
            f[0] = t1[0]
            f[1] = t1[1]
            f[2] = t1[2]
            j -= 1
            M[n * i + j] = mo[2] if jtype[j] == 0 else f[2]
            M[n * j + i] = M[n * i + j]
