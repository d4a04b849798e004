# Serial-chain kernels shared with other Cython modules (e.g. machaon/control/_impedance.pyx).
#
# A chain of n one-DOF joints is stored "z-normalised": every joint moves about (revolute) or
# along (prismatic) the local z axis of its frame. T_fixed holds n+1 affine 3x4 blocks
# (row-major, 12 doubles each): block k is placed before joint k, block n is the tip (tool)
# placement after the last joint. Units: metres, radians.

cimport numpy as cnp

cdef enum:
    MAX_DOF = 32

cdef struct ChainData:
    int n                    # number of joints
    const double* T_fixed    # (n + 1) x 12
    const double* axes       # n x 3, each joint's axis in its URDF joint frame (informative)
    const int* jtype         # n: 0 revolute, 1 prismatic
    const double* inertia    # n x INERTIA_SIZE body inertias (see _dynamics.pxd)
    double gravity[3]        # m/s^2, base frame
    double armature[MAX_DOF] # kg m^2 (kg): reflected rotor inertia of each joint's drive, on M's diagonal


cdef class ChainKernel:
    cdef ChainData c
    cdef object _T_fixed     # numpy arrays that own the memory ChainData points into
    cdef object _axes
    cdef object _jtype
    cdef object _C           # n x 3 x 3: URDF joint frame = normalised frame @ C[k]^T
    cdef object _lower
    cdef object _upper
    cdef object _inertia_n
    cdef const double* lo
    cdef const double* hi
    cdef int _n(self) except -1


# T_out: 16 doubles, row-major 4x4 homogeneous transform of the tip in the base frame.
cdef void fk_c(const ChainData* c, const double* q, double* T_out) noexcept nogil

# T_out as above; J_out: 6 x n row-major, rows [vx vy vz wx wy wz], base frame, referenced at
# the tip origin (pinocchio's LOCAL_WORLD_ALIGNED frame Jacobian).
cdef void fk_jac_c(const ChainData* c, const double* q, double* T_out, double* J_out) noexcept nogil

# tau_out (n): g(q) [+ C(q, dq) dq when dq is not NULL], the chain's gravity, N m / N.
cdef void bias_torque_c(const ChainData* c, const double* q, const double* dq, double* tau_out) noexcept nogil

# Rotation vector of a 3x3 row-major rotation matrix (the SO(3) log map), robust near 0 and pi.
cdef void log3_c(const double* R, double* w_out) noexcept nogil

# Checked faces' argument handling, shared by every compiled module (errors name the argument):
# as_input: x as a C-contiguous float64 array of the given shape (-1: free dimension), all finite;
#   real numeric inputs of other dtypes/layouts are converted, anything else is a ValueError.
# as_output: `out` checked (writable, C-contiguous float64, exact shape), or a new array.
# as_transform: a finite 4x4 rigid transform (orthonormal rotation to 1e-6, det > 0, last row 0 0 0 1).
# as_gain: a scalar (broadcast) or (n,) vector, finite and >= 0, into the n doubles at dst.
# new_f64: a new uninitialised C-contiguous float64 array of ndim (1..3) dimensions (np.empty).
cdef cnp.ndarray new_f64(int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2)
cdef cnp.ndarray as_input(str name, object x, int ndim, int d0, int d1, int d2)
cdef cnp.ndarray as_output(str name, object out, int ndim, Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t d2)
cdef cnp.ndarray as_transform(str name, object T)
cdef int as_gain(str name, object x, int n, double* dst) except -1
