"""The examples in the docstrings of the main public calls run, and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "machaon.kinematics.chain",  # Chain.from_urdf, fk, jacobian, ik
    "machaon.kinematics.so3",  # exp3, log3, quaternions, transforms
    "machaon.control.impedance",  # cartesian_impedance_torque
    "machaon.robot.loop",  # ControlLoop
    "machaon.sim.arm",  # ArmSim
    "machaon.hardware.dynamixel",  # Bus (on the emulator's pty)
    "machaon.ortho.planning.auto",  # auto_plan, check_plan
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0, f"{name} has no examples"
    assert res.failed == 0
