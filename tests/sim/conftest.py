"""Shared fixtures for the simulation tests (PyBullet DIRECT only, except test_gui.py)."""

from __future__ import annotations

import pytest

from machaon.robot.description import load_description


@pytest.fixture(scope="session")
def arm_desc():
    return load_description("machaon_arm")
