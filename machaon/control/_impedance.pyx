# cython: language_level=3
"""Impedance laws in compiled code: the checked functional faces, the fused per-cycle step, and kernels.

Conventions: SI units; poses row-major 4x4 ``T_base_x``; Jacobians 6 x n ``[linear; angular]`` in
the base frame at the tool origin; wrenches ``[force; moment]`` in the base frame at the tool
origin.

Joint impedance      tau = k (q_d - q) + d (dq_d - dq) + g + tau_ff [+ g(q) (+ C(q, dq) dq) of a chain]
Cartesian impedance  e   = [p_d - p; log3(R_d R^T)]
                     w   = K e + D (v_d - J dq) + w_ff
                     tau = J^T w + g [+ g(q) (+ C dq)] + N (k_n (q_n - q) - d_n dq)   (N only if n > 6)
Limits               tau <- clip(tau, tau_prev -+ dtau_max dt), then clip(+-tau_max)

``cartesian_impedance_torque`` and ``joint_impedance_torque`` are the users' checked calls: every
argument is checked here (shape, dtype, NaN/Inf, a ``ValueError`` naming it), the result comes from
the NumPy C API unless ``out=`` is given. ``CartesianStep`` is the controllers' fused cycle; the
remaining ``def`` kernels are unchecked workers behind ``machaon.control.impedance`` (prior
validation is assumed).
"""

from libc.math cimport fabs, sqrt

from machaon.kinematics._chain cimport (
    MAX_DOF,
    ChainKernel,
    as_gain,
    as_input,
    as_output,
    as_transform,
    bias_torque_c,
    fk_jac_c,
    log3_c,
    new_f64,
)
from machaon._records cimport attr_or_none, torque_command_c
from machaon.kinematics._dynamics cimport crba_c, rnea_c
from libc.math cimport INFINITY

import numpy as np

from machaon.types import JointState

cimport numpy as cnp

cnp.import_array()

cdef double NULL_SPACE_DAMPING = 1e-9   # Tikhonov term of the posture projector (see _nullspace_add)


cdef inline cnp.ndarray _c_double(object a):
    """a itself if it is a C-contiguous float64 ndarray (the per-cycle fast path), else a converted copy."""
    if cnp.PyArray_Check(a):
        if cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_DOUBLE and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a):
            return <cnp.ndarray>a
    return np.ascontiguousarray(a, dtype=np.float64)


cdef inline const double* _data(cnp.ndarray a):
    return <const double*>cnp.PyArray_DATA(a)


cdef ChainKernel _chain_arg(str name, object chain):
    if not isinstance(chain, ChainKernel):
        raise TypeError(f"{name}: expected a machaon.kinematics.Chain, got {type(chain).__name__}")
    return <ChainKernel>chain


# ----------------------------------------------------------------------------- pointer kernels

cdef inline void _pose_error(const double* T, const double* Td, double* e) noexcept nogil:
    """e = [p_d - p; log3(R_d R^T)] (rotation error in the base frame)."""
    cdef double Rerr[9]
    cdef int i, j, k
    cdef double s
    e[0] = Td[3] - T[3]
    e[1] = Td[7] - T[7]
    e[2] = Td[11] - T[11]
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                s = s + Td[4 * i + k] * T[4 * j + k]   # (R_d R^T)_ij = sum_k Rd_ik R_jk
            Rerr[3 * i + j] = s
    log3_c(Rerr, e + 3)


cdef inline void _cartesian_law(int n, const double* T, const double* J, const double* dq,
                                const double* Td, const double* K, const double* D,
                                const double* v_d, const double* w_ff, const double* g,
                                double* e, double* w, double* tau) noexcept nogil:
    """Fill e (6), w (6) and tau (n) from the Cartesian law; g and w_ff may be NULL."""
    cdef double v[6]
    cdef double dv[6]
    cdef int i, j
    cdef double s
    _pose_error(T, Td, e)
    for i in range(6):
        s = 0.0
        for j in range(n):
            s = s + J[i * n + j] * dq[j]
        v[i] = s
    for i in range(6):
        dv[i] = (v_d[i] if v_d != NULL else 0.0) - v[i]
    for i in range(6):
        s = w_ff[i] if w_ff != NULL else 0.0
        for j in range(6):
            s = s + K[6 * i + j] * e[j] + D[6 * i + j] * dv[j]
        w[i] = s
    for j in range(n):
        s = g[j] if g != NULL else 0.0
        for i in range(6):
            s = s + J[i * n + j] * w[i]
        tau[j] = s


cdef inline int _chol6(double* A, int m) noexcept nogil:
    """In-place Cholesky (lower) of an m x m SPD matrix (row-major, stride 6); 0 on success."""
    cdef int i, j, k
    cdef double s
    for j in range(m):
        s = A[6 * j + j]
        for k in range(j):
            s = s - A[6 * j + k] * A[6 * j + k]
        if s <= 0.0:
            return -1
        A[6 * j + j] = sqrt(s)
        for i in range(j + 1, m):
            s = A[6 * i + j]
            for k in range(j):
                s = s - A[6 * i + k] * A[6 * j + k]
            A[6 * i + j] = s / A[6 * j + j]
    return 0


cdef inline void _chol6_solve(const double* L, double* b, int m) noexcept nogil:
    cdef int i, k
    cdef double s
    for i in range(m):
        s = b[i]
        for k in range(i):
            s = s - L[6 * i + k] * b[k]
        b[i] = s / L[6 * i + i]
    for i in range(m - 1, -1, -1):
        s = b[i]
        for k in range(i + 1, m):
            s = s - L[6 * k + i] * b[k]
        b[i] = s / L[6 * i + i]


cdef inline void _nullspace_add(int n, const double* J, const double* tau0, double lam2,
                                double* tau) noexcept nogil:
    """tau += (I - J^T (J J^T + lam2 I)^-1 J) tau0: the posture torque with its task part removed."""
    cdef double A[36]
    cdef double b[6]
    cdef int i, j, k
    cdef double s
    for i in range(6):
        for j in range(6):
            s = lam2 if i == j else 0.0
            for k in range(n):
                s = s + J[i * n + k] * J[j * n + k]
            A[6 * i + j] = s
    for i in range(6):
        s = 0.0
        for k in range(n):
            s = s + J[i * n + k] * tau0[k]
        b[i] = s
    if _chol6(A, 6) != 0:
        return          # singular task Jacobian (lam2 = 0): skip the posture term this cycle
    _chol6_solve(A, b, 6)
    for k in range(n):
        s = tau0[k]
        for i in range(6):
            s = s - J[i * n + k] * b[i]
        tau[k] = tau[k] + s


cdef inline void _limit(int n, double* tau, const double* tau_max, const double* tau_prev,
                        double dtau_max_scale, const double* dtau_max) noexcept nogil:
    """Rate limit against tau_prev (if not NULL) by dtau_max * scale, then saturate at +-tau_max."""
    cdef int j
    cdef double lo, hi, step
    for j in range(n):
        if tau_prev != NULL and dtau_max != NULL:
            step = dtau_max[j] * dtau_max_scale
            lo = tau_prev[j] - step
            hi = tau_prev[j] + step
            if tau[j] < lo:
                tau[j] = lo
            elif tau[j] > hi:
                tau[j] = hi
        if tau_max != NULL:
            if tau[j] > tau_max[j]:
                tau[j] = tau_max[j]
            elif tau[j] < -tau_max[j]:
                tau[j] = -tau_max[j]


cdef inline void _mul6(const double* A, const double* B, double* C) noexcept nogil:
    """C = A B for 6x6 row-major matrices."""
    cdef int i, j, k
    cdef double s
    for i in range(6):
        for j in range(6):
            s = 0.0
            for k in range(6):
                s = s + A[6 * i + k] * B[6 * k + j]
            C[6 * i + j] = s


cdef inline void _rotate_gain(const double* R, const double* G_task, double* G_base) noexcept nogil:
    """G_base = B G_task B^T with B = blockdiag(R, R): a task-frame 6x6 gain seen in the base frame.

    Block by block (the zero blocks of B are skipped): the same sums, term for term, as the dense
    product, in half the multiplications.
    """
    cdef double tmp[36]
    cdef int i, j, k, bi, bk
    cdef double s
    for i in range(6):              # tmp = B G
        bi = 3 * (i // 3)
        for j in range(6):
            s = 0.0
            for k in range(3):
                s = s + R[3 * (i - bi) + k] * G_task[6 * (bi + k) + j]
            tmp[6 * i + j] = s
    for i in range(6):              # G_base = tmp B^T, (B^T)_kj = B_jk
        for j in range(6):
            bk = 3 * (j // 3)
            s = 0.0
            for k in range(3):
                s = s + tmp[6 * i + bk + k] * R[3 * (j - bk) + k]
            G_base[6 * i + j] = s


# ----------------------------------------------------------------------------- checked functional faces

def cartesian_impedance_torque(chain, q, dq, T_base_target, K, D, g=None, *, v_d=None, w_ff=None,
                               gravity=False, coriolis=False, posture=None, k_null=0.0, d_null=0.0,
                               out=None):
    """``tau = J^T (K e + D (v_d - J dq) + w_ff) + g`` with ``e = [p_t - p; log3(R_t R^T)]``, one call.

    ``chain``: a ``machaon.kinematics.Chain`` (pose and Jacobian of its tip from ``q``); ``q``,
    ``dq`` (n,); ``T_base_target`` (4x4, base frame); ``K``, ``D``: 6x6 base-frame gains (N/m,
    N m/rad; N s/m, N m s/rad); ``g``: a torque (n,) added as is, or None; ``v_d``: desired tool
    twist (6,) or None; ``w_ff``: feed-forward wrench (6,) or None.
    ``gravity=True`` adds the chain's own gravity torque ``chain.gravity_torque(q)`` and
    ``coriolis=True`` its ``C(q, dq) dq``, computed inside this call (give ``g`` or
    ``gravity=True``, not both). ``posture`` (n,), ``k_null``, ``d_null`` (N m/rad, N m s/rad,
    scalar or (n,)): for a redundant chain (n > 6) the posture torque
    ``k_null (posture - q) - d_null dq`` projected into the task's null space
    (``I - J^T (J J^T + 1e-9 I)^-1 J``); ignored for n <= 6. ``out``: an (n,) buffer to fill.

    Bad input: a wrong shape, a non-real value or NaN/Inf raises ``ValueError`` naming the
    argument; a target that is not a rigid transform raises ``ValueError`` ("T_base_target: ...");
    ``chain`` not a Chain raises ``TypeError``.
    """
    cdef ChainKernel ch = _chain_arg("chain", chain)
    cdef int n = ch._n()
    cdef int j
    cdef cnp.ndarray qa = as_input("q", q, 1, n, -1, -1)
    cdef cnp.ndarray va = as_input("dq", dq, 1, n, -1, -1)
    cdef cnp.ndarray Ta = as_transform("T_base_target", T_base_target)
    cdef cnp.ndarray Ka = as_input("K", K, 2, 6, 6, -1)
    cdef cnp.ndarray Da = as_input("D", D, 2, 6, 6, -1)
    cdef const double* pg = NULL
    cdef const double* pv = NULL
    cdef const double* pw = NULL
    cdef const double* pn = NULL
    cdef double kn[MAX_DOF]
    cdef double dn[MAX_DOF]
    cdef double T[16]
    cdef double J[6 * MAX_DOF]
    cdef double e[6]
    cdef double w[6]
    cdef double bias[MAX_DOF]
    cdef double tau0[MAX_DOF]
    cdef cnp.ndarray ga, vda, wfa, pna       # keep converted inputs alive while their data is used
    if g is not None:
        if gravity:
            raise ValueError("g: give g or gravity=True, not both")
        ga = as_input("g", g, 1, n, -1, -1)
        pg = _data(ga)
    if v_d is not None:
        vda = as_input("v_d", v_d, 1, 6, -1, -1)
        pv = _data(vda)
    if w_ff is not None:
        wfa = as_input("w_ff", w_ff, 1, 6, -1, -1)
        pw = _data(wfa)
    if posture is not None:
        pna = as_input("posture", posture, 1, n, -1, -1)
        pn = _data(pna)
        as_gain("k_null", k_null, n, kn)
        as_gain("d_null", d_null, n, dn)
    cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
    cdef double* tau = <double*>cnp.PyArray_DATA(o)
    cdef const double* qp = _data(qa)
    cdef const double* vp = _data(va)
    fk_jac_c(&ch.c, qp, T, J)
    _cartesian_law(n, T, J, vp, _data(Ta), _data(Ka), _data(Da), pv, pw, pg, e, w, tau)
    if gravity or coriolis:
        rnea_c(n, ch.c.T_fixed, ch.c.jtype, ch.c.inertia, qp, vp if coriolis else NULL, NULL,
               ch.c.gravity if gravity else NULL, bias)
        for j in range(n):
            tau[j] = tau[j] + bias[j]
    if pn != NULL and n > 6:
        for j in range(n):
            tau0[j] = kn[j] * (pn[j] - qp[j]) - dn[j] * vp[j]
        _nullspace_add(n, J, tau0, NULL_SPACE_DAMPING, tau)
    return o


def joint_impedance_torque(q, dq, q_d, dq_d, k, d, g=None, tau_ff=None, out=None, *, chain=None,
                           coriolis=False):
    """``tau = k (q_d - q) + d (dq_d - dq) + g + tau_ff`` element-wise (diagonal gains, SI), one call.

    ``q``, ``dq``, ``q_d`` (n,); ``dq_d`` (n,) or None (zero); ``k`` (N m/rad), ``d`` (N m s/rad):
    scalars or (n,), >= 0; ``g``, ``tau_ff``: torques (n,) added as is, or None. ``chain`` (a
    ``machaon.kinematics.Chain`` with n joints) adds its gravity torque ``g(q)`` computed inside
    this call, and with ``coriolis=True`` also ``C(q, dq) dq``. ``out``: an (n,) buffer to fill.

    Bad input: a wrong shape, a non-real value, NaN/Inf or a negative gain raises ``ValueError``
    naming the argument; ``chain`` not a Chain raises ``TypeError``.
    """
    cdef cnp.ndarray qa = as_input("q", q, 1, -1, -1, -1)
    cdef int n = <int>cnp.PyArray_DIM(qa, 0)
    cdef int j
    cdef ChainKernel ch = None
    if n > MAX_DOF:
        raise ValueError(f"q: at most {MAX_DOF} joints")
    cdef cnp.ndarray va = as_input("dq", dq, 1, n, -1, -1)
    cdef cnp.ndarray qda = as_input("q_d", q_d, 1, n, -1, -1)
    cdef const double* pvd = NULL
    cdef const double* pg = NULL
    cdef const double* pf = NULL
    cdef double kk[MAX_DOF]
    cdef double dd[MAX_DOF]
    cdef cnp.ndarray vda, ga, fa             # keep converted inputs alive while their data is used
    if dq_d is not None:
        vda = as_input("dq_d", dq_d, 1, n, -1, -1)
        pvd = _data(vda)
    as_gain("k", k, n, kk)
    as_gain("d", d, n, dd)
    if g is not None:
        ga = as_input("g", g, 1, n, -1, -1)
        pg = _data(ga)
    if tau_ff is not None:
        fa = as_input("tau_ff", tau_ff, 1, n, -1, -1)
        pf = _data(fa)
    if chain is not None:
        ch = _chain_arg("chain", chain)
        if ch._n() != n:
            raise ValueError(f"chain: has {ch.c.n} joints, q has {n}")
    elif coriolis:
        raise ValueError("coriolis: needs a chain")
    cdef cnp.ndarray o = as_output("out", out, 1, n, 0, 0)
    cdef double* tau = <double*>cnp.PyArray_DATA(o)
    if ch is not None:
        bias_torque_c(&ch.c, _data(qa), _data(va) if coriolis else NULL, tau)
    else:
        for j in range(n):
            tau[j] = 0.0
    _joint_law_add(n, _data(qa), _data(va), _data(qda), pvd, kk, dd, pg, pf, tau)
    return o


# ----------------------------------------------------------------------------- unchecked workers

cdef inline void _joint_law_add(int n, const double* q, const double* dq, const double* q_d, const double* dq_d,
                                const double* k, const double* d, const double* g, const double* tau_ff,
                                double* tau) noexcept nogil:
    """tau += k (q_d - q) + d (dq_d - dq) + g + tau_ff (dq_d, g, tau_ff may be NULL: zero)."""
    cdef int j
    cdef double s
    for j in range(n):
        s = k[j] * (q_d[j] - q[j]) + d[j] * ((dq_d[j] if dq_d != NULL else 0.0) - dq[j])
        if g != NULL:
            s = s + g[j]
        if tau_ff != NULL:
            s = s + tau_ff[j]
        tau[j] = tau[j] + s


def checked_transform(str name, T):
    """``T`` as a C-contiguous float64 4x4 rigid transform, or ``ValueError`` naming ``name``."""
    return as_transform(name, T)


def pose_error(const double[:, ::1] T, const double[:, ::1] T_d, double[::1] out):
    """out (6) = [p_d - p; log3(R_d R^T)] for 4x4 poses T, T_d in the base frame."""
    with nogil:
        _pose_error(&T[0, 0], &T_d[0, 0], &out[0])


def joint_law(const double[::1] q, const double[::1] dq, const double[::1] q_d, const double[::1] dq_d,
              const double[::1] k, const double[::1] d, const double[::1] g, const double[::1] tau_ff,
              double[::1] out, ChainKernel chain=None):
    """out = k (q_d - q) + d (dq_d - dq) + g + tau_ff [+ the chain's gravity torque] (g, tau_ff may be None).

    The worker of ``JointImpedance``; sizes and values were checked by the caller.
    """
    cdef int n = q.shape[0]
    cdef const double* pg = NULL
    cdef const double* pf = NULL
    cdef int j
    if g is not None:
        pg = &g[0]
    if tau_ff is not None:
        pf = &tau_ff[0]
    if chain is not None and chain.c.n == n:
        bias_torque_c(&chain.c, &q[0], NULL, &out[0])
    else:
        for j in range(n):
            out[j] = 0.0
    with nogil:
        _joint_law_add(n, &q[0], &dq[0], &q_d[0], &dq_d[0], &k[0], &d[0], pg, pf, &out[0])


def limit_torque(double[::1] tau, const double[::1] tau_max, const double[::1] tau_prev,
                 const double[::1] dtau_max, double dt):
    """In place: rate-limit tau against tau_prev by dtau_max * dt, then clip to +-tau_max.

    Any of tau_max, tau_prev, dtau_max may be None (that limit is skipped).
    """
    cdef const double* pm = NULL
    cdef const double* pp = NULL
    cdef const double* pd = NULL
    if tau_max is not None:
        pm = &tau_max[0]
    if tau_prev is not None:
        pp = &tau_prev[0]
    if dtau_max is not None:
        pd = &dtau_max[0]
    with nogil:
        _limit(tau.shape[0], &tau[0], pm, pp, dt, pd)


# ----------------------------------------------------------------------------- fused one-cycle kernel

cdef class CartesianStep:
    """State of the fused Cartesian impedance step for one chain: FK + Jacobian + law + limits.

    Holds the gains (task-frame 6x6 K and D, optionally rotating with the target), the posture
    (null-space) term, torque limits and the last output torque; ``step`` does one control cycle
    with a single call. Set-up methods are called rarely; ``step`` every cycle.
    """

    cdef ChainKernel kernel
    cdef ChainKernel dyn          # gravity (and Coriolis) from this chain's dynamics, if set
    cdef bint use_gravity, use_coriolis
    cdef readonly int n
    cdef double T[16]
    cdef double J[6 * MAX_DOF]
    cdef double e[6]
    cdef double w[6]
    cdef double K_task[36]        # gains in the task frame
    cdef double D_task[36]
    cdef double K_base[36]        # gains used in the last step, base frame
    cdef double D_base[36]
    cdef double R_target_task[9]
    cdef bint follow_target       # task frame = target frame @ R_target_task (else the base frame)
    cdef bint damping_in_base     # D_base was given directly (e.g. from the Cartesian inertia)
    cdef double v_d[6]
    cdef double w_ff[6]
    cdef double q_n[MAX_DOF]
    cdef double k_n[MAX_DOF]
    cdef double d_n[MAX_DOF]
    cdef bint has_null
    cdef double lam2
    cdef double tau_max[MAX_DOF]
    cdef double dtau_max[MAX_DOF]
    cdef bint has_tau_max, has_dtau_max
    cdef double tau_prev[MAX_DOF]
    cdef bint has_prev
    cdef double A_sqrt[36]        # Lambda^1/2 of the inertia-based damping design, base frame
    cdef double Z_fac[36]         # the design's ratio and stiffness-root factors (set by the controller)
    cdef double K1_fac[36]

    def __cinit__(self, ChainKernel kernel):
        cdef int i
        self.kernel = kernel
        self.n = kernel._n()
        self.dyn = None
        self.use_gravity = False
        self.use_coriolis = False
        for i in range(36):
            self.K_task[i] = 0.0
            self.D_task[i] = 0.0
            self.K_base[i] = 0.0
            self.D_base[i] = 0.0
        for i in range(9):
            self.R_target_task[i] = 1.0 if i % 4 == 0 else 0.0
        for i in range(6):
            self.v_d[i] = 0.0
            self.w_ff[i] = 0.0
        self.follow_target = False
        self.damping_in_base = False
        self.has_null = False
        self.lam2 = 1e-6
        self.has_tau_max = False
        self.has_dtau_max = False
        self.has_prev = False

    def set_gains(self, const double[:, ::1] K_task, const double[:, ::1] D_task):
        """Task-frame stiffness and damping (6x6 each). The Python face interpolates gain changes."""
        cdef int i
        for i in range(36):
            self.K_task[i] = K_task[i // 6, i % 6]
            self.D_task[i] = D_task[i // 6, i % 6]

    def set_task_frame(self, bint follow_target, const double[:, ::1] R_target_task):
        """Task frame: the base frame, or the target frame rotated by R_target_task (follows the target)."""
        cdef int i
        self.follow_target = follow_target
        for i in range(9):
            self.R_target_task[i] = R_target_task[i // 3, i % 3]

    def refresh_inertia(self, q, M=None, double eps=1e-6):
        """Lambda^1/2 = (J M^-1 J^T)^-1/2 at ``q`` for the inertia-based damping (J of the chain).

        ``M``: the (n, n) mass matrix, or None for the ``set_dynamics`` chain's (composite rigid
        body, computed here). Eigenvalues of J M^-1 J^T are floored at ``eps``. Returns 0, or -1
        when the kernel declines (a non-finite value, M not positive definite): the caller then
        takes numpy's route and hands the result to ``set_sqrt_inertia``.
        """
        cdef int i, n = self.n
        cdef double T[16]
        cdef double J[6 * MAX_DOF]
        cdef double Mbuf[MAX_DOF * MAX_DOF]
        cdef const double* Mp = Mbuf
        cdef cnp.ndarray aq = _c_double(q)
        cdef cnp.ndarray aM
        if cnp.PyArray_SIZE(aq) != n:
            raise ValueError(f"q: expected {n} values")
        if M is None:
            if self.dyn is None:
                raise ValueError("M: required without set_dynamics")
            return self._refresh_inertia_dyn(_data(aq), eps)
        else:
            aM = _c_double(M)
            if cnp.PyArray_SIZE(aM) != n * n:
                raise ValueError(f"M: expected {n}x{n} values")
            Mp = _data(aM)
        fk_jac_c(&self.kernel.c, _data(aq), T, J)
        return _sqrt_inertia_c(n, J, Mp, eps, self.A_sqrt)

    cdef int _refresh_inertia_dyn(self, const double* q, double eps) except -2:
        """``refresh_inertia(q, None, eps)``: the ``set_dynamics`` chain's mass matrix (dyn set, n known)."""
        cdef int n = self.n
        cdef double T[16]
        cdef double J[6 * MAX_DOF]
        cdef double Mbuf[MAX_DOF * MAX_DOF]
        cdef int i
        crba_c(n, self.dyn.c.T_fixed, self.dyn.c.jtype, self.dyn.c.inertia, q, Mbuf)
        for i in range(n):
            Mbuf[i * n + i] += self.dyn.c.armature[i]  # the drives' reflected rotor inertia
        fk_jac_c(&self.kernel.c, q, T, J)
        return _sqrt_inertia_c(n, J, Mbuf, eps, self.A_sqrt)

    def set_sqrt_inertia(self, const double[:, ::1] A):
        """Lambda^1/2 (6x6) computed elsewhere (numpy's route, when ``refresh_inertia`` declined)."""
        cdef int i
        for i in range(36):
            self.A_sqrt[i] = A[i // 6, i % 6]

    def set_damping_factors(self, const double[:, ::1] Z, const double[:, ::1] K1):
        """The design's base-frame factors Z = B diag(zeta) B^T and K1 = B diag(sqrt k) B^T (6x6 each)."""
        cdef int i
        for i in range(36):
            self.Z_fac[i] = Z[i // 6, i % 6]
            self.K1_fac[i] = K1[i // 6, i % 6]

    def apply_inertia_damping(self):
        """Use D_base = A Z K1 + K1 Z A (A = Lambda^1/2; = A Z K1 + (A Z K1)^T, all three symmetric)."""
        self._apply_inertia_damping()

    cdef void _apply_inertia_damping(self) noexcept:
        cdef double AZ[36]
        cdef double AZK[36]
        cdef int i, j
        _mul6(self.A_sqrt, self.Z_fac, AZ)
        _mul6(AZ, self.K1_fac, AZK)
        for i in range(6):
            for j in range(6):
                self.D_base[6 * i + j] = AZK[6 * i + j] + AZK[6 * j + i]
        self.damping_in_base = True

    def set_damping_base(self, const double[:, ::1] D_base):
        """Use this base-frame damping (e.g. designed from the Cartesian inertia) instead of D_task."""
        cdef int i
        if D_base is None:
            self.damping_in_base = False
            return
        self.damping_in_base = True
        for i in range(36):
            self.D_base[i] = D_base[i // 6, i % 6]

    def set_feedforward(self, const double[::1] v_d, const double[::1] w_ff):
        """Desired tool twist v_d (base frame) and feed-forward wrench w_ff (None: zero)."""
        cdef int i
        for i in range(6):
            self.v_d[i] = v_d[i] if v_d is not None else 0.0
            self.w_ff[i] = w_ff[i] if w_ff is not None else 0.0

    def set_nullspace(self, const double[::1] q_n, const double[::1] k_n, const double[::1] d_n,
                      double lam2=1e-6):
        """Posture term k_n (q_n - q) - d_n dq, projected into the task null space (used if n > 6)."""
        cdef int i
        if q_n is None:
            self.has_null = False
            return
        for i in range(self.n):
            self.q_n[i] = q_n[i]
            self.k_n[i] = k_n[i]
            self.d_n[i] = d_n[i]
        self.lam2 = lam2
        self.has_null = True

    def set_limits(self, const double[::1] tau_max, const double[::1] dtau_max):
        """Per-joint saturation (N m) and rate limit (N m/s); None disables each."""
        cdef int i
        self.has_tau_max = tau_max is not None
        self.has_dtau_max = dtau_max is not None
        for i in range(self.n):
            if tau_max is not None:
                self.tau_max[i] = tau_max[i]
            if dtau_max is not None:
                self.dtau_max[i] = dtau_max[i]

    def reset_rate_limit(self, const double[::1] tau_prev=None):
        """Forget (None) or set the previous torque the rate limit starts from."""
        cdef int i
        if tau_prev is None:
            self.has_prev = False
            return
        for i in range(self.n):
            self.tau_prev[i] = tau_prev[i]
        self.has_prev = True

    def set_dynamics(self, ChainKernel dyn, bint gravity=True, bint coriolis=False):
        """Add ``dyn``'s gravity torque (and with ``coriolis`` its C(q, dq) dq) inside ``step`` when no
        ``g`` is passed; ``dyn=None`` turns it off. ``dyn`` describes the same joints (its payload may
        differ from the kinematic chain's tool)."""
        if dyn is not None and dyn._n() != self.n:
            raise ValueError(f"dyn: has {dyn.c.n} joints, the step {self.n}")
        self.dyn = dyn
        self.use_gravity = dyn is not None and gravity
        self.use_coriolis = dyn is not None and coriolis

    def error(self, out=None):
        """The last pose error [dp; drot] (6,), base frame: into ``out`` or a new array."""
        cdef cnp.ndarray o = as_output("out", out, 1, 6, 0, 0)
        cdef double* p = <double*>cnp.PyArray_DATA(o)
        cdef int i
        for i in range(6):
            p[i] = self.e[i]
        return o

    def wrench(self, out=None):
        """The last commanded wrench (6,), base frame, at the tool origin: into ``out`` or a new array."""
        cdef cnp.ndarray o = as_output("out", out, 1, 6, 0, 0)
        cdef double* p = <double*>cnp.PyArray_DATA(o)
        cdef int i
        for i in range(6):
            p[i] = self.w[i]
        return o

    def pose(self, out=None):
        """The last tool pose T_base_tool (4x4): into ``out`` or a new array."""
        cdef cnp.ndarray o = as_output("out", out, 2, 4, 4, 0)
        cdef double* p = <double*>cnp.PyArray_DATA(o)
        cdef int i
        for i in range(16):
            p[i] = self.T[i]
        return o

    def gains_base(self, double[:, ::1] K_out, double[:, ::1] D_out):
        """Copy the base-frame K and D used in the last step."""
        cdef int i
        for i in range(36):
            K_out[i // 6, i % 6] = self.K_base[i]
            D_out[i // 6, i % 6] = self.D_base[i]

    def step(self, q, dq, T_target, g, double dt, out=None):
        """One cycle: out = limits(J^T (K e + D (v_d - J dq) + w_ff) + g + N tau_posture); returns out.

        q, dq: joint state (n); T_target: T_base_target (4x4); g: gravity torque (n), or None for
        the ``set_dynamics`` chain's (or none); dt: time since the previous step (s) for the rate
        limit (<= 0: no rate limit this step); out: a writable C-contiguous float64 array of n
        torques, or None for a new one. Sizes are checked (ValueError); values are not (the
        controller validates targets; NaN propagates to the supervisor).
        Arrays are taken by pointer (no buffer acquisition): this is the per-cycle call.
        """
        cdef int n = self.n
        cdef cnp.ndarray aq = _c_double(q)
        cdef cnp.ndarray adq = _c_double(dq)
        cdef cnp.ndarray aT = _c_double(T_target)
        cdef cnp.ndarray ag = None
        cdef const double* pg = NULL
        if cnp.PyArray_SIZE(aq) != n or cnp.PyArray_SIZE(adq) != n:
            raise ValueError(f"q, dq: expected {n} values each")
        if cnp.PyArray_SIZE(aT) != 16:
            raise ValueError("T_target: expected a 4x4 array")
        if g is not None:
            ag = _c_double(g)
            if cnp.PyArray_SIZE(ag) != n:
                raise ValueError(f"g: expected {n} values")
            pg = <const double*>cnp.PyArray_DATA(ag)
        cdef cnp.ndarray o
        if out is None:
            o = as_output("out", None, 1, n, 0, 0)
        else:
            if not cnp.PyArray_Check(out):
                raise ValueError(f"out: expected a writable C-contiguous float64 array of {n} values")
            o = <cnp.ndarray>out
            if (cnp.PyArray_TYPE(o) != cnp.NPY_DOUBLE or not cnp.PyArray_IS_C_CONTIGUOUS(o)
                    or not cnp.PyArray_ISWRITEABLE(o) or cnp.PyArray_SIZE(o) != n):
                raise ValueError(f"out: expected a writable C-contiguous float64 array of {n} values")
        with nogil:
            self._step(<const double*>cnp.PyArray_DATA(aq), <const double*>cnp.PyArray_DATA(adq),
                       <const double*>cnp.PyArray_DATA(aT), pg, dt, <double*>cnp.PyArray_DATA(o))
        return o

    def command(self, q, dq, T_target, g, double dt, x_d):
        """``step`` into a new array, returned as the controller's ``JointCommand`` (torque mode) with
        ``info = {"x_d": x_d, "error": the pose error}``: the whole per-cycle output in one call."""
        tau = self.step(q, dq, T_target, g, dt)
        return torque_command_c(tau, {"x_d": x_d, "error": self.error()})

    cdef object _command(self, const double* q, const double* dq, const double* Td, double dt, object x_d):
        """``command(q, dq, Td, None, dt, x_d)`` on raw pointers (sizes known): what ``command`` returns."""
        cdef int i, n = self.n
        cdef cnp.ndarray tau = new_f64(1, n, 0, 0)
        cdef cnp.ndarray err = new_f64(1, 6, 0, 0)
        cdef double* pe = <double*>cnp.PyArray_DATA(err)
        self._step(q, dq, Td, NULL, dt, <double*>cnp.PyArray_DATA(tau))
        for i in range(6):
            pe[i] = self.e[i]
        return torque_command_c(tau, {"x_d": x_d, "error": err})

    cdef void _step(self, const double* q, const double* dq, const double* Td, const double* g,
                    double dt, double* tau) noexcept nogil:
        cdef int i, j, k, n = self.n
        cdef double R[9]
        cdef double tau0[MAX_DOF]
        cdef double bias[MAX_DOF]
        cdef double s
        fk_jac_c(&self.kernel.c, q, self.T, self.J)
        if g == NULL and (self.use_gravity or self.use_coriolis):
            rnea_c(n, self.dyn.c.T_fixed, self.dyn.c.jtype, self.dyn.c.inertia, q,
                   dq if self.use_coriolis else NULL, NULL, self.dyn.c.gravity if self.use_gravity else NULL, bias)
            g = bias
        if self.follow_target:
            for i in range(3):
                for j in range(3):
                    s = 0.0
                    for k in range(3):
                        s = s + Td[4 * i + k] * self.R_target_task[3 * k + j]
                    R[3 * i + j] = s
            _rotate_gain(R, self.K_task, self.K_base)
            if not self.damping_in_base:
                _rotate_gain(R, self.D_task, self.D_base)
        else:
            for i in range(36):
                self.K_base[i] = self.K_task[i]
                if not self.damping_in_base:
                    self.D_base[i] = self.D_task[i]
        _cartesian_law(n, self.T, self.J, dq, Td, self.K_base, self.D_base, self.v_d, self.w_ff, g,
                       self.e, self.w, tau)
        if self.has_null and n > 6:
            for j in range(n):
                tau0[j] = self.k_n[j] * (self.q_n[j] - q[j]) - self.d_n[j] * dq[j]
            _nullspace_add(n, self.J, tau0, self.lam2, tau)
        _limit(n, tau, self.tau_max if self.has_tau_max else NULL,
               self.tau_prev if (self.has_prev and dt > 0.0) else NULL, dt,
               self.dtau_max if self.has_dtau_max else NULL)
        for j in range(n):
            self.tau_prev[j] = tau[j]
        self.has_prev = True


# ----------------------------------------------------------------------------- Cartesian inertia

cdef inline void _jacobi_eig6(double* A, double* V) noexcept nogil:
    """Eigen-decomposition of a symmetric 6x6 A (row-major) by cyclic Jacobi rotations.

    On return A's diagonal holds the eigenvalues and V's columns the eigenvectors (A = V diag V^T).
    """
    cdef int i, p, q, k, sweep
    cdef double off, diag, apq, theta, t, c, s, akp, akq
    for i in range(36):
        V[i] = 1.0 if i % 7 == 0 else 0.0
    for sweep in range(60):
        off = 0.0
        diag = 0.0
        for p in range(6):
            diag = diag + A[7 * p] * A[7 * p]
            for q in range(p + 1, 6):
                off = off + A[6 * p + q] * A[6 * p + q]
        if off <= 1e-36 * diag or off == 0.0:   # off-diagonal part below rounding of the diagonal
            return
        for p in range(5):
            for q in range(p + 1, 6):
                apq = A[6 * p + q]
                if apq == 0.0:
                    continue
                theta = (A[7 * q] - A[7 * p]) / (2.0 * apq)
                if fabs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = 1.0 / (fabs(theta) + sqrt(theta * theta + 1.0))
                    if theta < 0.0:
                        t = -t
                c = 1.0 / sqrt(t * t + 1.0)
                s = t * c
                for k in range(6):            # A <- A G
                    akp = A[6 * k + p]
                    akq = A[6 * k + q]
                    A[6 * k + p] = c * akp - s * akq
                    A[6 * k + q] = s * akp + c * akq
                for k in range(6):            # A <- G^T A
                    akp = A[6 * p + k]
                    akq = A[6 * q + k]
                    A[6 * p + k] = c * akp - s * akq
                    A[6 * q + k] = s * akp + c * akq
                for k in range(6):            # V <- V G
                    akp = V[6 * k + p]
                    akq = V[6 * k + q]
                    V[6 * k + p] = c * akp - s * akq
                    V[6 * k + q] = s * akp + c * akq


cdef int _sqrt_inertia_c(int n, const double* J, const double* M, double eps, double* out) noexcept nogil:
    """out = Lambda^1/2 (see ``sqrt_cartesian_inertia``); 0, or -1 for a non-finite value or M not SPD."""
    cdef int i, j, k
    cdef double s
    cdef double L[MAX_DOF * MAX_DOF]
    cdef double X[6 * MAX_DOF]
    cdef double S[36]
    cdef double V[36]
    cdef double r[6]
    for i in range(6 * n):
        if not (J[i] - J[i] == 0.0):
            return -1
    for i in range(n):               # Cholesky M = L L^T (lower, row-major, stride n)
        for j in range(i + 1):
            s = M[n * i + j]
            if not (s - s == 0.0):
                return -1
            for k in range(j):
                s = s - L[n * i + k] * L[n * j + k]
            if i == j:
                if not (s > 0.0):
                    return -1
                L[n * i + i] = sqrt(s)
            else:
                L[n * i + j] = s / L[n * j + j]
    for i in range(6):               # X_i = M^-1 J_i^T (J_i: row i of J)
        for j in range(n):
            s = J[n * i + j]
            for k in range(j):
                s = s - L[n * j + k] * X[n * i + k]
            X[n * i + j] = s / L[n * j + j]
        for j in range(n - 1, -1, -1):
            s = X[n * i + j]
            for k in range(j + 1, n):
                s = s - L[n * k + j] * X[n * i + k]
            X[n * i + j] = s / L[n * j + j]
    for i in range(6):               # S = J M^-1 J^T, symmetrised
        for j in range(i + 1):
            s = 0.0
            for k in range(n):
                s = s + 0.5 * (J[n * i + k] * X[n * j + k] + J[n * j + k] * X[n * i + k])
            S[6 * i + j] = s
            S[6 * j + i] = s
    _jacobi_eig6(S, V)
    for k in range(6):
        s = S[7 * k]
        if not (s >= eps):
            s = eps
        r[k] = 1.0 / sqrt(s)
    for i in range(6):               # out = V diag(r) V^T
        for j in range(i + 1):
            s = 0.0
            for k in range(6):
                s = s + V[6 * i + k] * r[k] * V[6 * j + k]
            out[6 * i + j] = s
            out[6 * j + i] = s
    return 0


def sqrt_cartesian_inertia(const double[:, ::1] J, const double[:, ::1] M, double eps, double[:, ::1] out):
    """out (6x6) = Lambda^1/2, Lambda = (J M^-1 J^T)^-1, the eigenvalues of J M^-1 J^T floored at eps.

    J: 6 x n, M: n x n symmetric positive definite (n <= MAX_DOF). Returns 0, or -1 (out untouched)
    when a value is not finite, M is not positive definite or the sizes do not fit; the Python face
    then takes numpy's route (``impedance.cartesian_inertia``), which agrees to rounding.
    """
    cdef int n = J.shape[1]
    cdef int code
    if J.shape[0] != 6 or M.shape[0] != n or M.shape[1] != n or n > MAX_DOF or n < 1:
        return -1
    if out.shape[0] != 6 or out.shape[1] != 6:
        return -1
    with nogil:
        code = _sqrt_inertia_c(n, &J[0, 0], &M[0, 0], eps, &out[0, 0])
    return code


# ----------------------------------------------------------------------------- the controller's cycle

cdef object _JointState = JointState


cdef inline bint _f64_vec(object a, Py_ssize_t n):
    """a is a C-contiguous float64 ndarray of n values (any shape)."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_DOUBLE
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) and cnp.PyArray_SIZE(<cnp.ndarray>a) == n)


cdef class CartesianImpedanceCore:
    """The compiled base of ``machaon.control.impedance.CartesianImpedance``: its per-cycle state and ``update``.

    ``update`` runs the common cycle in compiled code: the controller active, no gain ramp, no
    fixtures, gravity (if any) from the compiled chain, a ``JointState`` whose q and dq are
    C-contiguous float64 arrays of the controller's size, a float ``t``; a Cartesian-inertia refresh
    that falls due is done here too when the mass matrix comes from the compiled chain and the
    damping design's factors still hold (same gains, target and task frame), and a new target's
    feed-forward is taken here. It then leaves the controller exactly as the full cycle would and
    returns the same command. Anything else (activation, a ramp, fixtures, a duck-typed dynamics or
    mass model, new damping factors, a refresh the kernel declines, other input types, bad input)
    is handed, before anything was changed, to the Python ``_update_python``, which is the full
    cycle written out.
    """

    cdef public object chain
    cdef public object dynamics
    cdef public object fixtures
    cdef public object _mass
    cdef public object _lock
    cdef public object _target
    cdef public object _gains
    cdef public object _cur_k
    cdef public object _cur_z
    cdef public object _ramp
    cdef public object _t_prev
    cdef public object _dfac_key
    cdef public object _ff_target
    cdef public CartesianStep _step
    cdef public int dof
    cdef public double inertia_period_s
    cdef public double _t_inertia
    cdef public bint _activated
    cdef public bint _have_lambda
    cdef public bint _mass_in_kernel
    cdef public bint _gravity_outside

    def __cinit__(self, *args, **kwargs):
        self._t_inertia = -INFINITY
        self.inertia_period_s = 0.01

    def update(self, state, t):
        """One control cycle: ``JointState`` in, ``JointCommand`` (torque mode) out (see the class docstring
        of ``CartesianImpedance``). Bad input raises ``ValueError``."""
        cmd = self._fast(state, t)
        if cmd is not None:
            return cmd
        return self._update_python(state, t)

    cdef object _fast(self, object state, object t):
        """The common cycle's command, or None having changed nothing (the full cycle then runs)."""
        cdef CartesianStep step = self._step
        cdef tuple tgt
        cdef object q, dq, Td, gains, k, z, key, v_d, w_ff, t_prev
        cdef double tt, dt
        cdef bint refresh = False, new_ff
        cdef int i, n = self.dof
        cdef double A_new[36]
        cdef double A_old[36]
        if (not self._activated or self._ramp is not None or self.fixtures is not None or self._gravity_outside
                or step is None or type(t) is not float or type(state) is not _JointState):
            return None
        q = attr_or_none(state, "q")
        dq = attr_or_none(state, "dq")
        if not (_f64_vec(q, n) and _f64_vec(dq, n) and cnp.PyArray_NDIM(<cnp.ndarray>q) == 1
                and cnp.PyArray_NDIM(<cnp.ndarray>dq) == 1):
            return None
        if type(self._target) is not tuple:
            return None
        tgt = <tuple>self._target
        Td = tgt[0]
        if not _f64_vec(Td, 16):
            return None
        tt = <double>t
        gains = self._gains
        k = gains.stiffness
        z = gains.damping_ratio
        # The Cartesian-inertia refresh, when it falls due: here only with the kernel's mass matrix and
        # unchanged damping factors, computed into a scratch buffer first (nothing changes on a decline).
        if self._mass is not None and (tt - self._t_inertia >= self.inertia_period_s or not self._have_lambda):
            key = self._dfac_key
            if (not self._mass_in_kernel or step.dyn is None or type(key) is not tuple or len(<tuple>key) != 4
                    or (<tuple>key)[0] is not k or (<tuple>key)[1] is not z or (<tuple>key)[2] is not Td
                    or (<tuple>key)[3] is not gains):
                return None
            for i in range(36):
                A_old[i] = step.A_sqrt[i]
            if step._refresh_inertia_dyn(<const double*>cnp.PyArray_DATA(<cnp.ndarray>q), 1e-6) != 0:
                for i in range(36):
                    step.A_sqrt[i] = A_old[i]
                return None
            refresh = True
        new_ff = tgt is not self._ff_target
        if new_ff:
            v_d = tgt[1]
            w_ff = tgt[2]
            if not ((v_d is None or _f64_vec(v_d, 6)) and (w_ff is None or _f64_vec(w_ff, 6))):
                if refresh:
                    for i in range(36):
                        step.A_sqrt[i] = A_old[i]
                return None
        # Committed: the full cycle's state changes, in its order.
        self._cur_k = k
        self._cur_z = z
        if refresh:
            self._have_lambda = True
            self._t_inertia = tt
            step._apply_inertia_damping()
        if new_ff:
            for i in range(6):
                step.v_d[i] = (<const double*>cnp.PyArray_DATA(<cnp.ndarray>v_d))[i] if v_d is not None else 0.0
                step.w_ff[i] = (<const double*>cnp.PyArray_DATA(<cnp.ndarray>w_ff))[i] if w_ff is not None else 0.0
            self._ff_target = tgt
        t_prev = self._t_prev
        self._t_prev = t
        dt = 0.0 if t_prev is None else tt - <double>t_prev
        return step._command(<const double*>cnp.PyArray_DATA(<cnp.ndarray>q),
                             <const double*>cnp.PyArray_DATA(<cnp.ndarray>dq),
                             <const double*>cnp.PyArray_DATA(<cnp.ndarray>Td), dt, tgt[3])
