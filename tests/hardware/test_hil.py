"""Hardware in the loop: the emulated servos drive the PyBullet arm (``machaon hw emulate --sim``),
and the ActuatorBackend closes a position loop through the pty."""

from __future__ import annotations

import time

import numpy as np

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
