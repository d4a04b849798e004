"""Benchmark: one control cycle (sync read of present current/velocity/position + sync write of goal
current) for 6 servos, at 1 Mbaud and 4 Mbaud, against the servo-chain emulator running in its own
process (``machaon hw emulate``) on a real pty.

Compared in the same run: our ``Bus`` (plain and fast sync read), the official ``dynamixel-sdk``
(GroupSyncRead/GroupSyncWrite, plain and fast), and the wire-time lower bound (bits on the wire at
10 bits a byte / baud, plus the servos' return delays, here 0). Run: ``python -m benchmarks.hardware``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from benchmarks._common import interleaved

IDS = [1, 2, 3, 4, 5, 6]
READ_ADDR, READ_LEN = 126, 10  # present current, velocity, position
WRITE_ADDR, WRITE_LEN = 102, 2  # goal current


def _wire(baud: int, fast: bool) -> float:
    n = len(IDS)
    req = 14 + n
    rx = (8 + n * (4 + READ_LEN)) if fast else n * (11 + READ_LEN)
    wr = 14 + n * (1 + WRITE_LEN)
    return (req + rx + wr) * 10.0 / baud


def _ours(port: str, baud: int, fast: bool):
    from machaon.hardware.dynamixel import Bus

    bus = Bus(port, baud, return_delay_s=0.0, latency_s=0.034)  # the SDK's margin (2 x 16 ms + 2 ms)
    goal = {i: b"\x00\x00" for i in IDS}

    def cycle() -> bool:
        res = bus.sync_read(IDS, READ_ADDR, READ_LEN, fast=fast, retry=False)
        bus.sync_write(WRITE_ADDR, WRITE_LEN, goal)
        return res.complete

    return cycle, bus.close


def _sdk(port: str, baud: int, fast: bool):
    import dynamixel_sdk as sdk

    ph = sdk.PortHandler(port)
    pk = sdk.PacketHandler(2.0)
    if not (ph.openPort() and ph.setBaudRate(baud)):
        raise RuntimeError("sdk: cannot open the port")
    gr = sdk.GroupSyncRead(ph, pk, READ_ADDR, READ_LEN)
    gw = sdk.GroupSyncWrite(ph, pk, WRITE_ADDR, WRITE_LEN)
    for i in IDS:
        gr.addParam(i)
        gw.addParam(i, [0, 0])

    def cycle() -> bool:
        r = gr.fastSyncRead() if fast else gr.txRxPacket()
        gw.txPacket()
        return r == sdk.COMM_SUCCESS

    return cycle, ph.closePort


def _emulator(baud: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--ids", "1-6", "--baud",
                             str(baud), "--return-delay-us", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    port = proc.stdout.readline().strip()
    if not port.startswith("/dev/"):
        proc.kill()
        raise RuntimeError("emulator did not start")
    return proc, port


def _loop_at_1khz(seconds: float = 3.0) -> str:
    """The whole stack: ControlLoop at 1 kHz, joint impedance, ActuatorBackend on 6 servos at 4 Mbaud."""
    from machaon.control.impedance import JointImpedance
    from machaon.control.supervisor import SafetyConfig, Supervisor
    from machaon.hardware.backend import ActuatorBackend, ActuatorConfig, JointConfig
    from machaon.robot.loop import ControlLoop

    proc, port = _emulator(4_000_000)
    try:
        cfg = ActuatorConfig(port=port, baudrate=4_000_000, joints=tuple(JointConfig(f"j{i}", i) for i in IDS),
                             latency_s=0.005)
        with ActuatorBackend(cfg) as be:
            ctrl = JointImpedance(6, stiffness=4.0, damping=0.3)
            sup = Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None, period_max_s=0.05))
            st = ControlLoop(be, ctrl, sup, rate_hz=1000.0).run_for(seconds)
            bad = sum(h.timeouts + h.crc_errors for h in be.bus.health.values())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return (f"ControlLoop at 1 kHz on ActuatorBackend (6 servos, 4 Mbaud, fast sync read + sync write): "
            f"{st.cycles} cycles, {st.overruns} overruns, period median {st.period_median * 1e6:.0f} us, "
            f"p99 {st.period_p99 * 1e6:.0f} us, compute p99 {st.compute_p99 * 1e6:.0f} us, {bad} failed reads, "
            f"supervisor {sup.state.value}")


def main() -> None:
    from machaon.hardware.protocol import COMPILED

    rows = []
    for baud in (1_000_000, 4_000_000):
        n = 1000 if baud == 1_000_000 else 2000
        proc, port = _emulator(baud)
        try:
            for fast in (False, True):
                ours, close_ours = _ours(port, baud, fast)
                sdk, close_sdk = _sdk(port, baud, fast)
                try:
                    r_ours, r_sdk = interleaved([ours, sdk], n, warmup=20)
                finally:
                    close_ours()
                    close_sdk()
                rows.append((baud, fast, _wire(baud, fast), r_ours, r_sdk))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"One cycle = sync read ({READ_LEN} B x 6 servos) + sync write ({WRITE_LEN} B x 6), emulator in its "
          f"own process on a pty; CRC kernel compiled: {COMPILED}. Times in microseconds (median / p99); "
          "fail = cycles whose read timed out (not timed); the two clients alternate in blocks of 50 cycles.")
    head = (f"{'baud':>9} {'read':>5} {'wire bound':>10} {'machaon':>15} {'x bound':>8} {'fail':>4} "
            f"{'dynamixel-sdk':>15} {'x bound':>8} {'fail':>4} {'sdk/machaon':>11}")
    print(head)
    print("-" * len(head))
    for baud, fast, wire, (ours, of), (sdk, sf) in rows:
        om, op = np.median(ours) * 1e6, np.percentile(ours, 99) * 1e6
        sm, sp = np.median(sdk) * 1e6, np.percentile(sdk, 99) * 1e6
        print(f"{baud:>9} {'fast' if fast else 'plain':>5} {wire * 1e6:>10.0f} {om:>7.0f} / {op:>5.0f} "
              f"{om / (wire * 1e6):>8.2f} {of:>4} {sm:>7.0f} / {sp:>5.0f} {sm / (wire * 1e6):>8.2f} {sf:>4} "
              f"{sm / om:>11.2f}")
    print(_loop_at_1khz())


if __name__ == "__main__":
    main()
