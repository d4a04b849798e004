"""A teleoperation session over the network: robot server, 5G-like link, scripted operator.

    python examples/teleop_session.py [--profile 5g_urllc] [--move-mm 20]

What runs, as deployed: ``machaon teleop serve --backend sim`` (the simulated arm under its
supervisor, behind an authenticated, encrypted UDP link) in its own process; in this one, the
latency injector (``UdpRelay`` with a link profile) and the operator (``TeleopClient``) replaying
a short script: engage the clutch, move the master, hold. The robot follows, scaled 2:1.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from machaon.teleop.client import TeleopClient
from machaon.teleop.keys import write_key
from machaon.teleop.profiles import get_profile
from machaon.teleop.relay import UdpRelay
from machaon.teleop.replay import replay
from machaon.teleop.script import OperatorScript


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(key: Path, port: int) -> subprocess.Popen:
    """``machaon teleop serve`` on the simulated arm; returns once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "machaon.cli.main", "teleop", "serve", "--backend", "sim", "--listen",
         f"127.0.0.1:{port}", "--key", str(key), "--stats-s", "0", "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "teleop server (sim) on" in line:
            return proc
    raise RuntimeError(f"the server did not start (exit {proc.wait()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="5g_urllc", help="link profile (machaon teleop profiles)")
    ap.add_argument("--move-mm", type=float, default=20.0, help="how far the master moves along x (mm)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "op.key"
        psk = write_key(key)  # a new pre-shared key, mode 0600: both ends read it
        port = _free_udp_port()
        server = start_server(key, port)
        try:
            with UdpRelay(("127.0.0.1", 0), ("127.0.0.1", port), get_profile(args.profile), seed=1) as link, \
                    TeleopClient(link.address, psk, rate_hz=100.0) as operator:
                t_end = time.monotonic() + 10.0
                while operator.latest is None:  # the first robot state after the handshake
                    if time.monotonic() > t_end:
                        raise RuntimeError("no robot state within 10 s")
                    time.sleep(0.01)
                p0 = np.array(operator.latest.p_base_tool)
                script = OperatorScript.from_dict({"rate_hz": 100, "keyframes": [
                    {"t": 0.0, "p": [0, 0, 0], "clutch": False, "motion_scale": 2.0},
                    {"t": 0.1, "clutch": True},  # engage: the robot leaves its initial hold
                    {"t": 0.2, "p": [0, 0, 0]},
                    {"t": 1.2, "p": [args.move_mm * 1e-3, 0, 0]},  # move the master, robot follows 2:1
                ]})
                result = replay(operator, script, settle_s=1.0)
                moved_mm = (np.array(operator.latest.p_base_tool) - p0) * 1e3
                print(f"link {args.profile}: round trip p50 {result.health.rtt_p50_s * 1e3:.1f} ms, "
                      f"state loss {result.health.loss:.1%}")
                print(f"master moved {args.move_mm:g} mm along x; the tool moved {np.round(moved_mm, 2)} mm; "
                      f"robot supervisor {operator.latest.supervisor.name}")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
