# cython: language_level=3
"""The streaming EMG chain in compiled code: band-pass + notches, rectification, envelope, quality.

``EMGKernel.process(block)`` filters one block of raw EMG (samples, channels) in volts and returns
its envelope, keeping every filter's state between blocks. The filters are SciPy's designs
(``machaon.exo.emg.design_filters``) run with SciPy's own recurrences: second-order sections in
transposed direct form II as ``scipy.signal.sosfilt`` computes them, and the RMS envelope's FIR
as ``scipy.signal.lfilter`` does, so a recording processed block by block equals SciPy's offline
filtering to rounding. ``QualityKernel`` keeps the channel-quality statistics
(``machaon.exo.emg.QualityMonitor``): saturation counts, band-passed power and the power of a
mains resonator on the raw signal, folded into exponentially weighted means every ``chunk``
samples. Both check their blocks (``ValueError`` naming ``emg``) before changing any state.
"""

cimport numpy as cnp
from libc.math cimport fabs, isfinite, pow, sqrt
from libc.string cimport memset

import numpy as np

cnp.import_array()


cdef inline void _sos_df2t(const double* sos, int nsec, double* zi, double* x) noexcept nogil:
    """One sample through ``nsec`` sections (sos rows b0 b1 b2 a0 a1 a2, a0 = 1); zi: nsec x 2."""
    cdef int s
    cdef double x_cur = x[0], x_new
    for s in range(nsec):
        x_new = sos[6 * s] * x_cur + zi[2 * s]
        zi[2 * s] = sos[6 * s + 1] * x_cur - sos[6 * s + 4] * x_new + zi[2 * s + 1]
        zi[2 * s + 1] = sos[6 * s + 2] * x_cur - sos[6 * s + 5] * x_new
        x_cur = x_new
    x[0] = x_cur


cdef inline double _fir_df2t(const double* b, int nb, double* z, double x) noexcept nogil:
    """One sample through an FIR (transposed direct form II, z: nb - 1 delays), as lfilter does."""
    cdef int k
    cdef double y
    if nb == 1:
        return b[0] * x
    y = z[0] + b[0] * x
    for k in range(nb - 2):
        z[k] = z[k + 1] + x * b[k + 1]
    z[nb - 2] = x * b[nb - 1]
    return y


cdef cnp.ndarray _sos(object sos):
    a = np.ascontiguousarray(sos, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 6 or not np.all(a[:, 3] == 1.0):
        raise ValueError("sos: expected (sections, 6) with a0 = 1")
    return a


cdef cnp.ndarray _block(object x, int nch):
    """x as a finite C-contiguous float64 (samples, nch) array, or ValueError naming ``emg``."""
    cdef cnp.ndarray a
    cdef Py_ssize_t i, size
    cdef const double* p
    if (cnp.PyArray_Check(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)):
        a = <cnp.ndarray>x
    else:
        try:
            a = np.ascontiguousarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"emg: not a numeric array ({exc})") from None
    if cnp.PyArray_NDIM(a) == 1:
        a = a.reshape(-1, 1)
    if cnp.PyArray_NDIM(a) != 2:
        raise ValueError(f"emg: expected shape (samples, channels), got {np.shape(a)}")
    if cnp.PyArray_DIM(a, 1) != nch:
        raise ValueError(f"emg: expected {nch} channels, got {cnp.PyArray_DIM(a, 1)}")
    size = cnp.PyArray_SIZE(a)
    p = <const double*>cnp.PyArray_DATA(a)
    for i in range(size):
        if not isfinite(p[i]):
            raise ValueError("emg: contains NaN or Inf")
    return a


cdef class QualityKernel:
    """Streaming statistics of the channel-quality checks (see ``machaon.exo.emg.QualityMonitor``).

    ``sos_mains``: the mains resonator (+ high-pass) run on the raw signal; ``sat_v``: the
    saturation threshold (V); ``alpha``: the per-sample weight of the exponential windows;
    ``chunk``: samples folded at once. ``sat``, ``ms_clean``, ``ms_mains`` (per channel) and
    ``seen`` are the folded statistics, ``any_sat_now`` the last block's saturation flags;
    ``folds`` counts the folds (a change means the statistics changed).
    """

    cdef readonly int nch
    cdef cnp.ndarray _sos_m
    cdef int nsec_m
    cdef cnp.ndarray _zi_m
    cdef double sat_v
    cdef double alpha
    cdef readonly int chunk
    cdef int n_pending
    cdef cnp.ndarray _acc             # 3 x nch: saturated samples, sum clean^2, sum mains^2 (pending)
    cdef readonly cnp.ndarray sat
    cdef readonly cnp.ndarray ms_clean
    cdef readonly cnp.ndarray ms_mains
    cdef readonly cnp.ndarray any_sat_now
    cdef readonly long seen
    cdef readonly long folds

    def __cinit__(self, int nch, sos_mains, double sat_v, double alpha, int chunk):
        if nch < 1 or chunk < 1:
            raise ValueError("nch and chunk must be >= 1")
        self.nch = nch
        self._sos_m = _sos(sos_mains)
        self.nsec_m = self._sos_m.shape[0]
        self._zi_m = np.zeros((nch, self.nsec_m, 2))
        self.sat_v = sat_v
        self.alpha = alpha
        self.chunk = chunk
        self.n_pending = 0
        self._acc = np.zeros((3, nch))
        self.sat = np.zeros(nch)
        self.ms_clean = np.zeros(nch)
        self.ms_mains = np.zeros(nch)
        self.any_sat_now = np.zeros(nch, dtype=bool)
        self.seen = 0
        self.folds = 0

    cdef void _add(self, const double* raw, const double* clean, Py_ssize_t ns) noexcept:
        """Fold a block (ns x nch raw and band-passed samples) into the pending sums."""
        cdef int c, nch = self.nch
        cdef Py_ssize_t i
        cdef double m, r
        cdef double* acc = <double*>cnp.PyArray_DATA(self._acc)
        cdef double* zi = <double*>cnp.PyArray_DATA(self._zi_m)
        cdef const double* sos = <const double*>cnp.PyArray_DATA(self._sos_m)
        cdef cnp.npy_bool* now = <cnp.npy_bool*>cnp.PyArray_DATA(self.any_sat_now)
        if ns == 0:
            return
        for c in range(nch):
            now[c] = 0
        for i in range(ns):
            for c in range(nch):
                r = raw[i * nch + c]
                if fabs(r) >= self.sat_v:
                    acc[c] += 1.0
                    now[c] = 1
                acc[nch + c] += clean[i * nch + c] * clean[i * nch + c]
                m = r
                _sos_df2t(sos, self.nsec_m, zi + 2 * self.nsec_m * c, &m)
                acc[2 * nch + c] += m * m
        self.n_pending += <int>ns
        if self.n_pending >= self.chunk:
            self._fold()

    cdef void _fold(self) noexcept:
        # Block-wise EMA: the block's weight is 1 - (1 - alpha)^n, applied to the block means.
        cdef int c, nch = self.nch, n = self.n_pending
        cdef double w = 1.0 - pow(1.0 - self.alpha, n)
        cdef double* acc = <double*>cnp.PyArray_DATA(self._acc)
        cdef double* sat = <double*>cnp.PyArray_DATA(self.sat)
        cdef double* msc = <double*>cnp.PyArray_DATA(self.ms_clean)
        cdef double* msm = <double*>cnp.PyArray_DATA(self.ms_mains)
        if n == 0:
            return
        for c in range(nch):
            sat[c] += w * (acc[c] / n - sat[c])
            msc[c] += w * (acc[nch + c] / n - msc[c])
            msm[c] += w * (acc[2 * nch + c] / n - msm[c])
        memset(acc, 0, 3 * nch * sizeof(double))
        self.seen += n
        self.n_pending = 0
        self.folds += 1

    def __reduce__(self):
        return (QualityKernel, (self.nch, self._sos_m, self.sat_v, self.alpha, self.chunk),
                (self._zi_m, self._acc, self.sat, self.ms_clean, self.ms_mains, self.any_sat_now, self.seen,
                 self.folds, self.n_pending))

    def __setstate__(self, state):
        zi, acc, sat, msc, msm, now, seen, folds, pending = state
        self._zi_m[...] = zi
        self._acc[...] = acc
        self.sat[...] = sat
        self.ms_clean[...] = msc
        self.ms_mains[...] = msm
        self.any_sat_now[...] = now
        self.seen, self.folds, self.n_pending = seen, folds, pending

    def update(self, raw, clean):
        """Fold a block of raw and band-passed/notched samples (samples, channels), V."""
        cdef cnp.ndarray r = _block(raw, self.nch)
        cdef cnp.ndarray c = _block(clean, self.nch)
        if cnp.PyArray_DIM(r, 0) != cnp.PyArray_DIM(c, 0):
            raise ValueError("clean: must have as many samples as raw")
        self._add(<const double*>cnp.PyArray_DATA(r), <const double*>cnp.PyArray_DATA(c), cnp.PyArray_DIM(r, 0))

    def flush(self):
        """Fold the pending samples now."""
        self._fold()


cdef class EMGKernel:
    """Band-pass + notch (``sos_pre``), rectification and envelope for ``nch`` channels, state kept.

    The envelope is a low-pass (``sos_env``) of the rectified signal, or, with ``rms_taps``, the
    square root of a moving mean of its square (an FIR). ``quality``: the ``QualityKernel`` fed
    with every block (raw and band-passed samples). ``last_envelope`` holds the newest envelope
    sample per channel.
    """

    cdef readonly int nch
    cdef cnp.ndarray _sos_pre
    cdef int nsec_pre
    cdef cnp.ndarray _zi_pre
    cdef cnp.ndarray _sos_env
    cdef int nsec_env
    cdef cnp.ndarray _zi_env
    cdef cnp.ndarray _taps
    cdef int ntaps
    cdef cnp.ndarray _z_fir
    cdef cnp.ndarray _clean          # scratch for the band-passed block (grown as needed)
    cdef readonly cnp.ndarray last_envelope
    cdef readonly long samples_seen
    cdef public QualityKernel quality

    def __cinit__(self, int nch, sos_pre, sos_env=None, rms_taps=None, QualityKernel quality=None):
        if nch < 1:
            raise ValueError("nch must be >= 1")
        if (sos_env is None) == (rms_taps is None):
            raise ValueError("give sos_env or rms_taps")
        self.nch = nch
        self._sos_pre = _sos(sos_pre)
        self.nsec_pre = self._sos_pre.shape[0]
        self._zi_pre = np.zeros((nch, self.nsec_pre, 2))
        if sos_env is not None:
            self._sos_env = _sos(sos_env)
            self.nsec_env = self._sos_env.shape[0]
            self._zi_env = np.zeros((nch, self.nsec_env, 2))
            self.ntaps = 0
        else:
            self._taps = np.ascontiguousarray(rms_taps, dtype=np.float64).reshape(-1)
            self.ntaps = self._taps.shape[0]
            if self.ntaps < 1:
                raise ValueError("rms_taps: at least one tap")
            self._z_fir = np.zeros((nch, max(self.ntaps - 1, 1)))
            self.nsec_env = 0
        self._clean = np.zeros((0, nch))
        self.last_envelope = np.zeros(nch)
        self.samples_seen = 0
        self.quality = quality
        if quality is not None and quality.nch != nch:
            raise ValueError("quality: channel count differs")

    def __reduce__(self):
        env = (self._sos_env, None) if self.ntaps == 0 else (None, self._taps)
        return (EMGKernel, (self.nch, self._sos_pre, *env, self.quality),
                (self._zi_pre, self._zi_env if self.ntaps == 0 else self._z_fir, self.last_envelope,
                 self.samples_seen))

    def __setstate__(self, state):
        zi_pre, zi_env, last, seen = state
        self._zi_pre[...] = zi_pre
        if self.ntaps == 0:
            self._zi_env[...] = zi_env
        else:
            self._z_fir[...] = zi_env
        self.last_envelope[...] = last
        self.samples_seen = seen

    def reset(self):
        """Zero every filter state (e.g. after a long dropout)."""
        self._zi_pre[...] = 0.0
        if self.ntaps:
            self._z_fir[...] = 0.0
        else:
            self._zi_env[...] = 0.0
        self.last_envelope[...] = 0.0

    def process(self, block, out=None):
        """The envelope (samples, channels), V, of one block of raw EMG (samples, channels), V.

        ``out``: a (samples, channels) float64 buffer to fill. A block with NaN/Inf or the wrong
        channel count raises ``ValueError`` (naming ``emg``) and changes nothing.
        """
        cdef int nch = self.nch, c
        cdef cnp.ndarray x = _block(block, nch)
        cdef Py_ssize_t ns = cnp.PyArray_DIM(x, 0), i
        cdef cnp.npy_intp dims[2]
        cdef cnp.ndarray o
        dims[0] = ns
        dims[1] = nch
        if out is None:
            o = cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)
        else:
            o = <cnp.ndarray?>out
            if (cnp.PyArray_TYPE(o) != cnp.NPY_DOUBLE or not cnp.PyArray_IS_C_CONTIGUOUS(o)
                    or cnp.PyArray_NDIM(o) != 2 or cnp.PyArray_DIM(o, 0) != ns or cnp.PyArray_DIM(o, 1) != nch):
                raise ValueError(f"out: expected a C-contiguous float64 array of shape ({ns}, {nch})")
        if ns == 0:
            return o
        if cnp.PyArray_DIM(self._clean, 0) < ns:
            self._clean = np.empty((ns, nch))
        cdef const double* px = <const double*>cnp.PyArray_DATA(x)
        cdef double* pc = <double*>cnp.PyArray_DATA(self._clean)
        cdef double* po = <double*>cnp.PyArray_DATA(o)
        cdef const double* sp = <const double*>cnp.PyArray_DATA(self._sos_pre)
        cdef double* zp = <double*>cnp.PyArray_DATA(self._zi_pre)
        cdef const double* se = NULL
        cdef double* ze = NULL
        cdef const double* taps = NULL
        cdef double* zf = NULL
        cdef double v, ms
        cdef int np_ = self.nsec_pre, ne = self.nsec_env, nt = self.ntaps, zl = max(self.ntaps - 1, 1)
        if nt:
            taps = <const double*>cnp.PyArray_DATA(self._taps)
            zf = <double*>cnp.PyArray_DATA(self._z_fir)
        else:
            se = <const double*>cnp.PyArray_DATA(self._sos_env)
            ze = <double*>cnp.PyArray_DATA(self._zi_env)
        for i in range(ns):
            for c in range(nch):
                v = px[i * nch + c]
                _sos_df2t(sp, np_, zp + 2 * np_ * c, &v)
                pc[i * nch + c] = v
                v = fabs(v)
                if nt:
                    ms = _fir_df2t(taps, nt, zf + zl * c, v * v)
                    po[i * nch + c] = sqrt(ms if ms > 0.0 else 0.0)
                else:
                    _sos_df2t(se, ne, ze + 2 * ne * c, &v)
                    po[i * nch + c] = v
        for c in range(nch):
            (<double*>cnp.PyArray_DATA(self.last_envelope))[c] = po[(ns - 1) * nch + c]
        self.samples_seen += ns
        if self.quality is not None:
            self.quality._add(px, pc, ns)
        return o
