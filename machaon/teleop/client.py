"""Operator-side network client: handshake, a command stream, robot state and link health.

The console UI and the headless ``--script`` replay both drive a ``TeleopClient``: they set
the operator input (``OperatorInput``, mutated only by the owner thread) and the client's
sender thread streams it as commands at ``rate_hz`` (MASTER_POSE while a master pose is in
use, HEARTBEAT otherwise), plus one-shot INCREMENT commands for keyboard jogging. A receiver
thread decodes robot states. An E-stop is repeated in every command until the robot reports
it latched; a reset is repeated until the robot reports it cleared.

All times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from machaon.errors import TeleopError
from machaon.teleop.endpoint import ClientEndpoint, LinkHealth
from machaon.teleop.messages import CmdFlag, CommandKind, OperatorMode, RobotStateMsg, SessionError

log = logging.getLogger(__name__)


class ConnectError(TeleopError, RuntimeError):
    """The handshake with the robot server did not complete."""


@dataclass
class OperatorInput:
    """The operator's current input (mutable, owned by the UI or the script thread)."""

    p: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    clutch: bool = False
    mode: OperatorMode = OperatorMode.FOLLOW
    speed_scale: float = 1.0
    motion_scale: float = 1.0
    tool_frame: bool = False
    master: bool = True  # stream MASTER_POSE (else HEARTBEAT)
    estop: bool = False
    reset: bool = False
    extra: dict = field(default_factory=dict)


class TeleopClient:
    """UDP client for ``RobotServer`` (module docstring). Use as a context manager."""

    def __init__(self, server: tuple[str, int], psk: bytes, *, rate_hz: float = 100.0) -> None:
        if not (math.isfinite(rate_hz) and 0 < rate_hz <= 1000):
            raise ValueError(f"rate_hz: must be in (0, 1000], got {rate_hz!r}")
        self.server = server
        self.rate_hz = float(rate_hz)
        self.endpoint = ClientEndpoint(psk)
        self.input = OperatorInput()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("0.0.0.0" if server[0] not in ("127.0.0.1", "localhost") else "127.0.0.1", 0))
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._states: list[tuple[float, RobotStateMsg]] = []
        self.on_state = None  # optional callback(t, RobotStateMsg), called from the receiver thread

    def connect(self, timeout: float = 3.0, retry_s: float = 0.25) -> None:
        """Handshake (HELLO retried every ``retry_s``, at once with the server's cookie when it
        sends one); ``ConnectError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        t_retry = -math.inf
        while (now := time.monotonic()) < deadline:
            if now >= t_retry or self.endpoint.hello_due:
                try:
                    self._sock.sendto(self.endpoint.hello(now), self.server)
                except OSError as exc:  # e.g. no route yet
                    log.debug("connect: %s", exc)
                t_retry = now + retry_s
            self._sock.settimeout(max(1e-3, min(t_retry, deadline) - time.monotonic()))
            try:
                data, _ = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError as exc:  # e.g. ICMP port unreachable: server not up yet
                log.debug("connect: %s", exc)
                time.sleep(min(retry_s, max(0.0, deadline - time.monotonic())))
                continue
            self.endpoint.handle(data, time.monotonic())
            if self.endpoint.connected:
                log.info("connected to %s:%d", *self.server)
                return
        raise ConnectError(f"no answer from a teleop server at {self.server[0]}:{self.server[1]} "
                           f"within {timeout:g} s (wrong key, address, or server down)")

    def start(self) -> TeleopClient:
        if not self.endpoint.connected:
            self.connect()
        self._sock.settimeout(0.05)
        self._threads = [threading.Thread(target=self._rx, name="teleop-client-rx", daemon=True),
                         threading.Thread(target=self._tx, name="teleop-client-tx", daemon=True)]
        for th in self._threads:
            th.start()
        return self

    def close(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=2.0)
        self._sock.close()

    def __enter__(self) -> TeleopClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the UI / script uses -------------------------------------------------------------------
    @property
    def latest(self) -> RobotStateMsg | None:
        return self.endpoint.latest

    def health(self) -> LinkHealth:
        return self.endpoint.meter.health(time.monotonic())

    def history(self) -> list[tuple[float, RobotStateMsg]]:
        """(arrival time, state) of every state received so far."""
        with self._lock:
            return list(self._states)

    def jog(self, increment: np.ndarray) -> None:
        """Send one INCREMENT [dp (m); dtheta (rad)] in the tool or base frame (``input.tool_frame``)."""
        inc = np.asarray(increment, dtype=np.float64)
        if inc.shape != (6,) or not np.isfinite(inc).all():
            raise ValueError("increment: expected 6 finite numbers")
        self._send(CommandKind.INCREMENT, tuple(float(x) for x in inc))

    def predicted_position(self) -> np.ndarray | None:
        """Measured tool position extrapolated to 'now at the robot': the last two states give a
        velocity, applied over the state's age plus the one-way delay estimate (base frame, m)."""
        hist = self._states[-2:]
        if len(hist) < 2:
            return None
        (t0, s0), (t1, s1) = hist
        dt = s1.t_robot - s0.t_robot
        p1 = np.asarray(s1.p_base_tool)
        if dt <= 0:
            return p1
        v = (p1 - np.asarray(s0.p_base_tool)) / dt
        h = self.health()
        ahead = (time.monotonic() - t1) + (h.one_way_s if math.isfinite(h.one_way_s) else 0.0)
        return p1 + v * min(ahead, 1.0)

    # -- threads -------------------------------------------------------------------------------------
    def _send(self, kind: CommandKind, increment: tuple | None = None) -> None:
        u = self.input
        latest = self.endpoint.latest
        flags = CmdFlag.NONE
        if u.clutch:
            flags |= CmdFlag.CLUTCH
        if u.tool_frame:
            flags |= CmdFlag.TOOL_FRAME
        if u.estop:
            flags |= CmdFlag.ESTOP
            if latest is not None and latest.estop_latched:
                u.estop = False  # acknowledged
        if u.reset and not u.estop:
            flags |= CmdFlag.RESET
            if latest is not None and not latest.estop_latched:
                u.reset = False
        fields: dict = dict(mode=u.mode, flags=flags, speed_scale=u.speed_scale, motion_scale=u.motion_scale)
        if kind == CommandKind.MASTER_POSE:
            fields.update(p_op=u.p, quat_op=u.quat)
        if increment is not None:
            fields["increment"] = increment
        # One lock around sealing and sending: the UI thread (jogs) and the sender thread share
        # the sequence counter, and a packet sealed first but sent second would arrive "stale".
        with self._send_lock:
            try:
                pkt = self.endpoint.command(time.monotonic(), kind, **fields)
            except SessionError:
                return
            try:
                self._sock.sendto(pkt, self.server)
            except OSError as exc:
                log.debug("send failed: %s", exc)

    def _tx(self) -> None:
        period = 1.0 / self.rate_hz
        t_next = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if self.endpoint.needs_rekey(now) or (self.endpoint.hello_due and self.endpoint.connected):
                with self._send_lock:  # new keys before the old ones expire; commands go on meanwhile
                    try:
                        self._sock.sendto(self.endpoint.hello(now), self.server)
                    except OSError as exc:
                        log.debug("rekey send failed: %s", exc)
            self._send(CommandKind.MASTER_POSE if self.input.master else CommandKind.HEARTBEAT)
            t_next += period
            dt = t_next - time.monotonic()
            if dt > 0:
                self._stop.wait(dt)
            else:
                t_next = time.monotonic()

    def _rx(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self._sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError as exc:
                log.debug("recv failed: %s", exc)
                self._stop.wait(0.05)
                continue
            t = time.monotonic()
            msg = self.endpoint.handle(data, t)
            if msg is not None:
                with self._lock:
                    self._states.append((t, msg))
                    if len(self._states) > 100000:
                        del self._states[:50000]
                if self.on_state is not None:
                    self.on_state(t, msg)
