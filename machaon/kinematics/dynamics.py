"""``Dynamics``: the dynamics terms of a chain with a payload, under the names controllers use.

A thin, documented face over the chain's compiled rigid-body dynamics (``Chain.rnea``,
``gravity_torque``, ``mass_matrix``, ``coriolis_torque``), kept so that code written against the
earlier pinocchio-backed class (``Dynamics(chain, payload_mass, payload_com)``, ``gravity(q)``,
``mass_matrix(q)``, ``nonlinear(q, dq)``) runs unchanged, now without pinocchio per call.
pinocchio remains the parser (inertial parameters, ``Chain.from_urdf``) and the reference the
tests compare against. Controllers given a ``Dynamics`` take its ``chain`` and compute gravity
inside their compiled cycle.

Gravity is ``chain.gravity`` ((0, 0, -9.81) m/s^2 in the base frame unless set). Units: N m
(revolute), N (prismatic). Bad input (NaN, Inf, wrong shape) raises ``ValueError`` naming the
argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from machaon._validate import transform
from machaon.kinematics.chain import Chain


class Dynamics:
    """Dynamics of ``chain`` plus an optional point-mass payload.

    ``payload_mass`` (kg) at ``payload_com`` (m, tool frame). ``armature`` (kg m^2 per joint,
    default: the chain's): the reflected rotor inertia of each joint's drive (``Chain.armature``),
    which gear-motor arms need, since it can exceed the link inertia. ``chain`` (attribute) is the
    chain with the payload and armature folded in (``Chain.with_payload``/``with_armature``); its
    compiled methods do the work.
    """

    def __init__(self, chain: Chain, payload_mass: float = 0.0, payload_com: np.ndarray = (0.0, 0.0, 0.0),
                 armature: np.ndarray | None = None):
        if not np.isfinite(payload_mass) or payload_mass < 0:
            raise ValueError("payload_mass: must be a finite mass >= 0 kg")
        chain = chain.with_payload(payload_mass, payload_com) if payload_mass > 0 else chain
        self.chain = chain.with_armature(armature) if armature is not None else chain
        self.payload_mass = float(payload_mass)

    @classmethod
    def from_urdf(
        cls,
        path: str | Path,
        base_link: str,
        tip_link: str,
        payload_mass: float = 0.0,
        payload_com: np.ndarray = (0.0, 0.0, 0.0),
        T_flange_tool: np.ndarray | None = None,
        armature: np.ndarray | None = None,
    ) -> Dynamics:
        """Dynamics of the chain ``base_link`` -> ``tip_link`` of a URDF (see ``Chain.from_urdf``)."""
        chain = Chain.from_urdf(path, base_link, tip_link)
        if T_flange_tool is not None:
            chain = chain.with_tool(transform("T_flange_tool", T_flange_tool))
        return cls(chain, payload_mass, payload_com, armature)

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Generalised gravity torques g(q) (dof,): ``chain.gravity_torque(q)``."""
        return self.chain.gravity_torque(q)

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        """Joint-space inertia M(q) (dof x dof), symmetric positive definite: ``chain.mass_matrix(q)``."""
        return self.chain.mass_matrix(q)

    def nonlinear(self, q: np.ndarray, dq: np.ndarray) -> np.ndarray:
        """Coriolis, centrifugal and gravity torques C(q, dq) dq + g(q) (dof,): ``chain.rnea(q, dq, 0)``."""
        return self.chain.rnea(q, dq, np.zeros(self.chain.dof))
