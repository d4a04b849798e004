"""Impedance control: the checked Python face of the ``_impedance`` Cython kernels, and controllers.

Laws (SI units; base frame; wrenches ``[force; moment]`` at the tool origin)::

    joint      tau = k (q_d - q) + d (dq_d - dq) + g(q) + tau_ff
    Cartesian  e   = [p_d - p; log3(R_d R^T)]          (rotation-vector error, exact for large errors)
               tau = J^T (K e + D (v_d - J dq) + w_ff) + g(q) + N (k_n (q_n - q) - d_n dq)

``N = I - J^T (J J^T)^-1 J`` projects the posture torque out of the task; for a 6-joint arm with a
full-rank Jacobian it is zero, so it is only evaluated for redundant arms (n > 6).

Stiffness is described per axis in a task frame (``CartesianGains``): the target frame rotated by
``R_frame_task`` (it turns with the target: stiff across a drill axis and soft along it, wherever
the drill points), or the base frame. Damping comes from damping ratios: with a mass matrix the
design uses the Cartesian inertia ``Lambda = (J M^-1 J^T)^-1`` (``D = A Z K1 + K1 Z A`` with
``A = Lambda^1/2``, ``K1 = K^1/2``, ``Z`` the ratios: each closed-loop mode gets its ratio), without
one a diagonal ``2 zeta sqrt(k)`` (unit inertia).

Controllers (``JointImpedance``, ``CartesianImpedance``; ``Admittance`` in ``admittance.py``) share
``update(state, t) -> JointCommand``; ``set_target`` may be called from any thread and raises
``ValueError`` for a NaN/Inf or malformed target, keeping the previous one (the robot stays put).
``set_gains`` interpolates linearly over ``ramp_s`` seconds, so a gain change never jumps the torque.
Torques are saturated per joint (``tau_max``) and rate limited (``dtau_max``, N m/s).

>>> import numpy as np
>>> from machaon.kinematics import Chain
>>> from machaon.robot.description import load_description
>>> chain = Chain.from_urdf(load_description("machaon_arm").urdf_path, "base_link", "flange")
>>> q = np.radians([0.0, 30.0, 60.0, 0.0, 45.0, 0.0])
>>> target = chain.fk(q)
>>> target[:3, 3] += (0.0, 0.0, 0.01)               # 1 cm above where the flange is
>>> K = np.diag([800.0] * 3 + [40.0] * 3)          # N/m, N m/rad
>>> D = np.diag([60.0] * 3 + [2.0] * 3)            # N s/m, N m s/rad
>>> tau = cartesian_impedance_torque(chain, q, np.zeros(6), target, K, D)
>>> bool(np.allclose(tau, chain.jacobian(q).T @ [0.0, 0.0, 8.0, 0.0, 0.0, 0.0]))   # J^T (K e): 8 N up
True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from machaon._validate import finite_array, transform
from machaon._validate import finite_vector as _finite_vec
from machaon._validate import vector as _vec
from machaon.control import _impedance as _k
from machaon.control.controller import DynamicsModel
from machaon.control.fixtures import Fixture
from machaon.kinematics import Chain, Dynamics
from machaon.types import CommandMode, JointCommand, JointState

__all__ = [
    "CartesianGains",
    "CartesianImpedance",
    "JointImpedance",
    "cartesian_damping",
    "cartesian_impedance_torque",
    "cartesian_inertia",
    "joint_impedance_torque",
    "limit_torque",
    "pose_error",
]

_EYE3 = np.eye(3)


def _pose(name: str, value: object) -> np.ndarray:
    """A checked 4x4 rigid transform (compiled; same checks as ``machaon._validate.transform``).

    Raises ``ValueError`` naming ``name`` for a non-numeric value, a wrong shape, NaN/Inf, a last
    row other than 0 0 0 1, or a rotation part that is not orthonormal with det +1 (to 1e-6).
    """
    return _k.checked_transform(name, value)


# ----------------------------------------------------------------------------- functional faces

def pose_error(T_base_tool: np.ndarray, T_base_target: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``[p_target - p; log3(R_target R^T)]`` (6,), base frame, m and rad. Bad poses raise ValueError."""
    T = _pose("T_base_tool", T_base_tool)
    Td = _pose("T_base_target", T_base_target)
    e = np.empty(6) if out is None else out
    _k.pose_error(T, Td, e)
    return e


# ``cartesian_impedance_torque`` and ``joint_impedance_torque`` are compiled (``_impedance.pyx``),
# arguments checked there; see their docstrings.
cartesian_impedance_torque = _k.cartesian_impedance_torque
joint_impedance_torque = _k.joint_impedance_torque


def limit_torque(
    tau: np.ndarray,
    tau_max: np.ndarray | float | None = None,
    tau_prev: np.ndarray | None = None,
    dtau_max: np.ndarray | float | None = None,
    dt: float = 0.0,
) -> np.ndarray:
    """A copy of ``tau`` rate-limited to ``tau_prev +- dtau_max * dt`` (N m/s, s), then clipped to ``+-tau_max``."""
    out = finite_array("tau", tau, (None,)).copy()
    n = out.shape[0]
    tm = _vec("tau_max", tau_max, n, nonneg=True, allow_none=True)
    tp = None if tau_prev is None else finite_array("tau_prev", tau_prev, (n,))
    dm = _vec("dtau_max", dtau_max, n, nonneg=True, allow_none=True)
    if not (math.isfinite(dt) and dt >= 0):
        raise ValueError(f"dt: must be finite and >= 0, got {dt!r}")
    _k.limit_torque(out, tm, tp if dt > 0 else None, dm, dt)
    return out


def cartesian_inertia(J: np.ndarray, M: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """``(Lambda, Lambda^1/2)`` with ``Lambda = (J M^-1 J^T)^-1``, eigenvalues of ``J M^-1 J^T`` floored at eps.

    The floor keeps Lambda finite at singularities (and for arms with fewer than six joints).
    """
    w, U = _inv_lambda_eig(J, M, eps)
    Lam = (U / w) @ U.T
    A = (U / np.sqrt(w)) @ U.T
    return Lam, A


def _inv_lambda_eig(J: np.ndarray, M: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition ``(w, U)`` of ``J M^-1 J^T`` (symmetrised), eigenvalues floored at eps."""
    Minv_JT = np.linalg.solve(M, J.T)
    inv_lam = J @ Minv_JT
    inv_lam = 0.5 * (inv_lam + inv_lam.T)
    w, U = np.linalg.eigh(inv_lam)
    return np.maximum(w, eps), U


def _sqrt_inertia(J: np.ndarray, M: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``Lambda^1/2`` alone (the second output of ``cartesian_inertia``, same arithmetic)."""
    w, U = _inv_lambda_eig(J, M, eps)
    return (U / np.sqrt(w)) @ U.T


def _block(R: np.ndarray) -> np.ndarray:
    B = np.zeros((6, 6))
    B[:3, :3] = R
    B[3:, 3:] = R
    return B


def cartesian_damping(
    stiffness: np.ndarray,
    damping_ratio: np.ndarray | float,
    R_base_task: np.ndarray | None = None,
    sqrt_inertia: np.ndarray | None = None,
) -> np.ndarray:
    """Base-frame 6x6 damping for per-axis task stiffness ``stiffness`` (6,) and ratios (6,) or scalar.

    Without ``sqrt_inertia`` (``Lambda^1/2``, base frame) the result is ``B diag(2 zeta sqrt(k)) B^T``
    (unit inertia); with it, ``A Z K1 + K1 Z A`` (A = Lambda^1/2, K1 = B diag(sqrt k) B^T,
    Z = B diag(zeta) B^T), which gives every closed-loop mode its damping ratio when the ratios
    are equal, and is the usual factorisation design otherwise.
    """
    k = _vec("stiffness", stiffness, 6, nonneg=True)
    z = _vec("damping_ratio", damping_ratio, 6, nonneg=True)
    R = _EYE3 if R_base_task is None else finite_array("R_base_task", R_base_task, (3, 3))
    A = None if sqrt_inertia is None else finite_array("sqrt_inertia", sqrt_inertia, (6, 6))
    return _damping(k, z, R, A)


def _damping(k: np.ndarray, z: np.ndarray, R: np.ndarray, A: np.ndarray | None) -> np.ndarray:
    """``cartesian_damping`` without the checks (inputs already validated), for the control cycle."""
    if A is None:
        B = _block(R)
        return (B * (2.0 * z * np.sqrt(k))) @ B.T
    return _damping_with(A, *_damping_factors(k, z, R))


def _damping_factors(k: np.ndarray, z: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, K1)`` of the inertia-based design: they depend on the gains and the task frame, not on Lambda."""
    B = _block(R)
    K1 = (B * np.sqrt(k)) @ B.T
    Z = (B * z) @ B.T
    return Z, K1


def _damping_with(A: np.ndarray, Z: np.ndarray, K1: np.ndarray) -> np.ndarray:
    AZK = A @ Z @ K1
    return AZK + AZK.T  # = A Z K1 + K1 Z A, as A, Z and K1 are symmetric


# ----------------------------------------------------------------------------- dynamics and the cycle's first step

def _as_dynamics(dynamics: DynamicsModel | Chain | None) -> DynamicsModel | None:
    """``dynamics`` for a controller: a ``Chain`` becomes ``Dynamics(chain)``; anything else stays."""
    return Dynamics(dynamics) if isinstance(dynamics, Chain) else dynamics


def _compiled_chain(dynamics: DynamicsModel | None, n: int) -> Chain | None:
    """The chain whose compiled dynamics give gravity inside the controller's own call, if there is one.

    A ``Dynamics`` (or a ``Chain``) has one; another object with ``gravity(q)`` (a plant model in a
    test, say) is called from Python each cycle instead.
    """
    if isinstance(dynamics, Dynamics) and dynamics.chain.dof == n:
        return dynamics.chain
    return None


def _begin_cycle(ctrl: JointImpedance | CartesianImpedance, state: JointState, t: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The state's (q, dq) after checking their length; activates the controller on its first cycle."""
    n = ctrl.dof
    q, dq = state.q, state.dq
    if q.shape != (n,) or dq.shape != (n,):
        raise ValueError(f"state: expected {n} joints, got q {q.shape}, dq {dq.shape}")
    if not ctrl._activated:
        ctrl.on_activate(state, t)
    return q, dq


# ----------------------------------------------------------------------------- gains

@dataclass(frozen=True)
class CartesianGains:
    """Cartesian impedance gains, per axis of a task frame.

    ``stiffness`` (6,): N/m along and N m/rad about the task axes x, y, z. ``damping_ratio``:
    scalar or (6,). ``frame``: ``"target"`` (the task frame is the target frame rotated by
    ``R_frame_task`` and turns with the target) or ``"base"`` (fixed, ``R_frame_task`` = R_base_task).
    """

    stiffness: np.ndarray
    damping_ratio: np.ndarray | float = 0.7
    frame: str = "target"
    R_frame_task: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "stiffness", _vec("stiffness", self.stiffness, 6, nonneg=True))
        object.__setattr__(self, "damping_ratio", _vec("damping_ratio", self.damping_ratio, 6, nonneg=True))
        if self.frame not in ("target", "base"):
            raise ValueError(f"frame: 'target' or 'base', got {self.frame!r}")
        T = np.eye(4)
        T[:3, :3] = finite_array("R_frame_task", self.R_frame_task, (3, 3))
        object.__setattr__(self, "R_frame_task", transform("R_frame_task", T)[:3, :3].copy())

    @classmethod
    def isotropic(cls, k_trans: float, k_rot: float, damping_ratio: float = 0.7) -> CartesianGains:
        return cls(np.array([k_trans] * 3 + [k_rot] * 3), damping_ratio)

    @classmethod
    def axial(cls, k_across: float, k_along: float, k_rot_across: float, k_rot_about: float,
              damping_ratio: float = 0.7) -> CartesianGains:
        """Gains about the target's z axis (a drill or needle axis): across x/y, along z."""
        return cls(np.array([k_across, k_across, k_along, k_rot_across, k_rot_across, k_rot_about]), damping_ratio)


# ----------------------------------------------------------------------------- controllers

class _GainRamp:
    """Linear interpolation between two gain sets over a duration (time-based, so rate-independent)."""

    def __init__(self, start: tuple, end: tuple, t0: float | None, duration: float) -> None:
        self.start, self.end, self.t0, self.duration = start, end, t0, duration

    def at(self, t: float) -> tuple[tuple, bool]:
        if self.t0 is None:
            self.t0 = t
        a = 1.0 if self.duration <= 0 else min(max((t - self.t0) / self.duration, 0.0), 1.0)
        return tuple(s + a * (e - s) for s, e in zip(self.start, self.end, strict=True)), a >= 1.0


class JointImpedance:
    """Joint impedance ``tau = k (q_d - q) + d (dq_d - dq) + g(q) + tau_ff`` (module docstring).

    ``stiffness`` k (N m/rad, scalar or per joint); damping either explicit ``damping`` d or from
    ``damping_ratio``: ``d = 2 zeta sqrt(k m_jj)`` with ``m_jj`` the diagonal of ``mass_matrix``
    (constant (n, n), or the ``dynamics`` mass matrix at activation), unit inertia otherwise.
    ``dynamics`` (``machaon.kinematics.Dynamics``) adds ``g(q)``. The target defaults to the pose
    at activation (hold where it stands).
    """

    def __init__(
        self,
        dof: int,
        stiffness: np.ndarray | float,
        damping_ratio: np.ndarray | float = 0.7,
        *,
        damping: np.ndarray | float | None = None,
        dynamics: DynamicsModel | Chain | None = None,
        mass_matrix: np.ndarray | None = None,
        tau_max: np.ndarray | float | None = None,
        dtau_max: np.ndarray | float | None = None,
        ramp_s: float = 0.25,
    ) -> None:
        self.dof = n = int(dof)
        self.dynamics = dynamics = _as_dynamics(dynamics)
        self._dyn_chain = _compiled_chain(dynamics, n)
        if mass_matrix is None:
            self._m = np.ones(n)
        else:
            self._m = np.diag(finite_array("mass_matrix", mass_matrix, (n, n))).copy()
        self._m_from_dyn = mass_matrix is None and dynamics is not None
        self._tau_max = _vec("tau_max", tau_max, n, nonneg=True, allow_none=True)
        self._dtau_max = _vec("dtau_max", dtau_max, n, nonneg=True, allow_none=True)
        self.ramp_s = float(ramp_s)
        k = _vec("stiffness", stiffness, n, nonneg=True)
        self._zeta = None if damping is not None else _vec("damping_ratio", damping_ratio, n, nonneg=True)
        d = _vec("damping", damping, n, nonneg=True) if damping is not None else self._d_from_ratio(k, self._zeta)
        self._k, self._d = k, d
        self._ramp: _GainRamp | None = None
        self._lock = threading.Lock()
        self._target: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._tau_prev: np.ndarray | None = None
        self._t_prev: float | None = None
        self._activated = False

    def _d_from_ratio(self, k: np.ndarray, zeta: np.ndarray) -> np.ndarray:
        return 2.0 * zeta * np.sqrt(k * self._m)

    @property
    def gains(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (possibly ramping) stiffness and damping."""
        return self._k.copy(), self._d.copy()

    def set_target(self, q_d: np.ndarray, dq_d: np.ndarray | None = None, tau_ff: np.ndarray | None = None) -> None:
        """Joint target (rad or m), target velocity and feed-forward torque; bad input raises ValueError."""
        n = self.dof
        tgt = (
            finite_array("q_d", q_d, (n,)).copy(),
            np.zeros(n) if dq_d is None else finite_array("dq_d", dq_d, (n,)).copy(),
            None if tau_ff is None else finite_array("tau_ff", tau_ff, (n,)).copy(),
        )
        self._target = tgt

    def set_gains(self, stiffness: np.ndarray | float, damping_ratio: np.ndarray | float | None = None,
                  *, damping: np.ndarray | float | None = None, ramp_s: float | None = None) -> None:
        """New gains, reached linearly over ``ramp_s`` (default: the constructor's) from the current ones."""
        n = self.dof
        k = _vec("stiffness", stiffness, n, nonneg=True)
        if damping is not None:
            d = _vec("damping", damping, n, nonneg=True)
        else:
            zeta = self._zeta if damping_ratio is None else _vec("damping_ratio", damping_ratio, n, nonneg=True)
            if zeta is None:
                raise ValueError("damping_ratio: required when the controller was built with explicit damping")
            self._zeta = zeta
            d = self._d_from_ratio(k, zeta)
        with self._lock:
            self._ramp = _GainRamp((self._k, self._d), (k, d), None, self.ramp_s if ramp_s is None else float(ramp_s))

    def on_activate(self, state: JointState, t: float) -> None:
        if self._target is None:
            self.set_target(state.q)
        if self._m_from_dyn:
            self._m = np.diag(self.dynamics.mass_matrix(state.q)).copy()
            if self._zeta is not None:
                self._k, self._d = self._k, self._d_from_ratio(self._k, self._zeta)
        self._tau_prev = np.array(state.tau, dtype=np.float64) if state.tau is not None else None
        self._t_prev = t
        self._activated = True

    def update(self, state: JointState, t: float) -> JointCommand:
        n = self.dof
        q, dq = _begin_cycle(self, state, t)
        q_d, dq_d, tau_ff = self._target
        with self._lock:
            if self._ramp is not None:
                (self._k, self._d), done = self._ramp.at(t)
                if done:
                    self._ramp = None
        dyn_chain = self._dyn_chain  # gravity inside the compiled law; a duck-typed model from Python
        g = None if dyn_chain is not None or self.dynamics is None else self.dynamics.gravity(q)
        tau = np.empty(n)
        _k.joint_law(q, dq, q_d, dq_d, self._k, self._d, g, tau_ff, tau, dyn_chain)
        dt = 0.0 if self._t_prev is None else t - self._t_prev
        _k.limit_torque(tau, self._tau_max, self._tau_prev if dt > 0 else None, self._dtau_max, dt)
        self._tau_prev = tau.copy()
        self._t_prev = t
        return JointCommand(CommandMode.TORQUE, tau=tau, info={"q_d": q_d})


def _damping_mass_matrix(mass_matrix: np.ndarray | Callable[[np.ndarray], np.ndarray] | None,
                         dynamics: DynamicsModel | None, inertia_damping: bool,
                         n: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """q -> M(q) (kg m^2 / kg, (n, n)) for the Cartesian-inertia damping design: ``mass_matrix``
    (a constant array, copied, or a callable), else ``dynamics.mass_matrix``; None without
    ``inertia_damping`` or a source. ``ValueError`` for a constant of the wrong shape or not finite."""
    if mass_matrix is not None and not callable(mass_matrix):
        M = finite_array("mass_matrix", mass_matrix, (n, n)).copy()
        mass = lambda q: M  # noqa: E731
    elif mass_matrix is not None:
        mass = mass_matrix
    elif dynamics is not None and inertia_damping:
        mass = dynamics.mass_matrix
    else:
        mass = None
    return mass if inertia_damping else None


class CartesianImpedance(_k.CartesianImpedanceCore):
    """Cartesian impedance of ``chain``'s tip (the tool) toward a target pose, one fused kernel call per cycle.

    ``gains``: ``CartesianGains``. ``dynamics`` (a ``machaon.kinematics.Dynamics`` or a ``Chain``
    with the payload) adds gravity, computed inside the fused compiled step (``coriolis=True``
    adds ``C(q, dq) dq`` too), and, unless ``inertia_damping`` is
    False, the Cartesian-inertia damping design (M from ``dynamics``, or ``mass_matrix``: a
    constant (n, n) array or a callable q -> M); Lambda is refreshed every ``inertia_period_s``.
    ``posture`` (q_n, default: q at activation), ``k_null``, ``d_null``: the null-space term for
    redundant arms. ``fixtures``: a ``machaon.control.fixtures`` term (or sum) whose wrench is
    added as feed-forward. The target defaults to the tool pose at activation.

    ``update`` is compiled (``_impedance.CartesianImpedanceCore``, the base class): the common cycle
    runs there entirely; every other one (activation, a gain ramp, fixtures, new damping factors, a
    duck-typed dynamics model, inputs of another type) takes ``_update_python`` below, with the same
    results.
    """

    def __init__(
        self,
        chain: Chain,
        gains: CartesianGains,
        *,
        dynamics: DynamicsModel | Chain | None = None,
        mass_matrix: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
        inertia_damping: bool = True,
        inertia_period_s: float = 0.01,
        tau_max: np.ndarray | float | None = None,
        dtau_max: np.ndarray | float | None = None,
        ramp_s: float = 0.25,
        posture: np.ndarray | None = None,
        k_null: np.ndarray | float = 5.0,
        d_null: np.ndarray | float = 1.0,
        fixtures: Fixture | None = None,
        coriolis: bool = False,
    ) -> None:
        if not isinstance(gains, CartesianGains):
            raise ValueError(f"gains: expected CartesianGains, got {type(gains).__name__}")
        self.chain = chain
        self.dof = n = chain.dof
        if n > 32:
            raise ValueError("chain: at most 32 joints")
        self.dynamics = dynamics = _as_dynamics(dynamics)
        self._mass = _damping_mass_matrix(mass_matrix, dynamics, inertia_damping, n)
        self.inertia_period_s = float(inertia_period_s)
        self.ramp_s = float(ramp_s)
        self.fixtures = fixtures
        self._step = _k.CartesianStep(chain)
        self._configure_step(mass_matrix is None and inertia_damping, coriolis, tau_max, dtau_max)
        self._posture = None if posture is None else finite_array("posture", posture, (n,)).copy()
        self._k_null = _vec("k_null", k_null, n, nonneg=True)
        self._d_null = _vec("d_null", d_null, n, nonneg=True)
        self._lock = threading.Lock()
        self._init_cycle_state(gains)

    def _configure_step(self, mass_in_kernel: bool, coriolis: bool, tau_max: np.ndarray | float | None,
                        dtau_max: np.ndarray | float | None) -> None:
        """Hand the compiled step its dynamics (gravity, and Coriolis when asked; the damping
        design's mass matrix when ``mass_in_kernel`` and ``self.dynamics`` compiles) and its torque
        limits (N m, N m/s; None: none). ``ValueError`` for Coriolis without compiled dynamics or
        negative limits."""
        n = self.dof
        dyn_chain = _compiled_chain(self.dynamics, n)
        # The mass matrix of the damping design comes from the compiled chain inside the step.
        self._mass_in_kernel = mass_in_kernel and dyn_chain is not None
        if coriolis and dyn_chain is None:
            raise ValueError("coriolis: needs dynamics from a Dynamics or a Chain")
        # Gravity (and Coriolis) inside the step; a duck-typed dynamics model is called per cycle instead.
        self._step.set_dynamics(dyn_chain, True, bool(coriolis))
        self._gravity_outside = dyn_chain is None and self.dynamics is not None
        self._ff_target: tuple | None = None  # the target whose feed-forward the step holds
        self._step.set_limits(_vec("tau_max", tau_max, n, nonneg=True, allow_none=True),
                              _vec("dtau_max", dtau_max, n, nonneg=True, allow_none=True))

    def _init_cycle_state(self, gains: CartesianGains) -> None:
        """No target yet (the tool pose at activation), ``gains`` applied without a ramp, nothing
        activated: the state ``update`` starts from."""
        # (T_base_target, v_d, w_ff, x_d): replaced as a whole by set_target, never modified in place.
        self._target: tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray] | None = None
        self._gains = gains
        self._cur_k, self._cur_z = gains.stiffness, gains.damping_ratio
        self._ramp: _GainRamp | None = None
        self._kd = (np.diag(gains.stiffness), np.diag(2.0 * gains.damping_ratio * np.sqrt(gains.stiffness)))
        self._apply_gains(gains)
        self._t_prev: float | None = None
        self._t_inertia = -math.inf
        self._have_lambda = False
        self._activated = False
        # (k, z, target, gains) of the damping design's factors held by the step, reused while none changes
        # (keyed by identity: the gains and a target are replaced, never modified in place).
        self._dfac_key: tuple | None = None

    # -- configuration --------------------------------------------------------------------------

    def _apply_gains(self, gains: CartesianGains) -> None:
        self._step.set_task_frame(gains.frame == "target", np.ascontiguousarray(gains.R_frame_task))
        K, D = self._kd
        self._step.set_gains(np.ascontiguousarray(K), np.ascontiguousarray(D))

    @property
    def gains(self) -> CartesianGains:
        return self._gains

    def set_gains(self, gains: CartesianGains, ramp_s: float | None = None) -> None:
        """New gains (stiffness, ratios; same task frame kind), interpolated over ``ramp_s`` seconds."""
        if gains.frame != self._gains.frame or not np.allclose(gains.R_frame_task, self._gains.R_frame_task):
            raise ValueError("gains: changing the task frame while running is not supported; build a new controller")
        end = (gains.stiffness, gains.damping_ratio)
        with self._lock:
            start = (self._cur_k, self._cur_z)
            self._ramp = _GainRamp(start, end, None, self.ramp_s if ramp_s is None else float(ramp_s))
            self._gains = gains

    def set_target(self, T_base_target: np.ndarray, v_d: np.ndarray | None = None,
                   w_ff: np.ndarray | None = None) -> None:
        """Target pose (4x4, base frame), desired twist and feed-forward wrench; bad input raises ValueError."""
        Td = _pose("T_base_target", T_base_target).copy()
        tgt = (
            Td,
            None if v_d is None else _finite_vec("v_d", v_d, 6).copy(),
            None if w_ff is None else _finite_vec("w_ff", w_ff, 6).copy(),
            Td[:3, 3],
        )
        self._target = tgt

    @property
    def target(self) -> np.ndarray | None:
        tgt = self._target
        return None if tgt is None else tgt[0].copy()

    def on_activate(self, state: JointState, t: float) -> None:
        if self._target is None:
            self.set_target(self.chain.fk(state.q))
        if self._posture is None:
            self._posture = np.array(state.q, dtype=np.float64)
        # Tiny Tikhonov term: keeps the projector defined at singularities, leaks ~1e-9/sigma^2 into the task.
        self._step.set_nullspace(self._posture, self._k_null, self._d_null, 1e-9)
        tau = np.asarray(state.tau, dtype=np.float64) if state.tau is not None else None
        self._step.reset_rate_limit(tau if tau is not None and np.isfinite(tau).all() else None)
        self._t_prev = t
        self._t_inertia = -math.inf
        self._activated = True

    # -- the cycle -------------------------------------------------------------------------------

    # ``update`` (compiled, in ``CartesianImpedanceCore``) runs the common cycle itself and hands every
    # other one to this full cycle, which is the reference for what a cycle does.
    def _update_python(self, state: JointState, t: float) -> JointCommand:
        q, dq = _begin_cycle(self, state, t)
        tgt = self._target
        Td = tgt[0]
        gains = self._gains
        ramping = False
        if self._ramp is None:  # no lock needed to see that nothing is ramping (set_gains swaps it in)
            k, z = gains.stiffness, gains.damping_ratio
        else:
            with self._lock:
                if self._ramp is not None:
                    (k, z), done = self._ramp.at(t)
                    ramping = True
                    if done:
                        self._ramp = None
                else:
                    k, z = gains.stiffness, gains.damping_ratio
        self._cur_k, self._cur_z = k, z
        if self._mass is not None and (t - self._t_inertia >= self.inertia_period_s or ramping or
                                       not self._have_lambda):
            self._refresh_damping(q, t, k, z, Td, gains)
        if ramping:
            self._step.set_gains(np.ascontiguousarray(np.diag(k)), np.ascontiguousarray(np.diag(2.0 * z * np.sqrt(k))))
        if self.fixtures is not None:
            T, J = self.chain.fk_jacobian(q)
            w_fix = np.asarray(self.fixtures.wrench(T, J @ dq), dtype=np.float64)
            w_ff = tgt[2]
            self._step.set_feedforward(tgt[1], w_fix if w_ff is None else w_fix + w_ff)
            self._ff_target = None
        elif tgt is not self._ff_target:  # set in this thread, once per new target
            self._step.set_feedforward(tgt[1], tgt[2])
            self._ff_target = tgt
        g = self.dynamics.gravity(q) if self._gravity_outside else None
        t_prev = self._t_prev
        self._t_prev = t
        return self._step.command(q, dq, Td, g, 0.0 if t_prev is None else t - t_prev, tgt[3])

    def _refresh_damping(self, q: np.ndarray, t: float, k: np.ndarray, z: np.ndarray, Td: np.ndarray,
                         gains: CartesianGains) -> None:
        """Cartesian-inertia damping: Lambda^1/2 every ``inertia_period_s`` and the design's factors on
        gain/target changes, combined in the compiled step."""
        step = self._step
        if t - self._t_inertia >= self.inertia_period_s or not self._have_lambda:
            M = None if self._mass_in_kernel else np.asarray(self._mass(q), dtype=np.float64)
            if step.refresh_inertia(q, M) != 0:  # not finite or M not SPD: numpy's route decides
                M = np.asarray(self._mass(q), dtype=np.float64)
                step.set_sqrt_inertia(np.ascontiguousarray(_sqrt_inertia(self.chain.jacobian(q), M)))
            self._have_lambda = True
            self._t_inertia = t
        key = (k, z, Td, gains)
        old = self._dfac_key
        if old is None or not all(a is b for a, b in zip(key, old, strict=True)):
            R = Td[:3, :3] @ gains.R_frame_task if gains.frame == "target" else gains.R_frame_task
            step.set_damping_factors(*(np.ascontiguousarray(f) for f in _damping_factors(k, z, R)))
            self._dfac_key = key
        step.apply_inertia_damping()

    def wrench(self) -> np.ndarray:
        """The task wrench ``K e + D (v_d - v) + w_ff`` (base frame, at the tool origin) of the last cycle."""
        return self._step.wrench()

    def tool_pose(self) -> np.ndarray:
        """The tool pose T_base_tool computed in the last cycle."""
        return self._step.pose()
