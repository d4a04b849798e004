# cython: language_level=3
"""The assist controller's per-cycle law in compiled code (``machaon.exo.controller``'s worker).

``AssistLaw.step`` evaluates, for the four joints (hip_l, knee_l, hip_r, knee_r), the reference
gait (the periodic cubic spline of ``ReferenceGait``, evaluated as ``scipy.interpolate.PPoly``
does), the phase-binned adaptive stiffness, the myoelectric, profile and impedance torques and
the rate, torque and power limits, exactly as the module docstring of ``machaon.exo.controller``
states them. ``limit`` is the limiter alone; ``activation`` the MVC-normalised, clipped EMG
activation; ``profile`` the normalised assist pattern. Prior validation is assumed: the
controller checks the joint state (``finite_state``) and the configuration before calling.
"""

cimport numpy as cnp
from libc.math cimport exp, fabs, floor, fmod, isfinite

import numpy as np

cnp.import_array()

cdef enum:
    NJ = 4


cdef inline double _pymod1(double a) noexcept nogil:
    """a % 1.0 with Python's sign convention (result in [0, 1))."""
    cdef double m = fmod(a, 1.0)
    if m != 0.0 and m < 0.0:
        m = m + 1.0
    return m


cdef inline double _wrap_half(double x) noexcept nogil:
    return _pymod1(x + 0.5) - 0.5


cdef inline double _bump(double phase, double center, double width) noexcept nogil:
    cdef double d = _pymod1(phase - center + 0.5) - 0.5
    return exp(-0.5 * (d / width) * (d / width))


cdef inline void _profile(double phase, double* out) noexcept nogil:
    """[hip, knee] assist pattern at gait phase (peak ~1, flexion +)."""
    out[0] = 1.0 * _bump(phase, 0.60, 0.07) - 0.6 * _bump(phase, 0.05, 0.06)
    out[1] = 0.5 * _bump(phase, 0.62, 0.05) - 0.6 * _bump(phase, 0.90, 0.05)


def profile(double phase):
    """The normalised assist pattern [hip, knee] (2,) at a gait phase (see ``assist_profile``)."""
    cdef double v[2]
    _profile(phase, v)
    return np.array([v[0], v[1]])


cdef inline double _clip(double v, double lo, double hi) noexcept nogil:
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


def finite_state(q, dq, int n):
    """True if q and dq are float64 (n,) arrays of finite values (any layout)."""
    cdef Py_ssize_t i
    for a in (q, dq):
        if not (isinstance(a, np.ndarray) and a.shape == (n,) and a.dtype == np.float64):
            return False
    cdef double[:] qa = q
    cdef double[:] va = dq
    for i in range(n):
        if not (isfinite(qa[i]) and isfinite(va[i])):
            return False
    return True


def any_saturated(const double[:, :] emg, double threshold_v):
    """True if any |sample| >= threshold_v (V)."""
    cdef Py_ssize_t i, j
    for i in range(emg.shape[0]):
        for j in range(emg.shape[1]):
            if fabs(emg[i, j]) >= threshold_v:
                return True
    return False


cdef class AssistLaw:
    """Constants of one ``AssistController`` (``cfg``: its ``AssistConfig``; ``spline``: the reference
    gait's ``CubicSpline`` of (hip, knee, ankle) in rad over phase [0, 1]; ``mvc_v``: per EMG
    channel MVC levels, V)."""

    cdef int nb
    cdef double k_min, k_max, adapt_gain, tol, lag_gain, forget, lead_decay, deadband, d_ratio
    cdef double k_myo[NJ]
    cdef double profile_nm[NJ]
    cdef double tau_max[NJ]
    cdef double power_max[NJ]
    cdef double rate_max[NJ]
    cdef int flex[NJ]
    cdef int ext[NJ]
    cdef int nch
    cdef cnp.ndarray _mvc
    cdef cnp.ndarray _bx             # spline breakpoints (m + 1)
    cdef cnp.ndarray _bc             # spline coefficients (k, m, 3), highest power first
    cdef int m, k
    cdef object _args

    def __cinit__(self, cfg, spline, mvc_v):
        cdef int j
        self._args = (cfg, spline, mvc_v)
        if len(cfg.joints) != NJ:
            raise ValueError("the assist law drives exactly 4 joints")
        self.nb = int(cfg.phase_bins)
        if self.nb < 1:
            raise ValueError("phase_bins must be >= 1")
        self.k_min, self.k_max = cfg.k_min, cfg.k_max
        self.adapt_gain, self.tol, self.lag_gain = cfg.adapt_gain, cfg.error_tolerance_rad, cfg.lag_gain
        self.forget, self.lead_decay, self.deadband = cfg.forget_per_s, cfg.lead_decay_per_s, cfg.phase_deadband
        self.d_ratio = cfg.d_ratio_s
        self._mvc = np.ascontiguousarray(mvc_v, dtype=np.float64).reshape(-1)
        self.nch = self._mvc.shape[0]
        for j in range(NJ):
            self.k_myo[j] = cfg.k_myo_nm[j]
            self.profile_nm[j] = cfg.profile_nm[j]
            self.tau_max[j] = cfg.tau_max_nm[j]
            self.power_max[j] = cfg.power_max_w[j]
            self.rate_max[j] = cfg.rate_max_nm_s[j]
            self.flex[j], self.ext[j] = int(cfg.emg_pairs[j][0]), int(cfg.emg_pairs[j][1])
            if not (0 <= self.flex[j] < self.nch and 0 <= self.ext[j] < self.nch):
                raise ValueError("emg_pairs: channel index outside the MVC levels")
        self._bx = np.ascontiguousarray(spline.x, dtype=np.float64)
        self._bc = np.ascontiguousarray(spline.c, dtype=np.float64)
        if self._bc.ndim != 3 or self._bc.shape[2] < 2 or self._bc.shape[1] != self._bx.shape[0] - 1:
            raise ValueError("spline: expected coefficients (k, m, >= 2 curves) on m + 1 breakpoints")
        self.k, self.m = self._bc.shape[0], self._bc.shape[1]

    def __reduce__(self):
        return (AssistLaw, self._args)

    cdef void _spline(self, double x, int dx, double* out) noexcept:
        """hip and knee (curves 0, 1) of the spline, or their dx-th derivative, at x in [x0, xm]."""
        cdef const double* bx = <const double*>cnp.PyArray_DATA(self._bx)
        cdef const double* bc = <const double*>cnp.PyArray_DATA(self._bc)
        cdef int lo = 0, hi = self.m, mid, kp, j, ncurve = <int>cnp.PyArray_DIM(self._bc, 2)
        cdef double s, z, prefactor, res
        # interval i with bx[i] <= x < bx[i + 1] (the last one for x = bx[m]), as PPoly finds it
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if x >= bx[mid]:
                lo = mid
            else:
                hi = mid
        s = x - bx[lo]
        for j in range(2):
            res = 0.0
            z = 1.0
            for kp in range(self.k):
                if dx == 0:
                    prefactor = 1.0
                else:               # d/ds of s^kp (dx = 1 only)
                    prefactor = kp if kp >= 1 else 0.0
                if dx == 0 or kp >= 1:
                    res = res + bc[(self.k - kp - 1) * self.m * ncurve + lo * ncurve + j] * z * prefactor
                if kp < self.k - 1 and kp >= dx:
                    z = z * s
            out[j] = res

    def activation(self, const double[::1] env, double[::1] out):
        """out = clip(env / mvc_v, 0, 1.5): MVC-normalised activation of the newest envelope sample."""
        cdef int c
        cdef const double* mv = <const double*>cnp.PyArray_DATA(self._mvc)
        for c in range(self.nch):
            out[c] = _clip(env[c] / mv[c], 0.0, 1.5)

    cdef void _limit(self, double* tau, const double* dq, double dt, double* tau_prev) noexcept:
        cdef int j
        cdef double step, speed, cap
        for j in range(NJ):
            if dt > 0.0:           # rate limit first, then the hard torque and power caps
                step = self.rate_max[j] * dt
                tau[j] = _clip(tau[j], tau_prev[j] - step, tau_prev[j] + step)
            tau[j] = _clip(tau[j], -self.tau_max[j], self.tau_max[j])
            speed = fabs(dq[j])
            if speed < 1e-9:
                speed = 1e-9
            cap = self.power_max[j] / speed
            tau[j] = _clip(tau[j], -cap, cap)
            tau_prev[j] = tau[j]

    def limit(self, tau, const double[::1] dq, double dt, double[::1] tau_prev):
        """Rate (against tau_prev, if dt > 0), torque and power (|tau dq|) limits; returns a new
        (4,) array and stores it in tau_prev."""
        cdef cnp.ndarray out = np.array(tau, dtype=np.float64).reshape(NJ)
        self._limit(<double*>cnp.PyArray_DATA(out), &dq[0], dt, &tau_prev[0])
        return out

    def step(self, const double[::1] q, const double[::1] dq, double ph_l, double ph_r, double ref_l,
             double ref_r, double stride_s, double dt, const double[::1] act, double[:, ::1] K_table,
             double[::1] tau_prev):
        """One assisting cycle: returns (tau, q_ref, K, tau_myo, tau_profile, tau_impedance), each (4,).

        ``ph_*``: the legs' (smoothed) phases; ``ref_*``: their reference phases; ``stride_s``: the
        stride time (s); ``act``: EMG activations; ``K_table`` (4, phase_bins) is adapted in place;
        ``tau_prev`` (4,) is the previous command (in: for the rate limit; out: this one).
        """
        cdef cnp.npy_intp dims[1]
        dims[0] = NJ
        cdef cnp.ndarray a_tau = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef cnp.ndarray a_qref = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef cnp.ndarray a_K = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef cnp.ndarray a_myo = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef cnp.ndarray a_prof = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef cnp.ndarray a_imp = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        cdef double* tau = <double*>cnp.PyArray_DATA(a_tau)
        cdef double* qref = <double*>cnp.PyArray_DATA(a_qref)
        cdef double* K = <double*>cnp.PyArray_DATA(a_K)
        cdef double* myo = <double*>cnp.PyArray_DATA(a_myo)
        cdef double* prof = <double*>cnp.PyArray_DATA(a_prof)
        cdef double* imp = <double*>cnp.PyArray_DATA(a_imp)
        cdef double dqref[NJ]
        cdef double pr[NJ]
        cdef double lead[NJ]
        cdef double refp[NJ]
        cdef double v[2]
        cdef int j, b0, b1, nb = self.nb
        cdef double pos, frac, e, lag, excess, dK, Kb, need
        cdef bint leading
        cdef double ph, ref
        cdef int side
        if K_table.shape[0] != NJ or K_table.shape[1] != nb:
            raise ValueError(f"K_table: expected shape ({NJ}, {nb})")
        if q.shape[0] != NJ or dq.shape[0] != NJ or tau_prev.shape[0] != NJ or act.shape[0] != self.nch:
            raise ValueError("q, dq, tau_prev: 4 values each; act: one per EMG channel")
        for side in range(2):
            j = 2 * side
            ph = ph_l if side == 0 else ph_r
            ref = ref_l if side == 0 else ref_r
            self._spline(_pymod1(ref), 0, v)
            qref[j], qref[j + 1] = v[0], v[1]
            self._spline(_pymod1(ref), 1, v)
            dqref[j], dqref[j + 1] = v[0] / stride_s, v[1] / stride_s
            _profile(ref, v)
            pr[j], pr[j + 1] = v[0], v[1]
            lead[j] = lead[j + 1] = _wrap_half(ph - ref)
            refp[j] = refp[j + 1] = ref
        for j in range(NJ):
            e = qref[j] - q[j]
            # Assist as needed: stiffness grows with the tracking error, faster while lagging, and
            # decays by forgetting, faster while the wearer leads; a table over the gait phase.
            lag = -lead[j] - self.deadband
            if lag < 0.0:
                lag = 0.0
            leading = lead[j] > self.deadband
            pos = refp[j] * nb
            b0 = <int>floor(pos) % nb
            if b0 < 0:
                b0 += nb
            frac = pos - floor(pos)
            b1 = (b0 + 1) % nb
            excess = fabs(e) - self.tol
            if excess < 0.0:
                excess = 0.0
            dK = self.adapt_gain * excess * (1.0 + self.lag_gain * lag) * (0.0 if leading else 1.0)
            Kb = K_table[j, b0]
            dK = dK - (self.forget * Kb + self.lead_decay * Kb * (1.0 if leading else 0.0))
            K_table[j, b0] = _clip(Kb + dt * dK, self.k_min, self.k_max)
            K[j] = (1.0 - frac) * K_table[j, b0] + frac * K_table[j, b1]
            imp[j] = K[j] * e + self.d_ratio * K[j] * (dqref[j] - dq[j])
            need = K[j] / self.k_max
            myo[j] = need * (self.k_myo[j] * (act[self.flex[j]] - act[self.ext[j]]))
            prof[j] = self.profile_nm[j] * pr[j] * need
            tau[j] = myo[j] + prof[j] + imp[j]
        self._limit(tau, &dq[0], dt, &tau_prev[0])
        return a_tau, a_qref, a_K, a_myo, a_prof, a_imp
