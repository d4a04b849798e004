"""Shared arms for the control tests: the project's arm and, for redundancy, pybullet_data's Panda."""

from __future__ import annotations

import os
from pathlib import Path

import pybullet_data
import pytest

import machaon
from machaon.kinematics import Chain, Dynamics

ARM_URDF = Path(machaon.__file__).parent / "robot" / "descriptions" / "machaon_arm.urdf"
PANDA_URDF = Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"


@pytest.fixture(scope="session")
def arm() -> Chain:
    return Chain.from_urdf(ARM_URDF, "base_link", "flange")


@pytest.fixture(scope="session")
def arm_dyn(arm: Chain) -> Dynamics:
    return Dynamics(arm)


@pytest.fixture(scope="session")
def panda() -> Chain:
    assert os.path.isfile(PANDA_URDF)
    return Chain.from_urdf(PANDA_URDF, "panda_link0", "panda_hand")
