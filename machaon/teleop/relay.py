"""UDP latency-injection relay: a user-space netem for one UDP flow, in both directions.

::

    client --> [listen socket] --(uplink LinkModel)--> [per-client socket] --> target
    client <-- [listen socket] <--(downlink LinkModel)-- [per-client socket] <-- target

A receiver thread takes each datagram's arrival time from the kernel (``SO_TIMESTAMPNS``,
converted to ``time.monotonic()``; so a receiver that was briefly kept off the CPU or the GIL
does not shift the delay), asks the direction's ``LinkModel`` for its release time(s) and pushes
copies onto a heap. A scheduler thread releases them in C without the GIL
(``machaon.teleop._scheduler``): it sleeps on a condition variable until ``spin_s`` before the
earliest release time (timer slack 1 us via ``prctl`` on Linux), busy-waits to the exact time and
calls ``sendto(2)``; a datagram with an earlier release time wakes it. No Python thread, in the
relay or around it, can delay a release; other processes can, unless the relay runs at a
real-time priority (``rt_priority``).

Every datagram is counted: forwarded, or dropped with the reason (loss, outage, queue, cut,
too many clients). ``stats()`` returns a snapshot with release-time errors (actual minus
scheduled send time) and applied delays.
"""

from __future__ import annotations

import logging
import math
import os
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from machaon.robot.clock import set_timer_slack_ns
from machaon.teleop._scheduler import ReleaseScheduler
from machaon.teleop.profiles import LinkCounters, LinkModel, LinkProfile

log = logging.getLogger(__name__)

_MAX_DATAGRAM = 65535
_RING = 1 << 16


def parse_hostport(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port). Raises ``ValueError`` with the offending text."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT with a numeric port, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host.strip("[]"), p


@dataclass(frozen=True)
class DirectionStats:
    """One direction of the relay since start. Times in seconds."""

    received: int
    forwarded: int
    link: LinkCounters
    dropped_cut: int
    release_err_p50_s: float
    release_err_p99_s: float
    release_err_max_s: float
    delay_p50_s: float
    delay_p99_s: float


@dataclass(frozen=True)
class RelayStats:
    up: DirectionStats
    down: DirectionStats
    clients: int
    dropped_clients: int
    in_flight: int


# Python's socket module does not export SO_TIMESTAMPNS; 35 is its value in Linux's generic ABI.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_CMSG_SPACE = socket.CMSG_SPACE(16) if _SO_TIMESTAMPNS is not None else 0


def enable_timestamps(sock: socket.socket) -> None:
    """Ask the kernel to timestamp datagrams arriving on ``sock`` (Linux ``SO_TIMESTAMPNS``)."""
    if _SO_TIMESTAMPNS is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:  # not supported here: fall back to user-space timestamps
            pass


def recv_timestamped(sock: socket.socket, bufsize: int = _MAX_DATAGRAM) -> tuple[bytes, object, float]:
    """(data, source, monotonic arrival time) of one datagram from a socket on which
    ``enable_timestamps`` was called (else the arrival time is the time of this call)."""
    data, ancdata, _, src = sock.recvmsg(bufsize, _CMSG_SPACE)
    return data, src, _arrival_time(ancdata)


def _arrival_time(ancdata: list) -> float:
    """Monotonic arrival time of a datagram: kernel receive timestamp (CLOCK_REALTIME) turned
    into monotonic time by its age, or ``time.monotonic()`` when there is none."""
    now_mono = time.monotonic()
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            age = time.time() - (sec + nsec * 1e-9)
            if 0.0 <= age < 1.0:
                return now_mono - age
    return now_mono


def _sockaddr(addr: tuple[str, int]) -> bytes:
    """``struct sockaddr_in`` for ``sendto(2)`` in the C scheduler (IPv4)."""
    host, port = addr
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)


class _Direction:
    def __init__(self, index: int, profile: LinkProfile, seed: int) -> None:
        self.index = index
        self.model = LinkModel(profile, seed)
        self.received = 0
        self.dropped_cut = 0

    def snapshot(self, sched: ReleaseScheduler) -> DirectionStats:
        sent, _errors, _overflow, e, d = sched.stats(self.index)

        def pct(a: np.ndarray, q: float) -> float:
            return float(np.percentile(a, q)) if a.size else math.nan

        return DirectionStats(
            received=self.received,
            forwarded=sent,
            link=self.model.counters,
            dropped_cut=self.dropped_cut,
            release_err_p50_s=pct(e, 50),
            release_err_p99_s=pct(e, 99),
            release_err_max_s=float(e.max()) if e.size else math.nan,
            delay_p50_s=pct(d, 50),
            delay_p99_s=pct(d, 99),
        )


class UdpRelay:
    """The relay. Use as a context manager; ``address`` is the bound listen address.

    ``profile`` shapes client->target traffic, ``down_profile`` (default: the same profile,
    seeded ``seed + 1``) shapes replies. ``spin_s`` is how long before a release time the
    scheduler stops sleeping and spins. ``rt_priority`` > 0 puts the scheduler thread in
    ``SCHED_FIFO`` at that priority (needs privileges; on a loaded machine it keeps other
    processes from preempting a release; the spin is short, and Linux RT throttling applies).
    Other Python threads in the same process share the GIL with the relay and can still delay
    it: for accurate timing run the relay in its own process (``machaon teleop netem``).
    ``cut()``/``restore()`` simulate a broken link (every
    datagram is dropped and counted as ``dropped_cut``).
    """

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        profile: LinkProfile,
        *,
        down_profile: LinkProfile | None = None,
        seed: int = 0,
        spin_s: float = 5e-4,
        max_clients: int = 16,
        rt_priority: int = 0,
    ) -> None:
        if spin_s < 0 or not math.isfinite(spin_s):
            raise ValueError(f"spin_s must be a finite value >= 0, got {spin_s}")
        self._target = target
        self._spin_s = spin_s
        self._rt_priority = int(rt_priority)
        self._max_clients = max_clients
        self._up = _Direction(0, profile, seed)
        self._down = _Direction(1, down_profile or profile, seed + 1)
        self._sched = ReleaseScheduler(spin_s)
        self._listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        enable_timestamps(self._listen)
        try:
            self._listen.bind(listen)
        except OSError:
            self._listen.close()
            raise
        self._clients: dict[tuple[str, int], socket.socket] = {}
        self._owner: dict[socket.socket, tuple[str, int]] = {}
        self._dropped_clients = 0
        self._target_addr = _sockaddr(target)
        self._stop = threading.Event()
        self._cut = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ, None)
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        return self._listen.getsockname()

    def start(self) -> UdpRelay:
        if self._threads:
            return self
        self._threads = [
            threading.Thread(target=self._receiver, name="relay-rx", daemon=True),
            threading.Thread(target=self._scheduler, name="relay-sched", daemon=True),
        ]
        for th in self._threads:
            th.start()
        log.info("relay %s:%d -> %s:%d started", *self.address, *self._target)
        return self

    def cut(self) -> None:
        """Drop every datagram from now on (and those already in flight), until ``restore()``."""
        self._cut = True
        up, down = self._sched.clear()
        self._up.dropped_cut += up
        self._down.dropped_cut += down
        log.warning("relay: link cut")

    def restore(self) -> None:
        self._cut = False
        log.warning("relay: link restored")

    def close(self) -> None:
        self._stop.set()
        self._sched.request_stop()
        for th in self._threads:
            th.join(timeout=2.0)
        self._sel.close()
        for s in [self._listen, *self._clients.values()]:
            s.close()

    def __enter__(self) -> UdpRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> RelayStats:
        """Counters and timing so far. ``forwarded`` is counted by the release thread just after each
        ``sendto`` returns, so a receiver may hold a datagram a moment before it is counted."""
        return RelayStats(
            up=self._up.snapshot(self._sched),
            down=self._down.snapshot(self._sched),
            clients=len(self._clients),
            dropped_clients=self._dropped_clients,
            in_flight=self._sched.in_flight(),
        )

    # --- threads ------------------------------------------------------------------------------
    def _client_socket(self, addr: tuple[str, int]) -> socket.socket | None:
        s = self._clients.get(addr)
        if s is not None:
            return s
        if len(self._clients) >= self._max_clients:
            return None
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        enable_timestamps(s)
        s.bind((self._listen.getsockname()[0], 0))
        self._clients[addr] = s
        self._owner[s] = addr
        self._sel.register(s, selectors.EVENT_READ, _sockaddr(addr))
        log.info("relay: new client %s:%d", *addr)
        return s

    def _set_priority(self) -> None:
        """Both relay threads run at ``rt_priority``: were only the scheduler real-time, a
        preempted receiver holding the GIL would block it (priority inversion through the GIL)."""
        if self._rt_priority <= 0:
            return
        try:  # Linux: pid 0 = the calling thread only
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self._rt_priority))
        except (OSError, AttributeError) as exc:
            log.warning("relay: real-time priority %d refused (%s); running without", self._rt_priority, exc)

    def _receiver(self) -> None:
        self._set_priority()
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                try:
                    data, ancdata, _, src = sock.recvmsg(_MAX_DATAGRAM, _CMSG_SPACE)  # type: ignore[union-attr]
                except OSError as exc:  # e.g. ICMP port unreachable surfacing on a UDP socket
                    log.debug("relay: recv error %s", exc)
                    continue
                t = _arrival_time(ancdata)
                if sock is self._listen:
                    out = self._client_socket(src)
                    if out is None:
                        self._dropped_clients += 1
                        log.warning("relay: dropped datagram from %s:%d (too many clients)", *src)
                        continue
                    self._push(self._up, t, data, out, self._target_addr)
                else:
                    self._push(self._down, t, data, self._listen, key.data)

    def _push(self, d: _Direction, t: float, data: bytes, out: socket.socket, dest: bytes) -> None:
        d.received += 1
        if self._cut:
            d.dropped_cut += 1
            return
        for t_rel in d.model.transmit(t, len(data)):
            if not self._sched.push(t_rel, t, out.fileno(), data, dest, d.index):
                log.warning("relay: %d datagrams in flight, dropping", self._sched.in_flight())

    def _scheduler(self) -> None:
        set_timer_slack_ns(1000)  # timed waits wake on time (the default slack is 50 us)
        self._set_priority()
        self._sched.run()  # returns after request_stop()
