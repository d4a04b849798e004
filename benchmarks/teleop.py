"""Teleop benchmark: release-time accuracy and sustained packet rate of the latency relay.

Each forwarder runs in its own process, as deployed; the sender and a kernel-timestamping sink
(``SO_TIMESTAMPNS``) run in this process, the sender's thread at SCHED_FIFO when permitted.

1. Release-time error at 1 kHz: 3000 datagrams at 1 kHz through a constant 5 ms delay; error =
   sink arrival - send time - 5 ms (so it includes the two loopback hops, the same for all).
   Ours: ``machaon teleop netem`` (scheduler thread: sleep then spin; with ``--rt-priority 10``
   and with 0). Peer: a bare asyncio forwarder that schedules each send with ``loop.call_at``
   (same priority). Our relay's own measure (actual send - scheduled, from its statistics) is
   listed too.
2. Sustained rate: offered 10k..160k datagrams/s (64 B) for 0.5 s each with zero delay; the
   highest achieved send rate delivered with < 1 % loss (the Python sender tops out near the
   high end, so the achieved rate is reported; on a 2-core machine the sender and our relay's
   receiver thread, which runs the link model per datagram, share the CPUs, so our figure is a
   lower bound). Peers: the asyncio forwarder and a plain blocking
   ``recvfrom``/``sendto`` loop (the ceiling of a Python forwarder).

Run: ``python -m benchmarks.teleop [--packets 3000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._common import table
from machaon.teleop.relay import enable_timestamps, recv_timestamped

LOOP = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOP, 0))
        return s.getsockname()[1]


def _set_rt(priority: int) -> bool:
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (OSError, AttributeError):
        return False


# -- peers (run as ``python -m benchmarks.teleop --peer ...``) --------------------------------------
def _peer_asyncio(listen: int, to: int, delay_s: float, rt: int) -> None:
    _set_rt(rt)

    class Fwd(asyncio.DatagramProtocol):
        def __init__(self, loop: asyncio.AbstractEventLoop, out: asyncio.DatagramTransport | None) -> None:
            self.loop, self.out = loop, out

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.loop.call_at(self.loop.time() + delay_s, self.out.sendto, data, (LOOP, to))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        out, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(LOOP, 0))
        await loop.create_datagram_endpoint(lambda: Fwd(loop, out), local_addr=(LOOP, listen))
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _peer_plain(listen: int, to: int, rt: int) -> None:
    _set_rt(rt)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((LOOP, listen))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("ready", flush=True)
    dest = (LOOP, to)
    while True:
        data = s.recv(2048)
        out.sendto(data, dest)


# -- harness ---------------------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((LOOP, 0))
        self.sock.settimeout(0.05)
        enable_timestamps(self.sock)
        self.port = self.sock.getsockname()[1]
        self.arrivals: dict[int, float] = {}
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _, t = recv_timestamped(self.sock, 2048)
            except TimeoutError:
                continue
            self.arrivals[struct.unpack_from("<I", data)[0]] = t

    def reset(self) -> None:
        self.arrivals = {}

    def close(self) -> None:
        self._stop.set()
        self._th.join()
        self.sock.close()


@contextlib.contextmanager
def _forwarder(kind: str, listen: int, to: int, delay_ms: float, rt: int, tmp: Path):
    if kind == "machaon":
        prof = tmp / f"bench_{delay_ms:g}.toml"
        prof.write_text(f"[bench]\ndelay_ms = {delay_ms}\n")
        cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "netem", "--listen", f"{LOOP}:{listen}",
               "--to", f"{LOOP}:{to}", "--profile", "bench", "--profiles-file", str(prof), "--stats-s", "0",
               "--rt-priority", str(rt)]
        ready = "netem"
    else:
        cmd = [sys.executable, "-m", "benchmarks.teleop", "--peer", kind, "--listen", str(listen), "--to", str(to),
               "--delay-ms", str(delay_ms), "--rt", str(rt)]
        ready = "ready"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    if not line.startswith(ready):
        proc.kill()
        raise RuntimeError(f"{kind} forwarder did not start: {line}{proc.stdout.read()}")
    out: list[str] = []
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out.append(proc.communicate(timeout=10)[0])
        except subprocess.TimeoutExpired:
            proc.kill()
            out.append(proc.communicate()[0])


def _send(port: int, n: int, rate: float) -> dict[int, float]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = bytes(60)
    sent = {}
    t0 = time.monotonic() + 0.05
    for i in range(n):
        target = t0 + i / rate
        dt = target - time.monotonic()
        if dt > 2e-4:
            time.sleep(dt - 2e-4)
        while time.monotonic() < target:
            pass
        sent[i] = time.monotonic()
        s.sendto(struct.pack("<I", i) + pad, (LOOP, port))
    s.close()
    return sent


def _timing(kind: str, rt: int, sink: _Sink, n: int, tmp: Path) -> tuple[np.ndarray, str]:
    port = _free_port()
    delay = 5.0
    with _forwarder(kind, port, sink.port, delay, rt, tmp) as out:
        time.sleep(0.3)
        sink.reset()
        sent = _send(port, n, 1000.0)
        time.sleep(0.1)
        arr = dict(sink.arrivals)
    err = np.array([arr[i] - sent[i] - delay * 1e-3 for i in arr])
    internal = ""
    for ln in out[0].splitlines() if out else []:
        if ln.startswith("up ") and "release err" in ln:
            internal = ln.split("release err")[1].strip()
    return err, internal


def _rate(kind: str, rt: int, sink: _Sink, tmp: Path,
          rates=(10000, 20000, 40000, 60000, 80000, 120000, 160000)) -> tuple[int, str]:
    """Highest achieved send rate (pkt/s) delivered with < 1 % loss; the sender's own ceiling
    caps the top rates, so the achieved rate is what is reported."""
    port = _free_port()
    best, detail = 0, []
    with _forwarder(kind, port, sink.port, 0.0, rt, tmp):
        time.sleep(0.3)
        for r in rates:
            sink.reset()
            n = int(r * 0.5)
            sent = _send(port, n, float(r))
            achieved = n / max(sent[n - 1] - sent[0], 1e-9)
            time.sleep(0.2)
            got = len(sink.arrivals)
            detail.append(f"{achieved / 1000:.0f}k:{got / n:.0%}")
            if got >= 0.99 * n:
                best = max(best, int(achieved))
            else:
                break
    return best, " ".join(detail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=3000)
    ap.add_argument("--peer", choices=("asyncio", "plain"), help=argparse.SUPPRESS)
    ap.add_argument("--listen", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--to", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--rt", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.peer == "asyncio":
        with contextlib.suppress(KeyboardInterrupt):
            _peer_asyncio(a.listen, a.to, a.delay_ms * 1e-3, a.rt)
        return
    if a.peer == "plain":
        with contextlib.suppress(KeyboardInterrupt):
            _peer_plain(a.listen, a.to, a.rt)
        return

    rt_ok = _set_rt(5)  # the sender: so that the measurement itself is not preempted
    print(f"sender at SCHED_FIFO: {rt_ok}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    sink = _Sink()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        res = {}
        for kind, rt, label in (("machaon", 10, "machaon netem (rt 10)"), ("asyncio", 10, "asyncio call_at (rt 10)"),
                                ("machaon", 0, "machaon netem (normal)"), ("asyncio", 0, "asyncio call_at (normal)")):
            err, internal = _timing(kind, rt, sink, a.packets, tmp)
            res[label] = err
            p50, p99, mx = (np.percentile(np.abs(err), [50, 99, 100]) * 1e6) if err.size else (np.nan,) * 3
            rows.append([label, f"{p50:.1f}", f"{p99:.1f}", f"{mx:.0f}", f"{err.size}/{a.packets}", internal or "-"])
        print("\n1 kHz, constant 5 ms delay: |arrival - send - 5 ms| (us), kernel timestamps at the sink")
        print(table(["forwarder", "p50 us", "p99 us", "max us", "delivered", "relay's own release err"], rows))
        ours = np.percentile(np.abs(res["machaon netem (rt 10)"]), 99)
        peer = np.percentile(np.abs(res["asyncio call_at (rt 10)"]), 99)
        print(f"p99 ratio asyncio/machaon (rt): {peer / ours:.1f}x; target p99 <= 200 us: "
              f"{'met' if ours <= 200e-6 else 'NOT met'} ({ours * 1e6:.1f} us)")
        rrows = []
        for kind, label in (("machaon", "machaon netem (rt 10)"), ("asyncio", "asyncio forwarder (rt 10)"),
                            ("plain", "plain recvfrom/sendto (rt 10)")):
            best, detail = _rate(kind, 10, sink, tmp)
            rrows.append([label, f"{best}", detail])
        print("\nsustained rate: highest offered rate (64 B datagrams, zero delay) delivered with < 1 % loss")
        print(table(["forwarder", "pkt/s", "delivered fraction by offered rate"], rrows))
    sink.close()


if __name__ == "__main__":
    main()
