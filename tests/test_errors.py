"""The exception tree (``machaon.errors``): one root, one base per layer, unique names."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import machaon
from machaon import errors


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(machaon.__path__, "machaon.")
                  if not m.name.endswith("__main__"))


def _exception_classes() -> list[type[BaseException]]:
    found: dict[int, type[BaseException]] = {}
    for name in _modules():
        mod = importlib.import_module(name)
        for obj in vars(mod).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("machaon"):
                found[id(obj)] = obj
    return list(found.values())


def test_the_package_has_exception_classes_to_check():
    names = {c.__name__ for c in _exception_classes()}
    assert {"MachaonError", "DescriptionError", "BusProtocolError", "LinkProtocolError", "PlanError"} <= names


def test_every_exception_class_derives_from_machaon_error():
    bad = [f"{c.__module__}.{c.__qualname__}" for c in _exception_classes() if not issubclass(c, errors.MachaonError)]
    assert not bad, bad


def test_exception_names_are_unique():
    by_name: dict[str, set[str]] = {}
    for c in _exception_classes():
        by_name.setdefault(c.__name__, set()).add(c.__module__)
    assert {n: m for n, m in by_name.items() if len(m) > 1} == {}


def test_no_other_class_takes_an_exception_name():
    """An exception's name means that exception only (the servo status bits are HardwareErrorStatus)."""
    exc_names = {c.__name__ for c in _exception_classes()}
    clash = []
    for name in _modules():
        for attr, obj in vars(importlib.import_module(name)).items():
            if inspect.isclass(obj) and not issubclass(obj, BaseException) and attr in exc_names:
                clash.append(f"{name}.{attr}")
    assert not clash, clash


@pytest.mark.parametrize(("module", "name", "layer_base"), [
    ("machaon.robot.description", "DescriptionError", errors.RobotError),
    ("machaon.robot.runlog", "RunLogError", errors.RobotError),
    ("machaon.robot.homing", "HomingError", errors.RobotError),
    ("machaon.sim.scenarios", "ScenarioError", errors.SimError),
    ("machaon.sim.app", "SimAppError", errors.SimError),
    ("machaon.hardware.protocol", "CRCError", errors.HardwareError),
    ("machaon.hardware.protocol", "PortError", errors.HardwareError),
    ("machaon.ortho.planning", "PlanError", errors.OrthoError),
    ("machaon.ortho.approach", "PlanningFailed", errors.OrthoError),
    ("machaon.exo.frames", "BoardFrameError", errors.ExoError),
    ("machaon.exo.acquisition", "AcquisitionError", errors.ExoError),
    ("machaon.teleop.messages", "AuthError", errors.TeleopError),
    ("machaon.teleop.keys", "KeyFileError", errors.TeleopError),
])
def test_each_layer_raises_its_own_base(module, name, layer_base):
    assert issubclass(getattr(importlib.import_module(module), name), layer_base)


def test_builtin_second_bases_stay_for_callers_that_catch_them():
    from machaon.ortho.tracking import TrackingError
    from machaon.robot.description import DescriptionError
    from machaon.teleop.client import ConnectError

    assert issubclass(DescriptionError, ValueError) and issubclass(errors.InputError, ValueError)
    assert issubclass(errors.SimError, RuntimeError) and issubclass(TrackingError, RuntimeError)
    assert issubclass(ConnectError, RuntimeError)


def test_shared_input_checks_raise_an_input_error():
    from machaon._validate import finite_array

    with pytest.raises(errors.InputError, match="q: contains NaN"):
        finite_array("q", [0.0, float("nan")])


def test_old_names_are_aliases_for_one_release():
    from machaon.exo import frames
    from machaon.hardware import protocol
    from machaon.teleop import messages

    assert protocol.ProtocolError is protocol.BusProtocolError and protocol.FrameError is protocol.BusFrameError
    assert messages.ProtocolError is messages.LinkProtocolError
    assert frames.FrameError is frames.BoardFrameError
