"""Serial kinematic chains built from URDF by pinocchio's parser, evaluated by the Cython core.

Frames: every pose is ``T_base_x``, in the chain's base link frame; Jacobians are 6 x dof
``[linear; angular]`` in the base frame, referenced at the tip (tool) origin. Units: m, rad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

from machaon._validate import finite_array, transform
from machaon.kinematics._chain import ChainKernel
from machaon.kinematics.so3 import rotation_between

_REVOLUTE = 0
_PRISMATIC = 1


@dataclass(frozen=True)
class IKResult:
    """Outcome of an inverse-kinematics solve.

    ``q`` is always inside the joint limits; when ``success`` is False it is the best attempt
    and ``pos_err`` (m) / ``rot_err`` (rad) say how far it is from the target.
    """

    q: np.ndarray
    success: bool
    pos_err: float
    rot_err: float
    iterations: int


@dataclass(frozen=True)
class _JointInfo:
    name: str
    jtype: int
    axis: np.ndarray  # unit vector in the URDF joint frame
    continuous: bool
    pin_id: int


def _axis_rotation(axis: np.ndarray) -> np.ndarray:
    """A rotation C with C @ axis = z (so the joint moves about/along z in the rotated frame);
    an axis along -z turns half a circle about x."""
    return rotation_between(axis, (0.0, 0.0, 1.0), flip_axis=(1.0, 0.0, 0.0))


def _se3(M: pin.SE3) -> np.ndarray:
    return np.asarray(M.homogeneous, dtype=np.float64)


def _link_names(model: pin.Model) -> list[str]:
    return [f.name for f in model.frames if f.type == pin.FrameType.BODY]


class Chain:
    """A serial chain from ``base_link`` to ``tip_link`` (optionally plus a tool offset).

    Build with :meth:`from_urdf`. Attributes: ``dof``, ``joint_names``, ``lower`` and ``upper``
    (rad or m; a continuous joint is an angle with -inf/+inf limits), ``T_flange_tool``.
    Every evaluation method rejects NaN, Inf or wrong shapes with ``ValueError`` naming the
    argument, and accepts ``out=`` buffers so a control cycle allocates nothing.
    """

    def __init__(
        self,
        urdf_path: Path,
        base_link: str,
        tip_link: str,
        joints: tuple[_JointInfo, ...],
        T_prefix: list[np.ndarray],
        T_tip: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        T_flange_tool: np.ndarray,
    ) -> None:
        self.urdf_path = urdf_path
        self.base_link = base_link
        self.tip_link = tip_link
        self._joints = joints
        self._T_prefix = T_prefix
        self._T_tip = T_tip
        self.lower = lower.copy()
        self.upper = upper.copy()
        self.lower.flags.writeable = False
        self.upper.flags.writeable = False
        self.T_flange_tool = T_flange_tool.copy()
        self.T_flange_tool.flags.writeable = False
        self.joint_names = tuple(j.name for j in joints)
        self.dof = len(joints)
        self.continuous = np.array([j.continuous for j in joints], dtype=bool)
        self.prismatic = np.array([j.jtype == _PRISMATIC for j in joints], dtype=bool)
        self.kernel = self._build_kernel()
        self._home = self.home()
        # The per-cycle calls go straight to the compiled methods (same signatures and checks as
        # the documented methods below), saving a Python frame per call in the control loop.
        k = self.kernel
        self.fk, self.fk_all, self.jacobian = k.fk, k.fk_all, k.jacobian
        self.fk_jacobian, self.fk_batch, self.jacobian_batch = k.fk_jacobian, k.fk_batch, k.jacobian_batch

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_urdf(cls, path: str | Path, base_link: str, tip_link: str) -> Chain:
        """Parse ``path`` with pinocchio and extract the chain between two links.

        Revolute, continuous and prismatic joints move; fixed joints are folded into the
        placements. Raises ``ValueError`` listing the existing links when a link name is
        wrong, when ``base_link`` is not an ancestor of ``tip_link``, or when a joint on the
        path is of an unsupported type (floating, planar, spherical, mimic).

        >>> import numpy as np
        >>> from machaon.robot.description import load_description
        >>> desc = load_description("machaon_arm")
        >>> chain = Chain.from_urdf(desc.urdf_path, "base_link", "flange")
        >>> chain.dof, chain.joint_names[0]
        (6, 'shoulder_pan')
        >>> q = np.radians([10.0, 30.0, 60.0, 0.0, 45.0, 0.0])
        >>> T = chain.fk(q)                          # T_base_flange, 4x4, metres
        >>> chain.jacobian(q).shape                  # [linear; angular], base frame, at the flange
        (6, 6)
        >>> res = chain.ik(T)                        # back to joint angles, from the middle of the limits
        >>> bool(res.success), bool(np.allclose(chain.fk(res.q), T, atol=1e-6))
        (True, True)
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"URDF not found: {path}")
        model = pin.buildModelFromUrdf(str(path))
        links = _link_names(model)
        for role, name in (("base_link", base_link), ("tip_link", tip_link)):
            if name not in links:
                raise ValueError(f"{role} {name!r} is not a link of {path.name}; links: {', '.join(links)}")
        f_base = model.frames[model.getFrameId(base_link, pin.FrameType.BODY)]
        f_tip = model.frames[model.getFrameId(tip_link, pin.FrameType.BODY)]
        support = list(model.supports[f_tip.parentJoint])
        if f_base.parentJoint not in support:
            raise ValueError(f"base_link {base_link!r} is not an ancestor of tip_link {tip_link!r} in {path.name}")
        chain_ids = support[support.index(f_base.parentJoint) + 1 :]
        joints = []
        lower, upper = [], []
        T_prefix = []
        for k, jid in enumerate(chain_ids):
            jm = model.joints[jid]
            name = model.names[jid]
            short = jm.shortname()
            if jm.nv != 1:
                raise ValueError(f"joint {name!r} ({short}) on the chain is not a one-DOF joint")
            jd = jm.createData()
            jm.calc(jd, _neutral_of(jm))
            S = np.asarray(jd.S).reshape(6)
            lin, ang = S[:3], S[3:]
            if np.linalg.norm(ang) > 1e-9:
                jtype, axis = _REVOLUTE, ang / np.linalg.norm(ang)
            elif np.linalg.norm(lin) > 1e-9:
                jtype, axis = _PRISMATIC, lin / np.linalg.norm(lin)
            else:
                raise ValueError(f"joint {name!r} ({short}) has no motion axis")
            continuous = jm.nq == 2
            if continuous:
                lo, hi = -np.inf, np.inf
            else:
                lo = float(model.lowerPositionLimit[jm.idx_q])
                hi = float(model.upperPositionLimit[jm.idx_q])
                if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
                    lo, hi = -np.inf, np.inf
            joints.append(_JointInfo(name, jtype, axis, continuous, jid))
            lower.append(lo)
            upper.append(hi)
            placement = _se3(model.jointPlacements[jid])
            if k == 0:
                placement = np.linalg.inv(_se3(f_base.placement)) @ placement
            T_prefix.append(placement)
        T_tip = _se3(f_tip.placement)
        if not chain_ids:
            T_tip = np.linalg.inv(_se3(f_base.placement)) @ T_tip
        return cls(path, base_link, tip_link, tuple(joints), T_prefix, T_tip,
                   np.array(lower, dtype=np.float64), np.array(upper, dtype=np.float64), np.eye(4))

    def with_tool(self, T_flange_tool: np.ndarray) -> Chain:
        """A new chain whose tip is the tool frame, ``T_flange_tool`` being its pose in the tip link."""
        T = transform("T_flange_tool", T_flange_tool)
        return Chain(self.urdf_path, self.base_link, self.tip_link, self._joints, self._T_prefix,
                     self._T_tip, self.lower, self.upper, T)

    def _build_kernel(self) -> ChainKernel:
        n = self.dof
        T_fixed = np.zeros((n + 1, 3, 4))
        C = np.zeros((n, 3, 3))
        prev_C = np.eye(3)  # rotation into the previous joint's normalised frame
        for k, j in enumerate(self._joints):
            Ck = _axis_rotation(j.axis)
            # normalised_k = URDF_k @ Ck^T: the URDF axis becomes z of the normalised frame.
            A = self._T_prefix[k].copy()
            A[:3, :3] = A[:3, :3] @ Ck.T
            pre = np.eye(4)
            pre[:3, :3] = prev_C
            A = pre @ A
            T_fixed[k] = A[:3]
            C[k] = Ck
            prev_C = Ck
        A = self._T_tip @ self.T_flange_tool
        pre = np.eye(4)
        pre[:3, :3] = prev_C
        T_fixed[n] = (pre @ A)[:3]
        axes = np.array([j.axis for j in self._joints]).reshape(n, 3)
        jtype = np.array([j.jtype for j in self._joints], dtype=np.intc)
        return ChainKernel(T_fixed, jtype, axes, C, self.lower, self.upper)

    # ------------------------------------------------------------------ evaluation
    def fk(self, q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """T_base_tip (4x4) at joint values ``q`` (dof,)."""
        return self.kernel.fk(q, out)

    def fk_all(self, q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(dof+1, 4, 4): every joint frame after its motion, in URDF orientation, then the tip."""
        return self.kernel.fk_all(q, out)

    def jacobian(self, q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(6, dof) Jacobian [linear; angular], base frame, at the tip origin."""
        return self.kernel.jacobian(q, out)

    def fk_jacobian(
        self, q: np.ndarray, T_out: np.ndarray | None = None, J_out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Tip pose and Jacobian from one pass."""
        return self.kernel.fk_jacobian(q, T_out, J_out)

    def fk_batch(self, Q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N, 4, 4) tip poses for the rows of ``Q`` (N, dof)."""
        return self.kernel.fk_batch(Q, out)

    def jacobian_batch(self, Q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N, 6, dof) Jacobians for the rows of ``Q`` (N, dof)."""
        return self.kernel.jacobian_batch(Q, out)

    def manipulability(self, q: np.ndarray) -> float:
        """Yoshikawa's measure sqrt(det(J J^T)) (0 at a singularity)."""
        J = self.jacobian(q)
        JJ = J @ J.T if self.dof >= 6 else J.T @ J
        return float(math.sqrt(max(np.linalg.det(JJ), 0.0)))

    def condition_number(self, q: np.ndarray) -> float:
        """Ratio of the largest to the smallest singular value of J (inf at a singularity).

        Linear and angular rows mix units (m/rad and 1), so the number is meaningful for
        comparing configurations of one arm, not across arms.
        """
        s = np.linalg.svd(self.jacobian(q), compute_uv=False)
        return float(s[0] / s[-1]) if s[-1] > 1e-15 else math.inf

    def clip(self, q: np.ndarray) -> np.ndarray:
        """``q`` clamped into the joint limits."""
        return np.clip(finite_array("q", q, (self.dof,)), self.lower, self.upper)

    def random_q(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Uniform random configurations inside the limits ([-pi, pi] for continuous joints)."""
        lo = np.where(np.isfinite(self.lower), self.lower, -math.pi)
        hi = np.where(np.isfinite(self.upper), self.upper, math.pi)
        shape = (self.dof,) if n is None else (n, self.dof)
        return lo + (hi - lo) * rng.random(shape)

    def home(self) -> np.ndarray:
        """Middle of the limits (0 for continuous joints): the default IK start."""
        finite = np.isfinite(self.lower) & np.isfinite(self.upper)
        mid = np.zeros(self.dof)
        mid[finite] = 0.5 * (self.lower[finite] + self.upper[finite])
        return mid

    # ------------------------------------------------------------------ inverse kinematics
    def ik(
        self,
        T_base_target: np.ndarray,
        q0: np.ndarray | None = None,
        *,
        tol_pos: float = 1e-6,
        tol_rot: float = 1e-6,
        max_iter: int = 30,
        restarts: int = 200,
        seed: int = 0,
    ) -> IKResult:
        """Joint values putting the tip at ``T_base_target`` (4x4, base frame).

        Levenberg-Marquardt with error-dependent damping, joint limits, and random restarts
        inside the limits (``max_iter`` iterations per attempt: short attempts and many restarts
        beat long ones near joint limits); deterministic for a given ``seed``. The first attempt starts at
        ``q0`` (default: the middle of the limits), so the solution nearest ``q0`` is preferred.
        Unreachable targets give ``success=False`` with the residuals of the best attempt; the
        call never raises for them and never returns a configuration outside the limits.
        Raises ``ValueError`` for NaN/Inf/shape errors in ``T_base_target`` or ``q0``.
        """
        q_start = self._home if q0 is None else q0
        q, ok, pe, re, it = self.kernel.ik(T_base_target, q_start, tol_pos, tol_rot, max_iter, restarts,
                                           seed & 0xFFFFFFFFFFFFFFFF)
        return IKResult(q, bool(ok), float(pe), float(re), int(it))

    def ik_axis(
        self,
        p_base: np.ndarray,
        axis_base: np.ndarray,
        q0: np.ndarray | None = None,
        *,
        tol_pos: float = 1e-6,
        tol_rot: float = 1e-6,
        samples: int = 12,
        seed: int = 0,
    ) -> IKResult:
        """Put the tool origin on ``p_base`` with its z axis along ``axis_base``; roll is free.

        The five-DOF task of a drill or needle guide. The free rotation about the axis is
        searched over ``samples`` roll angles; among the reachable ones the solution with the
        largest margin score (distance to joint limits, normalised, times the manipulability)
        wins, ties going to the one nearest ``q0``. ``rot_err`` is the angle between the tool z
        axis and ``axis_base``. Never raises for unreachable axes (``success=False``).
        """
        p = finite_array("p_base", p_base, (3,))
        a = finite_array("axis_base", axis_base, (3,))
        na = float(np.linalg.norm(a))
        if na < 1e-12:
            raise ValueError("axis_base: must be a non-zero vector")
        a = a / na
        q_start = self.home() if q0 is None else finite_array("q0", q0, (self.dof,))
        # An orthonormal frame with z = a; rolls about z span the free DOF.
        helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        x0 = np.cross(helper, a)
        x0 /= np.linalg.norm(x0)
        y0 = np.cross(a, x0)
        span = np.where(np.isfinite(self.upper - self.lower), self.upper - self.lower, 2 * math.pi)
        mid = self.home()
        best: tuple[float, float, IKResult] | None = None
        fallback: IKResult | None = None
        T = np.eye(4)
        T[:3, 3] = p
        for i in range(samples):
            psi = 2 * math.pi * i / samples
            x = math.cos(psi) * x0 + math.sin(psi) * y0
            T[:3, 0] = x
            T[:3, 1] = np.cross(a, x)
            T[:3, 2] = a
            r = self.ik(T, q_start, tol_pos=tol_pos, tol_rot=tol_rot, restarts=50, seed=seed + i)
            if not r.success:
                if fallback is None or r.pos_err + r.rot_err < fallback.pos_err + fallback.rot_err:
                    fallback = r
                continue
            margin = float(np.min(1.0 - np.abs(2 * (r.q - mid) / span)))
            score = max(margin, 0.0) * self.manipulability(r.q)
            dist = float(np.linalg.norm(r.q - q_start))
            if best is None or score > best[0] + 1e-9 or (abs(score - best[0]) <= 1e-9 and dist < best[1]):
                best = (score, dist, r)
        if best is None:
            assert fallback is not None
            return fallback
        return best[2]


def _neutral_of(jm: pin.JointModel) -> np.ndarray:
    """Neutral configuration of one joint (cos/sin form for continuous joints)."""
    if jm.nq == 2:
        return np.array([1.0, 0.0])
    return np.zeros(jm.nq)


def pin_configuration(chain: Chain, q: np.ndarray) -> np.ndarray:
    """Chain angles -> pinocchio's configuration vector for the full URDF model (others neutral).

    Continuous joints are stored by pinocchio as (cos, sin); used by ``Dynamics`` and tests.
    """
    model = pin.buildModelFromUrdf(str(chain.urdf_path))
    return _pin_q(model, chain, q)


def _pin_q(model: pin.Model, chain: Chain, q: np.ndarray) -> np.ndarray:
    qp = pin.neutral(model)
    for j, qi in zip(chain._joints, q, strict=True):
        jm = model.joints[model.getJointId(j.name)]
        if jm.nq == 2:
            qp[jm.idx_q] = math.cos(qi)
            qp[jm.idx_q + 1] = math.sin(qi)
        else:
            qp[jm.idx_q] = qi
    return qp
