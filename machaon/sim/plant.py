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

    ``directions``/``zero_ticks`` say how each servo is mounted on its joint, as the host's chain
    config does (``[[joints]] direction``, ``zero_ticks``): joint angle = direction x (servo tick -
    zero_ticks) x rad/tick (2 pi / 4096). Without them every servo is taken as mounted +1 at tick
    2048; with a config whose servo is mounted reversed (the shipped chains' shoulder) the
    simulated arm would then move mirrored at that joint while the host believes otherwise. Give
    the mounting here or to the ``ChainEmulator`` (its ``directions``/``zero_ticks``), never both.
    """

    def __init__(self, sim: ArmSim, rotor_inertia: float | list[float] = 0.0, *,
                 directions: list[int] | None = None, zero_ticks: list[int] | None = None) -> None:
        self.sim = sim
        self._carry = 0.0
        self._dir = np.ones(sim.dof) if directions is None else np.asarray(directions, dtype=np.float64)
        zt = np.full(sim.dof, 2048.0) if zero_ticks is None else np.asarray(zero_ticks, dtype=np.float64)
        if self._dir.shape != (sim.dof,) or not np.isin(self._dir, (-1.0, 1.0)).all() or zt.shape != (sim.dof,):
            raise ValueError(f"directions/zero_ticks: one +1/-1 and one tick per joint ({sim.dof})")
        self._off = (2048.0 - zt) * (2.0 * np.pi / 4096.0)  # servo angle (from tick 2048) at joint angle 0
        sim.add_armature(rotor_inertia)

    @property
    def dof(self) -> int:
        return int(self.sim.dof)

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Servo output angles (rad from tick 2048) and speeds."""
        s = self.sim.read()
        return self._dir * s.q - self._off, self._dir * s.dq

    def step(self, tau_nm: np.ndarray, dt: float) -> None:
        self.sim.write(JointCommand.torque(self._dir * np.asarray(tau_nm, dtype=np.float64)))
        self._carry += dt
        n = int(self._carry / self.sim.dt + 1e-9)
        if n:
            self.sim.step(n)
            self._carry -= n * self.sim.dt
