"""The standard gait report of a gait-lab trial: timing, symmetry, joint angles and EMG per gait cycle.

``analyze_trial(trial, detection)`` takes a ``GaitTrial`` and its ``EventDetection`` and computes:

- temporal parameters per side: stride time, step time (contralateral heel strike to this heel
  strike), stance and swing as % of the stride (mean, SD, n over complete cycles), cadence
  (steps/min over the trial) and Robinson symmetry indices |L - R| / mean (0 = symmetric,
  a fraction);
- sagittal joint angles (hip, knee, ankle flexion, degrees in the report) time-normalised to
  0-100 % of each side's cycle (heel strike to heel strike), mean and SD over cycles. They come
  from the file's angle outputs (Plug-in Gait ``LHipAngles`` ..., x = flexion) when it has them,
  else from markers projected on the sagittal plane (progression and vertical, as
  ``machaon.exo.events`` finds them): thigh = hip centre -> knee, shank = knee -> ankle, foot =
  heel -> toe; the hip centre is LHJC/RHJC when present, else Bell's regression from the ASIS and
  PSIS markers; hip flexion is relative to the pelvis when ASIS/PSIS are there, else to the vertical;
- EMG envelopes (band-pass, mains notches, rectification, 6 Hz low-pass, zero-phase since the
  whole trial is known) of the usable channels (see ``machaon.exo.emg_signals``), time-normalised
  to each side's cycles, mean and SD, in volts and as % of the channel's peak mean envelope.
  A channel's side comes from its label (``*_L``/``*_R``, ``L*``/``R*`` prefixes, left/right).

``write_gait_report(out_dir, ...)`` writes ``summary.json``, ``events.csv`` and the plots
(``timing.png``, ``angles.png``, ``emg.png``) into a temporary directory and moves them into
``out_dir`` only when all are written, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from machaon.exo.emg import design_filters
from machaon.exo.emg_signals import emg_config_for, prepare_emg
from machaon.exo.events import SIDES, EventDetection, agreement, lab_axes, lowpass_zero_phase, write_events_csv
from machaon.exo.gaitfile import GaitFileError, GaitTrial
from machaon.exo.imu import symmetry_index

N_POINTS = 101  # 0, 1, ..., 100 % of the cycle
JOINTS = ("hip", "knee", "ankle")
_FILE_ANGLE = {"hip": "HipAngles", "knee": "KneeAngles", "ankle": "AnkleAngles"}


def _stats(x: list[float]) -> dict:
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size)}


def cycles(detection: EventDetection, side: str, min_s: float = 0.4, max_s: float = 2.5) -> list[tuple[float, float]]:
    """(heel strike, next heel strike) pairs of one side whose duration is plausible (s)."""
    hs = detection.times(side, "heel_strike")
    return [(float(a), float(b)) for a, b in zip(hs[:-1], hs[1:], strict=True) if min_s <= b - a <= max_s]


def temporal_parameters(detection: EventDetection, duration_s: float) -> dict:
    """Stride/step times, stance/swing %, cadence and symmetry indices (see module doc)."""
    out: dict = {"stride_time_s": {}, "step_time_s": {}, "stance_pct": {}, "swing_pct": {}}
    for side in SIDES:
        other = "right" if side == "left" else "left"
        to = detection.times(side, "toe_off")
        hs_o = detection.times(other, "heel_strike")
        stride, stance, step = [], [], []
        for a, b in cycles(detection, side):
            stride.append(b - a)
            t_to = to[(to > a) & (to < b)]
            if t_to.size == 1:
                stance.append(100.0 * (t_to[0] - a) / (b - a))
            prev = hs_o[(hs_o > a) & (hs_o < b)]
            if prev.size == 1:
                step.append(b - prev[0])
        out["stride_time_s"][side] = _stats(stride)
        out["step_time_s"][side] = _stats(step)
        out["stance_pct"][side] = _stats(stance)
        out["swing_pct"][side] = _stats([100.0 - s for s in stance])
    hs_all = np.sort(np.concatenate([detection.times(s, "heel_strike") for s in SIDES]))
    strides = [out["stride_time_s"][s]["mean"] for s in SIDES if out["stride_time_s"][s]["mean"]]
    if hs_all.size >= 3:
        cadence = 60.0 * (hs_all.size - 1) / float(hs_all[-1] - hs_all[0])
    elif strides:
        cadence = 120.0 / float(np.mean(strides))
    else:
        cadence = None
    out["cadence_steps_min"] = cadence
    si = {}
    for key in ("stride_time_s", "step_time_s", "stance_pct", "swing_pct"):
        left, right = out[key]["left"]["mean"], out[key]["right"]["mean"]
        v = symmetry_index(left, right) if left is not None and right is not None else math.nan
        si[key.replace("_s", "").replace("_pct", "")] = None if not math.isfinite(v) else float(v)
    out["symmetry_index"] = si
    return out


def normalise_cycles(t: np.ndarray, x: np.ndarray, cyc: list[tuple[float, float]]) -> np.ndarray:
    """(n_cycles, N_POINTS) resampling of x(t) over each cycle; cycles outside the data are skipped."""
    rows = []
    for a, b in cyc:
        if a < t[0] or b > t[-1]:
            continue
        seg = np.linspace(a, b, N_POINTS)
        y = np.interp(seg, t, x)
        if np.isfinite(y).all():
            rows.append(y)
    return np.array(rows).reshape(-1, N_POINTS)


# -- joint angles ----------------------------------------------------------------------------------


def _incl(d: np.ndarray, prog: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Inclination (rad) from the downward vertical, positive with the distal end forward."""
    return np.arctan2(np.einsum("ij,ij->i", d, prog), -(d @ up))


def _hip_centres(trial: GaitTrial) -> tuple[dict[str, np.ndarray] | None, str]:
    hjc = {s: trial.marker(("L" if s == "left" else "R") + "HJC") for s in SIDES}
    if all(v is not None for v in hjc.values()):
        return hjc, "LHJC/RHJC"
    la, ra = trial.marker("LASI"), trial.marker("RASI")
    back = [m for n in ("LPSI", "RPSI", "SACR") if (m := trial.marker(n)) is not None]
    if la is None or ra is None or not back:
        return None, ""
    # Bell et al. (1990) regression in the pelvis frame, scaled by the inter-ASIS width
    mid = 0.5 * (la + ra)
    lat = la - ra
    w = np.linalg.norm(lat, axis=1, keepdims=True)
    lat = lat / w
    fwd = mid - np.mean(back, axis=0)
    fwd = fwd - np.einsum("ij,ij->i", fwd, lat)[:, None] * lat
    fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
    up = np.cross(fwd, lat)  # x forward, y left, z up: right-handed
    out = {}
    for s, sign in (("left", 1.0), ("right", -1.0)):
        out[s] = mid + w * (sign * 0.36 * lat - 0.19 * fwd - 0.30 * up)
    return out, "Bell regression from ASIS/PSIS"


def _file_angles(trial: GaitTrial) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """The flexion angles (rad, per side and joint) the file itself holds (e.g. Plug-in Gait's
    LKneeAngles x), and their source ("file") per '<side>_<joint>'."""
    angles: dict[str, dict[str, np.ndarray]] = {s: {} for s in SIDES}
    source: dict[str, str] = {}
    for s in SIDES:
        for j in JOINTS:
            a = trial.angle(("L" if s == "left" else "R") + _FILE_ANGLE[j])
            if a is not None:
                angles[s][j] = a[:, 0]
                source[f"{s}_{j}"] = "file"
    return angles, source


def _pelvic_tilt(trial: GaitTrial, prog: np.ndarray, up: np.ndarray) -> np.ndarray | None:
    """Anterior pelvic tilt (rad, per frame) from the ASIS and PSIS/sacrum markers in the lab's
    progression/up axes; None without those markers."""
    la, ra = trial.marker("LASI"), trial.marker("RASI")
    back = [m for n in ("LPSI", "RPSI", "SACR") if (m := trial.marker(n)) is not None]
    if la is None or ra is None or not back:
        return None
    d = 0.5 * (la + ra) - np.mean(back, axis=0)  # PSIS -> ASIS: anterior tilt when it points down
    return np.arctan2(-(d @ up), np.einsum("ij,ij->i", d, prog))


def _segment(a: np.ndarray | None, b: np.ndarray | None, fs: float) -> np.ndarray | None:
    """The segment from marker ``a`` to marker ``b`` (m, per frame), low-passed at 6 Hz (gaps as 0);
    None when a marker is missing or never seen."""
    if a is None or b is None:
        return None
    return lowpass_zero_phase(np.nan_to_num(b - a), fs, 6.0) if np.isfinite(b - a).any() else None


def sagittal_joint_angles(trial: GaitTrial) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str], np.ndarray]:
    """Sagittal hip/knee/ankle flexion (rad) per side and joint, with where each came from, and times (s)."""
    fs = trial.point_rate_hz
    t = np.arange(trial.n_frames) / fs if fs > 0 else np.zeros(0)
    angles, source = _file_angles(trial)
    if all(len(angles[s]) == 3 for s in SIDES) or not trial.markers_m:
        return angles, source, t
    hips, hip_src = _hip_centres(trial)
    pel = [m for n in ("LASI", "RASI", "LPSI", "RPSI", "SACR", "LHJC", "RHJC") if (m := trial.marker(n)) is not None]
    feet = [m for n in ("LHEE", "RHEE", "LTOE", "RTOE", "LANK", "RANK") if (m := trial.marker(n)) is not None]
    if not pel or not feet:
        return angles, source, t
    pelvis = np.nanmean(pel, axis=0)
    ok = np.isfinite(pelvis).all(axis=1) & np.isfinite(np.nanmean(feet, axis=0)).all(axis=1)
    if ok.sum() < fs:
        return angles, source, t
    idx = np.flatnonzero(ok)
    window = slice(int(idx[0]), int(idx[-1]) + 1)
    try:
        axes = lab_axes(trial, np.nan_to_num(pelvis), np.nan_to_num(np.nanmean(feet, axis=0)), window)
    except GaitFileError:
        return angles, source, t
    prog = np.full((trial.n_frames, 3), np.nan)
    prog[window] = axes.progression
    up = axes.up
    tilt = _pelvic_tilt(trial, prog, up)
    for s in SIDES:
        p = "L" if s == "left" else "R"
        knee, ank, hee, toe = (trial.marker(p + n) for n in ("KNE", "ANK", "HEE", "TOE"))
        thigh = _segment(hips[s], knee, fs) if hips else None
        shank = _segment(knee, ank, fs)
        foot = _segment(hee, toe, fs)
        a_th = _incl(thigh, prog, up) if thigh is not None else None
        a_sh = _incl(shank, prog, up) if shank is not None else None
        if a_th is not None and "hip" not in angles[s]:
            angles[s]["hip"] = a_th + (tilt if tilt is not None else 0.0)
            source[f"{s}_hip"] = f"markers ({hip_src}; relative to the {'pelvis' if tilt is not None else 'vertical'})"
        if a_th is not None and a_sh is not None and "knee" not in angles[s]:
            angles[s]["knee"] = a_th - a_sh
            source[f"{s}_knee"] = "markers"
        if a_sh is not None and foot is not None and "ankle" not in angles[s]:
            # 0 when the foot is at right angles to the shank, positive in dorsiflexion
            f_pitch = np.arctan2(foot @ up, np.einsum("ij,ij->i", foot, prog))
            angles[s]["ankle"] = f_pitch - a_sh
            source[f"{s}_ankle"] = "markers (heel-toe line; offset by the foot's own pitch)"
    return angles, source, t


# -- EMG -------------------------------------------------------------------------------------------


def emg_side(label: str) -> str | None:
    """'left'/'right' from an EMG label (``RF_L``, ``L_RF``, ``LRF``, ``left rectus``), else None."""
    u = label.upper().replace("-", "_").replace(" ", "_")
    parts = u.split("_")
    if "LEFT" in parts or u.endswith("_L") or u.startswith("L_") or "LEFT" in u:
        return "left"
    if "RIGHT" in parts or u.endswith("_R") or u.startswith("R_") or "RIGHT" in u:
        return "right"
    if len(u) > 1 and u[0] in "LR" and u[1].isalpha() and not u.startswith(("EMG", "RF", "LG")):
        return "left" if u[0] == "L" else "right"
    return None


def emg_envelopes(trial: GaitTrial, mains_hz: float | None = None) -> tuple[dict, dict, np.ndarray]:
    """Zero-phase envelopes (V) of the usable EMG channels, the channel checks, and times (s)."""
    prep = prepare_emg(trial.emg_v, trial.analog_rate_hz, mains_hz)
    envs: dict[str, np.ndarray] = {}
    if not prep.emg_v:
        return envs, {}, np.zeros(0)
    cfg = emg_config_for(trial.analog_rate_hz, prep.mains_hz, envelope_hz=6.0)
    filt = design_filters(cfg)
    for k, x in prep.usable().items():
        y = np.abs(signal.sosfiltfilt(filt.sos_pre, x))
        envs[k] = np.maximum(signal.sosfiltfilt(filt.sos_env, y), 0.0)
    n = max(len(v) for v in prep.emg_v.values())
    checks = {k: {"status": c.status, "dc_offset_v": c.dc_offset_v, "saturated_fraction": c.saturated_fraction,
                  "band_rms_v": c.band_rms_v, "mains_fraction": c.mains_fraction,
                  "unit": trial.emg_units.get(k, "V")} for k, c in prep.checks.items()}
    checks["_mains_hz"] = prep.mains_hz
    return envs, checks, np.arange(n) / trial.analog_rate_hz


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaitLabReport:
    """Everything ``write_gait_report`` writes: the JSON summary and the curves behind the plots."""

    summary: dict
    angle_curves: dict  # side -> joint -> (n_cycles, N_POINTS) deg
    emg_curves: dict  # label -> (side, (n_cycles, N_POINTS) V)
    detection: EventDetection


def _angle_summary(c: np.ndarray, source: str | None) -> dict:
    """Report entry of one joint angle from its cycles ``c`` (cycles x ``N_POINTS``, deg): extremes,
    range, mean and SD curves (SD 0 for a single cycle)."""
    m = c.mean(axis=0)
    return {
        "source": source,
        "cycles": int(len(c)),
        "max_deg": float(m.max()),
        "min_deg": float(m.min()),
        "rom_deg": float(m.max() - m.min()),
        "mean_deg": np.round(m, 2).tolist(),
        "sd_deg": np.round(c.std(axis=0, ddof=1) if len(c) > 1 else np.zeros(N_POINTS), 2).tolist(),
    }


def _emg_summary(c: np.ndarray, side: str) -> dict:
    """Report entry of one EMG channel from its envelope cycles ``c`` (cycles x ``N_POINTS``, V):
    the peak of the mean envelope, and the mean and SD curves in % of that peak."""
    m = c.mean(axis=0)
    peak = float(m.max()) if m.max() > 0 else 1.0
    return {
        "side": side,
        "cycles": int(len(c)),
        "peak_mean_envelope_v": float(m.max()),
        "mean_pct_of_peak": np.round(100 * m / peak, 2).tolist(),
        "sd_pct_of_peak": np.round(100 * (c.std(axis=0, ddof=1) if len(c) > 1 else 0 * m) / peak, 2).tolist(),
    }


def analyze_trial(trial: GaitTrial, detection: EventDetection, mains_hz: float | None = None) -> GaitLabReport:
    """The gait report of ``trial`` with its events (see module doc). Raises ``GaitFileError`` when
    no side has a complete cycle."""
    cyc = {s: cycles(detection, s) for s in SIDES}
    if not any(cyc.values()):
        raise GaitFileError(f"{trial.path}: no complete gait cycle (two heel strikes of one side) in "
                            f"{trial.duration_s:.1f} s; a longer trial is needed")
    summary: dict = {
        "file": trial.path,
        "duration_s": trial.duration_s,
        "event_source": detection.source,
        "events": detection.counts(),
        "cycles": {s: len(cyc[s]) for s in SIDES},
    }
    if trial.file_events:
        summary["file_events_agreement"] = agreement(detection, trial.file_events)
    summary.update(temporal_parameters(detection, trial.duration_s))
    angles, src, t = sagittal_joint_angles(trial)
    angle_curves: dict = {s: {} for s in SIDES}
    summary_angles: dict = {}
    for s in SIDES:
        for j, a in angles[s].items():
            c = np.degrees(normalise_cycles(t, a, cyc[s]))
            if not len(c):
                continue
            angle_curves[s][j] = c
            summary_angles.setdefault(j, {})[s] = _angle_summary(c, src.get(f"{s}_{j}"))
    summary["joint_angles"] = summary_angles
    envs, checks, t_emg = emg_envelopes(trial, mains_hz)
    emg_curves: dict = {}
    summary_emg: dict = {}
    for k, env in envs.items():
        side = emg_side(k)
        if side is None:
            continue
        c = normalise_cycles(t_emg, env, cyc[side])
        if not len(c):
            continue
        emg_curves[k] = (side, c)
        summary_emg[k] = _emg_summary(c, side)
    summary["emg"] = summary_emg
    summary["emg_channels"] = checks
    unsided = [k for k in envs if emg_side(k) is None]
    summary["notes"] = list(trial.notes) + list(detection.notes) + (
        [f"EMG {', '.join(unsided)}: side not in the label; not normalised to a cycle"] if unsided else [])
    return GaitLabReport(summary, angle_curves, emg_curves, detection)


def _plots(report: GaitLabReport, d: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report.summary
    pct = np.linspace(0, 100, N_POINTS)
    colors = {"left": "tab:red", "right": "tab:blue"}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, side in enumerate(SIDES):
        st = s["stance_pct"][side]["mean"]
        if st is not None:
            ax.barh(i, st, color=colors[side], alpha=0.8, label="stance" if i == 0 else None)
            ax.barh(i, 100 - st, left=st, color="lightgray", label="swing" if i == 0 else None)
    ax.set_yticks([0, 1], list(SIDES))
    ax.set_xlabel("% of the gait cycle")
    cad = s.get("cadence_steps_min")
    ax.set_title(f"cadence {cad:.0f} steps/min" if cad else "gait timing")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(d / "timing.png", dpi=100)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, j in zip(axes, JOINTS, strict=True):
        for side in SIDES:
            c = report.angle_curves.get(side, {}).get(j)
            if c is None:
                continue
            m, sd = c.mean(axis=0), c.std(axis=0)
            ax.plot(pct, m, color=colors[side], label=f"{side} (n={len(c)})")
            ax.fill_between(pct, m - sd, m + sd, color=colors[side], alpha=0.2)
        ax.set_title(f"{j} flexion")
        ax.set_xlabel("% gait cycle")
        ax.set_ylabel("deg")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(d / "angles.png", dpi=100)
    plt.close(fig)
    n = max(1, len(report.emg_curves))
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.8 * n + 0.6), squeeze=False)
    for ax, (k, (side, c)) in zip(axes[:, 0], report.emg_curves.items(), strict=False):
        m, sd = c.mean(axis=0) * 1e6, c.std(axis=0) * 1e6
        ax.plot(pct, m, color=colors[side])
        ax.fill_between(pct, m - sd, m + sd, color=colors[side], alpha=0.2)
        ax.set_ylabel(f"{k}\n(uV)", fontsize=8)
    if not report.emg_curves:
        axes[0, 0].text(0.5, 0.5, "no usable EMG channel", ha="center", va="center")
    axes[-1, 0].set_xlabel("% gait cycle")
    fig.tight_layout()
    fig.savefig(d / "emg.png", dpi=100)
    plt.close(fig)
    return ["timing.png", "angles.png", "emg.png"]


def write_gait_report(out_dir: str | Path, report: GaitLabReport) -> list[Path]:
    """Write summary.json, events.csv and the plots into ``out_dir`` all at once (see module doc)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(out) as tmp:
        write_events_csv(tmp / "events.csv", report.detection.events)
        names = ["events.csv", *_plots(report, tmp)]
        (tmp / "summary.json").write_text(json.dumps(report.summary, indent=2, allow_nan=False))
        names.append("summary.json")
    return [out / n for n in names]


class staged_dir:  # noqa: N801 - used as a context manager, reads like one
    """Context manager: a temporary directory beside ``target`` whose files move into ``target``
    (created if needed, same-named files replaced) when the block ends without an exception, and
    which is deleted otherwise, so ``target`` never holds half of a result."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}-", dir=self.target.parent))
        return self._tmp

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.target.mkdir(parents=True, exist_ok=True)
                for f in sorted(self._tmp.iterdir()):
                    os.replace(f, self.target / f.name)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


__all__ = [
    "JOINTS",
    "N_POINTS",
    "GaitLabReport",
    "analyze_trial",
    "cycles",
    "emg_envelopes",
    "emg_side",
    "sagittal_joint_angles",
    "normalise_cycles",
    "staged_dir",
    "temporal_parameters",
    "write_gait_report",
]
