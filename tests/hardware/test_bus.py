"""The Bus driver against the servo-chain emulator on a real pty: instructions, memory rules,
group transactions, timing, retries, injected faults and a vanishing port."""

from __future__ import annotations

import time

import pytest

from machaon.hardware import protocol as p
from machaon.hardware.control_table import XM430_W350, Units, model_by_name
from machaon.hardware.dynamixel import Bus
from machaon.hardware.emulator import ChainEmulator
from tests.hardware.util import eventually

BAUD = 4_000_000


@pytest.fixture()
def chain():
    with ChainEmulator([1, 2, 3, 4], baudrate=BAUD, return_delay_us=0) as em, \
            Bus(em.port, BAUD, return_delay_s=0.0, latency_s=0.2) as bus:
        yield em, bus


def test_ping_read_write_and_units(chain) -> None:
    em, bus = chain
    info = bus.ping(2)
    assert (info.model_number, info.firmware_version) == (1020, XM430_W350.firmware_version)
    assert model_by_name("xm430-w350") is XM430_W350
    assert bus.read_int(2, 132, 4, signed=True) == 2048
    bus.write_int(2, 64, 1, 1)
    bus.write_int(2, 116, 4, 2048 + 200)
    assert eventually(lambda: abs(bus.read_int(2, 132, 4, signed=True) - 2248) < 15)  # goal reached (to friction)
    u = Units(XM430_W350)
    assert u.rad_to_ticks(u.ticks_to_rad(200)) == 200
    assert abs(u.current_to_amps(u.amps_to_current(1.0)) - 1.0) < 2.69e-3


def test_memory_rules_give_status_errors(chain) -> None:
    em, bus = chain
    with pytest.raises(p.StatusError) as e:
        bus.write(1, 0, b"\x00\x00")  # model number is read-only
    assert e.value.error & 0x7F == p.StatusErrorCode.ACCESS_ERROR
    bus.write(1, 64, b"\x01")
    with pytest.raises(p.StatusError) as e:
        bus.write(1, 11, b"\x00")  # EEPROM while torque is on
    assert e.value.error & 0x7F == p.StatusErrorCode.ACCESS_ERROR
    bus.write(1, 64, b"\x00")
    with pytest.raises(p.StatusError) as e:
        bus.write(1, 11, b"\x02")  # operating mode 2 does not exist
    assert e.value.error & 0x7F == p.StatusErrorCode.DATA_RANGE_ERROR
    bus.write_int(1, 11, 1, 0)  # current mode
    with pytest.raises(p.StatusError) as e:
        bus.write_int(1, 102, 2, 2000)  # beyond Current Limit (1193)
    assert e.value.error & 0x7F == p.StatusErrorCode.DATA_LIMIT_ERROR
    with pytest.raises(p.StatusError) as e:
        bus.write(1, 116, b"\x00\x08")  # half of a 4-byte item
    assert e.value.error & 0x7F == p.StatusErrorCode.DATA_LENGTH_ERROR
    assert em.servo(1).get("goal_current") == 0  # failed writes changed nothing


def test_indirect_reg_write_action_reboot_factory_reset_clear(chain) -> None:
    em, bus = chain
    bus.write(3, 168, (132).to_bytes(2, "little") + (133).to_bytes(2, "little"))
    assert bus.read(3, 224, 2) == bus.read(3, 132, 2)
    bus.reg_write(3, 65, b"\x01")
    assert bus.read(3, 69, 1) == b"\x01" and bus.read(3, 65, 1) == b"\x00"
    bus.action()
    assert eventually(lambda: bus.read(3, 65, 1) == b"\x01")
    em.inject_hardware_error(3, p.HardwareErrorStatus.OVERLOAD)
    assert bus.read(3, 70, 1)[0] == p.HardwareErrorStatus.OVERLOAD
    with pytest.raises(p.StatusError):  # torque cannot come on while a shutdown error is latched
        bus.write(3, 64, b"\x01")
    bus.reboot(3)

    def cleared() -> bool:
        try:
            return bus.read(3, 70, 1) == b"\x00"
        except p.CommunicationTimeout:  # still rebooting
            return False

    assert eventually(cleared)
    bus.write(3, 9, b"\x05")
    bus.factory_reset(3, 0x02)  # acknowledged after the reset
    assert bus.read(3, 9, 1) == bytes((250,))  # back to the factory return delay
    bus.write(3, 9, b"\x00")
    bus.clear_multi_turn(3)


def test_sync_and_bulk_transactions(chain) -> None:
    em, bus = chain
    ids = [1, 2, 3, 4]
    bus.sync_write(116, 4, {i: (1000 + i).to_bytes(4, "little") for i in ids})
    for fast in (False, True):
        res = bus.sync_read(ids, 116, 4, fast=fast)
        assert res.complete and res.attempts == 1
        assert {i: int.from_bytes(d, "little") for i, d in res.data.items()} == {i: 1000 + i for i in ids}
    bus.bulk_write([(1, 65, b"\x01"), (4, 65, b"\x01")])
    for fast in (False, True):
        res = bus.bulk_read([(1, 65, 1), (2, 116, 4), (4, 65, 1)], fast=fast)
        assert res.data == {1: b"\x01", 2: (1002).to_bytes(4, "little"), 4: b"\x01"}
    found = bus.broadcast_ping(max_id=10)
    assert sorted(found) == ids and all(v.model_number == 1020 for v in found.values())


def test_missing_id_dropped_and_corrupt_answers_are_retried(chain) -> None:
    em, bus = chain
    em.faults.drop_next = 1
    res = bus.sync_read([1, 2, 3, 4], 132, 4)
    assert res.complete and res.attempts == 2 and bus.health[1].retries == 1
    em.faults.corrupt_next = 1
    assert bus.ping(2).model_number == 1020  # first answer corrupt, retry succeeds
    assert bus.health[2].crc_errors == 1
    em.faults.missing_ids = {3}
    for fast in (True, False):
        res = bus.sync_read([1, 2, 3, 4], 132, 4, fast=fast)
        assert sorted(res.data) == [1, 2, 4] and res.failed == {3: "timeout"}
    with pytest.raises(p.CommunicationTimeout):
        bus.ping(3)
    assert bus.health[3].consecutive_failures >= 3


def test_an_answer_that_arrived_while_the_host_was_preempted_is_taken(chain, monkeypatch) -> None:
    """The host thread loses the CPU between its write and its read (a loaded machine) and wakes
    after its deadline: the answer that arrived meanwhile is in the port's buffer and counts (no
    timeout, no retry). A servo that stays silent still times out."""
    em, bus = chain
    send = bus._send
    answers: list[int] = []  # status packets the next transactions get; later ones (retries) get none

    def preempted_send(packet: bytes, **kw: object) -> float:
        n = answers.pop(0) if answers else 0
        before = em.stats["statuses"]
        t0 = send(packet, **kw)
        # the host wakes only once every answer is in the port's buffer, far past its deadline
        assert eventually(lambda: em.stats["statuses"] >= before + n, 10.0)
        time.sleep(0.02)
        return t0

    monkeypatch.setattr(bus, "_send", preempted_send)
    bus.latency_s = 0.0  # the deadline is the wire time alone: every read below starts after it
    answers[:] = [1]
    assert bus.ping(2).dxl_id == 2
    for fast, n in ((True, 1), (False, 4)):  # a fast read's answer is one frame
        answers[:] = [n]
        res = bus.sync_read([1, 2, 3, 4], 132, 4, fast=fast)
        assert res.complete and res.attempts == 1, res.failed
    assert all(h.retries == 0 and h.timeouts == 0 for h in bus.health.values())
    em.faults.missing_ids = {3}
    answers[:] = [3]
    res = bus.sync_read([1, 2, 3, 4], 132, 4, fast=False)
    assert sorted(res.data) == [1, 2, 4] and res.failed == {3: "timeout"}


def test_timing_follows_baud_rate_and_return_delay() -> None:
    ids = [1, 2, 3, 4, 5, 6]
    with ChainEmulator(ids, baudrate=1_000_000, return_delay_us=200) as em, \
            Bus(em.port, 1_000_000, return_delay_s=200e-6, latency_s=0.2) as bus:
        t0 = time.perf_counter()
        for _ in range(20):
            assert bus.sync_read(ids, 132, 4).complete
        per = (time.perf_counter() - t0) / 20
        req = 14 + len(ids)
        wire = (req + len(ids) * (11 + 4)) * 10 / 1e6 + len(ids) * 200e-6  # 1.46 ms
        assert per >= 0.95 * wire  # never faster than the wire allows


def test_stuck_bus_baud_mismatch_and_vanishing_port(chain) -> None:
    em, bus = chain
    em.faults.stuck = True
    with pytest.raises(p.ProtocolError):
        bus.ping(1)
    em.faults.stuck = False
    bus.set_baudrate(1_000_000)  # servos at 4 Mbaud do not understand 1 Mbaud
    with pytest.raises(p.CommunicationTimeout):
        bus.ping(1)
    bus.set_baudrate(BAUD)
    assert bus.ping(1).dxl_id == 1
    em.unplug()
    with pytest.raises(p.PortError):
        bus.ping(1)
    assert not bus.is_open
    with pytest.raises(p.PortError):
        Bus("/dev/does-not-exist", BAUD)
