"""The robot server's network process: receive, reject, decrypt and answer off the control path.

::

    UDP socket --> [network process: ServerEndpoint]  --accepted commands-->  [robot process]
                   header checks, cookies, rate limits,  <--state messages--   control loop,
                   AEAD, replay window, drop counters                          TeleopController

The control loop shares a Python interpreter (and so the GIL) with whatever runs beside it. A
network thread that parses every datagram of a junk flood takes the GIL thousands of times a
second and the loop falls behind real time. Here the UDP socket belongs to a child process
(``python -m machaon.teleop.netproc``); only authenticated, decoded commands cross to the robot
process, over a bounded ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair, so junk, forgeries and
replays cost the robot process nothing. The robot process sends state messages back; the child
stamps, seals and sends them to the live operator.

Messages on the socket pair (one per packet, first byte the kind)::

    child -> parent  R ready | C command body (``Command.pack``) | T stats (JSON) | L level + log line
    parent -> child  S state body (``RobotStateMsg.pack``) | Q quit

The first message parent -> child is the configuration (JSON: key, endpoint settings, log level).
The child never blocks on the parent: if the socket pair is full, the command is dropped and
counted (``queue``); the operator's next command supersedes it anyway. The child ignores SIGINT
(the parent decides when to stop) and exits when the parent closes its end, even if it was
killed. Log records of the child (drop summaries once per second, handshakes) are forwarded to
the parent's logging.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from machaon._childproc import child_main, relay_log, start_child, stop_child
from machaon.errors import TeleopError
from machaon.teleop.endpoint import LinkHealth, ServerEndpoint
from machaon.teleop.messages import Command, LinkProtocolError, RobotStateMsg

log = logging.getLogger(__name__)

_STATS_S = 0.25
_BATCH = 256  # datagrams read per wake-up before the control socket gets a turn


class NetworkProcessError(TeleopError, RuntimeError):
    """The network process could not start or has died."""


@dataclass(frozen=True)
class NetworkStats:
    """The network process's counters, as of its last report (every 0.25 s)."""

    accepted: int
    dropped: dict[str, int]
    session_id: int | None
    link: LinkHealth
    handshakes: int
    cookies_sent: int
    pending: int
    received: int
    states_sent: int
    queue_drops: int


_EMPTY_HEALTH = LinkHealth(math.nan, math.nan, math.nan, math.nan, math.nan, 0, math.nan)
_EMPTY = NetworkStats(0, {}, None, _EMPTY_HEALTH, 0, 0, 0, 0, 0, 0)


class NetworkProcess:
    """Parent side: owns the child process and the socket pair. ``sock`` is the bound UDP socket
    (handed to the child); ``endpoint`` are ``ServerEndpoint`` keyword arguments."""

    def __init__(self, sock: socket.socket, psk: bytes, endpoint: dict | None = None,
                 *, drop_summary_s: float = 1.0) -> None:
        self._udp = sock
        self._psk = bytes(psk)
        self._endpoint = dict(endpoint or {})
        self._summary_s = float(drop_summary_s)
        self._proc: subprocess.Popen | None = None
        self._ctl: socket.socket | None = None
        self.stats = _EMPTY
        self.error: str | None = None
        self.commands_received = 0  # messages of kind C that reached this (the robot) process
        self.states_dropped = 0

    def start(self, timeout: float = 30.0) -> NetworkProcess:
        config = {"psk": self._psk.hex(), "endpoint": self._endpoint, "summary_s": self._summary_s}
        udp_fd = self._udp.fileno()
        self._proc, self._ctl, first = start_child("machaon.teleop.netproc", config, args=("--udp-fd", str(udp_fd)),
                                                   pass_fds=(udp_fd,), timeout=timeout)
        if first != b"R":
            stop_child(self._proc, self._ctl, timeout=1.0)
            self._proc, self._ctl = None, None
            raise NetworkProcessError(f"network process did not start within {timeout:g} s (see the log above)")
        self._ctl.setblocking(False)
        return self

    def fileno(self) -> int:
        return self._ctl.fileno()

    def poll(self, timeout: float) -> list[Command]:
        """Commands that arrived within ``timeout`` s (handles stats and log lines on the way);
        sets ``error`` and returns [] when the child has gone."""
        ctl = self._ctl
        if ctl is None or self.error is not None:
            time.sleep(max(0.0, timeout))
            return []
        out: list[Command] = []
        sel = selectors.DefaultSelector()
        sel.register(ctl, selectors.EVENT_READ)
        try:
            if not sel.select(max(0.0, timeout)):
                return out
        finally:
            sel.close()
        for _ in range(_BATCH):
            try:
                msg = ctl.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                self._gone(f"lost the network process: {exc}")
                break
            if not msg:
                self._gone("the network process exited")
                break
            kind, body = msg[:1], msg[1:]
            if kind == b"C":
                self.commands_received += 1
                try:
                    out.append(Command.unpack(body))
                except LinkProtocolError as exc:  # cannot happen unless the child is broken
                    log.error("network process sent a bad command: %s", exc)
            elif kind == b"T":
                self.stats = _stats_from_json(body)
            elif kind == b"L":
                relay_log(body)
        return out

    def _gone(self, why: str) -> None:
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        self.error = why + ("" if code is None else f" (exit code {code})")
        log.error("teleop server: %s; the robot holds (command gap)", self.error)

    def send_state(self, state: RobotStateMsg) -> bool:
        """Hand a state message to the child (stamped and sealed there); False if the queue is full."""
        if self._ctl is None or self.error is not None:
            return False
        try:
            self._ctl.send(b"S" + state.pack())
            return True
        except BlockingIOError:
            self.states_dropped += 1
            return False
        except OSError as exc:
            self._gone(f"lost the network process: {exc}")
            return False

    def close(self, timeout: float = 3.0) -> None:
        stop_child(self._proc, self._ctl, timeout=timeout)
        self._proc, self._ctl = None, None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


def _stats_from_json(body: bytes) -> NetworkStats:
    d = json.loads(body)
    link = LinkHealth(*(math.nan if x is None else x for x in d["link"]))
    return NetworkStats(
        d["accepted"], d["dropped"], d["session_id"], link, d["handshakes"], d["cookies_sent"],
        d["pending"], d["received"], d["states_sent"], d["queue_drops"],
    )


# -- the child -----------------------------------------------------------------------------------------


@dataclass
class _ServeCounts:
    """Running counts of the network process, reported in each stats message."""

    received: int = 0
    states_sent: int = 0
    queue_drops: int = 0


def _pump_udp(udp: socket.socket, ctl: socket.socket, ep: ServerEndpoint, counts: _ServeCounts) -> None:
    """Handle up to ``_BATCH`` waiting datagrams: answer the operator, pass accepted commands to the
    robot process (dropped and counted when its queue is full). Socket errors are logged, not raised."""
    for _ in range(_BATCH):
        try:
            data, peer = udp.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:  # ICMP errors surface here on UDP; keep serving
            log.debug("recv error %s", exc)
            break
        counts.received += 1
        cmd, replies = ep.handle(data, peer, time.monotonic())
        for r in replies:
            try:
                udp.sendto(r, peer)
            except OSError as exc:
                log.debug("send to %s failed: %s", peer, exc)
        if cmd is not None:
            try:
                ctl.send(b"C" + cmd.pack())
            except BlockingIOError:
                counts.queue_drops += 1


def _pump_ctl(udp: socket.socket, ctl: socket.socket, ep: ServerEndpoint, counts: _ServeCounts) -> bool:
    """Forward the robot process's state messages to the operator; False when it says quit or hangs up."""
    while True:
        try:
            msg = ctl.recv(65536)
        except BlockingIOError:
            return True
        if not msg or msg[:1] == b"Q":
            return False
        if msg[:1] == b"S" and ep.peer is not None:
            try:
                pkt = ep.state_packet(RobotStateMsg.unpack(msg[1:]), time.monotonic())
            except LinkProtocolError as exc:
                log.error("bad state message from the robot process: %s", exc)
                continue
            if pkt is not None:
                try:
                    udp.sendto(pkt, ep.peer)
                    counts.states_sent += 1
                except OSError as exc:
                    log.debug("state send failed: %s", exc)


def _send_stats(ctl: socket.socket, ep: ServerEndpoint, counts: _ServeCounts, now: float) -> None:
    """One ``T`` message with the endpoint's and the process's counters (skipped when the queue is full)."""
    stats = {
        "accepted": ep.accepted, "dropped": dict(ep.drops.by_reason), "pending": ep.pending,
        "session_id": None if ep.session is None else ep.session.session_id,
        "link": [None if isinstance(x, float) and math.isnan(x) else x
                 for x in dataclasses.astuple(ep.meter.health(now))],
        "handshakes": ep.handshakes, "cookies_sent": ep.cookies_sent, "received": counts.received,
        "states_sent": counts.states_sent, "queue_drops": counts.queue_drops,
    }
    try:
        ctl.send(b"T" + json.dumps(stats).encode())
    except BlockingIOError:
        pass


def _serve(udp: socket.socket, ctl: socket.socket, config: dict) -> None:
    ep = ServerEndpoint(bytes.fromhex(config["psk"]), **config["endpoint"])
    ep.drops.interval_s = float(config.get("summary_s", 1.0))
    udp.setblocking(False)
    ctl.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(ctl, selectors.EVENT_READ, "ctl")
    counts = _ServeCounts()
    t_stats = time.monotonic()
    ctl.send(b"R")
    while True:
        now = time.monotonic()
        events = sel.select(max(0.0, t_stats + _STATS_S - now))
        for key, _ in events:
            if key.data == "udp":
                _pump_udp(udp, ctl, ep, counts)
            elif not _pump_ctl(udp, ctl, ep, counts):
                return
        now = time.monotonic()
        ep.drops.maybe_summarise(now)
        if now >= t_stats + _STATS_S:
            t_stats = now
            _send_stats(ctl, ep, counts, now)


def _serve_fds(ctl: socket.socket, config: dict, args: argparse.Namespace) -> None:
    udp = socket.socket(fileno=args.udp_fd)
    try:
        _serve(udp, ctl, config)
    finally:
        udp.close()


def _main(argv: list[str] | None = None) -> int:
    return child_main("machaon teleop server network process (started by RobotServer)", _serve_fds, argv,
                      lambda ap: ap.add_argument("--udp-fd", type=int, required=True))


if __name__ == "__main__":
    sys.exit(_main())
