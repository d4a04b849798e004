"""The compiled builders of the per-cycle records give what the dataclass constructors give."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from machaon import _records
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState


def test_joint_state_builder_equals_the_constructor():
    q, dq, tau, w = np.arange(3.0), np.ones(3), np.zeros(3), np.arange(6.0)
    faults = (DeviceFault("dxl:1", "overload", "hot", joint=0),)
    built = _records.joint_state(0.25, q, dq, tau, w, faults, False)
    made = JointState(0.25, q, dq, tau, w, faults, False)
    assert type(built) is JointState
    assert vars(built) == vars(made)  # the same objects in the same fields
    assert list(vars(built)) == [f.name for f in dataclasses.fields(JointState)]
    assert built.q is q and built.faults is faults and built.ok is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.q = dq
    again = pickle.loads(pickle.dumps(built))
    assert np.array_equal(again.q, q) and again.t == 0.25
    assert dataclasses.replace(built, t=1.0).t == 1.0


def test_torque_command_builder_equals_the_constructor():
    tau = np.arange(4.0)
    info = {"x_d": np.zeros(3)}
    built = _records.torque_command(tau, info)
    made = JointCommand(CommandMode.TORQUE, tau=tau, info=info)
    assert type(built) is JointCommand
    assert list(vars(built)) == [f.name for f in dataclasses.fields(JointCommand)]
    assert built.mode is made.mode and built.tau is tau and built.q is None and built.dq is None
    assert built.info is info
    assert built == made  # dataclass equality (info is not compared)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.tau = None
