"""ActuatorBackend end to end on the emulator's pty: config, closed loop, faults, safe state, reconnect."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from machaon.control.impedance import JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.hardware.backend import ActuatorBackend, ActuatorConfig, JointConfig
from machaon.hardware.control_table import MODE_CURRENT, MODE_POSITION
from machaon.hardware.emulator import ChainEmulator
from machaon.hardware.protocol import HardwareErrorStatus, ProtocolError
from machaon.robot.backend import Backend
from machaon.robot.loop import ControlLoop
from machaon.types import JointCommand
from tests.hardware.util import eventually

BAUD = 4_000_000
IDS = [1, 2, 3]


def _config(port: str, **kw) -> ActuatorConfig:
    joints = (JointConfig("a", 1), JointConfig("b", 2, direction=-1, zero_ticks=2048 + 100), JointConfig("c", 3))
    kw.setdefault("baudrate", BAUD)
    # a generous latency margin: the machine running the tests may be loaded (timeouts are tested
    # through injected faults, not through scheduling luck)
    return ActuatorConfig(port=port, joints=joints, latency_s=0.1, **kw)


@pytest.fixture()
def em(tmp_path: Path):
    with ChainEmulator(IDS, baudrate=BAUD, return_delay_us=0, link=str(tmp_path / "ttyDXL")) as e:
        yield e


def test_config_from_toml_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "arm.toml"
    path.write_text(
        '[bus]\nport = "/dev/ttyUSB0"\nbaudrate = 4000000\nlatency_ms = 1.5\n\n'
        '[control]\nmode = "position"\nsafe_state = "torque_off"\n\n'
        '[[joints]]\nname = "j1"\nid = 1\nmodel = "XM540-W270"\ndirection = -1\nzero_ticks = 1000\n'
    )
    cfg = ActuatorConfig.from_toml(path, port="/dev/pts/99")
    assert cfg.port == "/dev/pts/99" and cfg.mode == "position" and cfg.safe_state == "torque_off"
    assert cfg.joints[0] == JointConfig("j1", 1, "XM540-W270", -1, 1000)
    assert abs(cfg.latency_s - 0.0015) < 1e-12
    with pytest.raises(ValueError, match="mode"):
        ActuatorConfig(port="x", joints=cfg.joints, mode="torque")
    with pytest.raises(ValueError, match="current"):  # XL430 has no current control
        ActuatorConfig(port="x", joints=(JointConfig("j", 1, "XL430-W250"),), mode="current")
    with pytest.raises(ValueError, match="distinct"):
        ActuatorConfig(port="x", joints=(JointConfig("a", 1), JointConfig("b", 1)))


def test_shipped_template_config_loads() -> None:
    import machaon.hardware

    path = Path(machaon.hardware.__file__).parent / "configs" / "xm430_chain.toml"
    cfg = ActuatorConfig.from_toml(path, port="/dev/null")
    assert len(cfg.joints) == 6 and cfg.joints[1].direction == -1 and cfg.current_limit_a == 1.5
    assert cfg.bus_watchdog_ms == 100


def test_current_based_position_mode_bounds_current(em) -> None:
    with ActuatorBackend(_config(em.port, mode="current_position", current_limit_a=0.2)) as be:
        assert em.servo(1).goal_current == int(0.2 / 2.69e-3)
        for _ in range(100):
            be.read()
            be.write(JointCommand.position(np.array([0.4, 0.4, 0.4])))
        s = be.read()
        assert np.all(np.abs(s.tau) <= 0.2 * 4.1 / 2.3 + 1e-6) and np.all(s.q[[0, 2]] > 0.0)


def test_missing_servo_at_start_is_named(em) -> None:
    em.faults.missing_ids = {2}
    with pytest.raises(ProtocolError, match=r"\[2\]"):
        ActuatorBackend(_config(em.port))


def test_torque_mode_read_write_direction_and_zero(em) -> None:
    with ActuatorBackend(_config(em.port)) as be:
        assert isinstance(be, Backend) and be.dof == 3 and be.joint_names == ("a", "b", "c")
        s = be.read()
        assert s.ok and s.faults == ()
        np.testing.assert_allclose(s.q, [0.0, 100 * 2 * np.pi / 4096, 0.0], atol=1e-9)
        assert [em.servo(i).mode for i in IDS] == [MODE_CURRENT] * 3
        be.write(JointCommand.torque([0.5, 0.5, 0.0]))
        # joint b is mounted reversed: positive joint torque is negative servo current
        assert eventually(lambda: em.servo(1).get("goal_current") > 0 > em.servo(2).get("goal_current"))
        with pytest.raises(ValueError):
            be.write(JointCommand.torque([np.nan, 0.0, 0.0]))
        with pytest.raises(ValueError):
            be.write(JointCommand.torque([0.0, 0.0]))


def test_position_mode_tracks_goal(em) -> None:
    with ActuatorBackend(_config(em.port, mode="position")) as be:
        target = np.array([0.2, -0.1, 0.05])
        for _ in range(300):
            assert be.read().ok
            be.write(JointCommand.position(target))
            time.sleep(0.002)
        np.testing.assert_allclose(be.read().q, target, atol=0.02)


def test_closed_loop_controller_then_lost_servo_gives_protective_stop(em) -> None:
    cfg = _config(em.port)
    with ActuatorBackend(cfg) as be:
        ctrl = JointImpedance(3, stiffness=6.0, damping=0.4)
        ctrl.set_target(np.array([0.3, -0.2, 0.1]))
        sup = Supervisor(SafetyConfig(target_timeout_s=None, tool_speed_max=None, period_max_s=0.2))
        loop = ControlLoop(be, ctrl, sup, rate_hz=400)
        loop.run_for(1.2)
        assert loop.error is None and sup.state is SupervisorState.RUN
        np.testing.assert_allclose(loop.last_state.q, [0.3, -0.2, 0.1], atol=0.03)
        em.faults.missing_ids = {2}
        loop.run_for(6 / 400)  # six cycles (each now waits out its deadline for servo 2)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        assert be.latched_fault is not None and be.latched_fault.code == "comm_lost"
        # safe state "hold": the servos that still hear the bus hold their position in position mode
        assert eventually(lambda: all(em.servo(i).mode == MODE_POSITION and em.servo(i).torque_on for i in (1, 3)))
        q_hold = em.plant_state()[0].copy()
        time.sleep(0.1)
        np.testing.assert_allclose(em.plant_state()[0][[0, 2]], q_hold[[0, 2]], atol=0.01)
        # communication back: reset the fault, the servos are set up again in current mode
        em.faults.missing_ids = set()
        assert be.reset_faults() and be.latched_fault is None
        assert em.servo(2).mode == MODE_CURRENT and be.read().ok


def test_hardware_error_reported_with_servo_and_name(em) -> None:
    with ActuatorBackend(_config(em.port)) as be:
        em.inject_hardware_error(3, HardwareErrorStatus.OVERHEATING)
        s = be.read()
        f = [x for x in s.faults if x.source == "dxl:3"]
        assert f and f[0].code == "overheating" and f[0].joint == 2 and f[0].persistent
        assert not em.servo(3).torque_on  # the servo shut itself down
        em.inject_hardware_error(1, HardwareErrorStatus.INPUT_VOLTAGE)  # not in Shutdown: alert only
        f1 = [x for x in be.read().faults if x.source == "dxl:1"]
        assert f1[0].code == "input_voltage" and not f1[0].persistent
        be.reboot([3])
        assert not [x for x in be.read().faults if x.source == "dxl:3"]


def test_corrupt_and_dropped_answers_are_absorbed_within_the_cycle(em) -> None:
    with ActuatorBackend(_config(em.port, retries=2)) as be:
        em.faults.corrupt_next = 1
        assert be.read().ok
        em.faults.drop_next = 2
        assert be.read().ok
        assert be.bus.health[1].retries + be.bus.health[2].retries + be.bus.health[3].retries >= 2


def test_port_vanishing_then_reconnect(em) -> None:
    cfg = _config(em.link)  # open through the symlink, as one would open /dev/ttyUSB0
    with ActuatorBackend(cfg) as be:
        assert be.read().ok
        em.unplug()
        s = be.read()
        assert not s.ok and s.faults[0].code == "port_lost" and s.faults[0].persistent
        be.write(JointCommand.torque(np.zeros(3)))  # no exception
        assert not be.reconnect()  # still unplugged
        em.replug()
        assert be.reconnect()
        s = be.read()
        assert s.ok and s.faults == ()


def test_wrong_command_mode_latches_safe_state(em) -> None:
    with ActuatorBackend(_config(em.port, safe_state="torque_off")) as be:
        be.write(JointCommand.position(np.zeros(3)))
        s = be.read()
        assert s.faults[0].code == "mode_mismatch" and s.faults[0].persistent
        assert eventually(lambda: not any(em.servo(i).torque_on for i in IDS))


def test_bus_watchdog_stops_servos_when_the_host_falls_silent(em) -> None:
    with ActuatorBackend(_config(em.link, bus_watchdog_ms=60)) as be:
        assert be.read().ok
        be.write(JointCommand.torque([0.3, 0.3, 0.3]))
        assert eventually(lambda: em.servo(1).goal_current != 0)
        em.unplug()  # the host can no longer send anything, not even the safe state
        assert eventually(lambda: all(em.servo(i).goal_current == 0 and em.servo(i).get("bus_watchdog") == 0xFF
                                      for i in IDS))
        em.replug()
        assert be.reconnect() and be.read().ok  # reconnecting clears the watchdog error
        assert em.servo(1).get("bus_watchdog") == 3


def test_velocity_mode_tracks_speed(em) -> None:
    target = np.array([1.0, -1.0, 0.5])
    with ActuatorBackend(_config(em.port, mode="velocity")) as be:
        # the servos' speed loops settle in ~0.3 s of emulated time; a loaded machine stretches that
        # in wall time, so command until settled (or 5 s), then check
        deadline = time.monotonic() + 5.0
        for _ in range(150):
            be.read()
            be.write(JointCommand.velocity(target))
            time.sleep(0.002)
        while time.monotonic() < deadline and not np.allclose(be.read().dq, target, atol=0.1):
            be.write(JointCommand.velocity(target))
            time.sleep(0.002)
        s = be.read()
        np.testing.assert_allclose(s.dq, target, atol=0.1)
        be.torque(False)
        assert not any(em.servo(i).torque_on for i in IDS)


def test_operator_reset_request_clears_a_tripped_watchdog_on_the_next_read_only_once_servos_answer(em, caplog) -> None:
    with ActuatorBackend(_config(em.port, bus_watchdog_ms=60)) as be:
        assert be.read().ok
        be.write(JointCommand.torque([0.2, 0.2, 0.2]))
        # a stalled host: nothing reaches the servos for longer than their Bus Watchdog
        assert eventually(lambda: all(em.servo(i).get("bus_watchdog") == 0xFF for i in IDS))
        s = be.read()
        assert be.latched_fault is not None and be.latched_fault.code == "bus_watchdog"
        assert s.faults[0].persistent
        be.write(JointCommand.torque([0.2, 0.2, 0.2]))  # ignored while latched
        assert be.read().faults[0].code == "bus_watchdog"  # no request: stays latched
        # a silent servo keeps the latch through a reset request, and the log says why
        em.faults.missing_ids = {3}
        be.request_fault_reset()
        be.read()
        assert be.latched_fault is not None and "operator reset refused" in caplog.text
        # everyone answers again: the request served by the next read sets the servos up afresh
        em.faults.missing_ids = set()
        be.request_fault_reset()
        s = be.read()
        assert be.latched_fault is None and s.ok and not s.faults
        assert all(em.servo(i).get("bus_watchdog") == 3 and em.servo(i).torque_on for i in IDS)
        assert "latched fault cleared (bus_watchdog" in caplog.text
