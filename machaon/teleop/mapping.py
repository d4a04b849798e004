"""Operator commands -> robot tool target: clutch/indexing, motion scaling, tremor filter,
workspace fixture, speed limits.

Frames: the master handle's pose is in the operator frame ``op`` (the console's own frame);
``R_base_op`` orients it in the robot base frame. The robot target ``T_base_target`` is the pose
of the tool frame in the base frame. Units SI.

Per control cycle (``step``), in this order:

1. Clutch (indexing): while the clutch is engaged, the master's displacement since the moment of
   engagement drives the target (relative to where the target was at that moment). Releasing the
   clutch freezes the target, so the operator can re-centre the hand and engage again.
2. Tremor filter: a Butterworth low-pass (SciPy ``butter`` + ``sosfilt`` with carried state) on
   the master displacement [dp; dtheta] at the control rate. Physiological tremor is 8-12 Hz;
   intended surgical motion is below ~2 Hz. The default (2nd order, 4 Hz) passes 2 Hz at
   -0.3 dB and attenuates 10 Hz by 16 dB, for ~50 ms of added lag; raise the order or lower the
   cut-off for more suppression at the price of more lag.
3. Motion scaling: translation divided by ``motion_scale`` (1:1 to 5:1); rotation is not scaled
   (as surgical teleoperators do, so the instrument stays aligned with the hand).
4. Jog increments (keyboard): ``[dp; dtheta]`` in the tool or base frame, added once.
5. Virtual fixtures (``machaon.control.fixtures``): the desired pose is projected into the allowed
   set: any fixtures given in the config (e.g. a ``ForbiddenSphere`` around a structure to
   protect), then the workspace box. The box as ``PlaneBoundary`` terms (``workspace_fixture``)
   is given to the inner ``CartesianImpedance`` as a restoring wrench by the server.
6. Speed limit: the target moves toward the desired pose at most ``v_max * speed_scale`` (m/s)
   and ``w_max * speed_scale`` (rad/s).

Bad input: a non-finite pose from a command never reaches here (the decoder rejects it); a
non-finite ``T`` given to ``reset`` raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from machaon._validate import finite_array, transform
from machaon.control.fixtures import Fixture, FixtureSet, PlaneBoundary
from machaon.kinematics.so3 import exp3, log3, matrix_from_quat
from machaon.teleop.messages import CmdFlag, Command, CommandKind, OperatorMode


@dataclass(frozen=True)
class TeleopConfig:
    """Settings of the teleoperation mapping and the robot server (SI units).

    ``command_timeout_s``: a gap between valid commands longer than this puts the arm in HOLD.
    ``workspace_min``/``workspace_max``: box for the tool origin in the base frame (None: no box).
    ``R_base_op``: rotation of the operator frame in the robot base frame.
    ``state_rate_hz``: how often the server sends the robot state to the console.
    ``fixtures``: extra ``machaon.control.fixtures`` terms the target must respect.
    """

    command_timeout_s: float = 0.1
    v_max: float = 0.10
    w_max: float = 0.8
    tremor_cutoff_hz: float = 4.0
    tremor_order: int = 2
    workspace_min: np.ndarray | None = None
    workspace_max: np.ndarray | None = None
    R_base_op: np.ndarray = field(default_factory=lambda: np.eye(3))
    state_rate_hz: float = 100.0
    fixtures: Fixture | None = None

    def __post_init__(self) -> None:
        for name in ("command_timeout_s", "v_max", "w_max", "state_rate_hz"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be a positive finite number, got {v!r}")
        if not (math.isfinite(self.tremor_cutoff_hz) and self.tremor_cutoff_hz >= 0):
            raise ValueError("tremor_cutoff_hz: must be >= 0 (0 disables the filter)")
        for name in ("workspace_min", "workspace_max"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, finite_array(name, v, (3,)).copy())
        if (self.workspace_min is None) != (self.workspace_max is None):
            raise ValueError("workspace_min/workspace_max: give both or neither")
        if self.workspace_min is not None and (self.workspace_min > self.workspace_max).any():
            raise ValueError("workspace_min must be <= workspace_max")
        R = finite_array("R_base_op", self.R_base_op, (3, 3))
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError("R_base_op: not a rotation matrix")
        object.__setattr__(self, "R_base_op", R.copy())


def workspace_fixture(
    workspace_min: np.ndarray, workspace_max: np.ndarray, k: float = 2000.0, d: float = 40.0
) -> FixtureSet:
    """The workspace box as six inward ``PlaneBoundary`` fixtures (base frame, m; ``k`` N/m and
    ``d`` N s/m for the restoring wrench when used in an impedance controller)."""
    lo = finite_array("workspace_min", workspace_min, (3,))
    hi = finite_array("workspace_max", workspace_max, (3,))
    terms: list[Fixture] = []
    for axis in range(3):
        n = np.zeros(3)
        n[axis] = 1.0
        terms.append(PlaneBoundary(lo, n, k, d))
        terms.append(PlaneBoundary(hi, -n, k, d))
    return FixtureSet(terms)


def _rotvec(R: np.ndarray) -> np.ndarray:
    return log3(np.ascontiguousarray(R))


def _rotmat(w: np.ndarray) -> np.ndarray:
    if not w.any():
        return np.eye(3)
    return exp3(w)


class _Butterworth:
    """SciPy's Butterworth design (``signal.butter``, second-order sections), stepped one sample
    at a time on several channels with the transposed direct form II recurrence that
    ``signal.sosfilt`` uses; one ``sosfilt`` call per sample costs ~50 us, this ~5 us."""

    def __init__(self, order: int, cutoff_hz: float, rate_hz: float, channels: int) -> None:
        self.sos = signal.butter(order, cutoff_hz, btype="low", fs=rate_hz, output="sos")
        self.b = [tuple(float(v) for v in sec[:3]) for sec in self.sos]
        self.a = [tuple(float(v) for v in sec[4:6]) for sec in self.sos]  # a0 = 1
        self.z = np.zeros((len(self.sos), 2, channels))

    def reset(self) -> None:
        self.z[:] = 0.0

    def step(self, x: np.ndarray) -> np.ndarray:
        y = x
        for k, ((b0, b1, b2), (a1, a2)) in enumerate(zip(self.b, self.a, strict=True)):
            z = self.z[k]
            out = b0 * y + z[0]
            z[0] = b1 * y - a1 * out + z[1]
            z[1] = b2 * y - a2 * out
            y = out
        return y


class TeleopMapper:
    """The per-cycle mapping described in the module docstring. Not thread-safe: the server
    feeds ``on_command`` and calls ``step`` from the control thread."""

    def __init__(self, config: TeleopConfig, rate_hz: float) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz: must be positive, got {rate_hz!r}")
        self.config = config
        self.rate_hz = float(rate_hz)
        fc = config.tremor_cutoff_hz
        if fc > 0:
            if fc >= rate_hz / 2:
                raise ValueError(f"tremor_cutoff_hz {fc} must be below the Nyquist rate {rate_hz / 2}")
            self._filter: _Butterworth | None = _Butterworth(config.tremor_order, fc, rate_hz, 6)
            self._sos = self._filter.sos
        else:
            self._filter = None
            self._sos = None
        self.T_target = np.eye(4)
        self.T_desired = np.eye(4)
        self._T_ref = np.eye(4)  # desired pose when the clutch was engaged
        self._p_master_ref: np.ndarray | None = None
        self._R_master_ref: np.ndarray | None = None
        self._p_master: np.ndarray | None = None
        self._R_master: np.ndarray | None = None
        self.clutch = False
        self.mode = OperatorMode.HOLD
        self.speed_scale = 1.0
        self.motion_scale = 1.0
        self._pending_inc = np.zeros(6)
        self._inc_tool_frame = False
        self._fixture = config.fixtures
        self.fixture_active = False
        self.speed_limited = False

    def reset(self, T_base_tool: np.ndarray) -> None:
        """Align target and desired pose with the measured tool pose; release the clutch."""
        T = transform("T_base_tool", T_base_tool)
        self.T_target = T.copy()
        self.T_desired = T.copy()
        self._T_ref = T.copy()
        self.clutch = False
        self._p_master_ref = None
        self._pending_inc[:] = 0.0
        if self._filter is not None:
            self._filter.reset()

    def on_command(self, cmd: Command) -> None:
        """Take in a decoded (already bounds-checked) command. Master motion and jog increments
        act only while the clutch is engaged in FOLLOW mode."""
        self.mode = cmd.mode
        self.speed_scale = cmd.speed_scale
        self.motion_scale = cmd.motion_scale
        clutch = bool(cmd.flags & CmdFlag.CLUTCH) and cmd.mode == OperatorMode.FOLLOW
        if not clutch:
            self._p_master_ref = None  # released: indexing; the next engagement re-references
        if cmd.kind == CommandKind.MASTER_POSE:
            self._p_master = np.asarray(cmd.p_op, dtype=np.float64)
            self._R_master = matrix_from_quat(cmd.quat_op)
            if clutch and self._p_master_ref is None:
                self._engage()
        elif cmd.kind == CommandKind.INCREMENT and clutch:
            self._pending_inc += np.asarray(cmd.increment, dtype=np.float64)
            self._inc_tool_frame = bool(cmd.flags & CmdFlag.TOOL_FRAME)
        self.clutch = clutch

    def _engage(self) -> None:
        self._p_master_ref = self._p_master.copy()
        self._R_master_ref = self._R_master.copy()
        self._T_ref = self.T_desired.copy()
        if self._filter is not None:
            self._filter.reset()

    def step(self) -> np.ndarray:
        """Advance one control cycle; returns ``T_base_target`` (a copy)."""
        c = self.config
        dt = 1.0 / self.rate_hz
        if self.clutch and self._p_master_ref is not None:
            x = np.empty(6)
            x[:3] = self._p_master - self._p_master_ref
            x[3:] = _rotvec(self._R_master @ self._R_master_ref.T)
            if self._filter is not None:
                x = self._filter.step(x)
            Rb = c.R_base_op
            self.T_desired = np.eye(4)
            self.T_desired[:3, 3] = self._T_ref[:3, 3] + Rb @ x[:3] / self.motion_scale
            self.T_desired[:3, :3] = _rotmat(Rb @ x[3:]) @ self._T_ref[:3, :3]
        if self._pending_inc.any():
            inc = self._pending_inc.copy()
            self._pending_inc[:] = 0.0
            R = self.T_desired[:3, :3]
            if self._inc_tool_frame:
                self.T_desired[:3, 3] += R @ inc[:3]
                self.T_desired[:3, :3] = R @ _rotmat(inc[3:])
            else:
                self.T_desired[:3, 3] += inc[:3]
                self.T_desired[:3, :3] = _rotmat(inc[3:]) @ R
            if self._p_master_ref is not None:
                self._engage()  # master motion continues from the jogged pose
        # virtual fixtures: project the desired pose into the allowed set. The workspace box is
        # the projection of its six PlaneBoundary terms, done here as one clip (same result).
        self.fixture_active = False
        if self._fixture is not None and self._fixture.violation(self.T_desired) > 0.0:
            self.fixture_active = True
            self.T_desired = self._fixture.constrain(self.T_desired)
        if c.workspace_min is not None:
            p = self.T_desired[:3, 3]
            clipped = np.clip(p, c.workspace_min, c.workspace_max)
            if not np.array_equal(clipped, p):
                self.fixture_active = True
                self.T_desired[:3, 3] = clipped
        # speed limit
        self.speed_limited = False
        dp = self.T_desired[:3, 3] - self.T_target[:3, 3]
        step_p = c.v_max * self.speed_scale * dt
        n = float(np.linalg.norm(dp))
        if n > step_p:
            dp *= step_p / n
            self.speed_limited = True
        dw = _rotvec(self.T_desired[:3, :3] @ self.T_target[:3, :3].T)
        step_w = c.w_max * self.speed_scale * dt
        a = float(np.linalg.norm(dw))
        if a > step_w:
            dw *= step_w / a
            self.speed_limited = True
        self.T_target[:3, 3] += dp
        self.T_target[:3, :3] = _rotmat(dw) @ self.T_target[:3, :3]
        return self.T_target.copy()
