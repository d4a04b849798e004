"""Gait metrics of a walk: contact events, step/stance-time symmetry, wearer effort, reference tracking.

Inputs are per-sample arrays (SI: s, rad, N m) such as the leg simulation's ground-truth trace.
The symmetry index is Robinson's |L - R| / ((L + R) / 2): 0 = perfectly symmetric.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from machaon.exo.imu import gait_timing, symmetry_index
from machaon.exo.reference import ReferenceGait


def contact_events(t: np.ndarray, contact: np.ndarray, min_hold_s: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Heel-strike and toe-off times (s) from a boolean foot-contact signal.

    Contact changes shorter than ``min_hold_s`` (bounces, chatter) are ignored: a heel strike is
    a rise that stays in contact for ``min_hold_s``, a toe off a fall that stays off as long.
    """
    t = np.asarray(t, dtype=np.float64)
    c = np.asarray(contact, dtype=bool)
    if t.size < 2:
        return np.zeros(0), np.zeros(0)
    dt = float(np.median(np.diff(t)))
    hold = max(1, int(round(min_hold_s / dt)))
    # Debounce: the state changes only after `hold` consecutive samples of the new value.
    state = bool(c[0])
    run = 0
    hs, to = [], []
    start = 0
    for i in range(1, c.size):
        if c[i] != state:
            if run == 0:
                start = i
            run += 1
            if run >= hold:
                state = bool(c[i])
                (hs if state else to).append(t[start])
                run = 0
        else:
            run = 0
    return np.asarray(hs), np.asarray(to)


@dataclass(frozen=True)
class GaitReport:
    """Summary of a walk. Times s, angles rad, torques N m; SI dimensionless (0 = symmetric)."""

    symmetry_index: float
    step_time_si: float
    stance_time_si: float
    swing_time_si: float
    stride_time_s: dict
    step_time_s: dict
    stance_time_s: dict
    cadence_steps_min: float
    hip_rom_rad: dict
    knee_rom_rad: dict
    rom_si: float
    wearer_effort_nm: dict
    tracking_rmse_rad: dict
    n_strides: dict

    def to_dict(self) -> dict:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(v: object) -> object:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def gait_report(
    t: np.ndarray,
    q: np.ndarray,
    tau_wearer: np.ndarray,
    contact: np.ndarray,
    reference: ReferenceGait,
    wearer_phase: np.ndarray | None = None,
    skip_s: float = 2.0,
) -> GaitReport:
    """Metrics of a walk after the first ``skip_s`` seconds (start-up transient).

    ``q``/``tau_wearer`` (n, 6) in (hip_l, knee_l, ankle_l, hip_r, knee_r, ankle_r) order,
    ``contact`` (n, 2) bool; ``wearer_phase`` (n, 2) intended phase per leg, used for tracking of
    the reference gait (RMS of reference - actual hip/knee angles). The headline
    ``symmetry_index`` is the mean of the step-time and stance-time symmetry indices.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2 or t[-1] - t[0] <= skip_s:
        raise ValueError(f"walk of {t[-1] - t[0] if t.size else 0.0:.2f} s is not longer than skip_s = {skip_s} s")
    keep = t >= t[0] + skip_s
    hs, to = {}, {}
    for s, side in enumerate(("l", "r")):
        h, o = contact_events(t, contact[:, s])
        hs[side] = h[h >= t[0] + skip_s]
        to[side] = o[o >= t[0] + skip_s]
    gt = gait_timing(hs, to)
    si_step = symmetry_index(gt.step_time_s["l"], gt.step_time_s["r"])
    si_stance = symmetry_index(gt.stance_time_s["l"], gt.stance_time_s["r"])
    si_swing = symmetry_index(gt.swing_time_s["l"], gt.swing_time_s["r"])
    qk = q[keep]
    hip_rom = {"l": float(np.ptp(qk[:, 0])), "r": float(np.ptp(qk[:, 3]))}
    knee_rom = {"l": float(np.ptp(qk[:, 1])), "r": float(np.ptp(qk[:, 4]))}
    rom_si = 0.5 * (symmetry_index(hip_rom["l"], hip_rom["r"]) + symmetry_index(knee_rom["l"], knee_rom["r"]))
    tw = tau_wearer[keep]
    effort = {"l": float(np.sqrt(np.mean(tw[:, 0:3] ** 2))), "r": float(np.sqrt(np.mean(tw[:, 3:6] ** 2)))}
    track = {"l": math.nan, "r": math.nan}
    if wearer_phase is not None:
        ph = np.asarray(wearer_phase)[keep]
        for s, side in enumerate(("l", "r")):
            ref = reference.angles(ph[:, s])[:, :2]
            track[side] = float(np.sqrt(np.mean((ref - qk[:, 3 * s : 3 * s + 2]) ** 2)))
    return GaitReport(
        symmetry_index=0.5 * (si_step + si_stance),
        step_time_si=si_step,
        stance_time_si=si_stance,
        swing_time_si=si_swing,
        stride_time_s=gt.stride_time_s,
        step_time_s=gt.step_time_s,
        stance_time_s=gt.stance_time_s,
        cadence_steps_min=gt.cadence_steps_min,
        hip_rom_rad=hip_rom,
        knee_rom_rad=knee_rom,
        rom_si=rom_si,
        wearer_effort_nm=effort,
        tracking_rmse_rad=track,
        n_strides={k: int(max(0, v.size - 1)) for k, v in hs.items()},
    )
