"""``ArmSim`` as the servo emulator's ``Plant``: servo torques drive the PyBullet arm (hardware in the loop).

The emulator (``machaon.hardware.emulator.ChainEmulator``) asks its plant for the joints' state
and steps it with the servos' output torques; this class answers with the simulated arm. It
follows the ``machaon.hardware.plant.Plant`` protocol by shape (``dof``, ``state()``,
``step(tau_nm, dt)``) without importing the hardware layer, which sits beside the simulation.
"""

from __future__ import annotations

import numpy as np

from machaon.sim.arm import ArmSim
from machaon.types import JointCommand

__all__ = ["ArmSimPlant"]


class ArmSimPlant:
    """``machaon.sim.ArmSim`` as the emulator's ``Plant``: servo torques drive the PyBullet arm.

    Every ``step(tau, dt)`` applies ``tau`` (N m, joint order = servo order) in torque mode and
    advances the physics by whole simulator steps (the remainder carries over). The servos'
    reflected rotor inertia ``rotor_inertia`` (kg m^2, scalar or per joint; 0 when the
    description's armature already carries it) is added as the arm's armature
    (``ArmSim.add_armature``: exact for each joint, no spill-over to the joints above it). Without
    it a light wrist link behind a stiff servo loop is not even stable at a 1 ms step. The servo
    model applies the gear friction.
    """

    def __init__(self, sim: ArmSim, rotor_inertia: float | list[float] = 0.0) -> None:
        self.sim = sim
        self._carry = 0.0
        sim.add_armature(rotor_inertia)

    @property
    def dof(self) -> int:
        return int(self.sim.dof)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.sim.read()
        return s.q.copy(), s.dq.copy()

    def step(self, tau_nm: np.ndarray, dt: float) -> None:
        self.sim.write(JointCommand.torque(tau_nm))
        self._carry += dt
        n = int(self._carry / self.sim.dt + 1e-9)
        if n:
            self.sim.step(n)
            self._carry -= n * self.sim.dt
