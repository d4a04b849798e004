"""One contract every ``Backend`` passes (as python-can's back-to-back tests hold every interface
to one suite): the fake, the PyBullet arm, the actuator chain on the servo emulator over a real
pty, and the exoskeleton legs.

What a controller may rely on, whichever robot it drives:

- the protocol's shape: ``dof``, ``joint_names`` (one distinct name a joint), a clock whose
  ``wait_until`` moves ``now`` on;
- ``read`` before any ``write`` gives the robot as it stands: finite ``q``/``dq``/``tau`` of
  length ``dof``, ``ok`` and no faults; time never runs backwards between reads;
- a torque written is the torque read back (``tau``, what the drives apply), held until the
  next write;
- a malformed command (wrong length, NaN, Inf) raises ``ValueError`` and never reaches the
  robot: the previous command stays in force and the backend keeps working;
- a device fault is state, not an exception: ``read`` reports it (``faults``, ``ok``) and
  ``write`` goes on without raising;
- ``with`` gives the backend itself and closes it; ``close`` is idempotent; a closed backend is
  never read silently: ``read`` reports ``ok=False`` with a persistent fault, or raises a
  ``MachaonError`` (never a library's own exception).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from machaon.errors import MachaonError
from machaon.robot.backend import Backend
from machaon.types import DeviceFault, JointCommand

BAUD = 4_000_000


@dataclass(frozen=True)
class Harness:
    """How to open one kind of backend and poke it from outside."""

    open: Callable[[], contextlib.AbstractContextManager[Backend]]
    tau: np.ndarray  # a safe torque command, N m (within every joint's limit)
    tau_tol: float  # how closely read().tau reports it (quantisation of a real drive)
    inject_fault: Callable[[Backend], None] | None  # None: the backend has no device to fault


@contextlib.contextmanager
def _fake() -> Iterator[Backend]:
    from machaon.robot.fake import FakeBackend

    with FakeBackend(3, joint_names=("a", "b", "c")) as b:
        yield b


def _fake_fault(b: Backend) -> None:
    b.inject_fault(DeviceFault("fake", "overload", "joint b overloaded", joint=1))  # type: ignore[attr-defined]
    b.set_ok(False)  # type: ignore[attr-defined]


@contextlib.contextmanager
def _arm() -> Iterator[Backend]:
    from machaon.sim import ArmSim

    with ArmSim("machaon_arm") as b:
        yield b


def _arm_fault(b: Backend) -> None:
    b.inject_fault(DeviceFault("sim", "overload", "joint 2 overloaded", joint=1))  # type: ignore[attr-defined]


@contextlib.contextmanager
def _actuators() -> Iterator[Backend]:
    from machaon.hardware.backend import ActuatorBackend, ActuatorConfig, JointConfig
    from machaon.hardware.emulator import ChainEmulator

    with ChainEmulator([1, 2, 3], baudrate=BAUD, return_delay_us=0) as em:
        joints = (JointConfig("a", 1), JointConfig("b", 2, direction=-1, zero_ticks=2148), JointConfig("c", 3))
        cfg = ActuatorConfig(port=em.port, joints=joints, baudrate=BAUD, latency_s=0.1, mode="current")
        with ActuatorBackend(cfg) as b:
            b.emulator = em  # type: ignore[attr-defined]  # for the fault injection below
            yield b


def _actuator_fault(b: Backend) -> None:
    from machaon.hardware.protocol import HardwareErrorStatus

    b.emulator.inject_hardware_error(2, int(HardwareErrorStatus.OVERLOAD))  # type: ignore[attr-defined]


@contextlib.contextmanager
def _legs() -> Iterator[Backend]:
    from machaon.sim.legs import LegSim

    with LegSim() as b:
        yield b


HARNESSES = {
    "fake": Harness(_fake, np.array([0.1, -0.2, 0.05]), 0.0, _fake_fault),
    "armsim": Harness(_arm, np.array([0.5, -1.0, 0.8, 0.1, -0.1, 0.05]), 1e-9, _arm_fault),
    # goal current is quantised to 2.69 mA (x kt = 1.8 N m/A: ~5 mN m) and read back from the servos
    "actuators": Harness(_actuators, np.array([0.2, -0.1, 0.15]), 0.02, _actuator_fault),
    "legs": Harness(_legs, np.array([1.0, -2.0, 0.5, 1.5]), 1e-9, None),
}


# the class each harness opens (tests/test_architecture.py checks that no backend is left out)
BACKEND_CLASSES = {
    "fake": "machaon.robot.fake.FakeBackend",
    "armsim": "machaon.sim.arm.ArmSim",
    "actuators": "machaon.hardware.backend.ActuatorBackend",
    "legs": "machaon.sim.legs.LegSim",
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request) -> Harness:
    return HARNESSES[request.param]


def _step(b: Backend, dt: float = 0.002) -> None:
    b.clock.wait_until(b.clock.now() + dt)


def test_shape_of_the_protocol(harness):
    with harness.open() as b:
        assert isinstance(b, Backend)
        assert f"{type(b).__module__}.{type(b).__qualname__}" in BACKEND_CLASSES.values()
        assert isinstance(b.dof, int) and b.dof == len(harness.tau)
        names = b.joint_names
        assert len(names) == b.dof and len(set(names)) == b.dof and all(isinstance(n, str) and n for n in names)
        t0 = b.clock.now()
        b.clock.wait_until(t0 + 0.01)
        assert math.isfinite(t0) and b.clock.now() >= t0 + 0.01 - 1e-9


def test_read_before_any_write_is_the_robot_as_it_stands(harness):
    with harness.open() as b:
        s = b.read()
        assert s.ok and s.faults == ()
        for v in (s.q, s.dq, s.tau):
            assert np.shape(v) == (b.dof,) and np.isfinite(v).all()
        _step(b)
        s2 = b.read()
        assert s2.t >= s.t and s2.ok


def test_a_torque_written_is_the_torque_read_back_and_held(harness):
    with harness.open() as b:
        b.read()
        b.write(JointCommand.torque(harness.tau))
        for _ in range(3):  # held between writes (zero-order hold)
            _step(b)
            s = b.read()
            assert np.allclose(s.tau, harness.tau, atol=harness.tau_tol), s.tau


@pytest.mark.parametrize("bad", ["short", "nan", "inf"])
def test_a_malformed_command_raises_and_never_reaches_the_robot(harness, bad):
    with harness.open() as b:
        b.read()
        b.write(JointCommand.torque(harness.tau))
        _step(b)
        tau = {"short": harness.tau[:-1], "nan": np.where(np.arange(b.dof) == 1, np.nan, harness.tau),
               "inf": np.full(b.dof, np.inf)}[bad]
        with pytest.raises(ValueError):
            b.write(JointCommand(JointCommand.torque(harness.tau).mode, tau=tau))
        _step(b)
        s = b.read()
        assert s.ok and np.allclose(s.tau, harness.tau, atol=harness.tau_tol)  # the last good command holds
        b.write(JointCommand.torque(np.zeros(b.dof)))  # and the backend goes on working
        _step(b)
        assert np.allclose(b.read().tau, 0.0, atol=harness.tau_tol)


def test_a_device_fault_is_state_not_an_exception(harness):
    if harness.inject_fault is None:
        pytest.skip("a simulated wearer's legs have no device that can fault")
    with harness.open() as b:
        b.read()
        harness.inject_fault(b)
        _step(b)
        s = b.read()
        assert s.faults and all(isinstance(f, DeviceFault) for f in s.faults)
        assert any(f.joint == 1 for f in s.faults)
        b.write(JointCommand.torque(np.zeros(b.dof)))  # no exception: the supervisor decides
        _step(b)
        b.read()


def test_context_manager_close_is_idempotent_and_a_closed_backend_is_never_read_silently(harness):
    with harness.open() as b:
        assert b.__enter__() is b
        b.read()
    b.close()
    b.close()
    try:
        s = b.read()
    except MachaonError:
        return
    assert not s.ok and any(f.persistent for f in s.faults)
