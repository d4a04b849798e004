"""Closed-loop walking runs: the assist controller on a leg-simulation backend, through ControlLoop.

``run_walk(sim, ...)`` calibrates EMG on the simulated wearer's MVC trial, builds the
``AssistController`` on the sim's sensor stream, runs ``machaon.robot.loop.ControlLoop`` with a
``Supervisor`` set for a wearable exo (joint ranges, torque caps, and ``torque_off`` as the stop
action: a stopped exo must go limp, not hold the leg), and returns the ground-truth trace, the
controller's per-cycle status and the gait metrics. The backend is any object with the LegSim
interface (``sensors``, ``mvc_trial``, ``trace``, ``wearer_phase``); this module does not pick
it (layer 6 does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from machaon.control.supervisor import SafetyConfig, Supervisor
from machaon.exo.controller import AssistConfig, AssistController, AssistStatus
from machaon.exo.emg import EMGConfig, MVCNormaliser, envelope_offline
from machaon.exo.metrics import GaitReport, gait_report
from machaon.exo.reference import ReferenceGait, load_reference_gait
from machaon.robot.loop import ControlLoop, LoopStats, Recorder
from machaon.types import JointCommand, JointState

if TYPE_CHECKING:  # the simulated wearer; imported only for its type (importing it loads PyBullet)
    from machaon.sim.legs import LegSim, LegTrace

log = logging.getLogger(__name__)


def exo_safety_config(tau_max_nm: tuple[float, ...]) -> SafetyConfig:
    """Supervisor limits for the 4 exo joints (hip_l, knee_l, hip_r, knee_r): rad, rad/s, N m."""
    return SafetyConfig(
        q_min=np.radians([-35.0, -8.0, -35.0, -8.0]),
        q_max=np.radians([115.0, 115.0, 115.0, 115.0]),
        dq_max=15.0,
        tau_max=np.asarray(tau_max_nm, dtype=np.float64),
        tool_speed_max=None,
        target_timeout_s=None,
        stop_action="torque_off",
        brake_damping=2.0,
    )


@dataclass(frozen=True)
class StatusTrace:
    """Controller status per control cycle: ``t`` (n,), ``phase``/``phase_ref`` (n, 2),
    ``tau``/``tau_myo``/``tau_profile``/``tau_impedance``/``stiffness``/``q_ref`` (n, 4),
    ``activation`` (n, C) normalised EMG envelopes, ``assisting`` (n,) bool."""

    t: np.ndarray
    phase: np.ndarray
    phase_ref: np.ndarray
    tau: np.ndarray
    tau_myo: np.ndarray
    tau_profile: np.ndarray
    tau_impedance: np.ndarray
    stiffness: np.ndarray
    q_ref: np.ndarray
    activation: np.ndarray
    assisting: np.ndarray

    @staticmethod
    def from_statuses(st: list[AssistStatus]) -> StatusTrace:
        def arr(name: str, width: int) -> np.ndarray:
            return np.asarray([getattr(s, name) for s in st], dtype=np.float64).reshape(-1, width)

        n_act = st[0].activation.size if st else 8
        return StatusTrace(
            t=np.asarray([s.t for s in st], dtype=np.float64),
            phase=arr("phase", 2),
            phase_ref=arr("phase_ref", 2),
            tau=arr("tau", 4),
            tau_myo=arr("tau_myo", 4),
            tau_profile=arr("tau_profile", 4),
            tau_impedance=arr("tau_impedance", 4),
            stiffness=arr("stiffness", 4),
            q_ref=arr("q_ref", 4),
            activation=arr("activation", n_act),
            assisting=np.asarray([s.mode == "assist" for s in st], dtype=bool),
        )


class RecordingController:
    """Wraps a controller and keeps its ``status`` of every cycle (for plots and reports)."""

    def __init__(self, inner: AssistController) -> None:
        self.inner = inner
        self.statuses: list[AssistStatus] = []

    def update(self, state: JointState, t: float) -> JointCommand:
        cmd = self.inner.update(state, t)
        if self.inner.status is not None:
            self.statuses.append(self.inner.status)
        return cmd


@dataclass(frozen=True)
class WalkResult:
    """One simulated walk: ground truth (``trace``), controller status, metrics, loop timing."""

    assist: bool
    trace: LegTrace
    wearer_phase: np.ndarray
    status: StatusTrace
    report: GaitReport
    loop: LoopStats
    fallbacks: int


def calibrate_mvc(sim: LegSim, emg_cfg: EMGConfig, seconds: float = 2.0) -> MVCNormaliser:
    """MVC normaliser from the wearer's MVC trial (the sim's ``mvc_trial``), as done at a fitting."""
    emg = sim.mvc_trial(seconds)
    env = envelope_offline(emg, emg_cfg)
    return MVCNormaliser.from_trial(env[int(0.5 * emg_cfg.fs_hz) :], emg_cfg.fs_hz)


def run_walk(
    sim: LegSim,
    duration_s: float,
    cfg: AssistConfig | None = None,
    emg_cfg: EMGConfig | None = None,
    reference: ReferenceGait | None = None,
    rate_hz: float = 1000.0,
    skip_s: float = 3.0,
    events: list[tuple[float, Callable[[LegSim], None]]] | None = None,
    recorder: Recorder | None = None,
) -> WalkResult:
    """Walk for ``duration_s`` (s) with the assist controller on ``sim``; metrics after ``skip_s``.

    ``events``: (time s, action(sim)) pairs applied when the walk reaches that time, e.g. to
    inject a sensor fault (``lambda s: setattr(s.sensors, "dropout", True)``). ``recorder``: the
    loop's recorder/observer (a run log, a live view; ``machaon.robot.observers``).
    """
    cfg = cfg or AssistConfig()
    emg_cfg = emg_cfg or EMGConfig()
    ref = reference or load_reference_gait()
    mvc = calibrate_mvc(sim, emg_cfg)
    ctrl = AssistController(sim.sensors, mvc, cfg, emg_cfg, ref)
    rec = RecordingController(ctrl)
    sup = Supervisor(exo_safety_config(cfg.tau_max_nm))
    loop = ControlLoop(sim, rec, sup, rate_hz=rate_hz, recorder=recorder)
    t_done = 0.0
    for t_ev, action in sorted(events or [], key=lambda e: e[0]):
        if t_done < t_ev < duration_s:
            loop.run_for(t_ev - t_done)
            t_done = t_ev
            action(sim)
    stats = loop.run_for(duration_s - t_done)
    tr = sim.trace()
    phase = np.array([sim.wearer_phase(t) for t in tr.t]).reshape(-1, 2)
    report = gait_report(tr.t, tr.q, tr.tau_wearer, tr.contact, ref, phase, skip_s=skip_s)
    if sup.last_fault is not None:
        log.warning("supervisor fault during the walk: %s", sup.last_fault)
    return WalkResult(cfg.assist, tr, phase, StatusTrace.from_statuses(rec.statuses), report, stats,
                      ctrl.fallback_count)
