"""Messages, sessions and endpoints: forged, replayed, reordered, bit-flipped and malformed
packets are rejected and counted; the decoder never raises anything but ProtocolError."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.teleop.endpoint import ClientEndpoint, ServerEndpoint
from machaon.teleop.keys import KeyFileError, load_key, write_key
from machaon.teleop.messages import (
    CmdFlag,
    Command,
    CommandKind,
    HoldReason,
    OperatorMode,
    ProtocolError,
    RobotStateMsg,
    SupervisorCode,
    Timing,
)
from machaon.teleop.session import ClientHandshake, ReplayWindow, ServerHandshake

PSK = bytes(range(32))
FAST = settings(max_examples=60, deadline=None, derandomize=True)


def _pair(psk: bytes = PSK):
    srv, cli = ServerEndpoint(psk), ClientEndpoint(psk)
    _, replies = srv.handle(cli.hello(), "cli", 0.0)
    assert len(replies) == 1
    cli.handle(replies[0], 0.0)
    assert cli.connected
    return srv, cli


def _state() -> RobotStateMsg:
    return RobotStateMsg(Timing(0.0), 1.0, (0.4, 0.0, 0.3), (0.0, 0.0, 0.0, 1.0), (0.4, 0.0, 0.3),
                         (0.0, 0.0, 0.0, 1.0), (1.0, 2.0, 3.0, 0.0, 0.0, 0.0), SupervisorCode.OK,
                         HoldReason.NONE, OperatorMode.FOLLOW, True, False, 5, 0)


def test_roundtrip_and_session_establishment():
    srv, cli = _pair()
    pkt = cli.command(1.0, CommandKind.MASTER_POSE, flags=CmdFlag.CLUTCH, p_op=(0.1, 0.0, 0.0))
    cmd, _ = srv.handle(pkt, "cli", 1.01)
    assert cmd is not None and cmd.p_op == (0.1, 0.0, 0.0) and cmd.flags == CmdFlag.CLUTCH
    assert srv.session is not None and srv.accepted == 1
    st_pkt = srv.state_packet(_state(), 1.02)
    msg = cli.handle(st_pkt, 1.03)
    assert msg is not None and msg.wrench[:3] == (1.0, 2.0, 3.0)
    assert msg.timing.echo_t == 1.0  # echoes the command's send time
    h = cli.meter.health(1.03)
    assert h.rtt_p50_s == pytest.approx(0.03 - 0.01, abs=1e-9)  # 1.03 - 1.0 - hold 0.01


def test_replayed_reordered_forged_and_flipped_packets_are_dropped():
    srv, cli = _pair()
    p1 = cli.command(1.0, CommandKind.HEARTBEAT)
    p2 = cli.command(1.1, CommandKind.HEARTBEAT)
    assert srv.handle(p2, "cli", 1.1)[0] is not None
    assert srv.handle(p2, "cli", 1.2)[0] is None  # replay
    assert srv.handle(p1, "cli", 1.2)[0] is None  # reordered (older than applied)
    flipped = bytearray(cli.command(1.3))
    flipped[25] ^= 0x10
    assert srv.handle(bytes(flipped), "cli", 1.3)[0] is None
    forger = ClientEndpoint(os.urandom(32))  # wrong key
    assert srv.handle(forger.hello(), "evil", 1.3)[0] is None
    # a forger cannot even complete a handshake; a packet it crafts for the live session fails auth
    evil = bytearray(p2)
    evil[12:20] = (999).to_bytes(8, "little")  # new seq, same ciphertext
    assert srv.handle(bytes(evil), "evil", 1.4)[0] is None
    assert srv.drops.by_reason == {"replay": 1, "stale": 1, "auth": 3}
    # the live session is intact
    assert srv.handle(cli.command(1.5), "cli", 1.5)[0] is not None


def test_estop_is_accepted_even_when_reordered():
    srv, cli = _pair()
    stop = cli.command(1.0, CommandKind.HEARTBEAT, flags=CmdFlag.ESTOP)
    later = cli.command(1.1, CommandKind.HEARTBEAT)
    assert srv.handle(later, "c", 1.1)[0] is not None
    cmd, _ = srv.handle(stop, "c", 1.2)
    assert cmd is not None and cmd.flags & CmdFlag.ESTOP


def test_replayed_hello_cannot_take_over_the_session():
    srv, cli = ServerEndpoint(PSK), ClientEndpoint(PSK)
    hello = cli.hello(0.0)
    _, replies = srv.handle(hello, "cli", 0.0)
    cli.handle(replies[0], 0.0)
    assert srv.handle(cli.command(1.0), "cli", 1.0)[0] is not None
    live = srv.session
    _, replies = srv.handle(hello, "attacker", 2.0)  # a replayed HELLO earns nothing ...
    assert replies == [] and srv.drops.by_reason["replay"] == 1
    assert srv.session is live and srv.pending == 0  # ... and changes nothing
    assert srv.handle(cli.command(2.1), "cli", 2.1)[0] is not None


def test_second_operator_cannot_take_over_an_active_session():
    srv, cli = _pair()
    assert srv.handle(cli.command(1.0), "a", 1.0)[0] is not None
    other = ClientEndpoint(PSK)
    _, replies = srv.handle(other.hello(), "b", 1.1)
    other.handle(replies[0], 1.1)
    assert other.connected  # it holds keys, but ...
    assert srv.handle(other.command(1.2), "b", 1.2)[0] is None  # ... the robot is someone else's
    assert srv.drops.by_reason["session"] == 1
    assert srv.handle(cli.command(1.3), "a", 1.3)[0] is not None
    # once the first operator has been silent for takeover_after_s, the new one may drive
    assert srv.handle(other.command(2.5), "b", 2.5)[0] is not None
    assert srv.handle(cli.command(2.6), "a", 2.6)[0] is None  # the old session is gone


def test_out_of_bounds_commands_are_rejected():
    srv, cli = _pair()
    bad = [
        dict(kind=CommandKind.MASTER_POSE, p_op=(100.0, 0.0, 0.0)),
        dict(kind=CommandKind.MASTER_POSE, p_op=(float("nan"), 0.0, 0.0)),
        dict(kind=CommandKind.MASTER_POSE, quat_op=(0.0, 0.0, 0.0, 2.0)),
        dict(kind=CommandKind.INCREMENT, increment=(0.5, 0, 0, 0, 0, 0)),
        dict(kind=CommandKind.HEARTBEAT, speed_scale=0.0),
        dict(kind=CommandKind.HEARTBEAT, motion_scale=10.0),
    ]
    for i, fields in enumerate(bad):
        assert srv.handle(cli.command(1.0 + i, **fields), "c", 1.0 + i)[0] is None
    assert srv.drops.by_reason["bounds"] == len(bad)


@FAST
@given(st.binary(max_size=400))
def test_fuzz_server_never_raises_on_garbage(data):
    srv, _ = _pair()
    cmd, replies = srv.handle(data, "fuzz", 0.0)
    assert cmd is None
    for r in replies:  # only a valid HELLO could earn a reply, and garbage cannot carry its MAC
        raise AssertionError(r)


@FAST
@given(st.integers(min_value=0, max_value=8 * 159), st.data())
def test_fuzz_any_bit_flip_is_rejected(bit, data):
    srv, cli = _pair()
    pkt = bytearray(cli.command(1.0, CommandKind.MASTER_POSE, flags=CmdFlag.CLUTCH))
    bit %= 8 * len(pkt)
    pkt[bit // 8] ^= 1 << (bit % 8)
    assert srv.handle(bytes(pkt), "c", 1.0)[0] is None
    assert srv.drops.total == 1


@FAST
@given(st.binary(min_size=Command._FMT.size, max_size=Command._FMT.size))
def test_fuzz_command_decoder(body):
    try:
        cmd = Command.unpack(body)
    except ProtocolError:
        return
    assert 0 < cmd.speed_scale <= 1 and all(abs(x) <= 5 for x in cmd.p_op)


@FAST
@given(st.binary(min_size=RobotStateMsg._FMT.size, max_size=RobotStateMsg._FMT.size))
def test_fuzz_state_decoder(body):
    try:
        RobotStateMsg.unpack(body)
    except ProtocolError:
        pass


@FAST
@given(st.lists(st.integers(min_value=1, max_value=3000), max_size=200))
def test_replay_window_accepts_each_seq_at_most_once(seqs):
    w = ReplayWindow(64)
    accepted = []
    for s in seqs:
        try:
            w.check(s)
            accepted.append(s)
        except ProtocolError:
            pass
    assert len(accepted) == len(set(accepted))
    for s in set(seqs):  # a fresh, unseen seq above the window is always accepted
        if s > max(seqs) - 64 and s not in accepted:
            raise AssertionError(s)


def test_handshake_keys_differ_per_session():
    c1, c2 = ClientHandshake(PSK), ClientHandshake(PSK)
    s = ServerHandshake(PSK)
    w1, ss1, _ = s.answer(c1.hello(), 0.0)
    w2, ss2, _ = s.answer(c2.hello(), 0.0)
    cs1 = c1.finish(w1)
    with pytest.raises(ProtocolError):
        c2.finish(w1)  # a WELCOME answers only its own HELLO
    cs2 = c2.finish(w2)
    from machaon.teleop.messages import MsgType

    body = b"x" * Command._FMT.size
    _, pkt = cs1.seal(MsgType.COMMAND, body)
    with pytest.raises(ProtocolError):
        ss2.open(pkt, MsgType.COMMAND, 0.0)
    assert ss1.open(pkt, MsgType.COMMAND, 0.0)[1] == body
    assert cs2.session_id != cs1.session_id


def test_key_files(tmp_path):
    f = tmp_path / "k"
    key = write_key(f)
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert load_key(f) == key
    with pytest.raises(KeyFileError, match="exists"):
        write_key(f)
    os.chmod(f, 0o644)
    with pytest.raises(KeyFileError, match="unsafe permissions"):
        load_key(f)
    os.chmod(f, 0o600)
    f.write_text("zz")
    with pytest.raises(KeyFileError, match="hex"):
        load_key(f)
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "missing")
