"""Serial chains built from URDF by pinocchio's parser, evaluated by the Cython core.

``Chain`` is a subclass of the compiled ``ChainKernel``: the per-cycle calls (``fk``,
``jacobian``, ``fk_jacobian``, ``fk_batch``, ``jacobian_batch``, ``fk_all``, ``rnea``,
``gravity_torque``, ``mass_matrix``, ``coriolis_torque``) are the compiled methods themselves,
documented there, with their argument checks in compiled code. This module parses the URDF,
builds the kernel's data and adds the calls that are not per cycle (IK, axis IK, measures).

Frames: every pose is ``T_base_x``, in the chain's base link frame; Jacobians are 6 x dof
``[linear; angular]`` in the base frame, referenced at the tip (tool) origin. Units: m, rad, kg,
N, N m. Inertial parameters come from pinocchio's model of the URDF reduced to the chain's joints
(``pinocchio.buildReducedModel``): joints off the chain are held at their neutral position and
everything rigidly attached to a moving link (fixed links, locked branches, every link beyond
the tip) is lumped into it.
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
_INERTIA_SIZE = 13  # m, h = m c (3), J about the joint frame origin (3x3): see _dynamics.pxd


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


class Chain(ChainKernel):
    """A serial chain from ``base_link`` to ``tip_link`` (optionally plus a tool offset and a payload).

    Build with :meth:`from_urdf`. Attributes: ``dof``, ``joint_names``, ``lower`` and ``upper``
    (rad or m; a continuous joint is an angle with -inf/+inf limits), ``T_flange_tool``,
    ``gravity`` (settable, base frame). Kinematics and dynamics calls are the compiled methods of
    ``ChainKernel`` (their docstrings give frames, units and bad-input behaviour): each rejects
    NaN, Inf, non-real values or wrong shapes with ``ValueError`` naming the argument, and takes
    an ``out=`` buffer so a control cycle allocates nothing.
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
        inertia: np.ndarray,
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
        self._inertia = np.array(inertia, dtype=np.float64).reshape(len(joints), _INERTIA_SIZE)
        self._inertia.flags.writeable = False
        self.joint_names = tuple(j.name for j in joints)
        self.continuous = np.array([j.continuous for j in joints], dtype=bool)
        self.prismatic = np.array([j.jtype == _PRISMATIC for j in joints], dtype=bool)
        self._build_kernel()
        self._home = self.home()

    def __reduce__(self):
        args = (self.urdf_path, self.base_link, self.tip_link, self._joints, self._T_prefix, self._T_tip,
                self.lower, self.upper, self.T_flange_tool, self._inertia)
        return (_rebuild, (type(self), args, self.gravity, self.armature))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_urdf(cls, path: str | Path, base_link: str, tip_link: str) -> Chain:
        """Parse ``path`` with pinocchio and extract the chain between two links.

        Revolute, continuous and prismatic joints move; fixed joints are folded into the
        placements. Inertial parameters come from pinocchio's model reduced to the chain (module
        docstring). Raises ``ValueError`` listing the existing links when a link name is
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
        f_base, f_tip, chain_ids = _path_between(model, path.name, base_link, tip_link)
        joints, lower, upper, T_prefix = [], [], [], []
        for k, jid in enumerate(chain_ids):
            info, lo, hi = _one_dof_joint(model, jid)
            joints.append(info)
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
                   np.array(lower, dtype=np.float64), np.array(upper, dtype=np.float64), np.eye(4),
                   _chain_inertias(model, chain_ids))

    def with_tool(self, T_flange_tool: np.ndarray) -> Chain:
        """A new chain whose tip is the tool frame, ``T_flange_tool`` being its pose in the tip link.

        Inertial parameters (a payload included) and ``gravity`` are kept.
        """
        T = transform("T_flange_tool", T_flange_tool)
        chain = Chain(self.urdf_path, self.base_link, self.tip_link, self._joints, self._T_prefix,
                      self._T_tip, self.lower, self.upper, T, self._inertia)
        chain.gravity = self.gravity
        chain.armature = self.armature
        return chain

    def with_payload(self, mass: float, com: np.ndarray = (0.0, 0.0, 0.0),
                     inertia: np.ndarray | None = None) -> Chain:
        """A new chain carrying a rigid payload (a tool, a load) on its last link.

        ``mass`` (kg, >= 0); ``com``: its centre of mass (m) in the tool frame (the chain's tip
        frame, ``T_flange_tool`` included); ``inertia``: its 3x3 rotational inertia about the
        centre of mass in tool-frame axes (kg m^2, symmetric positive semi-definite; default 0,
        a point mass). The payload stays attached to the tip link if ``with_tool`` changes the
        tool frame later; ``gravity`` is kept. Bad values raise ``ValueError`` naming them.
        """
        m = float(mass)
        if not (math.isfinite(m) and m >= 0.0):
            raise ValueError(f"mass: must be a finite mass >= 0 kg, got {mass!r}")
        c_tool = finite_array("com", com, (3,))
        I_tool = np.zeros((3, 3)) if inertia is None else finite_array("inertia", inertia, (3, 3))
        symmetric = np.allclose(I_tool, I_tool.T, atol=1e-12)
        if not symmetric or np.linalg.eigvalsh(0.5 * (I_tool + I_tool.T)).min() < -1e-12:
            raise ValueError("inertia: must be symmetric positive semi-definite")
        if self.dof == 0:
            raise ValueError("a chain without joints cannot carry a payload")
        T_joint_tool = self._T_tip @ self.T_flange_tool  # last joint's URDF frame -> tool frame
        R, p = T_joint_tool[:3, :3], T_joint_tool[:3, 3]
        added = _body_inertia(m, R @ c_tool + p, R @ I_tool @ R.T)
        inertia_all = self._inertia.copy()
        inertia_all[-1] += added
        chain = Chain(self.urdf_path, self.base_link, self.tip_link, self._joints, self._T_prefix,
                      self._T_tip, self.lower, self.upper, self.T_flange_tool, inertia_all)
        chain.gravity = self.gravity
        chain.armature = self.armature
        return chain

    def with_armature(self, armature: np.ndarray) -> Chain:
        """A new chain whose joints' drives have reflected rotor inertia ``armature`` (dof,), kg m^2
        (kg for prismatic joints), >= 0; see ``ChainKernel.armature``. ``ValueError`` for bad values.
        Tool, payload and ``gravity`` are kept."""
        chain = Chain(self.urdf_path, self.base_link, self.tip_link, self._joints, self._T_prefix,
                      self._T_tip, self.lower, self.upper, self.T_flange_tool, self._inertia)
        chain.gravity = self.gravity
        chain.armature = armature
        return chain

    def _build_kernel(self) -> None:
        n = len(self._joints)
        T_fixed = np.zeros((n + 1, 3, 4))
        C = np.zeros((n, 3, 3))
        inertia_n = np.zeros((n, _INERTIA_SIZE))
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
            # Body inertia seen from the normalised frame: vectors v_n = Ck v_urdf.
            b = self._inertia[k]
            inertia_n[k, 0] = b[0]
            inertia_n[k, 1:4] = Ck @ b[1:4]
            inertia_n[k, 4:] = (Ck @ b[4:].reshape(3, 3) @ Ck.T).reshape(9)
        A = self._T_tip @ self.T_flange_tool
        pre = np.eye(4)
        pre[:3, :3] = prev_C
        T_fixed[n] = (pre @ A)[:3]
        axes = np.array([j.axis for j in self._joints]).reshape(n, 3)
        jtype = np.array([j.jtype for j in self._joints], dtype=np.intc)
        self._init_kernel(T_fixed, jtype, axes, C, self.lower, self.upper, inertia_n)

    # ------------------------------------------------------------------ measures
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
        q, ok, pe, re, it = self._ik_solve(T_base_target, q_start, tol_pos, tol_rot, max_iter, restarts,
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


def _path_between(model: pin.Model, file_name: str, base_link: str,
                  tip_link: str) -> tuple[pin.Frame, pin.Frame, list[int]]:
    """The body frames of ``base_link`` and ``tip_link`` and the pinocchio ids of the joints from
    the base (excluded) down to the tip, in order. ``ValueError`` (naming ``file_name`` and listing
    its links) for an unknown link or a base that is not an ancestor of the tip."""
    links = _link_names(model)
    for role, name in (("base_link", base_link), ("tip_link", tip_link)):
        if name not in links:
            raise ValueError(f"{role} {name!r} is not a link of {file_name}; links: {', '.join(links)}")
    f_base = model.frames[model.getFrameId(base_link, pin.FrameType.BODY)]
    f_tip = model.frames[model.getFrameId(tip_link, pin.FrameType.BODY)]
    support = list(model.supports[f_tip.parentJoint])
    if f_base.parentJoint not in support:
        raise ValueError(f"base_link {base_link!r} is not an ancestor of tip_link {tip_link!r} in {file_name}")
    return f_base, f_tip, support[support.index(f_base.parentJoint) + 1 :]


def _one_dof_joint(model: pin.Model, jid: int) -> tuple[_JointInfo, float, float]:
    """Joint ``jid`` of ``model``: its kind and unit axis (URDF joint frame, from pinocchio's motion
    subspace at the neutral configuration) and its limits (rad or m; -inf/+inf when continuous,
    missing or inverted). ``ValueError`` for a joint that is not one-DOF or has no motion axis."""
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
    return _JointInfo(name, jtype, axis, continuous, jid), lo, hi


def _neutral_of(jm: pin.JointModel) -> np.ndarray:
    """Neutral configuration of one joint (cos/sin form for continuous joints)."""
    if jm.nq == 2:
        return np.array([1.0, 0.0])
    return np.zeros(jm.nq)


def _body_inertia(mass: float, com: np.ndarray, I_com: np.ndarray) -> np.ndarray:
    """(13,) ``[m, m c, J]`` with J the rotational inertia about the frame origin (parallel axes)."""
    c = np.asarray(com, dtype=np.float64)
    J = I_com + mass * (float(c @ c) * np.eye(3) - np.outer(c, c))
    return np.concatenate([[mass], mass * c, J.reshape(9)])


def _chain_inertias(model: pin.Model, chain_ids: list[int]) -> np.ndarray:
    """(n, 13) body inertias of the chain's joints, each in its URDF joint frame.

    pinocchio's model reduced to the chain (every other joint locked at its neutral position)
    has lumped into each chain joint everything rigidly attached after it.
    """
    keep = set(chain_ids)
    lock = [j for j in range(1, model.njoints) if j not in keep]
    reduced = pin.buildReducedModel(model, lock, pin.neutral(model)) if lock else model
    out = np.zeros((len(chain_ids), _INERTIA_SIZE))
    for k, jid in enumerate(chain_ids):
        Y = reduced.inertias[reduced.getJointId(model.names[jid])]
        out[k] = _body_inertia(float(Y.mass), np.asarray(Y.lever), np.asarray(Y.inertia))
    return out


def _rebuild(cls: type, args: tuple, gravity: np.ndarray, armature: np.ndarray | None = None) -> Chain:
    """Unpickle a ``Chain`` (it holds compiled state that pickle cannot copy by itself)."""
    chain = cls(*args)
    chain.gravity = gravity
    if armature is not None:
        chain.armature = armature
    return chain
