"""Reports of exo runs: ``report.json`` and plots (matplotlib, Agg backend, PNG).

Plots: EMG envelopes (normalised), gait phase (estimated vs intended), assist torque (with its
myoelectric / profile / impedance parts), joint angles (stride-averaged vs the reference gait,
with and without assist). JSON values are SI (s, rad, N m); symmetry indices are dimensionless
(0 = perfectly symmetric).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from machaon.exo.frames import EMG_CHANNELS  # noqa: E402
from machaon.exo.reference import ReferenceGait  # noqa: E402
from machaon.exo.walk import WalkResult  # noqa: E402

JOINTS = ("hip_l", "knee_l", "hip_r", "knee_r")


def _window(t: np.ndarray, seconds: float) -> np.ndarray:
    return t >= t[-1] - seconds


def plot_emg(res: WalkResult, path: Path, seconds: float = 3.3) -> None:
    st = res.status
    m = _window(st.t, seconds)
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    for side, ax in enumerate(axes):
        for c in range(4):
            ch = 4 * side + c
            ax.plot(st.t[m], st.activation[m, ch], label=EMG_CHANNELS[ch])
        ax.set_ylabel("envelope / MVC")
        ax.legend(loc="upper right", ncol=4, fontsize=8)
        mode = "assist" if res.assist else "no assist"
        ax.set_title(f"EMG envelopes, {'left' if side == 0 else 'right'} leg ({mode})")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_phase(res: WalkResult, path: Path, seconds: float = 3.3) -> None:
    st = res.status
    m = _window(st.t, seconds)
    tr = res.trace
    mt = _window(tr.t, seconds)
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(10, 5))
    for s, ax in enumerate(axes):
        ax.plot(tr.t[mt], res.wearer_phase[mt, s], "k-", lw=1, label="wearer's intended phase")
        ax.plot(st.t[m], st.phase[m, s], "C0.", ms=1.5, label="IMU adaptive-oscillator phase")
        ax.plot(st.t[m], st.phase_ref[m, s], "C1.", ms=1.0, label="controller reference phase")
        contact = tr.contact[mt, s]
        ax.fill_between(tr.t[mt], 0, 1, where=contact, color="0.85", label="foot contact")
        ax.set_ylabel("gait phase")
        ax.set_title(f"gait phase, {'left' if s == 0 else 'right'} leg")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_torque(res: WalkResult, path: Path, seconds: float = 3.3) -> None:
    st = res.status
    m = _window(st.t, seconds)
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(10, 9))
    for j, ax in enumerate(axes):
        ax.plot(st.t[m], st.tau[m, j], "k-", lw=1.2, label="command (limited)")
        ax.plot(st.t[m], st.tau_impedance[m, j], lw=0.8, label="impedance")
        ax.plot(st.t[m], st.tau_profile[m, j], lw=0.8, label="phase profile")
        ax.plot(st.t[m], st.tau_myo[m, j], lw=0.8, label="myoelectric")
        ax2 = ax.twinx()
        ax2.plot(st.t[m], st.stiffness[m, j], "C3:", lw=0.8)
        ax2.set_ylabel("K (N m/rad)", color="C3", fontsize=8)
        ax.set_ylabel(f"{JOINTS[j]} (N m)")
        if j == 0:
            ax.legend(loc="upper right", ncol=4, fontsize=7)
    axes[0].set_title("exo assist torque and adapted stiffness")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _stride_mean(t: np.ndarray, phase: np.ndarray, x: np.ndarray, t0: float, bins: int = 50) -> np.ndarray:
    keep = t >= t0
    idx = np.minimum((phase[keep] * bins).astype(int), bins - 1)
    out = np.full(bins, np.nan)
    for b in range(bins):
        sel = idx == b
        if sel.any():
            out[b] = x[keep][sel].mean()
    return out


def plot_angles(no_assist: WalkResult, assist: WalkResult, ref: ReferenceGait, path: Path, skip_s: float) -> None:
    bins = 50
    ph = (np.arange(bins) + 0.5) / bins
    refa = np.degrees(ref.angles(ph))
    fig, axes = plt.subplots(2, 2, sharex=True, figsize=(10, 7))
    for s, side in enumerate(("left", "right")):
        for k, joint in enumerate(("hip", "knee")):
            ax = axes[k, s]
            ax.plot(ph * 100, refa[:, k], "k--", lw=1, label="reference")
            for res, style, label in ((no_assist, "C0-", "no assist"), (assist, "C1-", "assist")):
                tr = res.trace
                y = _stride_mean(tr.t, res.wearer_phase[:, s], np.degrees(tr.q[:, 3 * s + k]), tr.t[0] + skip_s, bins)
                ax.plot(ph * 100, y, style, label=label)
            ax.set_title(f"{side} {joint} flexion (deg)")
            if k == 1:
                ax.set_xlabel("intended gait cycle (%)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_symmetry(no_assist: WalkResult, assist: WalkResult, path: Path) -> None:
    names = ("symmetry_index", "step_time_si", "stance_time_si", "swing_time_si", "rom_si")
    a = [getattr(no_assist.report, n) for n in names]
    b = [getattr(assist.report, n) for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, a, 0.4, label="no assist")
    ax.bar(x + 0.2, b, 0.4, label="assist")
    ax.set_xticks(x, names, rotation=15, fontsize=8)
    ax.set_ylabel("symmetry index (0 = symmetric)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_sim_report(out_dir: str | Path, no_assist: WalkResult, assist: WalkResult, ref: ReferenceGait,
                     settings: dict, skip_s: float) -> dict:
    """Write ``report.json`` and the PNG plots into ``out_dir`` (created); return the JSON dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "emg_envelopes": "emg_envelopes.png",
        "gait_phase": "gait_phase.png",
        "assist_torque": "assist_torque.png",
        "joint_angles": "joint_angles.png",
        "symmetry": "symmetry.png",
    }
    plot_emg(assist, out / plots["emg_envelopes"])
    plot_phase(assist, out / plots["gait_phase"])
    plot_torque(assist, out / plots["assist_torque"])
    plot_angles(no_assist, assist, ref, out / plots["joint_angles"], skip_s)
    plot_symmetry(no_assist, assist, out / plots["symmetry"])
    si0, si1 = no_assist.report.symmetry_index, assist.report.symmetry_index
    st = assist.status
    phase_err = None
    if st.t.size:
        tt = st.t[st.t >= st.t[0] + skip_s]
        true = np.stack([np.interp(tt, assist.trace.t, np.unwrap(2 * np.pi * assist.wearer_phase[:, s]))
                         for s in range(2)], axis=1)
        est = 2 * np.pi * st.phase[st.t >= st.t[0] + skip_s]
        d = np.angle(np.exp(1j * (est - true))) / (2 * np.pi)
        phase_err = float(np.sqrt(np.mean(d**2)))
    data = {
        "symmetry_index_no_assist": si0,
        "symmetry_index_assist": si1,
        "symmetry_improvement": (si0 - si1) / si0 if si0 > 0 else None,
        "symmetry_index_definition": "mean of step-time and stance-time Robinson indices |L-R|/((L+R)/2), "
        "from simulated foot contacts; 0 = perfectly symmetric",
        "no_assist": no_assist.report.to_dict(),
        "assist": assist.report.to_dict(),
        "assist_fraction_of_cycles": float(st.assisting.mean()) if st.t.size else 0.0,
        "assist_torque_rms_nm": dict(zip(JOINTS, np.sqrt(np.mean(st.tau**2, axis=0)).tolist(), strict=True)),
        "final_stiffness_nm_rad": dict(zip(JOINTS, st.stiffness[-1].tolist(), strict=True)) if st.t.size else {},
        "gait_phase_rmse_cycles": phase_err,
        "controller_fallbacks": assist.fallbacks,
        "settings": settings,
        "plots": plots,
    }
    with open(out / "report.json", "w") as f:
        json.dump(_clean(data), f, indent=2)
    return data


def _clean(v: object) -> object:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v
