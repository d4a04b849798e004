"""Soak: a teleop session on the hardware path for N minutes, under everything at once.

- Robot: ``machaon hw emulate`` (six XM430 at 4 Mbaud, bus faults: dropped and corrupted status
  packets) behind ``machaon teleop serve --backend hardware --home`` with the shipped
  position-mode chain, recording a run log; each in its own process, as deployed.
- Link: ``UdpRelay`` with the ``5g_ultra_remote`` profile (57 ms one way, 1.2 % bursty loss) and
  extra outages (``--outage-every-s``/``--outage-ms``) in both directions.
- Operator: a scripted console (``TeleopClient``) moving the master in a slow circle with the
  clutch held; after a HOLD it releases and presses the clutch again, and after a protective stop
  (e.g. the bus was lost) it resets first, as a person would.
- Attackers: a junk sender (``--junk-rate``/s of random datagrams) and a replayer that sends the
  operator's recorded datagrams (HELLOs and commands, captured on the way out) straight to the
  server at ``--replay-rate``/s.

Reported: commands the operator sent and the robot applied, HOLDs and protective stops (from the
run log), forged or replayed commands applied (applied - sent by the operator: must be 0),
datagrams dropped by reason, unhandled exceptions (tracebacks in the server's output: must be 0),
memory growth of the robot process and its network process after a warm-up (target < 20 MB for
60 minutes), the size of the run log and of the server's console output (bounded).

Run: ``python -m benchmarks.soak --minutes N`` (the integrator's run is 60 minutes).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machaon.robot.runlog import read_run_log
from machaon.teleop.client import TeleopClient
from machaon.teleop.keys import write_key
from machaon.teleop.messages import HoldReason, SupervisorCode
from machaon.teleop.profiles import get_profile
from machaon.teleop.relay import UdpRelay

PSK = bytes(range(60, 92))
CONFIG = Path(__file__).resolve().parents[1] / "machaon/hardware/configs/xm430_chain_position.toml"


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


class _RecordingClient(TeleopClient):
    """A ``TeleopClient`` whose outgoing datagrams an eavesdropper records (the last 500)."""

    def __init__(self, *a: object, tap: collections.deque, **kw: object) -> None:
        super().__init__(*a, **kw)
        sock = self._sock
        tap_ = tap

        class _Tap:
            def __getattr__(self, name: str) -> object:
                return getattr(sock, name)

            def sendto(self, data: bytes, addr: object) -> int:
                tap_.append(bytes(data))
                return sock.sendto(data, addr)

        self._sock = _Tap()  # type: ignore[assignment]


def _attackers(server: tuple[str, int], tap: collections.deque, junk_rate: float, replay_rate: float,
               stop: threading.Event, counts: dict) -> list[threading.Thread]:
    def junk() -> None:
        rnd = random.Random(3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                for _ in range(max(1, int(junk_rate / 100))):
                    s.sendto(rnd.randbytes(rnd.randint(1, 300)), server)
                    counts["junk"] += 1
                stop.wait(0.01)

    def replay() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                for _ in range(max(1, int(replay_rate / 100))):
                    if tap:
                        s.sendto(random.choice(tuple(tap)), server)
                        counts["replayed"] += 1
                stop.wait(0.01)

    return [threading.Thread(target=junk, daemon=True), threading.Thread(target=replay, daemon=True)]


def soak(minutes: float, junk_rate: float, replay_rate: float, outage_every_s: float, outage_ms: float,
         drop_prob: float, out: Path, bus_latency_ms: float = 2.0, lost_cycles: int = 3,
         rate_hz: float = 250.0) -> dict:
    seconds = minutes * 60.0
    key = out / "soak.key"
    write_key(key, PSK, overwrite=True)
    config = out / "chain.toml"  # the shipped chain, with the bus deadline asked for
    text = CONFIG.read_text().replace("latency_ms = 2.0", f"latency_ms = {bus_latency_ms}").replace(
        "lost_cycles = 3", f"lost_cycles = {lost_cycles}")
    config.write_text(text)
    em = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--ids", "1-6", "--baud",
                           "4000000", "--drop-prob", str(drop_prob), "--corrupt-prob", str(drop_prob), "--seed", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs = [em]
    try:
        pty = em.stdout.readline().strip()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log_path, console = out / "soak.mcap", out / "server.out"
        srv = None
        for _attempt in range(3):  # the emulator shares a busy machine: its first answers can be late
            fh = open(console, "w")  # noqa: SIM115 - closed below
            srv = subprocess.Popen(
                [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "hardware",
                 "--hw-config", str(config), "--port", pty, "--home", "--home-speed", "1.0", "--listen",
                 f"127.0.0.1:{port}", "--key", str(key), "--timeout-ms", "250", "--stats-s", "10", "--duration",
                 str(seconds + 30.0), "--record", str(log_path), "--record-decimation", "25", "--rate-hz",
                 str(rate_hz)],
                stdout=fh, stderr=subprocess.STDOUT, text=True)
            t_end = time.monotonic() + 120
            while "teleop server (hardware) on" not in console.read_text():
                if srv.poll() is not None or time.monotonic() > t_end:
                    break
                time.sleep(0.2)
            if srv.poll() is None:
                break
            fh.close()
            print("server did not start, retrying:\n" + console.read_text(), file=sys.stderr)
            time.sleep(2.0)
        else:
            raise RuntimeError("server did not start:\n" + console.read_text())
        procs.append(srv)
        prof = dataclasses.replace(get_profile("5g_ultra_remote"), outage_every_s=outage_every_s,
                                   outage_s=outage_ms * 1e-3)
        tap: collections.deque = collections.deque(maxlen=500)
        counts = {"junk": 0, "replayed": 0, "reclutch": 0, "resets": 0}
        stop = threading.Event()
        mem: dict[str, list[float]] = {"robot": [], "network": []}
        with UdpRelay(("127.0.0.1", 0), ("127.0.0.1", port), prof, seed=5) as relay:
            cli = _RecordingClient(relay.address, PSK, rate_hz=100, tap=tap)
            cli.connect(timeout=10.0)
            threads = _attackers(("127.0.0.1", port), tap, junk_rate, replay_rate, stop, counts)
            with cli.start():
                for th in threads:
                    th.start()
                t0 = time.monotonic()
                cli.input.clutch = True
                t_reclutch = 0.0
                while (t := time.monotonic() - t0) < seconds:
                    a = 2 * math.pi * t / 20.0
                    cli.input.p = (0.02 * math.sin(a), 0.02 * (1 - math.cos(a)), 0.0)
                    s = cli.latest
                    if s is not None and s.supervisor == SupervisorCode.FAULT and t > t_reclutch:
                        cli.input.reset = True  # a protective stop (e.g. the bus was lost): the operator resets
                        counts["resets"] += 1
                        t_reclutch = t + 1.0
                    elif (s is not None and s.supervisor == SupervisorCode.HOLD and s.hold_reason in
                            (HoldReason.COMMAND_GAP, HoldReason.SUPERVISOR, HoldReason.OPERATOR) and t > t_reclutch):
                        cli.input.clutch = False  # the operator notices: release, press again
                        time.sleep(0.3)
                        cli.input.clutch = True
                        counts["reclutch"] += 1
                        t_reclutch = t + 1.0
                    if not mem["robot"] or t > len(mem["robot"]) * 10.0:
                        kids = _children(srv.pid)
                        mem["robot"].append(_rss_mb(srv.pid))
                        mem["network"].append(sum(_rss_mb(k) for k in kids) if kids else math.nan)
                    time.sleep(0.02)
                stop.set()
                sent = cli.endpoint.sent
                rekeys = cli.endpoint.rekeys
        srv.terminate()
        srv.wait(60)
        fh.close()
        text = console.read_text()
        last = [ln for ln in text.splitlines() if " cmds " in ln]
        applied = int(re.search(r"cmds\s+(\d+)", last[-1]).group(1)) if last else -1
        dropped = re.search(r"dropped\s+\d+\s+(\{.*?\})", last[-1]) if last else None
        run = read_run_log(log_path)
        to = collections.Counter(e["to"] for e in run.events)
        warm = max(1, len(mem["robot"]) // 5)
        return {
            "minutes": minutes,
            "commands_sent_by_operator": sent,
            "commands_applied": applied,
            "forged_or_replayed_applied": max(0, applied - sent),
            "rekeys": rekeys,
            "operator_reclutches": counts["reclutch"],
            "operator_resets_after_protective_stop": counts["resets"],
            "holds": to.get("hold", 0),
            "protective_stops": to.get("protective_stop", 0),
            "junk_sent": counts["junk"],
            "replayed_sent": counts["replayed"],
            "dropped_by_reason": dropped.group(1) if dropped else None,
            "tracebacks": text.count("Traceback"),
            "robot_rss_mb": [round(x, 1) for x in mem["robot"][:: max(1, len(mem["robot"]) // 8)]],
            "robot_memory_growth_mb": round(mem["robot"][-1] - mem["robot"][warm], 1),
            "network_memory_growth_mb": round(mem["network"][-1] - mem["network"][warm], 1),
            "run_log_mb": round(log_path.stat().st_size / 1e6, 2),
            "server_output_kb": round(len(text.encode()) / 1e3, 1),
            "relay": {"up_lost": relay.stats().up.link.lost, "down_lost": relay.stats().down.link.lost},
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="teleop soak: hardware emulator, 5G ultra-remote link, attackers")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--junk-rate", type=float, default=500.0, help="junk datagrams per second at the server")
    ap.add_argument("--replay-rate", type=float, default=100.0, help="replayed operator datagrams per second")
    ap.add_argument("--outage-every-s", type=float, default=45.0, help="mean time between link outages")
    ap.add_argument("--outage-ms", type=float, default=400.0, help="outage length (longer than the 250 ms timeout)")
    ap.add_argument("--drop-prob", type=float, default=0.001, help="bus: status packets dropped/corrupted")
    ap.add_argument("--bus-latency-ms", type=float, default=2.0,
                    help="reply deadline on the bus (the shipped config's 2 ms; the emulator is Python, so a "
                         "loaded machine may need 4-8)")
    ap.add_argument("--lost-cycles", type=int, default=3, help="incomplete bus reads in a row tolerated")
    ap.add_argument("--rate-hz", type=float, default=250.0, help="the server's loop rate on the bus")
    ap.add_argument("--out", help="keep the run log and the server output in this folder")
    args = ap.parse_args(argv)
    import logging
    import signal

    # a SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the emulator and server it started stop too
    signal.signal(signal.SIGTERM, _interrupt)

    logging.getLogger("machaon.teleop").setLevel(logging.ERROR)  # the console's drop summaries: counted below
    if not (args.minutes > 0):
        ap.error("--minutes must be > 0")
    with tempfile.TemporaryDirectory() as d:
        out = Path(args.out) if args.out else Path(d)
        out.mkdir(parents=True, exist_ok=True)
        res = soak(args.minutes, args.junk_rate, args.replay_rate, args.outage_every_s, args.outage_ms,
                   args.drop_prob, out, args.bus_latency_ms, args.lost_cycles, args.rate_hz)
    print(json.dumps(res, indent=2))
    ok = res["forged_or_replayed_applied"] == 0 and res["tracebacks"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
