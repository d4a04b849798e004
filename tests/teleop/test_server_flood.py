"""The robot server under a junk flood, in process (``FakeBackend`` in position mode at 250 Hz on
the wall clock, the real network process and UDP on loopback): junk, forged and replayed
datagrams never reach the robot process (only authenticated commands cross), the operator keeps
control, the network process forwards one drop summary per second instead of a line per packet,
and a dead network process is reported while the robot holds."""

from __future__ import annotations

import logging
import os
import socket
import time

import numpy as np
import pytest

from machaon.robot.clock import MonotonicClock
from machaon.robot.description import load_description
from machaon.robot.fake import FakeBackend
from machaon.teleop.client import TeleopClient
from machaon.teleop.endpoint import ClientEndpoint
from machaon.teleop.mapping import TeleopConfig, workspace_fixture
from machaon.teleop.messages import MsgType, SupervisorCode
from machaon.teleop.robot_setup import inner_controller, robot_model, safety_settings
from machaon.teleop.server import RobotServer, build_supervisor
from machaon.teleop.session import WIRE_SIZE
from machaon.types import CommandMode
from tests.hardware.util import eventually

PSK = bytes(range(9, 41))


@pytest.fixture
def server():
    desc = load_description("machaon_arm")
    model = robot_model(desc)
    backend = FakeBackend(6, q0=np.asarray(desc.q_home), joint_names=desc.joint_names, clock=MonotonicClock(0.0))
    # command gap 0.5 s: the operator's thread shares this process with the flood's sender and the
    # server's loop; on a loaded shared host it alone can stall past 0.25 s (a HOLD the flood did not cause)
    config = TeleopConfig(command_timeout_s=0.5, workspace_min=desc.workspace_min,
                          workspace_max=desc.workspace_max)
    safety = safety_settings(model)
    safety["hold_mode"] = CommandMode.POSITION
    safety["period_max_s"] = 0.5  # the test host is shared: a late cycle must not stop a network test
    sup = build_supervisor(model.chain, config, None, **safety)
    inner = inner_controller(model, position_mode=True,
                             fixtures=workspace_fixture(desc.workspace_min, desc.workspace_max))
    srv = RobotServer(backend, model.chain, inner, PSK, listen=("127.0.0.1", 0), config=config,
                      supervisor=sup, rate_hz=250.0)
    with srv:
        yield srv


def _wait(pred, timeout=5.0) -> bool:
    return eventually(pred, timeout, poll_s=0.02)


def test_junk_flood_never_reaches_the_robot_process(server, caplog):
    addr = server.address
    rng = np.random.default_rng(1)
    captured = ClientEndpoint(PSK).hello(0.0)  # an old HELLO, replayed
    old = ClientEndpoint(PSK)
    forged_cmd = bytearray(os.urandom(WIRE_SIZE[MsgType.COMMAND]))
    forged_cmd[:4] = b"MQ\x02\x03"
    junk = [rng.bytes(int(n)) for n in rng.integers(0, 300, 50)] + [bytes(forged_cmd), captured, old.hello(0.0)]
    with caplog.at_level(logging.INFO, logger="machaon"):
        with TeleopClient(addr, PSK, rate_hz=100) as cli:
            assert _wait(lambda: cli.latest is not None)
            cli.input.clutch = True
            assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t0 = time.monotonic()
            sent = 0
            while time.monotonic() - t0 < 2.0:  # ~5000/s in bursts, while the operator drives
                for _ in range(50):
                    s.sendto(junk[sent % len(junk)], addr)
                    sent += 1
                cli.input.p = (0.01 * (time.monotonic() - t0), 0.0, 0.0)
                time.sleep(0.01)
            s.close()
            time.sleep(0.6)
            assert cli.latest.supervisor == SupervisorCode.OK  # the operator kept control throughout
            assert cli.endpoint.meter.received > 150
        time.sleep(0.6)  # the next stats report of the network process
    st = server.network.stats
    assert sent > 5000 and st.received > sent // 2  # (the kernel may drop some of a burst)
    assert sum(st.dropped.values()) >= st.received - st.accepted - st.handshakes - 5
    # the robot process received the accepted commands and nothing else
    assert server.network.commands_received == st.accepted > 200
    # one summary line per second, not one per packet
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING and "dropped" in r.getMessage()]
    assert 1 <= len(lines) <= 6, [r.getMessage() for r in lines]
    assert "malformed" in lines[0].getMessage()


def test_a_dead_network_process_is_reported_and_the_robot_holds(server):
    with TeleopClient(server.address, PSK, rate_hz=100) as cli:
        assert _wait(lambda: cli.latest is not None)
        cli.input.clutch = True
        assert _wait(lambda: cli.latest.supervisor == SupervisorCode.OK)
        os.kill(server.network.pid, 9)
        assert _wait(lambda: server.link_error is not None)
        assert "network process" in server.link_error and "exit code -9" in server.link_error
        assert _wait(lambda: server.supervisor.state.value == "hold", 2.0)  # command gap
