"""End to end over loopback UDP: robot server (ArmSim) + latency relay + scripted operator.

The robot follows the operator through the injected 5G delay; cutting the link puts it in HOLD
(command gap) and it does not move; a fresh clutch press is needed to resume.
"""

from __future__ import annotations

import time

import numpy as np

from machaon.teleop.client import TeleopClient
from machaon.teleop.messages import HoldReason, SupervisorCode
from machaon.teleop.profiles import get_profile
from machaon.teleop.relay import UdpRelay
from machaon.teleop.replay import replay
from machaon.teleop.script import OperatorScript
from tests.hardware.util import eventually

from .conftest import PSK


def _wait(pred, timeout=3.0) -> bool:
    return eventually(pred, timeout, poll_s=0.01)


def test_robot_follows_through_relay_and_holds_when_link_is_cut(server_process):
    prof = get_profile("5g_sa_surgery")  # 19.2 ms one way, as in clinical 5G telesurgery
    with UdpRelay(("127.0.0.1", 0), server_process, prof, seed=3) as relay:
        with TeleopClient(relay.address, PSK, rate_hz=100) as cli:
            assert _wait(lambda: cli.latest is not None)
            p0 = np.array(cli.latest.p_base_tool)
            assert cli.latest.supervisor == SupervisorCode.HOLD  # nothing moves before the clutch
            script = OperatorScript.from_dict({"rate_hz": 100, "keyframes": [
                {"t": 0.0, "p": [0, 0, 0], "clutch": False, "motion_scale": 2.0},
                {"t": 0.1, "clutch": True},
                {"t": 0.2, "p": [0, 0, 0]},
                {"t": 1.2, "p": [0.04, 0.0, -0.02]},  # master moves 40 mm / -20 mm; 2:1 scaling
            ]})
            res = replay(cli, script, settle_s=0.5)

            def arrived() -> bool:
                moved = np.array(cli.latest.p_base_tool) - p0
                return np.allclose(moved, [0.02, 0.0, -0.01], atol=0.002)

            assert _wait(arrived, 5.0), np.array(cli.latest.p_base_tool) - p0
            time.sleep(0.3)
            last = cli.latest
            assert last.supervisor == SupervisorCode.OK
            rtt = res.health.rtt_p50_s
            assert 0.038 < rtt < 0.25  # two 19.2 ms legs plus processing (slow on a loaded machine)
            # cut the link with the clutch still held, and keep moving the master
            relay.cut()
            # a datagram the relay had already handed to the client's socket may still be read
            # (a loaded machine delays the client's reader): count from once those have landed
            time.sleep(0.05)
            n_before = len(cli.history())
            for i in range(50):
                cli.input.p = (0.04 + 0.001 * i, 0.0, -0.02)
                time.sleep(0.01)
            assert len(cli.history()) == n_before  # nothing gets through
            # link back (clutch still held): the robot reports HOLD for a command gap, and it
            # has not moved while cut off
            relay.restore()
            assert _wait(lambda: len(cli.history()) > n_before + 5)
            back = cli.history()[n_before + 1][1]
            assert back.supervisor == SupervisorCode.HOLD and back.hold_reason == HoldReason.COMMAND_GAP
            drift = np.linalg.norm(np.array(back.p_base_tool) - np.array(last.p_base_tool))
            assert drift < 1e-3, drift  # the switch to the supervisor's joint hold settles < 1 mm
            time.sleep(0.3)  # still held: no surprise motion although the clutch flag is set
            now = cli.latest
            assert now.supervisor == SupervisorCode.HOLD
            assert np.linalg.norm(np.array(now.p_base_tool) - np.array(back.p_base_tool)) < 3e-4
            # release and press again: resumes from where it is (no jump), then follows again
            cli.input.clutch = False
            time.sleep(0.15)
            cli.input.clutch = True
            assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK, 3.0)
            time.sleep(0.3)
            jump = np.linalg.norm(np.array(cli.latest.p_base_tool) - np.array(back.p_base_tool))
            assert jump < 2e-3, jump
            cli.input.p = (0.099, 0.0, -0.02)  # +0.01 m master (from 0.089) -> +0.005 m robot at 2:1
            assert _wait(lambda: abs(cli.latest.p_base_tool[0] - back.p_base_tool[0] - 0.005) < 0.0015, 3.0)
            assert cli.latest.dropped_packets == 0 or cli.latest.dropped_packets < 20


def test_forged_and_replayed_traffic_never_moves_the_robot(server_process):
    import socket

    from machaon.teleop.endpoint import ClientEndpoint
    from machaon.teleop.messages import CmdFlag, CommandKind

    evil = ClientEndpoint(bytes(32))  # wrong key
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.sendto(evil.hello(), server_process)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s.sendto(rng.bytes(int(rng.integers(0, 300))), server_process)
    recorded = []
    with TeleopClient(server_process, PSK) as cli:  # a legitimate operator moves the robot ...
        assert _wait(lambda: cli.latest is not None)
        assert cli.latest.dropped_packets >= 201  # the forged HELLO and the garbage were all counted
        cli.input.clutch = True
        for i in range(60):
            cli.input.p = (0.0005 * i, 0.0, 0.0)
            pkt = cli.endpoint.command(time.monotonic(), CommandKind.MASTER_POSE, flags=CmdFlag.CLUTCH,
                                       p_op=cli.input.p, motion_scale=1.0)
            cli._sock.sendto(pkt, server_process)  # sent on the wire, and recorded by an eavesdropper
            recorded.append(pkt)
            time.sleep(0.01)
        assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK)
    time.sleep(0.6)  # operator gone: command gap -> HOLD
    for pkt in recorded:  # the eavesdropper replays the whole motion
        s.sendto(pkt, server_process)
    time.sleep(0.3)
    with TeleopClient(server_process, PSK) as cli:  # a new session looks at the robot
        assert _wait(lambda: cli.latest is not None)
        p0 = np.array(cli.latest.p_base_tool)
        time.sleep(0.3)
        st = cli.latest
        assert st.supervisor == SupervisorCode.HOLD and st.hold_reason == HoldReason.COMMAND_GAP
        # the replayed motion would have carried the tool up to 30 mm along +x; it has not moved
        # beyond the < 1 mm settling of the supervisor's joint hold
        assert np.linalg.norm(np.array(st.p_base_tool) - p0) < 1.5e-3
        assert st.dropped_packets >= 201 + len(recorded)  # every replayed packet was dropped
    s.close()
