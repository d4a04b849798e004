"""Protocol 2.0 codec: known vectors, round trips, and a fuzzed stream parser."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.hardware import protocol as p

SETTINGS = settings(max_examples=60, deadline=None)


def test_instruction_packets_match_e_manual_examples() -> None:
    # e-Manual Protocol 2.0 examples for ID 1: PING, READ Present Position, WRITE Goal Position 512
    assert p.encode_instruction(1, p.Instruction.PING) == bytes.fromhex("fffffd0001030001194e")
    assert p.encode_instruction(1, p.Instruction.READ, p.params_read(132, 4)) == bytes.fromhex(
        "fffffd0001070002840004001d15")
    assert p.encode_instruction(1, p.Instruction.WRITE, p.params_write(116, bytes.fromhex("00020000"))) == \
        bytes.fromhex("fffffd0001090003740000020000ca89")


def test_status_packet_of_ping_example() -> None:
    # e-Manual: status of a ping from an XM430-W210 (model 1030, firmware 38) with ID 1
    raw = bytes.fromhex("fffffd000107005500060426655d")
    pkt = p.decode_packet(raw)
    assert (pkt.dxl_id, pkt.instruction, pkt.error, pkt.params) == (1, 0x55, 0, bytes.fromhex("060426"))
    assert p.encode_status(1, 0, bytes.fromhex("060426")) == raw


def test_crc_compiled_matches_python() -> None:
    rng = random.Random(1)
    for n in (0, 1, 7, 64, 300):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert p.crc16(data) == p.crc16_py(data)
        assert p.crc16(data, 0x1234) == p.crc16_py(data, 0x1234)
    assert p.CRC_TABLE[1] == 0x8005


def test_byte_stuffing_and_length() -> None:
    params = b"\x74\x00\xff\xff\xfd\x10"
    raw = p.encode_instruction(3, p.Instruction.WRITE, params)
    assert b"\xff\xff\xfd\xfd" in raw
    assert raw[5] | raw[6] << 8 == 1 + len(params) + 1 + 2  # instruction + stuffed params + CRC
    assert p.decode_packet(raw).params == params


def test_hardware_error_and_status_names() -> None:
    assert p.hardware_error_names(0x24) == ("overheating", "overload")
    assert p.status_error_name(0x80 | 0x07) == "access_error"
    assert p.status_error_name(0x7E).startswith("unknown")


@SETTINGS
@given(st.integers(0, 0xFE), st.sampled_from(list(p.Instruction)), st.binary(max_size=80))
def test_instruction_round_trip(dxl_id: int, inst: p.Instruction, params: bytes) -> None:
    if inst == p.Instruction.STATUS:
        with pytest.raises(ValueError):
            p.encode_instruction(dxl_id, inst, params)
        return
    pkt = p.decode_packet(p.encode_instruction(dxl_id, inst, params))
    assert (pkt.dxl_id, pkt.instruction, pkt.params) == (dxl_id, int(inst), params)


@SETTINGS
@given(st.integers(0, 252), st.integers(0, 255), st.binary(max_size=80))
def test_status_round_trip(dxl_id: int, error: int, params: bytes) -> None:
    pkt = p.decode_packet(p.encode_status(dxl_id, error, params))
    assert (pkt.dxl_id, pkt.is_status, pkt.error, pkt.params) == (dxl_id, True, error, params)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 252), st.integers(0, 255), st.binary(min_size=0, max_size=12)),
                min_size=1, max_size=6))
def test_fast_status_round_trip(blocks: list[tuple[int, int, bytes]]) -> None:
    frame = b"".join(p.encode_fast_status(blocks))
    assert p.decode_packet(frame, stuffed=False).dxl_id == p.BROADCAST_ID
    out = p.decode_fast_status(frame, [len(d) for _, _, d in blocks])
    assert out == [(i, e, d) for i, e, d in blocks]
    bad = bytearray(frame)
    bad[8] ^= 0x01  # first block's error byte
    with pytest.raises(p.ProtocolError):
        p.decode_fast_status(bytes(bad), [len(d) for _, _, d in blocks])


def _drain(parser: p.StreamParser) -> list[p.Packet]:
    out = parser.packets()
    for _ in range(parser.pending + 1):  # the bus goes quiet: give up partial frames
        parser.expire()
        out += parser.packets()
    return out


@SETTINGS
@given(st.binary(max_size=200), st.integers(0, 252), st.binary(max_size=40), st.integers(1, 17))
def test_parser_finds_valid_frame_after_garbage(garbage: bytes, dxl_id: int, params: bytes, chunk: int) -> None:
    frame = p.encode_status(dxl_id, 0, params)
    stream = garbage + frame + garbage[:5] + frame
    parser = p.StreamParser()
    for k in range(0, len(stream), chunk):  # split frames: fed in small pieces
        parser.feed(stream[k : k + chunk])
    got = [(x.dxl_id, x.params) for x in _drain(parser) if x.is_status]
    assert got.count((dxl_id, params)) >= 2


@SETTINGS
@given(st.binary(max_size=300))
def test_parser_never_raises_on_random_bytes(data: bytes) -> None:
    parser = p.StreamParser()
    parser.feed(data)
    _drain(parser)
    assert parser.pending == 0


@SETTINGS
@given(st.binary(max_size=40), st.integers(0, 10_000), st.integers(0, 10_000))
def test_bit_flips_and_truncations_are_rejected(params: bytes, flip: int, cut: int) -> None:
    frame = p.encode_instruction(7, p.Instruction.WRITE, b"\x40\x00" + params)
    bad = bytearray(frame)
    bad[flip % len(bad)] ^= 1 << (flip % 8)
    try:
        pkt = p.decode_packet(bytes(bad))
    except p.FrameError:
        pkt = None
    # a single bit flip is always detected by CRC-16 (or breaks the framing)
    assert pkt is None
    with pytest.raises(p.FrameError):
        p.decode_packet(frame[: cut % len(frame)])
    parser = p.StreamParser()
    parser.feed(bytes(bad) + frame)
    good = [x for x in _drain(parser) if x.instruction == p.Instruction.WRITE]
    assert [x.params for x in good] == [b"\x40\x00" + params]


def test_parser_rejects_oversized_length_and_recovers() -> None:
    frame = p.encode_status(2, 0, b"\x01\x02")
    parser = p.StreamParser()
    parser.feed(b"\xff\xff\xfd\x00\x01\xff\xff" + frame)  # claims 65535 bytes
    assert [x.params for x in parser.packets()] == [b"\x01\x02"]
    assert parser.stats.bad_frames >= 1


def test_param_builders() -> None:
    assert p.params_sync_read(132, 4, [1, 2]) == bytes((132, 0, 4, 0, 1, 2))
    assert p.params_sync_write(116, 4, {1: b"\x00\x08\x00\x00"}) == bytes((116, 0, 4, 0, 1, 0, 8, 0, 0))
    with pytest.raises(ValueError):
        p.params_sync_write(116, 4, {1: b"\x00"})
    assert p.params_bulk_read([(1, 132, 4)]) == bytes((1, 132, 0, 4, 0))
    assert p.params_bulk_write([(1, 64, b"\x01")]) == bytes((1, 64, 0, 1, 0, 1))
    with pytest.raises(ValueError):
        p.encode_instruction(300, p.Instruction.PING)


@SETTINGS
@given(st.binary(max_size=64), st.booleans())
def test_decode_packet_raises_only_frame_errors(data: bytes, with_header: bool) -> None:
    raw = (p.HEADER + data) if with_header else data
    for candidate in (raw, raw[:-2] + bytes((p.crc16(raw[:-2]) & 0xFF, p.crc16(raw[:-2]) >> 8))):
        try:
            pkt = p.decode_packet(candidate)
        except p.FrameError:
            continue
        assert isinstance(pkt, p.Packet)
