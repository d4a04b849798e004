"""``AxisHoldController``: the control-rate controller that holds the drill on the planned axis and drills.

It holds the drill tip on the axis under ``machaon.control.CartesianImpedance`` with task-frame
gains (stiff across the axis, soft along it), a ``LineGuide`` and a ``DepthStop`` fixture, advances
the depth at the feed rate while drilling, compensates the measured axial thrust (flange
force/torque sensor) and runs the breach detector on it. Base frame, metres, seconds.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass

import numpy as np

from machaon._validate import finite_array, unit_vector
from machaon.control.fixtures import DepthStop, LineGuide
from machaon.control.impedance import CartesianGains, CartesianImpedance
from machaon.control.supervisor import Supervisor
from machaon.ortho.drilling import BreachDetector
from machaon.types import JointCommand, JointState

log = logging.getLogger(__name__)

MM = 1e-3


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class Phase(enum.Enum):
    ALIGN = "align"
    DRILL = "drill"
    PAUSED = "paused"
    STOPPED = "stopped"
    RETRACT = "retract"


@dataclass(frozen=True)
class AxisGains:
    """Task-frame gains of the axis hold (N/m, N m/rad) and fixture stiffness (N/m)."""

    k_across: float = 5000.0
    k_along: float = 1500.0
    k_along_drill: float = 8000.0
    k_rot_across: float = 150.0
    k_rot_about: float = 10.0
    damping_ratio: float = 1.0
    k_line: float = 2000.0
    k_depth: float = 30000.0
    d_depth: float = 300.0


class AxisHoldController:
    """Holds the drill tip on the planned axis at depth ``s`` and drills (see module docstring).

    ``impedance`` is a ``CartesianImpedance`` on the chain whose tip is the drill tip, built with
    ``CartesianGains.axial`` (task frame = the target frame, z along the axis). The axis comes from
    :meth:`set_axis` at camera rate (base frame). Depth ``s`` is measured from the planned entry
    along the axis (negative above it). During ``DRILL`` the commanded depth grows at ``feed_m_s``
    up to ``length_m`` (the depth stop); the ``DepthStop`` fixture makes the planned depth a stiff
    wall for the actual tool. The measured axial force (``state.wrench_tool``) goes to the breach
    detector, whose trip stops the advance (the commanded depth freezes).
    """

    def __init__(
        self,
        impedance: CartesianImpedance,
        gains: AxisGains,
        length_m: float,
        *,
        feed_m_s: float = 2e-3,
        retract_m_s: float = 20e-3,
        standoff_m: float = 0.02,
        air_gap_m: float = 0.002,
        smooth_s: float = 0.03,
        preload_m: float = 0.3e-3,
        detector: BreachDetector | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.imp = impedance
        self.gains = gains
        self.length_m = float(length_m)
        self.feed_m_s = float(feed_m_s)
        self.retract_m_s = float(retract_m_s)
        self.standoff_m = float(standoff_m)
        self.air_gap_m = float(air_gap_m)
        self.smooth_s = float(smooth_s)
        self.preload_m = float(preload_m)
        self._meas_entry = np.zeros(3)
        self._meas_axis = np.array([0.0, 0.0, 1.0])
        self.detector = detector
        self.supervisor = supervisor
        self.phase = Phase.ALIGN
        self.s_cmd = -self.standoff_m
        self.entry: np.ndarray | None = None
        self.axis: np.ndarray | None = None
        self.v_axis = np.zeros(3)
        self.x_ref: np.ndarray | None = None
        self.axial_force_n = 0.0
        self.breach = False
        self.depth_stop = False
        self._t_prev: float | None = None
        self._f_lp = 0.0

    def set_axis(self, entry_base: np.ndarray, axis_base: np.ndarray, v_base: np.ndarray | None = None) -> None:
        """New axis estimate (camera rate): entry point, direction into the bone, and its velocity.

        Between camera frames the controller moves the axis on with ``v_base`` and blends into each
        new estimate over ``smooth_s`` (a first-order filter at control rate), so the target does
        not step at camera rate.
        """
        self._meas_entry = finite_array("entry_base", entry_base, (3,)).copy()
        self._meas_axis = unit_vector("axis_base", axis_base)
        self.v_axis = np.zeros(3) if v_base is None else finite_array("v_base", v_base, (3,)).copy()
        if self.entry is None or self.axis is None:
            self.entry, self.axis = self._meas_entry.copy(), self._meas_axis.copy()
        self._update_fixtures()  # at camera rate: the fixtures are walls, small steps do not matter
        if self.supervisor is not None:
            self.supervisor.target_updated()

    def _update_fixtures(self) -> None:
        assert self.entry is not None and self.axis is not None
        g = self.gains
        line = LineGuide(self.entry, self.axis, k=g.k_line, d=0.0)
        stop = DepthStop(self.entry, self.axis, self.length_m, k=g.k_depth, d=g.d_depth)
        self.imp.fixtures = line + stop

    def set_phase(self, phase: Phase) -> None:
        if not isinstance(phase, Phase):
            raise ValueError(f"phase: expected a Phase, got {phase!r}")
        if phase is Phase.DRILL and self.detector is not None:
            if self.phase is Phase.ALIGN:
                self.detector.reset()
            elif self.phase is Phase.PAUSED:
                self.detector.rearm()
        g = self.gains
        if phase is Phase.DRILL and self.phase is Phase.ALIGN:
            # the feed is position-controlled: a stiffer axial spring keeps the lag behind the
            # commanded depth small under thrust (the soft axial hold is for aligning)
            self.imp.set_gains(self._axial_gains(g.k_along_drill), ramp_s=0.3)
        elif phase is Phase.RETRACT:
            self.imp.set_gains(self._axial_gains(g.k_along), ramp_s=0.3)
        self.phase = phase

    def _axial_gains(self, k_along: float) -> CartesianGains:
        g = self.gains
        return CartesianGains.axial(g.k_across, k_along, g.k_rot_across, g.k_rot_about, g.damping_ratio)

    def depth(self, p_base: np.ndarray) -> float:
        """Depth of a base-frame point along the current axis (m)."""
        assert self.entry is not None and self.axis is not None
        return float(self.axis @ (p_base - self.entry))

    def lateral_error(self, p_base: np.ndarray) -> float:
        assert self.entry is not None and self.axis is not None
        d = p_base - self.entry
        return float(np.linalg.norm(d - (self.axis @ d) * self.axis))

    def _target(self) -> np.ndarray:
        assert self.entry is not None and self.axis is not None
        z = self.axis
        x = self.x_ref if self.x_ref is not None else np.array([1.0, 0.0, 0.0])
        x = x - (x @ z) * z
        if np.linalg.norm(x) < 1e-6:
            x = np.cross(z, [0.0, 1.0, 0.0])
        x = _unit(x)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2] = x, np.cross(z, x), z
        T[:3, 3] = self.entry + self.s_cmd * z
        return T

    def on_activate(self, state: JointState, t: float) -> None:
        T = self.imp.chain.fk(state.q)
        self.x_ref = T[:3, 0].copy()
        self._t_prev = t
        if self.entry is not None:
            self.imp.set_target(self._target())
        self.imp.on_activate(state, t)

    def update(self, state: JointState, t: float) -> JointCommand:
        dt = 0.0 if self._t_prev is None else max(t - self._t_prev, 0.0)
        self._t_prev = t
        if self.entry is None or self.axis is None:
            raise ValueError("axis hold: no axis set")
        if dt > 0:
            # carry the measured axis on with the patient's velocity, and blend the held axis into it
            self._meas_entry = self._meas_entry + self.v_axis * dt
            a = min(1.0, dt / self.smooth_s)
            self.entry = self.entry + self.v_axis * dt + a * (self._meas_entry - self.entry - self.v_axis * dt)
            self.axis = _unit(self.axis + a * (self._meas_axis - self.axis))
        # axial force that the bone exerts against the drill, >= 0 when pushing back
        f_axial = 0.0
        if state.wrench_tool is not None:
            f_axial = max(-float(np.asarray(state.wrench_tool)[:3] @ self.axis), 0.0)
        a = min(1.0, dt * 2 * math.pi * 20.0) if dt > 0 else 1.0
        self._f_lp += a * (f_axial - self._f_lp)
        self.axial_force_n = self._f_lp
        if self.phase is Phase.DRILL:
            if self.detector is not None and self.detector.update(f_axial, self.s_cmd):
                # stop where the tip is (it lags behind the command under thrust): no plunge
                self.s_cmd = self.depth(self.imp.chain.fk(state.q)[:3, 3])
                self.breach = True
                self.phase = Phase.STOPPED
                log.warning("breach detected at depth %.1f mm: drill stopped", self.s_cmd / MM)
            else:
                # rapid advance through air down to just above the entry, then the feed rate; the
                # command ends a little past the stop so that the tip, which lags under thrust,
                # still reaches the DepthStop wall with a small preload (no force fall-off there)
                rate = self.feed_m_s if self.s_cmd >= -self.air_gap_m else self.retract_m_s
                self.s_cmd = min(self.s_cmd + rate * dt, self.length_m + self.preload_m)
        elif self.phase is Phase.RETRACT:
            self.s_cmd = max(self.s_cmd - self.retract_m_s * dt, -self.standoff_m)
        # target moves with the patient: the axis velocity and the feed, as a feed-forward twist
        v_d = np.zeros(6)
        v_d[:3] = self.v_axis
        if self.phase is Phase.DRILL:
            v_d[:3] += (self.feed_m_s if self.s_cmd >= -self.air_gap_m else self.retract_m_s) * self.axis
        self.imp.set_target(self._target(), v_d=v_d)
        return self.imp.update(state, t)
