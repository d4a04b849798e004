"""Shared fixtures for the simulation tests (PyBullet DIRECT only)."""

from __future__ import annotations

import numpy as np
import pytest

from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import load_description


@pytest.fixture(scope="session")
def arm_desc():
    return load_description("machaon_arm")


def chain_and_dynamics(desc, tool: str | None):
    """Chain to the TCP and Dynamics with the tool as payload, from the description."""
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    if tool is None:
        return chain, Dynamics(chain)
    t = desc.tool(tool)
    chain = chain.with_tool(t.T_flange_tcp)
    return chain, Dynamics(chain, payload_mass=t.mass, payload_com=t.com_tcp)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
