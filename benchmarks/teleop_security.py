"""Teleop link under attack: a junk flood against the robot server, a replayed HELLO against an
operator connecting over a 100 ms one-way link, and the cost of each rejection.

1. Flood (defect 2's setting): ``machaon teleop serve --backend sim`` (1 kHz real-time loop, its
   own process) with an operator driving it at 100 Hz from this process; a separate sender
   process sends 50 000 unauthenticated junk datagrams at 5 000/s (random bytes, well-formed
   headers with unknown sessions, HELLO-sized garbage). Reported beside the same run without
   junk: the loop's real-time factor and wall-clock overruns (from the server's run log, wall
   clock) and the operator's RTT p50/p99.
2. HELLO replay (defect 1's setting): an operator connects through ``UdpRelay`` with a constant
   100 ms one-way delay each way while a sender process replays a captured (already accepted)
   HELLO straight at the server at 0, 100 and 1 000 per second; ``--trials`` connections each:
   how many got control (a robot state back) and how long that took.
3. Cost per datagram of the server endpoint (``ServerEndpoint.handle``), as the network process
   pays it: junk, a forged command for the live session, a replayed HELLO (below and above the
   cookie threshold) and, as the reference, an authenticated command.

Timing figures depend on machine load (the development machine is shared): run it on a quiet
machine for numbers to quote. Run: ``python -m benchmarks.teleop_security [--trials 5]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import table, time_calls, us
from machaon.robot.runlog import read_run_log
from machaon.teleop.client import TeleopClient
from machaon.teleop.endpoint import ClientEndpoint, ServerEndpoint
from machaon.teleop.keys import write_key
from machaon.teleop.messages import CmdFlag, CommandKind, MsgType
from machaon.teleop.profiles import LinkProfile
from machaon.teleop.relay import UdpRelay
from machaon.teleop.session import WIRE_SIZE, RekeyPolicy

PSK = bytes(range(50, 82))

# A paced sender in its own process (as an attacker on another host would be): bursts every 10 ms.
_SENDER = r"""
import os, socket, sys, time, random
host, port, n, rate, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
pkts = [bytes.fromhex(l) for l in open(path).read().split()]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t0 = time.monotonic(); sent = 0
while sent < n:
    due = int((time.monotonic() - t0) * rate) + 1
    while sent < min(due, n):
        try:
            s.sendto(pkts[sent % len(pkts)], (host, port))
        except OSError:
            pass
        sent += 1
    time.sleep(0.01 if rate >= 100 else 1.0 / rate)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(key: Path, port: int, seconds: float, record: Path | None = None, rt: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "sim", "--listen",
           f"127.0.0.1:{port}", "--key", str(key), "--stats-s", "0", "--duration", str(seconds),
           "--rt-priority", str(rt)]
    if record is not None:
        cmd += ["--record", str(record), "--record-decimation", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:
        line = proc.stdout.readline()
        if "teleop server (sim) on" in line:
            return proc
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("the teleop server did not start")


def _sender(addr: tuple[str, int], packets: list[bytes], n: int, rate: float, tmp: Path) -> subprocess.Popen:
    path = tmp / f"packets-{len(packets)}-{n}.hex"
    path.write_text("\n".join(p.hex() for p in packets))
    return subprocess.Popen([sys.executable, "-c", _SENDER, addr[0], str(addr[1]), str(n), str(rate), str(path)])


def _junk(n_kinds: int = 64) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = [rng.bytes(int(k)) for k in rng.integers(1, 400, n_kinds // 2)]
    for _ in range(n_kinds // 4):  # well-formed header, unknown session: passes the cheapest check
        out.append(b"MQ\x02\x03" + rng.bytes(WIRE_SIZE[MsgType.COMMAND] - 4))
    for _ in range(n_kinds // 4):  # HELLO-sized, bad mac1
        out.append(b"MQ\x02\x01" + rng.bytes(WIRE_SIZE[MsgType.HELLO] - 4))
    return out


def _drive(addr: tuple[str, int], seconds: float, during: object = None) -> tuple[float, float]:
    """Operator at 100 Hz moving the master slowly; RTT p50/p99 (s) over the last ``seconds``."""
    with TeleopClient(addr, PSK, rate_hz=100) as cli:
        t_end = time.monotonic() + 5
        while cli.latest is None and time.monotonic() < t_end:
            time.sleep(0.02)
        cli.input.clutch = True
        time.sleep(0.3)
        cli.endpoint.meter = type(cli.endpoint.meter)()  # measure from here
        if during is not None:
            during()
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            cli.input.p = (0.01 * np.sin(time.monotonic() - t0), 0.0, 0.0)
            time.sleep(0.01)
        h = cli.health()
    return h.rtt_p50_s, h.rtt_p99_s


def flood(tmp: Path, key: Path, n: int = 50_000, rate: float = 5_000.0) -> str:
    rows = []
    seconds = n / rate
    for rt in (0, 20):
        pair = []
        for attack in (False, True):
            port = _free_port()
            log = tmp / f"flood-{attack}-{rt}.mcap"
            srv = _serve(key, port, seconds + 6.0, record=log, rt=rt)
            senders: list[subprocess.Popen] = []

            def start(port: int = port, senders: list = senders) -> None:
                senders.append(_sender(("127.0.0.1", port), _junk(), n, rate, tmp))

            try:
                p50, p99 = _drive(("127.0.0.1", port), seconds, start if attack else None)
            finally:
                for s in senders:
                    s.wait(30)
                srv.wait(60)
            st = read_run_log(log).stats or {}
            wall_p99 = (st.get("wall_period_p99") or float("nan")) * 1e3
            label = f"{'junk ' + str(n) + ' at ' + str(int(rate)) + '/s' if attack else 'clean'}, loop " \
                    f"{'SCHED_FIFO ' + str(rt) if rt else 'normal priority'}"
            pair.append([label, f"{st.get('realtime_factor', float('nan')):.3f}", int(st.get("wall_overruns", 0)),
                         f"{wall_p99:.2f}", f"{p50 * 1e3:.2f}", f"{p99 * 1e3:.2f}"])
        d = float(pair[1][4]) - float(pair[0][4])
        ratio = float(pair[1][1]) / float(pair[0][1])
        pair[1].append(f"RTT p50 {d:+.2f} ms, real-time factor x{ratio:.3f}")
        pair[0].append("-")
        rows += pair
    return table(["run", "loop real-time factor", "wall overruns", "wall period p99 ms", "operator RTT p50 ms",
                  "RTT p99 ms", "flood vs clean"], rows)


def replay(tmp: Path, key: Path, trials: int) -> str:
    port = _free_port()
    srv = _serve(key, port, 40.0 + trials * 3 * 4.0)
    server = ("127.0.0.1", port)
    rows = []
    try:
        captured = ClientEndpoint(PSK).hello(0.0)  # an operator's HELLO, seen once by the server ...
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(captured, server)
        time.sleep(0.2)
        prof = LinkProfile("one-way 100 ms", delay_s=0.100)
        with UdpRelay(("127.0.0.1", 0), server, prof) as relay:
            for rate in (0, 100, 1000):
                sender = _sender(server, [captured], int(rate * 1000), rate, tmp) if rate else None  # ... replayed
                times, ok = [], 0
                try:
                    for _ in range(trials):
                        t0 = time.monotonic()
                        cli = TeleopClient(relay.address, PSK, rate_hz=100)
                        try:
                            cli.connect(timeout=10.0)
                            with cli.start():
                                cli.input.clutch = True
                                t_end = time.monotonic() + 5
                                while cli.latest is None and time.monotonic() < t_end:
                                    time.sleep(0.005)
                                if cli.latest is not None:
                                    ok += 1
                                    times.append(time.monotonic() - t0)
                        except Exception as exc:  # no control: counted as a failure
                            print(f"  trial failed at {rate}/s: {exc}", file=sys.stderr)
                            cli.close()
                        time.sleep(1.3)  # the robot is free again after the takeover delay
                finally:
                    if sender is not None:
                        sender.kill()
                        sender.wait()
                t = np.asarray(times) if times else np.array([np.nan])
                rows.append([f"{rate}/s", f"{ok}/{trials}", f"{np.median(t) * 1e3:.0f}", f"{t.max() * 1e3:.0f}"])
    finally:
        srv.terminate()
        srv.wait(10)
    return table(["HELLO replay", "operator got control", "time to control p50 ms", "max ms"], rows)


def costs() -> str:
    long = RekeyPolicy(rekey_after_s=1e6, reject_after_s=2e6)  # one session for the whole measurement
    srv = ServerEndpoint(PSK, policy=long)
    cli = ClientEndpoint(PSK, long)
    _, (w,) = srv.handle(cli.hello(0.0), "op", 0.0)
    cli.handle(w, 0.0)
    replayed = ClientEndpoint(PSK).hello(0.0)
    srv.handle(replayed, "x", 0.0)  # accepted once: from now on a replay
    junk = os.urandom(120)
    forged = bytearray(cli.command(0.0))
    forged[-1] ^= 1
    t = [0.0]

    def tick() -> float:
        t[0] += 1.0  # one per second: stays below the cookie threshold
        return t[0]

    loaded = ServerEndpoint(PSK, cookie_load_per_s=0)
    rows = []
    for name, fn in (
        ("junk (bad magic/length)", lambda: srv.handle(junk, "j", tick())),
        ("forged COMMAND for the live session", lambda: srv.handle(bytes(forged), "f", tick())),
        ("replayed HELLO (full check, no load)", lambda: srv.handle(replayed, "r", tick())),
        ("replayed HELLO under load (cookie reply)", lambda: loaded.handle(replayed, "r", tick())),
        ("authenticated COMMAND (reference)", lambda: srv.handle(cli.command(tick(), CommandKind.MASTER_POSE,
                                                                             flags=CmdFlag.CLUTCH), "op", t[0])),
    ):
        a = time_calls(fn, repeat=3000, warmup=200)
        rows.append([name, us(float(np.median(a))), us(float(np.percentile(a, 99)))])
    ref = float(rows[-1][1])
    for r in rows:
        r.append(f"{float(r[1]) / ref:.2f}")
    return table(["datagram", "median us", "p99 us", "vs authenticated command"], rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=5, help="connections per replay rate")
    ap.add_argument("--only", choices=("flood", "replay", "costs"), help="run one part")
    args = ap.parse_args(argv)
    logging.getLogger("machaon").setLevel(logging.ERROR)  # the drop summaries are the point, not the output
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        key = tmp / "bench.key"
        write_key(key, PSK)
        if args.only in (None, "costs"):
            print("## Cost per datagram (ServerEndpoint.handle)\n")
            print(costs(), "\n", flush=True)
        if args.only in (None, "flood"):
            print("## Junk flood against the robot server (sim, 1 kHz real time)\n")
            print(flood(tmp, key), "\n", flush=True)
        if args.only in (None, "replay"):
            print("## Replayed HELLO while the operator connects over a 100 ms one-way link\n")
            print(replay(tmp, key, args.trials), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
