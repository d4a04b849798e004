"""Conformance with the official ROBOTIS dynamixel-sdk, a client nobody here wrote.

1. The SDK pings, reads, writes, sync-reads (plain and fast), sync-writes, bulk-reads and
   bulk-writes the emulator over a real pty.
2. Our instruction packets are byte-identical to the SDK's: the SDK writes to a pty whose master
   side we read, and the bytes are compared with ``machaon.hardware.protocol``'s encoders.
"""

from __future__ import annotations

import os
import select
import tty

import pytest

from machaon.hardware import protocol as p
from machaon.hardware.emulator import ChainEmulator
from tests.hardware.util import eventually

sdk = pytest.importorskip("dynamixel_sdk")

BAUD = 4_000_000


@pytest.fixture(autouse=True)
def _patient_sdk(monkeypatch):
    # the SDK's answer deadline is 2 x LATENCY_TIMER + 2 ms (34 ms); give it more on a loaded test machine
    monkeypatch.setattr(sdk.port_handler, "LATENCY_TIMER", 100)


@pytest.fixture()
def sdk_port():
    em = ChainEmulator([1, 2, 3], baudrate=BAUD, return_delay_us=0)
    port = sdk.PortHandler(em.port)
    assert port.openPort() and port.setBaudRate(BAUD)
    yield em, port, sdk.PacketHandler(2.0)
    port.closePort()
    em.close()


def test_sdk_ping_read_write(sdk_port) -> None:
    em, port, ph = sdk_port
    model, res, err = ph.ping(port, 2)
    assert (model, res, err) == (1020, sdk.COMM_SUCCESS, 0)
    assert ph.ping(port, 9)[1] == sdk.COMM_RX_TIMEOUT
    assert ph.read2ByteTxRx(port, 1, 0) == (1020, sdk.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, 64, 1) == (sdk.COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 1, 116, 2100) == (sdk.COMM_SUCCESS, 0)
    assert ph.read4ByteTxRx(port, 1, 116) == (2100, sdk.COMM_SUCCESS, 0)
    # a write to a read-only item: the servo answers Access Error
    res, err = ph.write2ByteTxRx(port, 1, 0, 5)
    assert res == sdk.COMM_SUCCESS and err & 0x7F == p.StatusErrorCode.ACCESS_ERROR
    assert em.servo(1).get("torque_enable") == 1


def test_sdk_group_sync_and_bulk(sdk_port) -> None:
    em, port, ph = sdk_port
    gw = sdk.GroupSyncWrite(port, ph, 116, 4)
    for i, goal in ((1, 1000), (2, 2000), (3, 3000)):
        assert gw.addParam(i, list(goal.to_bytes(4, "little")))
    assert gw.txPacket() == sdk.COMM_SUCCESS
    assert eventually(lambda: [em.servo(i).get("goal_position") for i in (1, 2, 3)] == [1000, 2000, 3000])

    gr = sdk.GroupSyncRead(port, ph, 116, 4)
    for i in (1, 2, 3):
        gr.addParam(i)
    assert gr.txRxPacket() == sdk.COMM_SUCCESS
    assert [gr.getData(i, 116, 4) for i in (1, 2, 3)] == [1000, 2000, 3000]
    assert gr.fastSyncRead() == sdk.COMM_SUCCESS
    assert [gr.getData(i, 116, 4) for i in (1, 2, 3)] == [1000, 2000, 3000]

    bw = sdk.GroupBulkWrite(port, ph)
    assert bw.addParam(1, 65, 1, [1]) and bw.addParam(3, 116, 4, list((1234).to_bytes(4, "little")))
    assert bw.txPacket() == sdk.COMM_SUCCESS
    br = sdk.GroupBulkRead(port, ph)
    assert br.addParam(1, 65, 1) and br.addParam(3, 116, 4)
    assert br.txRxPacket() == sdk.COMM_SUCCESS
    assert br.getData(1, 65, 1) == 1 and br.getData(3, 116, 4) == 1234


def _capture(fn) -> bytes:
    """Bytes the SDK writes when ``fn(port, packet_handler)`` runs against a silent pty."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = sdk.PortHandler(os.ttyname(slave))
    try:
        assert port.openPort() and port.setBaudRate(BAUD)
        fn(port, sdk.PacketHandler(2.0))
        out = b""
        while select.select([master], [], [], 0.01)[0]:
            out += os.read(master, 4096)
        return out
    finally:
        port.closePort()
        os.close(master)
        os.close(slave)


def _group_sync_read(port, ph, fast: bool) -> None:
    g = sdk.GroupSyncRead(port, ph, 224, 12)
    for i in (1, 2, 3, 4, 5, 6):
        g.addParam(i)
    (g.fastSyncReadTxPacket if fast else g.txPacket)()


def _group_sync_write(port, ph) -> None:
    g = sdk.GroupSyncWrite(port, ph, 102, 2)
    for i, v in ((1, 0xFF), (2, 0xFDFF), (3, 0xFFFD)):  # values that need byte stuffing
        g.addParam(i, list(v.to_bytes(2, "little")))
    g.txPacket()


def _bulk(port, ph) -> None:
    g = sdk.GroupBulkRead(port, ph)
    g.addParam(1, 132, 4)
    g.addParam(2, 70, 1)
    g.txPacket()


def _bulk_write(port, ph) -> None:
    g = sdk.GroupBulkWrite(port, ph)
    g.addParam(1, 116, 4, [0xFF, 0xFD, 0xFF, 0x00])
    g.addParam(2, 64, 1, [1])
    g.txPacket()


CASES = [
    ("ping", lambda port, ph: ph.ping(port, 1), p.encode_instruction(1, p.Instruction.PING)),
    ("read", lambda port, ph: ph.readTx(port, 5, 132, 4), p.encode_instruction(5, 2, p.params_read(132, 4))),
    ("write", lambda port, ph: ph.writeTxOnly(port, 3, 116, 4, [0xFF, 0xFF, 0xFF, 0x00]),
     p.encode_instruction(3, 3, p.params_write(116, b"\xff\xff\xff\x00"))),
    ("reg_write", lambda port, ph: ph.regWriteTxOnly(port, 2, 104, 4, [1, 2, 3, 4]),
     p.encode_instruction(2, 4, p.params_write(104, b"\x01\x02\x03\x04"))),
    ("action", lambda port, ph: ph.action(port, 0xFE), p.encode_instruction(0xFE, p.Instruction.ACTION)),
    ("reboot", lambda port, ph: ph.reboot(port, 4), p.encode_instruction(4, p.Instruction.REBOOT)),
    ("factory_reset", lambda port, ph: ph.factoryReset(port, 4, 0x02),
     p.encode_instruction(4, p.Instruction.FACTORY_RESET, b"\x02")),
    ("clear", lambda port, ph: ph.clearMultiTurn(port, 6),
     p.encode_instruction(6, p.Instruction.CLEAR, b"\x01\x44\x58\x4c\x22")),
    ("sync_read", lambda port, ph: _group_sync_read(port, ph, False),
     p.encode_instruction(0xFE, p.Instruction.SYNC_READ, p.params_sync_read(224, 12, [1, 2, 3, 4, 5, 6]))),
    ("fast_sync_read", lambda port, ph: _group_sync_read(port, ph, True),
     p.encode_instruction(0xFE, p.Instruction.FAST_SYNC_READ, p.params_sync_read(224, 12, [1, 2, 3, 4, 5, 6]))),
    ("sync_write", _group_sync_write,
     p.encode_instruction(0xFE, p.Instruction.SYNC_WRITE, p.params_sync_write(
         102, 2, {1: b"\xff\x00", 2: b"\xff\xfd", 3: b"\xfd\xff"}))),
    ("bulk_read", _bulk, p.encode_instruction(0xFE, p.Instruction.BULK_READ,
                                              p.params_bulk_read([(1, 132, 4), (2, 70, 1)]))),
    ("bulk_write", _bulk_write, p.encode_instruction(0xFE, p.Instruction.BULK_WRITE, p.params_bulk_write(
        [(1, 116, b"\xff\xfd\xff\x00"), (2, 64, b"\x01")]))),
]


@pytest.mark.parametrize(("name", "fn", "ours"), CASES, ids=[c[0] for c in CASES])
def test_instruction_bytes_identical_to_sdk(name: str, fn, ours: bytes) -> None:
    assert _capture(fn) == ours


def test_byte_stuffing_matches_the_sdk_stuffer() -> None:
    """With ``FF FF FD`` in the parameters our packet is what the SDK's own ``addStuffing`` and
    ``updateCRC`` produce (and what the e-Manual specifies). The SDK's Python ``txPacket`` discards
    ``addStuffing``'s result when the packet grows, so on the wire it sends the unstuffed packet
    (a known SDK defect); this test pins both facts so a fixed SDK would be noticed."""
    ph = sdk.PacketHandler(2.0)
    params = [116, 0, 0xFF, 0xFF, 0xFD, 0x00]
    tx = [0xFF, 0xFF, 0xFD, 0x00, 3, len(params) + 3, 0, 0x03] + params + [0, 0]
    stuffed = ph.addStuffing(list(tx))
    n = stuffed[5] | stuffed[6] << 8
    crc = ph.updateCRC(0, stuffed, n + 5)
    sdk_stuffed = bytes(stuffed[: n + 5]) + bytes((crc & 0xFF, crc >> 8))
    ours = p.encode_instruction(3, p.Instruction.WRITE, bytes(params))
    assert ours == sdk_stuffed
    on_wire = _capture(lambda port, h: h.writeTxOnly(port, 3, 116, 4, [0xFF, 0xFF, 0xFD, 0x00]))
    assert on_wire != ours and p.unstuff(ours[7:-2]) == on_wire[7:-2]
