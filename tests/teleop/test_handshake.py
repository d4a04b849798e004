"""The handshake under attack, in simulated time (deterministic): replayed HELLOs at 100/s and
1000/s while the operator connects over a 100 ms one-way link, cookies under load, pending
sessions that never displace the live one, rekeying, and bounded drop logging."""

from __future__ import annotations

import logging
import os

import pytest

from machaon.teleop.channel import SimChannel
from machaon.teleop.endpoint import ClientEndpoint, ServerEndpoint
from machaon.teleop.messages import (
    CmdFlag,
    CommandKind,
    HoldReason,
    MsgType,
    OperatorMode,
    RobotStateMsg,
    SupervisorCode,
    Timing,
)
from machaon.teleop.profiles import LinkProfile
from machaon.teleop.session import WIRE_SIZE, ClientHandshake, RekeyPolicy, ServerHandshake, parse_header

PSK = bytes(range(32, 64))
DT = 1e-3


def _state() -> RobotStateMsg:
    return RobotStateMsg(Timing(0.0), 1.0, (0.4, 0.0, 0.3), (0.0, 0.0, 0.0, 1.0), (0.4, 0.0, 0.3),
                         (0.0, 0.0, 0.0, 1.0), (0.0,) * 6, SupervisorCode.OK, HoldReason.NONE,
                         OperatorMode.FOLLOW, True, False, 0, 0)


class _Operator:
    """What ``TeleopClient`` does, in simulated time: HELLO every ``retry_s`` until connected (at
    once again after a COOKIE), then a command every 10 ms; rekeys when the endpoint asks."""

    def __init__(self, psk: bytes = PSK, policy: RekeyPolicy | None = None, retry_s: float = 0.25) -> None:
        self.ep = ClientEndpoint(psk, policy)
        self.retry_s = retry_s
        self.t_hello = -1.0
        self.t_cmd = 0.0
        self.hellos: list[bytes] = []

    def tick(self, t: float, up: SimChannel, down: SimChannel) -> None:
        for pkt in down.receive(t):
            self.ep.handle(pkt, t)
        if not self.ep.connected:
            if t - self.t_hello >= self.retry_s or self.ep.hello_due:
                h = self.ep.hello(t)
                self.hellos.append(h)
                up.send(t, h)
                self.t_hello = t
            return
        if self.ep.needs_rekey(t) or self.ep.hello_due:
            up.send(t, self.ep.hello(t))
        if t >= self.t_cmd:
            self.t_cmd = t + 0.01
            try:
                up.send(t, self.ep.command(t, CommandKind.HEARTBEAT, flags=CmdFlag.CLUTCH))
            except Exception:  # expired: wait for the rekey
                pass


class _Robot:
    def __init__(self, **kw: object) -> None:
        self.ep = ServerEndpoint(PSK, **kw)
        self.t_state = 0.0
        self.accepted_by_session: dict[int, int] = {}
        self.replies: list[tuple[object, bytes, int]] = []  # (peer, reply, size of the request)

    def receive(self, t: float, pkt: bytes, peer: object, down: SimChannel | None) -> None:
        cmd, replies = self.ep.handle(pkt, peer, t)
        for r in replies:
            self.replies.append((peer, r, len(pkt)))
            if down is not None:
                down.send(t, r)
        if cmd is not None:
            sid = self.ep.session.session_id
            self.accepted_by_session[sid] = self.accepted_by_session.get(sid, 0) + 1

    def tick(self, t: float, down: SimChannel) -> None:
        if t >= self.t_state:
            self.t_state = t + 0.01
            pkt = self.ep.state_packet(_state(), t)
            if pkt is not None:
                down.send(t, pkt)


def _link(delay_s: float) -> tuple[SimChannel, SimChannel]:
    prof = LinkProfile("test", delay_s=delay_s)
    return SimChannel(prof, 0), SimChannel(prof, 1)


def _captured_hello(robot: _Robot) -> bytes:
    """An earlier operator's session: connected, drove, left. The attacker recorded its HELLO."""
    up, down = _link(0.001)
    op = _Operator()
    t = 0.0
    while t < 1.0:
        op.tick(t, up, down)
        for pkt in up.receive(t):
            robot.receive(t, pkt, ("10.0.0.9", 40000), down)
        robot.tick(t, down)
        t += DT
    assert robot.ep.session is not None and robot.ep.session.session_id == op.ep.session.session_id
    return op.hellos[0]


@pytest.mark.parametrize("phase_s", [0.0, 0.0037])
@pytest.mark.parametrize("replay_hz", [100, 1000])
def test_replayed_hello_cannot_lock_the_operator_out(replay_hz, phase_s):
    """Defect 1: a captured HELLO replayed at 100/s or 1000/s while the operator connects over a
    100 ms one-way link. The operator must get control every time."""
    robot = _Robot()
    captured = _captured_hello(robot)
    up, down = _link(0.100)
    op = _Operator()
    attacker = ("203.0.113.7", 5555)
    t, t_next_replay, t_op = 1.5, 1.5 + phase_s, 3.0
    pending_max = n_replays = 0
    while t < 6.0:
        while t >= t_next_replay:  # the attacker is close to the robot: no delay
            robot.receive(t, captured, attacker, None)
            n_replays += 1
            t_next_replay += 1.0 / replay_hz
        if t >= t_op:
            op.tick(t, up, down)
        for pkt in up.receive(t):
            robot.receive(t, pkt, ("198.51.100.2", 47001), down)
        robot.tick(t, down)
        pending_max = max(pending_max, robot.ep.pending)
        t += DT
    assert op.ep.connected
    sid = op.ep.session.session_id
    assert robot.ep.session is not None and robot.ep.session.session_id == sid, "operator did not get control"
    assert robot.accepted_by_session.get(sid, 0) > 150  # ~2.5 s of 100 Hz commands, none refused
    assert op.ep.latest is not None and op.ep.meter.received > 150  # and it sees the robot
    assert robot.ep.drops.by_reason["session"] == 0
    # every replay was dropped before it cost a Diffie-Hellman or any state ...
    dropped = robot.ep.drops.by_reason["replay"] + robot.ep.drops.by_reason["cookie"]
    assert dropped >= n_replays - 1  # (after a restart the first replay would earn one useless WELCOME)
    assert pending_max <= 1
    # ... and what went back to the attacker was never larger than what it sent
    to_attacker = [(r, n) for peer, r, n in robot.replies if peer == attacker]
    assert all(len(r) < n for r, n in to_attacker)


def test_replayed_hello_gets_no_reply_and_no_state_without_load():
    robot = _Robot()
    captured = _captured_hello(robot)
    live = robot.ep.session
    for i in range(15):  # 10/s: below the load threshold, so every replay is fully checked
        cmd, replies = robot.ep.handle(captured, ("203.0.113.7", 1), 2.0 + 0.1 * i)
        assert cmd is None and replies == []
    assert robot.ep.drops.by_reason["replay"] == 15
    assert robot.ep.pending == 0 and robot.ep.session is live


def test_cookie_under_load_is_stateless_smaller_and_bound_to_the_source():
    srv = ServerEndpoint(PSK, cookie_load_per_s=0)  # 0: cookies always required
    cli = ClientEndpoint(PSK)
    hello = cli.hello(0.0)
    _, replies = srv.handle(hello, ("192.0.2.1", 1000), 0.0)
    assert len(replies) == 1 and parse_header(replies[0]).type == MsgType.COOKIE
    assert len(replies[0]) < len(hello)
    assert srv.pending == 0 and srv.handshakes == 0  # nothing committed
    cli.handle(replies[0], 0.01)
    assert cli.hello_due
    retry = cli.hello(0.01)
    # the cookie is bound to the address it was sent to: from elsewhere it earns another cookie
    _, other = srv.handle(retry, ("192.0.2.99", 1000), 0.02)
    assert parse_header(other[0]).type == MsgType.COOKIE and srv.pending == 0
    retry2 = cli.hello(0.03)
    _, replies = srv.handle(retry2, ("192.0.2.1", 1000), 0.03)
    assert parse_header(replies[0]).type == MsgType.WELCOME and srv.pending == 1
    assert len(replies[0]) < len(retry2)
    cli.handle(replies[0], 0.04)
    assert cli.connected
    assert srv.handle(cli.command(0.05), ("192.0.2.1", 1000), 0.05)[0] is not None
    # a forged COOKIE (wrong key) is rejected by the client
    evil = ServerEndpoint(os.urandom(32), cookie_load_per_s=0)
    other_cli = ClientEndpoint(PSK)
    h = other_cli.hello(1.0)
    evil._hs.check_mac1 = lambda pkt: None  # let the forger answer despite the wrong key
    _, forged = evil.handle(h, ("192.0.2.1", 1000), 1.0)
    other_cli.handle(forged[0], 1.0)
    assert not other_cli.hello_due and other_cli.drops.by_reason["auth"] == 1


def test_per_source_rate_limit_under_load():
    srv = ServerEndpoint(PSK, cookie_load_per_s=0, hello_rate_per_s=2, hello_burst=3)
    cli = ClientEndpoint(PSK)
    peer = ("192.0.2.5", 7)
    _, r = srv.handle(cli.hello(0.0), peer, 0.0)
    cli.handle(r[0], 0.0)
    welcomes = 0
    for i in range(10):  # ten fresh handshakes in 0.1 s from one source: the burst passes, then no more
        _, r = srv.handle(cli.hello(0.01 * i), peer, 0.01 * i)
        welcomes += bool(r)
    assert welcomes == 3 and srv.drops.by_reason["ratelimit"] == 7


def test_pending_handshakes_never_displace_the_live_session():
    srv = ServerEndpoint(PSK)
    op = ClientEndpoint(PSK)
    _, r = srv.handle(op.hello(0.0), "op", 0.0)
    op.handle(r[0], 0.0)
    assert srv.handle(op.command(0.01), "op", 0.01)[0] is not None
    live = srv.session
    others = []
    for i in range(30):  # another key holder opens many sessions (fresh HELLOs) ...
        t = 0.1 + 0.01 * i
        c = ClientEndpoint(PSK)
        _, r = srv.handle(c.hello(t), f"other{i}", t)
        c.handle(r[0], t)
        if c.hello_due:  # under load: it gets a cookie first
            _, r = srv.handle(c.hello(t), f"other{i}", t)
            c.handle(r[0], t)
        assert c.connected
        others.append(c)
        assert srv.handle(op.command(t), "op", t)[0] is not None
    assert srv.pending <= srv.max_pending and srv.session is live
    # ... and none of them can drive while the operator is active
    assert srv.handle(others[-1].command(0.5), "other29", 0.5)[0] is None
    assert srv.session is live
    # pending sessions expire
    srv.handle(ClientEndpoint(PSK).hello(20.0), "x", 20.0)
    assert srv.pending == 1


def test_a_replayed_hello_from_an_old_session_is_rejected_after_a_new_one():
    s = ServerHandshake(PSK)
    old = ClientHandshake(PSK, timestamp_ns=1_000)
    new = ClientHandshake(PSK, timestamp_ns=2_000)
    s.answer(new.hello(), 0.0)
    with pytest.raises(Exception, match="not newer"):
        s.answer(old.hello(), 0.0)
    with pytest.raises(Exception, match="not newer"):
        s.answer(new.hello(), 0.0)


def test_rekey_hands_over_without_a_pause_and_old_keys_expire():
    policy = RekeyPolicy(rekey_after_s=1.0, reject_after_s=1.5, retry_s=0.2)
    robot = _Robot(policy=policy)
    up, down = _link(0.02)
    op = _Operator(policy=policy)
    t = 0.0
    sessions = set()
    while t < 4.0:
        op.tick(t, up, down)
        for pkt in up.receive(t):
            robot.receive(t, pkt, "op", down)
        robot.tick(t, down)
        if robot.ep.session is not None:
            sessions.add(robot.ep.session.session_id)
        t += DT
    assert op.ep.rekeys >= 3 and len(sessions) >= 4
    assert robot.ep.drops.by_reason["session"] == 0  # every handover was immediate (no takeover wait)
    assert robot.ep.drops.by_reason["expired"] == 0
    assert sum(robot.accepted_by_session.values()) > 350  # ~400 commands in 4 s, hardly any lost
    # a session that is not rekeyed is refused after reject_after_s
    srv = ServerEndpoint(PSK, policy=policy)
    cli = ClientEndpoint(PSK, policy)
    _, r = srv.handle(cli.hello(0.0), "c", 0.0)
    cli.handle(r[0], 0.0)
    assert srv.handle(cli.command(1.4), "c", 1.4)[0] is not None
    assert srv.state_packet(_state(), 1.6) is None
    with pytest.raises(Exception, match="expired"):
        cli.command(1.6)
    assert srv.handle(cli.session.seal(MsgType.COMMAND, _cmd_body(1.6))[1], "c", 1.6)[0] is None
    assert srv.drops.by_reason["expired"] == 1


def _cmd_body(t: float) -> bytes:
    from machaon.teleop.messages import Command

    return Command(Timing(t), CommandKind.HEARTBEAT).pack()


def test_rekey_claim_needs_the_live_sessions_keys():
    srv = ServerEndpoint(PSK)
    op = ClientEndpoint(PSK)
    _, r = srv.handle(op.hello(0.0), "op", 0.0)
    op.handle(r[0], 0.0)
    assert srv.handle(op.command(0.01), "op", 0.01)[0] is not None
    # another key holder claims to rekey the live session, with a tag made from the wrong keys
    mallory = ClientEndpoint(PSK)
    _, r = srv.handle(mallory.hello(0.02), "m", 0.02)
    mallory.handle(r[0], 0.02)
    fake_prev = mallory.session
    fake_prev.session_id = srv.session.session_id
    hs = ClientHandshake(PSK, previous=fake_prev)
    mallory._pending.append(hs)
    _, r = srv.handle(hs.hello(), "m", 0.03)
    mallory.session = fake_prev
    mallory.handle(r[0], 0.03)
    assert mallory.session is not fake_prev
    # not accepted as a rekey: an ordinary newcomer, refused while the operator drives
    assert srv.handle(mallory.command(0.04), "m", 0.04)[0] is None
    assert srv.drops.by_reason["session"] == 1


def test_every_reply_is_smaller_than_its_request():
    srv = ServerEndpoint(PSK, cookie_load_per_s=0)
    cli = ClientEndpoint(PSK)
    h = cli.hello(0.0)
    _, (cookie,) = srv.handle(h, "a", 0.0)
    cli.handle(cookie, 0.0)
    h2 = cli.hello(0.0)
    _, (welcome,) = srv.handle(h2, "a", 0.0)
    assert len(cookie) < len(h) and len(welcome) < len(h2)
    assert max(WIRE_SIZE[MsgType.COOKIE], WIRE_SIZE[MsgType.WELCOME]) < WIRE_SIZE[MsgType.HELLO]


def test_drop_logging_is_one_summary_per_second(caplog):
    """Defect 3: one WARNING per dropped packet. Now: 20 000 junk packets in 2 s -> <= 3 lines."""
    srv = ServerEndpoint(PSK)
    junk = [b"MQ\x02\x03" + bytes(16), b"\x00" * 40, os.urandom(200)]
    with caplog.at_level(logging.INFO, logger="machaon"):
        for i in range(20000):
            srv.handle(junk[i % 3], ("198.51.100.9", 9), i * 1e-4)
        srv.drops.maybe_summarise(2.5)
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 3
    assert "dropped" in lines[0].getMessage() and "malformed" in lines[0].getMessage()
    assert srv.drops.total == 20000 and srv.drops.by_reason["malformed"] == 20000
