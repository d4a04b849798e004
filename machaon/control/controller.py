"""The ``Controller`` protocol: what ``machaon.robot.ControlLoop`` runs each cycle.

A controller turns the robot's state into the command for this cycle::

    cmd = controller.update(state, t)      # JointState -> JointCommand, t in the backend clock's s

It may also define ``on_activate(state, t)``: the loop calls it on the first cycle the controller
runs (after ``start()`` and after ``set_controller``), so that it can align its target with where
the robot stands. The impedance and admittance controllers, ``TrajectoryTracker`` and the
applications' controllers (teleop, exoskeleton assist) all satisfy it; nothing needs to inherit
from it (structural typing, as ``machaon.robot.Backend``).

``TargetController`` is a controller whose target the caller sets (``set_target(target, rate)``:
joint angles and rates for joint controllers, a 4x4 pose and a twist for Cartesian ones), which is
what ``TrajectoryTracker`` drives. ``DynamicsModel`` is what the controllers and the supervisor
need of a robot's dynamics (``machaon.kinematics.Dynamics`` is one): gravity and mass matrix.

Bad input: ``update`` may raise for a malformed state or target (a ``ValueError``); the loop treats
any exception from a controller as a failed cycle and asks the supervisor for a protective stop.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from machaon.types import JointCommand, JointState

__all__ = ["Controller", "DynamicsModel", "TargetController"]


@runtime_checkable
class Controller(Protocol):
    """Computes one command per control cycle (see the module docstring)."""

    def update(self, state: JointState, t: float) -> JointCommand:
        """The command for this cycle, from the measured ``state`` at loop time ``t`` (s)."""
        ...


@runtime_checkable
class TargetController(Controller, Protocol):
    """A controller that tracks a target the caller sets: ``set_target(target, rate)``.

    Joint controllers take joint angles (rad) and rates (rad/s); Cartesian controllers a 4x4 pose
    ``T_base_target`` and a 6-vector twist ``[m/s; rad/s]`` in the base frame. ``rate`` None means
    zero.
    """

    def set_target(self, target: np.ndarray, rate: np.ndarray | None = None, /) -> None:
        """Set the target (and its rate of change) that the next ``update`` steers toward."""
        ...


@runtime_checkable
class DynamicsModel(Protocol):
    """A robot's rigid-body dynamics as controllers use them (``machaon.kinematics.Dynamics``).

    Both take joint angles ``q`` (rad, shape (n,)); a bad ``q`` raises ``ValueError``.
    """

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Joint torques that hold the arm against gravity at ``q`` (N m, shape (n,))."""
        ...

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        """Joint-space mass matrix at ``q`` (kg m^2 / kg, shape (n, n))."""
        ...
