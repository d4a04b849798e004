"""The servo-chain emulator as a device: raw bytes on its pty, motor and thermal models, robustness."""

from __future__ import annotations

import os
import random
import select
import time

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.hardware import protocol as p
from machaon.hardware.control_table import MODE_CURRENT, XM430_W350
from machaon.hardware.emulator import ChainEmulator
from machaon.hardware.plant import RigidLoadPlant
from machaon.hardware.servo_model import EmulatedServo
from tests.hardware.util import eventually

BAUD = 4_000_000


def _exchange(ser: serial.Serial, data: bytes, wait: float = 0.1, expect: int | None = None) -> list[p.Packet]:
    """Send ``data``; collect status packets for ``wait`` s, or until ``expect`` arrived (up to 2 s)."""
    ser.reset_input_buffer()
    ser.write(data)
    parser = p.StreamParser()
    got: list[p.Packet] = []
    deadline = time.monotonic() + (wait if expect is None else 2.0)
    while time.monotonic() < deadline and (expect is None or len(got) < expect):
        if select.select([ser.fileno()], [], [], max(0.0, deadline - time.monotonic()))[0]:
            parser.feed(os.read(ser.fileno(), 4096))
            got += parser.packets()
    return got


@pytest.fixture(scope="module")
def raw():
    with ChainEmulator([1, 2], baudrate=BAUD, return_delay_us=0) as em, serial.Serial(em.port, BAUD, timeout=0) as ser:
        yield em, ser


def test_garbage_then_ping_is_answered_and_crc_errors_reported(raw) -> None:
    em, ser = raw
    rng = random.Random(3)
    garbage = bytes(rng.randrange(256) for _ in range(300))
    got = _exchange(ser, garbage + p.encode_instruction(2, p.Instruction.PING), wait=0.3)
    assert any(x.dxl_id == 2 and x.error & 0x7F == 0 and len(x.params) == 3 for x in got)
    bad = bytearray(p.encode_instruction(1, p.Instruction.READ, p.params_read(132, 4)))
    bad[-1] ^= 0xFF
    got = _exchange(ser, bytes(bad), wait=0.3)
    assert [(x.dxl_id, x.error & 0x7F) for x in got] == [(1, p.StatusErrorCode.CRC_ERROR)]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 0xFE), st.integers(0, 0xFF), st.binary(max_size=24))
def test_any_instruction_gets_a_well_formed_answer_or_none(raw, dxl_id: int, inst: int, params: bytes) -> None:
    em, ser = raw
    if inst == 0x55 or inst in (p.Instruction.REBOOT, p.Instruction.FACTORY_RESET):
        return
    if inst == p.Instruction.WRITE or inst == p.Instruction.REG_WRITE or inst in (0x83, 0x93):
        params = b"\x41\x00" + params[:1]  # keep random writes away from ids, baud rates and modes
    got = _exchange(ser, p.encode_instruction(dxl_id, inst, params), wait=0.02)
    assert all(x.is_status and x.dxl_id in (1, 2, p.BROADCAST_ID) for x in got)
    for _ in range(3):  # a late answer to the random instruction may come first on a loaded machine
        alive = _exchange(ser, p.encode_instruction(1, p.Instruction.PING), expect=1)
        if any(x.dxl_id == 1 and len(x.params) == 3 for x in alive):
            break
    else:
        raise AssertionError("the emulator stopped answering")


def test_status_return_level_and_reboot_downtime() -> None:
    with ChainEmulator([1], baudrate=BAUD, reboot_time_s=0.6) as em, serial.Serial(em.port, BAUD, timeout=0) as ser:
        assert _exchange(ser, p.encode_instruction(1, p.Instruction.WRITE, p.params_write(68, b"\x01")), expect=1)
        assert em.servo(1).status_return_level == 1
        assert not _exchange(ser, p.encode_instruction(1, p.Instruction.WRITE, p.params_write(65, b"\x01")))
        read = p.encode_instruction(1, p.Instruction.READ, p.params_read(65, 1))
        assert _exchange(ser, read, expect=1)[0].params == b"\x01"
        assert _exchange(ser, p.encode_instruction(1, p.Instruction.REBOOT)) == []  # level 1: no status for REBOOT
        assert _exchange(ser, p.encode_instruction(1, p.Instruction.PING)) == []  # rebooting
        time.sleep(0.6)
        assert _exchange(ser, p.encode_instruction(1, p.Instruction.PING), expect=1)


def test_motor_model_matches_datasheet_stall_and_no_load() -> None:
    s = EmulatedServo(XM430_W350, 1)
    s.write(11, bytes((16,)))  # PWM mode
    s.write(64, b"\x01")
    s.write(100, (885).to_bytes(2, "little"))
    for _ in range(20):  # let the current settle (CURRENT_TAU_S)
        tau_stall = s.step(0.0, 0.0, 1e-3)
    # full PWM at stall: current limit (1193 x 2.69 mA = 3.2 A) above the stall current -> stall torque
    assert abs(tau_stall - XM430_W350.stall_torque_nm) < 0.05
    w = XM430_W350.no_load_speed_rad_s
    for _ in range(20):
        tau_free = s.step(0.0, w, 1e-3)
    assert abs(tau_free + XM430_W350.viscous_friction * w + XM430_W350.coulomb_friction) < 0.02


def test_overheating_shuts_torque_off_until_reboot() -> None:
    with ChainEmulator([1], baudrate=BAUD) as em:
        s = em.servo(1)
        with em._lock:
            s.write(64, b"\x01")
            s.temperature_c = 95.0
        assert eventually(lambda: bool(s.hardware_error & p.HardwareErrorStatus.OVERHEATING) and not s.torque_on)


def test_current_mode_accelerates_the_load_as_physics_says() -> None:
    J = XM430_W350.rotor_inertia_out + 0.002
    plant = RigidLoadPlant([J])
    with ChainEmulator([1], baudrate=BAUD, plant=plant, realtime=False) as em:
        s = em.servo(1)
        with em._lock:
            s.write(11, bytes((MODE_CURRENT,)))
            s.write(64, b"\x01")
            s.write(102, (100).to_bytes(2, "little"))  # 0.269 A
        time.sleep(0.1)
        with em._lock:
            q, dq = plant.state()
            i = s.current_a
        assert abs(i - 100 * 2.69e-3) < 1e-9
        # net torque kt i minus friction, integrated: dq is bounded by the frictionless value
        tau = XM430_W350.kt_nm_per_a * i
        assert 0 < dq[0] < tau / J * 0.25 and q[0] > 0


def test_emulator_rejects_bad_setup() -> None:
    with pytest.raises(ValueError):
        ChainEmulator([1, 1])
    with pytest.raises(ValueError):
        ChainEmulator([1], baudrate=12345)
    with pytest.raises(ValueError):
        ChainEmulator([1, 2], plant=RigidLoadPlant([1.0]))
    with pytest.raises(ValueError):
        RigidLoadPlant([1.0]).step(np.array([np.nan]), 1e-3)


def test_unplugged_pty_reads_fail_like_a_vanished_adapter() -> None:
    with ChainEmulator([1], baudrate=BAUD) as em:
        ser = serial.Serial(em.port, BAUD, timeout=0.05)
        em.unplug()
        with pytest.raises((serial.SerialException, OSError)):
            ser.write(p.encode_instruction(1, p.Instruction.PING))
            ser.read(20)
        ser.close()


def test_position_profile_limits_velocity_and_reaches_goal() -> None:
    s = EmulatedServo(XM430_W350, 1)
    s.write(112, (50).to_bytes(4, "little"))  # 50 x 0.229 rpm
    s.write(108, (20).to_bytes(4, "little"))
    s.write(64, b"\x01")
    s.write(116, (2048 + 1024).to_bytes(4, "little"))  # a quarter turn
    q = dq = v_peak = 0.0
    J = XM430_W350.rotor_inertia_out + 0.002
    for _ in range(3000):
        tau = s.step(q, dq, 1e-3)
        dq += 1e-3 * tau / J
        q += 1e-3 * dq
        v_peak = max(v_peak, dq)
    v_profile = 50 * 0.229 * 2 * np.pi / 60
    assert abs(v_peak - v_profile) < 0.05 * v_profile
    assert abs(q - np.pi / 2) < 2 * 2 * np.pi / 4096
    _, traj = s.read(140, 4)
    assert int.from_bytes(traj, "little") == 2048 + 1024
