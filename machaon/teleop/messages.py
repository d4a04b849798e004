"""Teleoperation messages and their binary encoding (protocol version 2).

Plain bodies here; ``machaon.teleop.session`` adds the header, the authentication and the
encryption. Every field is fixed-size little-endian (``struct``). Units on the wire are SI
(m, rad, N, N m, s) and quaternions are (x, y, z, w), so no conversion happens here.

Decoding checks everything a forged or corrupted body could get wrong: exact length, known
enum values, finite numbers, unit quaternions (within 1e-3, then renormalised), positions inside
``POSITION_LIMIT_M``, increments inside ``MAX_STEP_M``/``MAX_STEP_RAD``, scales inside their
ranges. A body that fails raises ``BoundsError`` or ``MalformedError`` (both ``LinkProtocolError``)
and never becomes a message.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

import numpy as np

from machaon.errors import TeleopError
from machaon.kinematics.so3 import pq_from_transform

PROTOCOL_VERSION = 2  # 2: Noise NNpsk0 handshake with timestamps and cookies (``session``)
POSITION_LIMIT_M = 5.0  # no master or robot position on the wire may exceed this (m)
MAX_STEP_M = 0.02  # largest Cartesian increment one command may carry (m)
MAX_STEP_RAD = 0.2  # largest rotation increment one command may carry (rad)
MOTION_SCALE_RANGE = (1.0, 5.0)  # master:slave motion scaling, 1:1 to 5:1
FORCE_LIMIT = 1e4  # |wrench| component bound on the wire (N, N m)


class LinkProtocolError(TeleopError):
    """Base of every reason a packet is dropped. ``reason`` is a stable counter name."""

    reason = "protocol"


class MalformedError(LinkProtocolError):
    reason = "malformed"


class BoundsError(LinkProtocolError):
    reason = "bounds"


class AuthError(LinkProtocolError):
    reason = "auth"


class ReplayError(LinkProtocolError):
    reason = "replay"


class StaleError(LinkProtocolError):
    reason = "stale"


class SessionError(LinkProtocolError):
    reason = "session"


class ExpiredError(SessionError):
    """A packet for a session past its key lifetime (``session.RekeyPolicy``)."""

    reason = "expired"


class RateLimitError(LinkProtocolError):
    """A handshake from a source that exceeded its rate while the server is under load."""

    reason = "ratelimit"


class CookieRequired(LinkProtocolError):
    """A HELLO without a valid cookie MAC while the server is under load: answered with a COOKIE,
    not processed."""

    reason = "cookie"


# The old name, for one release (#16: the hardware layer had a ``ProtocolError`` too).
ProtocolError = LinkProtocolError


class MsgType(enum.IntEnum):
    HELLO = 1
    WELCOME = 2
    COMMAND = 3
    STATE = 4
    COOKIE = 5


class CommandKind(enum.IntEnum):
    HEARTBEAT = 0  # keep-alive only; no motion
    MASTER_POSE = 1  # absolute pose of the master handle in the operator frame
    INCREMENT = 2  # a Cartesian increment [dp; dtheta] in the tool or base frame (jogging)


class OperatorMode(enum.IntEnum):
    HOLD = 0  # operator asks the robot to hold still
    FOLLOW = 1  # robot follows the master (when the clutch is engaged)


class CmdFlag(enum.IntFlag):
    NONE = 0
    CLUTCH = 1  # clutch engaged: master motion drives the robot (released = indexing)
    ESTOP = 2  # emergency stop (latched by the server)
    RESET = 4  # reset a latched E-stop
    TOOL_FRAME = 8  # INCREMENT is expressed in the tool frame (else base frame)


class SupervisorCode(enum.IntEnum):
    """Robot-side state as carried on the wire (the server maps its supervisor onto this)."""

    OK = 0
    HOLD = 1
    ESTOP = 2
    FAULT = 3


class HoldReason(enum.IntEnum):
    NONE = 0
    OPERATOR = 1
    COMMAND_GAP = 2
    ESTOP = 3
    SUPERVISOR = 4
    NO_SESSION = 5


def _check_finite(name: str, values: tuple[float, ...], limit: float) -> None:
    for v in values:
        if not math.isfinite(v):
            raise BoundsError(f"{name}: not finite")
        if abs(v) > limit:
            raise BoundsError(f"{name}: |{v:g}| exceeds {limit:g}")


def _unit_quat(name: str, q: tuple[float, ...]) -> np.ndarray:
    _check_finite(name, q, 1.01)
    a = np.asarray(q, dtype=np.float64)
    n = float(np.linalg.norm(a))
    if abs(n - 1.0) > 1e-3:
        raise BoundsError(f"{name}: not a unit quaternion (norm {n:g})")
    return a / n


def _enum(cls: type[enum.IntEnum], name: str, value: int) -> enum.IntEnum:
    try:
        return cls(value)
    except ValueError:
        raise BoundsError(f"{name}: unknown value {value}") from None


@dataclass(frozen=True)
class Timing:
    """Timestamps for delay estimates, all on the sender's ``time.monotonic()`` except
    ``echo_t`` (the peer's ``t_send`` of the last message received, echoed back) and
    ``echo_hold_s`` (how long the sender held that message before this send)."""

    t_send: float
    echo_t: float = 0.0
    echo_hold_s: float = 0.0


@dataclass(frozen=True)
class Command:
    """An operator command. ``p_op``/``quat_op``: master pose in the operator frame
    (MASTER_POSE); ``increment``: [dp (m); dtheta (rad)] (INCREMENT). ``speed_scale`` in (0, 1]
    scales the robot's speed limits; ``motion_scale`` in [1, 5] divides master motion."""

    timing: Timing
    kind: CommandKind
    mode: OperatorMode = OperatorMode.FOLLOW
    flags: CmdFlag = CmdFlag.NONE
    tool: int = 0
    speed_scale: float = 1.0
    motion_scale: float = 1.0
    p_op: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat_op: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    increment: tuple[float, float, float, float, float, float] = (0.0,) * 6

    _FMT = struct.Struct("<3dBBBBff3d4d6d")

    def pack(self) -> bytes:
        t = self.timing
        return self._FMT.pack(
            t.t_send, t.echo_t, t.echo_hold_s, int(self.kind), int(self.mode), int(self.flags), self.tool,
            self.speed_scale, self.motion_scale, *self.p_op, *self.quat_op, *self.increment,
        )

    @classmethod
    def unpack(cls, body: bytes) -> Command:
        if len(body) != cls._FMT.size:
            raise MalformedError(f"command body is {len(body)} bytes, expected {cls._FMT.size}")
        v = cls._FMT.unpack(body)
        _check_finite("timing", v[0:3], 1e12)
        kind = _enum(CommandKind, "kind", v[3])
        mode = _enum(OperatorMode, "mode", v[4])
        if v[5] & ~0x0F:
            raise BoundsError(f"flags: unknown bits {v[5]:#x}")
        flags = CmdFlag(v[5])
        speed, mscale = v[7], v[8]
        if not (math.isfinite(speed) and 0.0 < speed <= 1.0):
            raise BoundsError(f"speed_scale {speed!r} outside (0, 1]")
        lo, hi = MOTION_SCALE_RANGE
        if not (math.isfinite(mscale) and lo - 1e-6 <= mscale <= hi + 1e-6):
            raise BoundsError(f"motion_scale {mscale!r} outside [{lo}, {hi}]")
        p = v[9:12]
        _check_finite("p_op", p, POSITION_LIMIT_M)
        quat = tuple(float(x) for x in _unit_quat("quat_op", v[12:16]))
        inc = v[16:22]
        _check_finite("increment", inc, 1e3)
        if math.hypot(*inc[:3]) > MAX_STEP_M or math.hypot(*inc[3:]) > MAX_STEP_RAD:
            raise BoundsError("increment: step too large")
        return cls(
            Timing(*v[0:3]), kind, mode, flags, v[6], float(speed), float(mscale),
            tuple(p), quat, tuple(inc),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class RobotStateMsg:
    """Robot state sent to the console. Poses of the tool in the robot base frame:
    ``p_base_tool``/``quat_base_tool`` measured, ``p_target``/``quat_target`` commanded;
    ``wrench`` [f (N); m (N m)] in the base frame (zeros if no sensor); ``t_robot`` is the
    backend clock; ``last_seq`` the sequence number of the last applied command."""

    timing: Timing
    t_robot: float
    p_base_tool: tuple[float, float, float]
    quat_base_tool: tuple[float, float, float, float]
    p_target: tuple[float, float, float]
    quat_target: tuple[float, float, float, float]
    wrench: tuple[float, float, float, float, float, float]
    supervisor: SupervisorCode
    hold_reason: HoldReason
    mode: OperatorMode
    clutch: bool
    estop_latched: bool
    last_seq: int
    dropped_packets: int

    _FMT = struct.Struct("<4d3d4d3d4d6dBBBBBxxxQI")

    def pack(self) -> bytes:
        t = self.timing
        return self._FMT.pack(
            t.t_send, t.echo_t, t.echo_hold_s, self.t_robot, *self.p_base_tool, *self.quat_base_tool,
            *self.p_target, *self.quat_target, *self.wrench, int(self.supervisor), int(self.hold_reason),
            int(self.mode), int(self.clutch), int(self.estop_latched), self.last_seq, self.dropped_packets,
        )

    @classmethod
    def unpack(cls, body: bytes) -> RobotStateMsg:
        if len(body) != cls._FMT.size:
            raise MalformedError(f"state body is {len(body)} bytes, expected {cls._FMT.size}")
        v = cls._FMT.unpack(body)
        _check_finite("timing", v[0:4], 1e12)
        _check_finite("p_base_tool", v[4:7], POSITION_LIMIT_M)
        q1 = tuple(float(x) for x in _unit_quat("quat_base_tool", v[7:11]))
        _check_finite("p_target", v[11:14], POSITION_LIMIT_M)
        q2 = tuple(float(x) for x in _unit_quat("quat_target", v[14:18]))
        _check_finite("wrench", v[18:24], FORCE_LIMIT)
        if v[27] > 1 or v[28] > 1:
            raise BoundsError("boolean field out of range")
        return cls(
            Timing(*v[0:3]), v[3], tuple(v[4:7]), q1, tuple(v[11:14]), q2, tuple(v[18:24]),  # type: ignore[arg-type]
            _enum(SupervisorCode, "supervisor", v[24]), _enum(HoldReason, "hold_reason", v[25]),
            _enum(OperatorMode, "mode", v[26]), bool(v[27]), bool(v[28]), v[29], v[30],
        )


def pose_to_wire(T: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """4x4 pose -> (p, quat (x, y, z, w)) for the wire."""
    p, q = pq_from_transform(T)
    return (p[0], p[1], p[2]), q
