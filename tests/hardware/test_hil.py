"""Hardware in the loop: the emulated servos drive the PyBullet arm (``machaon hw emulate --sim``),
and the ActuatorBackend closes a position loop through the pty."""

from __future__ import annotations

import time

import numpy as np
import pytest

from machaon.hardware.backend import ActuatorBackend, ActuatorConfig, JointConfig
from machaon.hardware.control_table import XM540_W270
from machaon.hardware.emulator import ChainEmulator
from machaon.sim import ArmSim
from machaon.sim.plant import ArmSimPlant
from machaon.types import JointCommand

BAUD = 4_000_000


def test_servos_move_the_pybullet_arm() -> None:
    # without gravity: the project arm's links are heavier than an XM540 can hold (its shoulder needs
    # more than the 10.6 N m stall torque), and this test is about the coupling, not servo sizing
    with ArmSim("machaon_arm", gravity=0.0) as sim:
        n = sim.dof
        ids = list(range(1, n + 1))
        q0 = sim.read().q.copy()
        with ChainEmulator(ids, model="XM540-W270", baudrate=BAUD, plant=ArmSimPlant(sim, XM540_W270.rotor_inertia_out),
                           physics_dt=sim.dt) as em:
            joints = tuple(JointConfig(f"j{i}", i, "XM540-W270") for i in ids)
            cfg = ActuatorConfig(port=em.port, joints=joints, baudrate=BAUD, mode="position", latency_s=0.1)
            with ActuatorBackend(cfg) as be:
                start = be.read()
                assert start.ok
                # the servo zero (tick 2048) is the arm's q = 0
                np.testing.assert_allclose(start.q, q0, atol=2 * 2 * np.pi / 4096)
                target = start.q + 0.1
                for _ in range(300):
                    be.write(JointCommand.position(target))
                    time.sleep(0.004)
                    s = be.read()
                with em._lock:
                    q_sim = sim.read().q
                # the PyBullet arm followed the servos' position loop, and the servos report its pose
                np.testing.assert_allclose(q_sim, target, atol=0.03)
                np.testing.assert_allclose(s.q, q_sim, atol=0.01)


def _home_through(config_text: str, tmp_path, mounted: bool):
    """``teleop serve --home``'s homing move on the shipped position-mode chain, through the pty, with
    the emulated servos driving the PyBullet arm; returns (host's joint angles, the arm's)."""
    import sys
    from pathlib import Path

    from machaon.robot.description import load_description
    from machaon.teleop.robot_setup import move_home, robot_model

    path = tmp_path / "chain.toml"
    path.write_text(config_text)
    cfg0 = ActuatorConfig.from_toml(path)
    mount = dict(directions=[j.direction for j in cfg0.joints], zero_ticks=[j.zero_ticks for j in cfg0.joints])
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-4)  # the emulator thread shares this process with the host's loop
    try:
        with ArmSim("machaon_arm", gravity=0.0) as sim:
            plant = ArmSimPlant(sim, 0.01, **(mount if mounted else {}))
            with ChainEmulator(range(1, 7), baudrate=BAUD, plant=plant, physics_dt=sim.dt) as em:
                cfg = ActuatorConfig.from_toml(path, port=em.port)
                with ActuatorBackend(cfg) as be:
                    q = move_home(be, robot_model(load_description("machaon_arm")), position_mode=True,
                                  rate_hz=250.0, speed=1.0, fault_cycles=cfg.lost_cycles)
                    assert Path(em.port).exists()
                    return q, sim.read().q.copy()
    finally:
        sys.setswitchinterval(old)


def test_hil_homing_moves_the_simulated_arm_to_home_as_the_host_sees_it(tmp_path):
    """Defect 7: the shipped chain mounts the shoulder servo reversed (direction -1); the --sim plant
    took every servo as mounted +1, so the simulated arm went to -20 deg at the shoulder while the
    host believed +20 deg. Mounted as the config says, the arm homes where the host thinks it is."""
    from pathlib import Path

    from machaon.robot.description import load_description

    text = (Path(__file__).resolve().parents[2] / "machaon/hardware/configs/xm430_chain_position.toml").read_text()
    # the emulator shares the GIL with the host here: a longer bus deadline than a real adapter needs
    text = text.replace("latency_ms = 2.0", "latency_ms = 8.0").replace("lost_cycles = 3", "lost_cycles = 10")
    home = np.asarray(load_description("machaon_arm").q_home)
    q_host, q_arm = _home_through(text, tmp_path, mounted=True)
    np.testing.assert_allclose(q_host, home, atol=0.03)
    np.testing.assert_allclose(q_arm, home, atol=0.03)  # the PyBullet arm really is at home
    # the old coupling: with the arm at home, the host would read the shoulder mirrored
    with ArmSim("machaon_arm", gravity=0.0) as sim:
        sim.reset(home)
        servo_q, _ = ArmSimPlant(sim, 0.01).state()
        assert servo_q[1] == pytest.approx(home[1])  # servo angle = joint angle, but the host reads -angle
        mounted_q, _ = ArmSimPlant(sim, 0.01, directions=[1, -1, 1, 1, 1, 1], zero_ticks=[2048] * 6).state()
        assert mounted_q[1] == pytest.approx(-home[1])


def test_emulate_sim_says_when_the_servos_cannot_hold_the_arm(capsys):
    """Defect 7, second cause: with gravity, the arm's shoulder needs ~18 N m at home and an XM430
    gives 4.1 N m: homing then ends where the arm hung (2.4 rad off). The emulator says so."""
    from machaon.cli.hw import _warn_if_too_weak
    from machaon.hardware.control_table import model_by_name

    with ArmSim("machaon_arm") as sim:
        _warn_if_too_weak(sim, model_by_name("XM430-W350"))
    err = capsys.readouterr().err
    assert "shoulder_lift 17.7 N m" in err and "--gravity 0" in err
    with ArmSim("machaon_arm", gravity=0.0) as sim:
        _warn_if_too_weak(sim, model_by_name("XM430-W350"))
    assert capsys.readouterr().err == ""
