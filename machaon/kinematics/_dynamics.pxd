# Rigid-body dynamics of a z-normalised serial chain (see _chain.pxd for the chain layout).
#
# Every body k (k = 0..n-1) moves with joint k and is described in joint k's normalised frame
# (origin on the joint, z the joint axis) by 13 doubles (INERTIA_SIZE):
#     m, h = m c (3), J (3x3 row-major: rotational inertia about the frame ORIGIN, not the COM)
# in kg, kg m and kg m^2. Everything rigidly attached to the body (fixed links, locked branches,
# a payload) is already folded in. Gravity g is a 3-vector in the base frame (m/s^2).
# Prior validation is assumed: these functions trust their arguments (n <= MAX_DOF, finite values).

cdef enum:
    INERTIA_SIZE = 13
    MAX_BODIES = 32          # = MAX_DOF of _chain.pxd (checked there at import)

# tau (n) = M(q) ddq + C(q, dq) dq + g(q): inverse dynamics by recursive Newton-Euler.
# dq, ddq or g may be NULL (zero). N m (revolute), N (prismatic).
cdef void rnea_c(int n, const double* T_fixed, const int* jtype, const double* inertia,
                 const double* q, const double* dq, const double* ddq, const double* g,
                 double* tau) noexcept nogil

# M_out (n x n, row-major, symmetric): joint-space inertia by the composite-rigid-body algorithm.
cdef void crba_c(int n, const double* T_fixed, const int* jtype, const double* inertia,
                 const double* q, double* M_out) noexcept nogil
