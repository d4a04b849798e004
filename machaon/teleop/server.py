"""The robot server: the control loop driving a ``Backend`` from authenticated operator commands.

::

    UDP socket --(network process, ``netproc``)--> ServerEndpoint (header checks, cookies, rate
                  limits, auth, replay, bounds, stale) --accepted commands only-->
    link thread --> TeleopController.submit (E-stop latches here, at once)
    ControlLoop (backend clock, default 1 kHz):
        TeleopController.update -> mapper (clutch, scaling, tremor, fixture, speed) -> inner
        Cartesian controller -> Supervisor.check (HOLD on a command gap, limits) -> backend
    link thread, every 1/state_rate_hz: snapshot -> RobotStateMsg -> network process -> sealed
        -> operator

Receiving, rejecting and decrypting happen in a separate process, so a flood of junk or forged
datagrams never competes with the control loop for this interpreter's GIL; the link thread here
wakes only for authenticated commands and state messages. If the network process dies, the
robot holds (command gap) and ``link_error`` says why.

The robot-facing API speaks CRTK (``machaon.robot.crtk``): ``measured_js``, ``measured_cp``,
``measured_cf``, ``setpoint_cp`` (the teleoperation target), ``operating_state`` (CRTK's
``ENABLED``/``PAUSED``/``FAULT``/``DISABLED`` from the supervisor's state), ``hold``, ``enable``
(reset a stop and resume) and ``disable`` (stop serving; the loop ends with a hold). Motion comes
from the operator over the link, so there are no ``servo_*``/``move_*`` here.

The server takes a ``Backend`` object; which backend (simulation or hardware) is the CLI's
choice. ``build_supervisor`` gives the supervisor the server expects: it starts in HOLD (the
arm does nothing until the operator presses the clutch) and its target watchdog is the
command timeout.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from machaon.control.controller import DynamicsModel, TargetController
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.kinematics import Chain
from machaon.robot.backend import Backend, clear_latched_fault
from machaon.robot.crtk import CrtkReadout
from machaon.robot.loop import ControlLoop, Recorder
from machaon.teleop.controller import _SUP_CODE, TeleopController, TeleopSnapshot
from machaon.teleop.endpoint import LinkHealth
from machaon.teleop.mapping import TeleopConfig
from machaon.teleop.messages import FORCE_LIMIT, CmdFlag, HoldReason, RobotStateMsg, Timing, pose_to_wire
from machaon.teleop.netproc import NetworkProcess

log = logging.getLogger(__name__)

_FAULT_RESET_WAIT_S = 0.5  # enable(): how long a latched backend may take to answer again (its next read)


def build_supervisor(
    chain: Chain, config: TeleopConfig, dynamics: DynamicsModel | None = None, **safety: object
) -> Supervisor:
    """A ``Supervisor`` for teleoperation: starts in HOLD, joint limits from ``chain``, target
    watchdog = ``config.command_timeout_s``; ``dynamics`` gives the torque-mode hold its gravity
    compensation (needed on a torque backend); ``safety`` overrides other ``SafetyConfig`` fields."""
    safety.setdefault("target_timeout_s", config.command_timeout_s)
    return Supervisor(
        SafetyConfig.from_chain(chain, **safety), chain=chain, dynamics=dynamics,
        initial_state=SupervisorState.HOLD,
    )


@dataclass(frozen=True)
class ServerStats:
    accepted: int
    dropped: dict[str, int]
    session_id: int | None
    link: LinkHealth
    supervisor: SupervisorState
    hold_reason: HoldReason
    states_sent: int
    loop_cycles: int
    handshakes: int = 0
    cookies_sent: int = 0
    received: int = 0


class RobotServer:
    """Teleoperation server (module docstring). Use as a context manager.

    ``chain``: kinematic chain whose tip is the tool frame the operator drives; ``inner``: the
    Cartesian controller (``CartesianImpedance`` / ``Admittance``); ``psk``: 32-byte key;
    ``endpoint``: ``ServerEndpoint`` keyword arguments for the network process (cookie threshold,
    HELLO rate limits, rekey policy ...); ``realtime_priority``: SCHED_FIFO priority of the control
    loop's thread (``ControlLoop``), so other processes on a busy machine cannot delay its cycles.
    """

    def __init__(
        self,
        backend: Backend,
        chain: Chain,
        inner: TargetController,
        psk: bytes,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        config: TeleopConfig | None = None,
        supervisor: Supervisor | None = None,
        rate_hz: float = 1000.0,
        recorder: Recorder | None = None,
        endpoint: dict | None = None,
        realtime_priority: int | None = None,
    ) -> None:
        self.config = config or TeleopConfig()
        self.supervisor = supervisor or build_supervisor(chain, self.config)
        tt = self.supervisor.config.target_timeout_s
        if tt is None or not math.isclose(tt, self.config.command_timeout_s):
            log.warning("supervisor target_timeout_s=%s differs from command_timeout_s=%s",
                        tt, self.config.command_timeout_s)
        self.backend = backend
        self.controller = TeleopController(chain, inner, self.supervisor, self.config, rate_hz)
        self.loop = ControlLoop(backend, self.controller, self.supervisor, rate_hz, recorder,
                                realtime_priority=realtime_priority)
        self._crtk = CrtkReadout(self.loop, chain)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind(listen)
        except OSError:
            self._sock.close()
            raise
        self.network = NetworkProcess(self._sock, psk, endpoint)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.states_sent = 0

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    def start(self) -> RobotServer:
        """Start the control loop (it holds the arm: no commands yet), then the network process
        and the link thread. The loop goes first so that a hardware bus never falls silent between
        a homing move and serving (the servos' Bus Watchdog would trip, and they would then
        refuse goal positions)."""
        self.loop.start()
        try:
            self.network.start()
        except BaseException:
            self.loop.stop()
            raise
        self._thread = threading.Thread(target=self._link, name="teleop-server-link", daemon=True)
        self._thread.start()
        log.info("teleop server listening on %s:%d", *self.address)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.loop.stop()
        self.network.close()
        self._sock.close()

    @property
    def link_error(self) -> str | None:
        """Why the network process stopped, or None while it runs."""
        return self.network.error

    def __enter__(self) -> RobotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> ServerStats:
        snap = self.controller.snapshot()
        net = self.network.stats
        return ServerStats(
            net.accepted,
            dict(net.dropped),
            net.session_id,
            net.link,
            self.supervisor.state,
            snap.hold_reason if snap else HoldReason.NO_SESSION,
            net.states_sent,
            self.loop.cycles,
            net.handshakes,
            net.cookies_sent,
            net.received,
        )

    # -- CRTK names (robot-facing API) ----------------------------------------------------------------
    def measured_js(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CRTK ``measured_js``: (position, velocity, effort) of the latest reading (SI)."""
        return self._crtk.measured_js()

    def measured_cp(self) -> np.ndarray:
        """CRTK ``measured_cp``: ``T_base_tool`` (4x4, m) from the measured joints."""
        return self._crtk.measured_cp()

    def measured_cf(self) -> np.ndarray:
        """CRTK ``measured_cf``: tool wrench ``[f; m]`` (N, N m, base frame); ``CrtkError`` without a sensor."""
        return self._crtk.measured_cf()

    def setpoint_cp(self) -> np.ndarray:
        """CRTK ``setpoint_cp``: the teleoperation target ``T_base_target`` (the measured pose before any)."""
        snap = self.controller.snapshot()
        return self.measured_cp() if snap is None else np.array(snap.T_base_target)

    def operating_state(self) -> str:
        """CRTK ``operating_state``: ``ENABLED`` (RUN), ``PAUSED`` (HOLD), ``FAULT`` (stops), ``DISABLED``."""
        return self._crtk.operating_state()

    def hold(self) -> None:
        """CRTK ``hold``: the supervisor holds the arm where it is until the operator's clutch resumes it."""
        self.supervisor.hold("operator hold (CRTK hold)")

    def enable(self) -> bool:
        """CRTK ``enable``: start serving if not started, leave a protective stop or E-stop
        (``Supervisor.reset``; a backend latched in a device fault is set up again first, as the
        operator's RESET does) and resume; True when ``ENABLED``."""
        if not self.loop.running:
            self.start()
        if self.supervisor.state in (SupervisorState.PROTECTIVE_STOP, SupervisorState.ESTOP):
            clear_latched_fault(self.backend, wait_s=_FAULT_RESET_WAIT_S, settle_s=2.0 * self.loop.period)
            self.supervisor.reset()
        self.supervisor.target_updated()
        self.supervisor.resume()
        return self.operating_state() == "ENABLED"

    def disable(self) -> None:
        """CRTK ``disable``: stop serving (the loop ends with a hold at the current pose)."""
        self.close()

    # -- link thread ------------------------------------------------------------------------------
    def _link(self) -> None:
        period = 1.0 / self.config.state_rate_hz
        t_next = time.monotonic() + period
        while not self._stop.is_set():
            for cmd in self.network.poll(min(max(0.0, t_next - time.monotonic()), 0.05)):
                if cmd.flags & CmdFlag.RESET:
                    self._clear_device_fault()
                self.controller.submit(cmd)
            now = time.monotonic()
            if now >= t_next:
                t_next = max(t_next + period, now)
                self._send_state()

    def _clear_device_fault(self) -> None:
        """The operator's reset also reaches a backend latched in a device fault (a tripped Bus
        Watchdog, a lost bus): it sets the servos up again on the loop's thread once they answer,
        and the supervisor's reset succeeds on a later RESET. Backends without latches ignore it."""
        clear_latched_fault(self.backend)

    def _send_state(self) -> None:
        snap = self.controller.snapshot()
        if snap is None:
            return
        if self.network.send_state(state_message(snap, 0, 0)):
            self.states_sent += 1


def state_message(snap: TeleopSnapshot, last_seq: int = 0, dropped: int = 0) -> RobotStateMsg:
    """``RobotStateMsg`` for a ``TeleopSnapshot`` (timing, ``last_seq`` and ``dropped`` are
    filled in by the endpoint that seals it)."""
    p, q = pose_to_wire(snap.T_base_tool)
    pt, qt = pose_to_wire(snap.T_base_target)
    # the wire bounds wrenches to +-FORCE_LIMIT; a larger reading is clipped (and is a fault anyway)
    w = tuple(float(x) for x in np.clip(np.nan_to_num(snap.wrench), -FORCE_LIMIT, FORCE_LIMIT))
    return RobotStateMsg(
        Timing(0.0), snap.t, p, q, pt, qt, w, _SUP_CODE[snap.supervisor],
        snap.hold_reason if snap.commands else HoldReason.NO_SESSION,
        snap.mode, snap.clutch, snap.supervisor is SupervisorState.ESTOP, last_seq, dropped,
    )
