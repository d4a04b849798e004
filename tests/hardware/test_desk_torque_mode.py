"""The desk arm in torque mode end to end: Cartesian impedance with gravity compensation in current
mode, over one bus at 4 Mbaud, through a real pseudo-terminal, to six emulated Dynamixel servos
(three XM540-W270, three XM430-W350) that drive the PyBullet desk arm; and what the arm does
when a servo or the bus goes away, or a servo runs hot or draws too much current.

The friction compensated here is the emulator's configured gear friction: what the bench's
identification recovers (within 10 %, ``test_identify.py``)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from machaon.cli.hw import robot_emulator
from machaon.control import CartesianGains, CartesianImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.hardware.backend import ActuatorBackend, ActuatorConfig
from machaon.hardware.control_table import MODE_CURRENT, MODE_POSITION
from machaon.hardware.protocol import ProtocolError
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import load_description
from machaon.robot.loop import ControlLoop
from tests.hardware.util import eventually

BAUD = 4_000_000
RATE_HZ = 250.0


@pytest.fixture
def rig():
    """(emulator, PyBullet arm, config with the emulator's friction as identified, description)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-4)  # the emulator thread shares this process's GIL with the loop
    em, sim = robot_emulator("desk", sim=True, baudrate=BAUD)
    cfg = ActuatorConfig.from_robot("desk", port=em.port)
    joints = tuple(dataclasses.replace(j, coulomb_nm=s.coulomb_friction, viscous_nms_rad=s.viscous_friction)
                   for j, s in zip(cfg.joints, em.servos, strict=True))
    # a longer reply deadline, more lost cycles and a slower watchdog: a loaded test machine (a stalled
    # loop thread), not a real bus, is the risk here
    cfg = dataclasses.replace(cfg, joints=joints, latency_s=0.02, retries=2, lost_cycles=5, bus_watchdog_ms=500)
    try:
        yield em, sim, cfg, load_description("desk")
    finally:
        em.close()
        sim.close()
        sys.setswitchinterval(old)


def _stack(desc, be):
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    dyn = Dynamics(chain, armature=desc.armature)
    K = np.asarray(desc.cartesian_stiffness)
    ctrl = CartesianImpedance(chain, CartesianGains(K, desc.cartesian_damping_ratio), dynamics=dyn,
                              tau_max=desc.effort_limit)
    sup = Supervisor(SafetyConfig.from_chain(chain, **desc.safety_kwargs(), target_timeout_s=None, period_max_s=0.3,
                                             fault_cycles=5, dq_max=np.asarray(desc.velocity_limit)),
                     chain=chain, dynamics=dyn)
    return chain, ctrl, sup, ControlLoop(be, ctrl, sup, rate_hz=RATE_HZ)


def _tool_position(em, sim) -> np.ndarray:
    """Where the PyBullet arm's flange really is (base frame, m), not what the servos report."""
    with em._lock:
        return sim.T_base_tcp()[:3, 3].copy()


def _wait_sim(em, sim, seconds: float) -> None:
    """Wait until the emulated arm has lived ``seconds`` more (it runs behind the wall clock when the
    machine is loaded)."""
    with em._lock:
        t0 = sim.t
    assert eventually(lambda: sim.t >= t0 + seconds, 20 * seconds)


def _settled_position(em, sim, loop, seconds=0.5) -> np.ndarray:
    ps = []
    for _ in range(int(seconds / 0.025)):
        loop.run_for(0.025)
        ps.append(_tool_position(em, sim))
    return np.mean(ps, axis=0)


def test_cartesian_impedance_in_current_mode_holds_against_gravity_and_complies(rig):
    em, sim, cfg, desc = rig
    with ActuatorBackend(cfg) as be:
        # start hold: the servos hold position (position mode) until the first torque command
        assert all(em.servo(i).mode == MODE_POSITION and em.servo(i).torque_on for i in range(1, 7))
        chain, ctrl, sup, loop = _stack(desc, be)
        T0 = chain.fk(be.read().q)
        np.testing.assert_allclose(T0[:3, 3], _tool_position(em, sim), atol=2e-3)  # servos report the arm
        target = T0.copy()
        target[:3, 3] += [0.01, 0.0, 0.01]  # a pose 14 mm away, held against gravity
        ctrl.set_target(target)
        loop.run_for(1.5)
        assert loop.error is None and sup.state is SupervisorState.RUN, sup.last_fault
        assert all(em.servo(i).mode == MODE_CURRENT for i in range(1, 7))  # torque mode on the bus
        p_hold = _settled_position(em, sim, loop)
        hold_err = np.linalg.norm(p_hold - target[:3, 3])
        assert hold_err < 2e-3, p_hold - target[:3, 3]
        # the wrist and shoulder carry their gravity load through the servos' current
        assert abs(be.current_a[1]) > 0.1 and np.all(np.abs(be.current_a) <= be._i_max + 1e-9)

        # a 5 N push down on the flange: the tool gives way by F / k
        force = np.array([0.0, 0.0, -5.0])
        with em._lock:
            sim.set_external_force(sim.tcp_link, force)
        loop.run_for(1.5)
        moved = _settled_position(em, sim, loop) - p_hold
        k = np.asarray(desc.cartesian_stiffness)[:3]
        expected = force / k  # 12.5 mm along -z at 400 N/m
        assert abs(moved[2] - expected[2]) <= 0.2 * abs(expected[2]), (moved, expected)
        assert np.linalg.norm(moved[:2]) < 2e-3, moved
        assert sup.state is SupervisorState.RUN
        stats = loop.stats()
        print(f"\nhold error {hold_err * 1e3:.2f} mm; 5 N push: {moved[2] * 1e3:.2f} mm (F/k {expected[2] * 1e3:.2f});"
              f" {stats.cycles} cycles at {RATE_HZ:.0f} Hz, {stats.overruns} overruns")


def test_lost_servo_gives_protective_stop_and_the_others_hold(rig):
    em, sim, cfg, desc = rig
    with ActuatorBackend(cfg) as be:
        chain, ctrl, sup, loop = _stack(desc, be)
        loop.run_for(0.5)
        assert sup.state is SupervisorState.RUN
        p_before = _tool_position(em, sim)
        em.faults.missing_ids = {6}  # the wrist-roll servo falls silent (no gravity load on it)
        loop.run_for(0.2)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        f = be.latched_fault
        assert f is not None and f.code == "comm_lost" and "[6]" in f.message and "hold" in f.message
        # the servos that still hear the bus hold their positions in position mode
        assert eventually(lambda: all(em.servo(i).mode == MODE_POSITION and em.servo(i).torque_on for i in range(1, 6)))
        _wait_sim(em, sim, 0.4)  # the backend is latched: the servos hold by themselves, no loop needed
        p1 = _tool_position(em, sim)
        _wait_sim(em, sim, 0.4)
        # the arm stays up: it sinks into the position loops until their error carries the gravity
        # load (the factory gains are P only: 10-20 ticks at the shoulder, 5-20 mm at the flange),
        # then stands still
        assert np.linalg.norm(p1 - p_before) < 30e-3 and np.linalg.norm(_tool_position(em, sim) - p1) < 0.5e-3


def test_lost_bus_gives_protective_stop_and_servo_watchdogs_cut_current(rig):
    em, sim, cfg, desc = rig
    with ActuatorBackend(cfg) as be:
        chain, ctrl, sup, loop = _stack(desc, be)
        loop.run_for(0.3)
        em.unplug()
        loop.run_for(0.1)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        assert be.latched_fault.code == "port_lost" and em.port in be.latched_fault.message
        # nothing reaches the servos any more; their Bus Watchdog (100 ms) stops them by itself
        assert eventually(lambda: all(em.servo(i).get("bus_watchdog") == 0xFF and em.servo(i).goal_current == 0
                                      for i in range(1, 7)), 2.0)


def test_stalled_host_is_caught_by_the_servo_watchdog_and_reported(rig):
    em, sim, cfg, desc = rig
    with ActuatorBackend(dataclasses.replace(cfg, bus_watchdog_ms=100)) as be:
        chain, ctrl, sup, loop = _stack(desc, be)
        loop.run_for(0.3)
        _wait_sim(em, sim, 0.3)  # the host falls silent: the servos stop themselves (zero current)
        assert all(em.servo(i).get("bus_watchdog") == 0xFF for i in range(1, 7))
        loop.run_for(0.05)
        f = be.latched_fault
        assert f is not None and f.code == "bus_watchdog" and "Bus Watchdog" in f.message
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        # the safe state clears the watchdog and holds in position mode
        assert eventually(lambda: all(em.servo(i).mode == MODE_POSITION and em.servo(i).torque_on
                                      and em.servo(i).get("bus_watchdog") == 0 for i in range(1, 7)))


def test_over_temperature_latches_hold_with_a_clear_message(rig):
    em, sim, cfg, desc = rig
    with ActuatorBackend(cfg) as be:
        chain, ctrl, sup, loop = _stack(desc, be)
        loop.run_for(0.3)
        with em._lock:
            em.servo(2).temperature_c = 74.0  # above the config's 70 C, below the servo's own 80 C
        loop.run_for(0.1)
        assert sup.state is SupervisorState.PROTECTIVE_STOP
        f = be.latched_fault
        assert f.code == "over_temperature" and f.joint == 1 and "servo 2 (shoulder_lift): 74 C" in f.message
        assert eventually(lambda: all(em.servo(i).mode == MODE_POSITION and em.servo(i).torque_on for i in range(1, 7)))
        assert not be.reset_faults() or be.read().faults[0].code == "over_temperature"  # still hot: stays latched


def test_over_current_latches_hold(rig):
    em, sim, cfg, desc = rig
    # a current cap too low for the shoulder's gravity load (about 0.5 A while holding)
    joints = tuple(dataclasses.replace(j, current_limit_a=0.15) if j.id == 2 else j for j in cfg.joints)
    with ActuatorBackend(dataclasses.replace(cfg, joints=joints)) as be:
        faults = []

        def over_current() -> bool:
            faults.extend(f for f in be.read().faults if f.code == "over_current")
            return bool(faults)

        assert eventually(over_current, 3.0)  # the start hold draws the shoulder's gravity current
        assert faults[0].joint == 1 and "0.15 A limit" in faults[0].message
        assert be.latched_fault.code == "over_current"


def test_wrong_model_and_wrong_ids_are_named_at_start(rig):
    em, sim, cfg, desc = rig
    wrong_model = tuple(dataclasses.replace(j, model="XM540-W270") if j.id == 5 else j for j in cfg.joints)
    with pytest.raises(ProtocolError, match=r"servo 5 \(wrist_pitch\) is a XM430-W350, the config says XM540-W270"):
        ActuatorBackend(dataclasses.replace(cfg, joints=wrong_model))
    wrong_ids = tuple(dataclasses.replace(j, id=j.id + 10) for j in cfg.joints)
    with pytest.raises(ProtocolError, match=r"servos \[11, 12, 13, 14, 15, 16\] do not answer"):
        ActuatorBackend(dataclasses.replace(cfg, joints=wrong_ids))
    with ActuatorBackend(cfg) as be:  # the port was released each time: the right config opens
        assert be.read().ok


def test_hw_emulate_command_serves_the_desk_arm(tmp_path):
    """``machaon hw emulate --sim --robot desk``: the servo map's models, ids and mountings on a pty,
    driving the PyBullet desk arm, which starts at its home pose."""
    import os
    import signal
    import subprocess

    from machaon.hardware.dynamixel import Bus

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--sim", "--robot", "desk",
                             "--baud", str(BAUD), "--kt-scale", "0.95"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/"), proc.stderr.read() if proc.poll() is not None else port
        with Bus(port, BAUD, latency_s=0.1) as bus:
            found = bus.broadcast_ping(max_id=8)
            assert {i: f.model_number for i, f in found.items()} == {1: 1120, 2: 1120, 3: 1120, 4: 1020, 5: 1020,
                                                                     6: 1020}
        cfg = dataclasses.replace(ActuatorConfig.from_robot("desk", port=port), latency_s=0.05)
        with ActuatorBackend(cfg) as be:
            # mounted as the map says (the elbow reversed, the wrist roll's zero at 1024): home reads
            # home (within the few ticks the start hold's position loops sag under the arm's weight)
            np.testing.assert_allclose(be.read().q, load_description("desk").q_home, atol=0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "coupled to the PyBullet desk arm" in proc.stderr.read()
        bad = subprocess.run([sys.executable, "-m", "machaon.cli.main", "hw", "emulate", "--sim", "--robot", "desk",
                              "--ids", "1-3"], capture_output=True, text=True, env=env, cwd=root, timeout=60)
        assert bad.returncode == 2 and "differ from the servo map" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
