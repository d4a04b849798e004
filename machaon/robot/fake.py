"""``FakeBackend``: ideal rigid joints integrated exactly, for unit tests and loop benchmarks.

The joints obey ``M ddq = tau + tau_ext`` with a constant, symmetric positive-definite mass
matrix ``M`` (identity by default) and no friction or gravity. Commands are held constant between
writes (zero-order hold), so integrating with constant acceleration over each interval is exact:
a step response of a joint impedance law on this backend is the sampled-data response of the
ideal mass-spring-damper, with no integration error.

Time comes from the backend's clock: a ``FakeClock`` (default; the loop advances it when it waits,
so runs are deterministic and faster than real time) or any other clock such as
``MonotonicClock`` for timing benchmarks. The state is integrated lazily up to ``clock.now()``
whenever ``read`` or ``write`` is called.

Position mode tracks the commanded ``q`` exactly (velocity = the command's ``dq`` if given, else
the finite difference over the elapsed interval); velocity mode integrates the commanded ``dq``
exactly. Faults can be injected for supervisor tests (``inject_fault``, ``set_ok``); like a real
backend, ``read`` and ``write`` never raise for device trouble. ``write`` raises ``ValueError``
for a malformed command (wrong length, NaN/Inf), which is a caller bug.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from machaon._validate import finite_array
from machaon.robot.backend import Clock
from machaon.robot.clock import FakeClock
from machaon.types import CommandMode, DeviceFault, JointCommand, JointState

_log = logging.getLogger(__name__)


class FakeBackend:
    """An ideal n-joint robot (see module docstring). Use as a context manager."""

    def __init__(
        self,
        dof: int,
        *,
        mass_matrix: np.ndarray | None = None,
        q0: np.ndarray | None = None,
        dq0: np.ndarray | None = None,
        joint_names: Sequence[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(dof, int) or dof < 1:
            raise ValueError(f"dof: must be a positive int, got {dof!r}")
        self._dof = dof
        if mass_matrix is None:
            M = np.eye(dof)
        else:
            M = finite_array("mass_matrix", mass_matrix, (dof, dof))
            if not np.allclose(M, M.T, atol=1e-12):
                raise ValueError("mass_matrix: must be symmetric")
            if np.linalg.eigvalsh(M).min() <= 0.0:
                raise ValueError("mass_matrix: must be positive definite")
        self._M = M.copy()
        self._Minv = None if np.array_equal(M, np.eye(dof)) else np.linalg.inv(M)
        self._q = np.zeros(dof) if q0 is None else finite_array("q0", q0, (dof,)).copy()
        self._dq = np.zeros(dof) if dq0 is None else finite_array("dq0", dq0, (dof,)).copy()
        if joint_names is None:
            joint_names = tuple(f"joint{i + 1}" for i in range(dof))
        if len(joint_names) != dof:
            raise ValueError(f"joint_names: expected {dof} names, got {len(joint_names)}")
        self._names = tuple(str(n) for n in joint_names)
        self._clock: Clock = FakeClock() if clock is None else clock
        self._t = self._clock.now()
        self._cmd = JointCommand.torque(np.zeros(dof))
        self._tau_ext = np.zeros(dof)
        self._wrench: np.ndarray | None = None
        self._pending_faults: list[DeviceFault] = []
        self._ok = True
        self._last_good = (self._q.copy(), self._dq.copy())
        self._closed = False
        self._last_was_position = False
        self._t_last_write = self._t
        self.writes = 0

    # -- Backend protocol -------------------------------------------------------------------

    @property
    def dof(self) -> int:
        return self._dof

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def mass_matrix(self) -> np.ndarray:
        """The constant joint-space mass matrix (copy)."""
        return self._M.copy()

    def read(self) -> JointState:
        """Integrate up to ``clock.now()`` and return the state (``ok=False`` after ``close``)."""
        if self._closed:
            q, dq = self._last_good
            fault = DeviceFault("fake", "closed", "backend is closed", persistent=True)
            return JointState(self._t, q.copy(), dq.copy(), np.zeros(self._dof), None, (fault,), False)
        self._integrate(self._clock.now())
        faults = tuple(self._pending_faults)
        self._pending_faults.clear()
        if self._ok:
            self._last_good = (self._q.copy(), self._dq.copy())
            q, dq = self._q.copy(), self._dq.copy()
        else:
            q, dq = self._last_good[0].copy(), self._last_good[1].copy()
        tau = self._cmd.tau.copy() if self._cmd.mode is CommandMode.TORQUE else np.zeros(self._dof)
        wrench = None if self._wrench is None else self._wrench.copy()
        return JointState(self._t, q, dq, tau, wrench, faults, self._ok)

    def write(self, cmd: JointCommand) -> None:
        """Apply ``cmd`` from now on (zero-order hold). Malformed commands raise ``ValueError``."""
        n = self._dof
        if cmd.mode is CommandMode.TORQUE:
            finite_array("cmd.tau", cmd.tau, (n,))
        elif cmd.mode is CommandMode.POSITION:
            finite_array("cmd.q", cmd.q, (n,))
            if cmd.dq is not None:
                finite_array("cmd.dq", cmd.dq, (n,))
        elif cmd.mode is CommandMode.VELOCITY:
            finite_array("cmd.dq", cmd.dq, (n,))
        else:  # pragma: no cover - enum is closed
            raise ValueError(f"cmd.mode: unknown mode {cmd.mode!r}")
        if self._closed:
            return
        self._integrate(self._clock.now())
        # Keep a private copy: callers may reuse their arrays for the next cycle.
        cmd = JointCommand(
            cmd.mode,
            tau=None if cmd.tau is None else np.array(cmd.tau, dtype=np.float64),
            q=None if cmd.q is None else np.array(cmd.q, dtype=np.float64),
            dq=None if cmd.dq is None else np.array(cmd.dq, dtype=np.float64),
        )
        self._cmd = cmd
        self.writes += 1
        if cmd.mode is CommandMode.POSITION:
            # Ideal position tracking: the joints are where they were told to be; the reported
            # velocity is the feed-forward if given, else the step over the last write interval.
            dt = self._t - self._t_last_write
            if cmd.dq is not None:
                self._dq = cmd.dq.copy()
            elif self._last_was_position and dt > 0.0:
                self._dq = (cmd.q - self._q) / dt
            else:
                self._dq = np.zeros(n)
            self._q = cmd.q.copy()
        self._last_was_position = cmd.mode is CommandMode.POSITION
        self._t_last_write = self._t

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> FakeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- test hooks ---------------------------------------------------------------------------

    def set_external_torque(self, tau_ext: np.ndarray) -> None:
        """A constant external joint torque (N m) acting from now on, e.g. a contact or a load."""
        self._integrate(self._clock.now())
        self._tau_ext = finite_array("tau_ext", tau_ext, (self._dof,)).copy()

    def set_wrench_tool(self, wrench: np.ndarray | None) -> None:
        """The tool wrench [f; m] (base frame) reported in ``JointState.wrench_tool``; None: no sensor."""
        self._wrench = None if wrench is None else finite_array("wrench", wrench, (6,)).copy()

    def inject_fault(self, fault: DeviceFault) -> None:
        """Report ``fault`` in the next ``read``."""
        self._pending_faults.append(fault)

    def set_ok(self, ok: bool) -> None:
        """Make readings untrustworthy (``ok=False``, last good q/dq) or trustworthy again."""
        self._ok = bool(ok)

    def set_state(self, q: np.ndarray, dq: np.ndarray | None = None) -> None:
        """Teleport the joints (tests only)."""
        self._integrate(self._clock.now())
        self._q = finite_array("q", q, (self._dof,)).copy()
        self._dq = np.zeros(self._dof) if dq is None else finite_array("dq", dq, (self._dof,)).copy()

    # -- integration ---------------------------------------------------------------------------

    def _integrate(self, t: float) -> None:
        h = t - self._t
        if h <= 0.0:
            return
        cmd = self._cmd
        if cmd.mode is CommandMode.TORQUE:
            a = cmd.tau + self._tau_ext
            if self._Minv is not None:
                a = self._Minv @ a
            self._q = self._q + self._dq * h + 0.5 * a * h * h
            self._dq = self._dq + a * h
        elif cmd.mode is CommandMode.VELOCITY:
            self._dq = cmd.dq.copy()
            self._q = self._q + self._dq * h
        self._t = t
