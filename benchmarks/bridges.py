"""Bridges benchmark: what publishing costs the control loop, with and without each bridge, same run.

The loop is the project's arm (machaon_arm + drill guide, 6 joints) on the ``FakeBackend``: every
cycle computes the ``CartesianImpedance`` law with gravity (pinocchio) and runs the supervisor,
while the backend is commanded swinging joint positions (machine-load overruns cannot make it
unstable). Each case runs the same loop
with a different recorder; a real client is connected to every live bridge and subscribed, so the
bridges really encode and send. Each client runs in a process of its own (``--client``), as a viewer
does: a client thread in this process would take the GIL from the loop being measured.

- none: no recorder (the baseline);
- Foxglove live view (foxglove-sdk server, 50 Hz of ``/tf``, ``/joint_states``, command, target)
  with a Foxglove-protocol WebSocket client (``websockets``) subscribed to everything;
- OpenIGTLink server streaming the tool pose at 50 Hz (``send_tracking``, as ``ortho run`` does at
  the camera rate) with pyigtl's own client connected;
- the MCAP run log (``RunLogRecorder``, which writes on the control thread: the peer here, for scale);
- all of them at once (``Observers``).

Two measurements per case:

1. free-running (``FakeClock``: no waiting), ``--cycles`` cycles: wall time per cycle, i.e. what the
   bridge adds to each cycle on the control thread, plus its publisher thread's competition for
   the GIL (median of ``--repeats`` runs; the ratio to the baseline is the cost);
2. real time (``MonotonicClock``, 1 kHz, ``--seconds``): period error median/p99 and overruns, which
   is what a user of a live view sees of the bridge (worst of the repeats for p99, and each run's).

Run: ``python -m benchmarks.bridges [--cycles 20000] [--seconds 3] [--repeats 3]``. Timing on a shared
machine moves by tens of percent; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks._common import table
from machaon.bridges.foxglove_live import FoxgloveLiveView
from machaon.bridges.igtl import IgtlServer
from machaon.control import CartesianGains, CartesianImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.kinematics import Chain, Dynamics
from machaon.robot.clock import FakeClock, MonotonicClock
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.robot.link_frames import LinkFrames
from machaon.robot.loop import ControlLoop
from machaon.robot.observers import Observers
from machaon.robot.runlog import RunLogRecorder
from machaon.types import JointCommand


class _IgtlStreamer:
    """The tool pose over OpenIGTLink at ``rate_hz`` of backend time (as the procedure's camera frames)."""

    def __init__(self, srv: IgtlServer, chain: Chain, rate_hz: float = 50.0) -> None:
        self.srv, self.chain, self.period, self.t_next = srv, chain, 1.0 / rate_hz, -1.0

    def record_cycle(self, t, state, cmd) -> None:
        if t >= self.t_next:
            self.t_next = max(self.t_next + self.period, t)
            self.srv.send_tracking(T_reference_tool=self.chain.fk(state.q))


class _Client:
    """A real client of a live bridge, in its own process as a viewer is (Foxglove, 3D Slicer): a
    client thread in the benchmark's process would take the GIL from the loop it measures."""

    received: dict[str, list[int]] = {}  # messages each client received, per kind, one entry per case run

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bridges", "--client", kind, target],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"{kind} client did not start")

    def close(self) -> int:
        """Stop the client; the number of messages it received."""
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(10)
        n = int(out.strip() or 0)
        _Client.received.setdefault(self.kind, []).append(n)
        return n


def _fox_client(url: str, stop: threading.Event) -> int:
    """Subscribe to every topic of the Foxglove server at ``url``; read until ``stop``."""
    import json

    from websockets.sync.client import connect

    with connect(url, subprotocols=["foxglove.sdk.v1", "foxglove.websocket.v1"], max_size=None) as ws:
        channels = {}
        while len(channels) < 9:
            msg = json.loads(ws.recv(timeout=5))
            if msg.get("op") == "advertise":
                channels.update({c["topic"]: c["id"] for c in msg["channels"]})
        ws.send(json.dumps({"op": "subscribe", "subscriptions": [
            {"id": i + 1, "channelId": cid} for i, cid in enumerate(channels.values())]}))
        print("ready", flush=True)
        received = 0
        while not stop.is_set():
            try:
                ws.recv(timeout=0.2)
                received += 1
            except TimeoutError:
                continue
        return received


def _igtl_client(port: str, stop: threading.Event) -> int:
    """pyigtl's client connected to the OpenIGTLink server on ``port``; read until ``stop``."""
    import pyigtl

    client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=int(port))
    print("ready", flush=True)
    received = 0
    while not stop.is_set():
        received += len(client.get_latest_messages())
        time.sleep(0.02)
    client.stop()
    return received


def _client_main(kind: str, target: str) -> None:
    """``--client KIND TARGET``: run one client until stdin closes, then print what it received."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print({"fox": _fox_client, "igtl": _igtl_client}[kind](target, stop), flush=True)


def _setup():
    desc = load_description("machaon_arm")
    tool = desc.tool("drill_guide")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link).with_tool(tool.T_flange_tcp)
    dyn = Dynamics(chain, payload_mass=tool.mass, payload_com=tool.com_tcp)
    return desc, chain, dyn, LinkFrames.from_chain(chain, tool_frame=tool.tcp_link)


class _Wave:
    """The per-cycle work of a Cartesian impedance controller with gravity (its law is computed every
    cycle, for its cost) while the FakeBackend is commanded joint positions that swing (so every topic
    changes and machine-load overruns cannot destabilise the benchmark's physics)."""

    def __init__(self, chain: Chain, dyn: Dynamics, q0: np.ndarray) -> None:
        self.inner = CartesianImpedance(chain, CartesianGains.isotropic(500.0, 20.0), dynamics=dyn)
        self.T0 = chain.fk(q0)
        self.q0 = np.asarray(q0, dtype=np.float64)

    def on_activate(self, state, t) -> None:
        self.inner.on_activate(state, t)

    def update(self, state, t):
        T = self.T0.copy()
        T[:3, 3] += 0.02 * np.array([np.cos(t), np.sin(t), 0.0])
        self.inner.set_target(T)
        law = self.inner.update(state, t)
        cmd = JointCommand.position(self.q0 + 0.1 * np.sin(t + np.arange(len(self.q0))))
        cmd.info.update(law.info)
        return cmd


def _loop(desc, chain, dyn, clock, recorder):
    backend = FakeBackend(desc.dof, q0=np.array(desc.q_home), joint_names=desc.joint_names, clock=clock)
    sup = Supervisor(SafetyConfig(period_max_s=1.0, target_timeout_s=None, tool_speed_max=None))
    return ControlLoop(backend, _Wave(chain, dyn, np.array(desc.q_home)), sup, rate_hz=1000.0, recorder=recorder)


def _cases(desc, chain, frames, tmp):
    """(name, make() -> (recorder, cleanup)) for every case."""

    def none():
        return None, lambda: None

    def fox():
        view = FoxgloveLiveView(0, joint_names=desc.joint_names, link_frames=frames, queue_len=64)
        client = _Client("fox", view.url)
        return view, lambda: (client.close(), view.close())

    def igtl():
        srv = IgtlServer(port=0)
        client = _Client("igtl", str(srv.port))
        deadline = time.monotonic() + 5
        while srv.clients < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        return Observers(_IgtlStreamer(srv, chain)), lambda: (client.close(), srv.close())

    counter = [0]

    def runlog():
        counter[0] += 1
        rec = RunLogRecorder(f"{tmp}/bench_{counter[0]}.mcap", joint_names=desc.joint_names, link_frames=frames)
        return rec, rec.close

    def everything():
        a, ca = fox()
        b, cb = igtl()
        c, cc = runlog()
        return Observers(a, b, c), lambda: (ca(), cb(), cc())

    return [("none", none), ("Foxglove live view", fox), ("OpenIGTLink stream", igtl),
            ("MCAP run log (on the loop thread)", runlog), ("all three", everything)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--client", nargs=2, metavar=("KIND", "TARGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        _client_main(*args.client)
        return
    import tempfile

    desc, chain, dyn, frames = _setup()
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cases(desc, chain, frames, tmp)
        free: dict[str, list[float]] = {n: [] for n, _ in cases}
        rt: dict[str, list[tuple[float, float, int]]] = {n: [] for n, _ in cases}
        for _ in range(args.repeats):
            for name, make in cases:  # interleaved, so machine load hits every case alike
                rec, cleanup = make()
                try:
                    loop = _loop(desc, chain, dyn, FakeClock(), rec)
                    loop.run_for(0.2)  # warm-up
                    t0 = time.perf_counter()
                    loop.run_for(args.cycles / 1000.0)
                    free[name].append((time.perf_counter() - t0) / args.cycles)
                    loop = _loop(desc, chain, dyn, MonotonicClock(), rec)
                    s = loop.run_for(args.seconds)
                    rt[name].append((s.error_median, s.error_p99, s.overruns))
                finally:
                    cleanup()
    base = float(np.median(free["none"]))
    rows = []
    for name, _ in cases:
        f = float(np.median(free[name]))
        med = float(np.median([r[0] for r in rt[name]]))
        p99 = max(r[1] for r in rt[name])
        over = max(r[2] for r in rt[name])
        each = " ".join(f"{r[1] * 1e6:.0f}" for r in rt[name])
        rows.append([name, f"{f * 1e6:.1f}", f"{(f - base) * 1e6:+.1f}", f"{f / base:.2f}x",
                     f"{med * 1e6:.1f} / {p99 * 1e6:.1f}", each, over])
    print(f"control loop on the FakeBackend, Cartesian impedance + gravity + supervisor, {args.cycles} cycles "
          f"free-running and {args.seconds:.0f} s at 1 kHz real time per case, {args.repeats} repeats")
    print(table(["recorder", "us/cycle (free-running)", "vs none, us", "ratio",
                 "1 kHz period error median / p99 (worst), us", "p99 of each run, us", "overruns (worst)"], rows))
    print("messages each client received per case run (free-running + real time):",
          "; ".join(f"{k}: {min(v)}-{max(v)}" for k, v in _Client.received.items()))


if __name__ == "__main__":
    main()
