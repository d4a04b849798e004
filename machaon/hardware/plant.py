"""What the emulated servos drive: the ``Plant`` interface and a rigid-load plant.

A plant holds the output-shaft state of every servo of an emulated chain, in chain order, in SI
units (rad, rad/s), and integrates it under the net torque the servos apply (N m, after the
servo's own gear friction). The emulator only talks to this interface, so the same servos can
drive independent inertias (:class:`RigidLoadPlant`) or a physics engine's arm (the CLI composes
``machaon.sim.ArmSim`` into a plant for hardware-in-the-loop; this layer does not import it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from machaon._validate import finite_array


@runtime_checkable
class Plant(Protocol):
    """Output-shaft dynamics behind a chain of emulated servos."""

    @property
    def dof(self) -> int: ...

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """(q_rad, dq_rad_s) of every servo output, in chain order (copies)."""
        ...

    def step(self, tau_nm: np.ndarray, dt: float) -> None:
        """Advance by ``dt`` seconds with net servo torques ``tau_nm`` held constant."""
        ...


class RigidLoadPlant:
    """Each servo drives its own rigid inertia: ``J ddq = tau + tau_ext``.

    ``inertia`` (kg m^2) should include the servo's reflected rotor inertia (gear inertia) plus the
    load; ``tau_ext`` (N m) is a constant external torque per joint (e.g. a hanging mass), settable
    at run time with :meth:`set_external_torque`. Integrated with semi-implicit Euler, which is
    stable for the emulator's 0.5 ms step. Non-finite torques raise ValueError.
    """

    def __init__(self, inertia: np.ndarray | list[float], q0: np.ndarray | list[float] | None = None) -> None:
        self._J = finite_array("inertia", inertia, (None,))
        if (self._J <= 0).any():
            raise ValueError("inertia: must be positive")
        n = self._J.shape[0]
        self._q = np.zeros(n) if q0 is None else finite_array("q0", q0, (n,)).copy()
        self._dq = np.zeros(n)
        self._ext = np.zeros(n)

    @property
    def dof(self) -> int:
        return int(self._J.shape[0])

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return self._q.copy(), self._dq.copy()

    def set_external_torque(self, tau_nm: np.ndarray | list[float]) -> None:
        self._ext = finite_array("tau_nm", tau_nm, (self.dof,)).copy()

    def set_state(self, q: np.ndarray | list[float], dq: np.ndarray | list[float] | None = None) -> None:
        self._q = finite_array("q", q, (self.dof,)).copy()
        self._dq = np.zeros(self.dof) if dq is None else finite_array("dq", dq, (self.dof,)).copy()

    def step(self, tau_nm: np.ndarray, dt: float) -> None:
        tau = np.asarray(tau_nm, dtype=np.float64)
        if tau.shape != (self.dof,) or not np.isfinite(tau).all():
            raise ValueError("tau_nm: expected finite values, one per servo")
        self._dq += dt * (tau + self._ext) / self._J
        self._q += dt * self._dq
