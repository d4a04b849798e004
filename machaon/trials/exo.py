"""``machaon trial exo``: simulated wearers x assist gains, judged against each wearer's own intended gait.

**Wearers** (drawn in ``plan`` from the study seed, so every gain meets the same people): a weak
side (left or right), the fraction of hip and knee strength left on it (the ankle is braced),
knee-extensor spasticity (a velocity-dependent stretch reflex), and an **intended gait of their
own**: cadence, and the excursions of hip and knee within published normative ranges for level
walking at self-selected speed:

- cadence 100-125 steps/min (Perry & Burnfield, *Gait Analysis: Normal and Pathological
  Function*, 2nd ed., 2010: mean 113 steps/min in free walking of healthy adults);
- sagittal hip excursion 36-48 deg and peak knee flexion in swing 52-66 deg (Kadaba, Ramakrishnan
  & Wootten, *Measurement of lower extremity kinematics during level walking*, J Orthop Res
  8:383-392, 1990: about 43 and 60 deg, a few degrees SD; Pietraszewski et al., Acta Bioeng
  Biomech 14(3), 2012, show both rising with speed).

The simulated person's central pattern is the reference gait of ``exo_legs.toml`` scaled to
those excursions (``machaon.sim.legs.scaled_gait``) at that cadence. Stride length is not drawn:
with the model's fixed leg lengths it follows from the hip excursion, and is reported as walked.
Weakness (hip and knee strength 20-70 % of the healthy side) and spasticity (0-12 N m s/rad)
are the model's own ranges for a hemiparetic, stiff-knee gait, not published norms.

**Runs**: each wearer walks once without assist (gain 0: the exo transparent, no damping) and
once per assist gain ``g`` (``AssistConfig`` with its stiffness ceiling, myoelectric gains and
assist profile scaled by ``g``). The controller assists toward the normative reference gait, as
it would in a clinic; so the study reports, beside the symmetry indices, the **deviation from
the wearer's own intended gait** (RMS over hip and knee of both legs, intended angle at the
wearer's intended phase minus actual), which is what assist should not make worse, and the
deviation from the normative reference, which assist that imposes its own pattern lowers.
Assist torque (RMS, peak) and power (mean |tau dq|, and the positive part: work done on the
wearer) per joint. A gain **helps** a wearer when the symmetry index falls and the deviation
from the intended gait does not rise by more than 0.5 deg.

The backend is given by the caller (``backend(wearer, sim_cfg)``, the CLI passes the PyBullet
``LegSim``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from machaon.exo.controller import AssistConfig
from machaon.exo.reference import ReferenceGait, load_reference_gait
from machaon.exo.walk import run_walk
from machaon.sim.legs import LegSimConfig, WearerConfig, scaled_gait
from machaon.trials.stats import describe, sensitivity
from machaon.trials.study import RunRecord
from machaon.trials.tables import fmt_ci, fmt_mean_sd, md_table

# Drawn per wearer: (low, high) of a uniform distribution; see the module docstring for sources.
CADENCE_STEPS_MIN = (100.0, 125.0)
HIP_EXCURSION_DEG = (36.0, 48.0)
KNEE_PEAK_SWING_DEG = (52.0, 66.0)
STRENGTH_LEFT = (0.2, 0.7)
SPASTICITY_NM_S = (0.0, 12.0)
HELP_TOLERANCE_DEG = 0.5
EXO_JOINTS = ("hip_l", "knee_l", "hip_r", "knee_r")


def _ref_excursions(ref: ReferenceGait) -> tuple[float, float, float]:
    """(hip excursion, knee minimum, knee maximum) of the reference gait, degrees."""
    a = np.degrees(ref.angles(np.linspace(0.0, 1.0, 1001)))
    return float(np.ptp(a[:, 0])), float(a[:, 1].min()), float(a[:, 1].max())


def draw_wearer(rng: np.random.Generator, ref: ReferenceGait) -> dict:
    """One simulated wearer (JSON-ready): weakness, spasticity and their own intended gait."""
    hip_ref, knee_min, knee_max = _ref_excursions(ref)
    cadence = float(rng.uniform(*CADENCE_STEPS_MIN))
    hip = float(rng.uniform(*HIP_EXCURSION_DEG))
    knee = float(rng.uniform(*KNEE_PEAK_SWING_DEG))
    return {
        "weak_side": str(rng.choice(["l", "r"])),
        "strength_hip": float(rng.uniform(*STRENGTH_LEFT)),
        "strength_knee": float(rng.uniform(*STRENGTH_LEFT)),
        "spasticity_nm_s": float(rng.uniform(*SPASTICITY_NM_S)),
        "cadence_steps_min": cadence,
        "hip_excursion_deg": hip,
        "knee_peak_swing_deg": knee,
        # what the simulation takes: stride time and the excursion scale per (hip, knee, ankle)
        "stride_time_s": 120.0 / cadence,
        "gait_rom_scale": [hip / hip_ref, (knee - knee_min) / (knee_max - knee_min), 1.0],
    }


def wearer_config(w: dict) -> WearerConfig:
    return WearerConfig(stride_time_s=w["stride_time_s"], weak_side=w["weak_side"],
                        weakness=(w["strength_hip"], w["strength_knee"], 1.0), spasticity_nm_s=w["spasticity_nm_s"],
                        gait_rom_scale=tuple(w["gait_rom_scale"]))


def assist_config(gain: float) -> AssistConfig:
    """The default assist with stiffness ceiling, myoelectric gains and profile scaled by ``gain``; 0 = off."""
    base = AssistConfig()
    if gain == 0.0:
        return replace(base, assist=False, damping_nm_s=0.0)
    return replace(base, k_max=max(base.k_init, base.k_max * gain), k_myo_nm=tuple(k * gain for k in base.k_myo_nm),
                   profile_nm=tuple(k * gain for k in base.profile_nm))


def intended_gait(w: dict, ref: ReferenceGait) -> ReferenceGait:
    """The wearer's own gait as a ``ReferenceGait`` (what their central pattern tracks)."""
    return ReferenceGait(scaled_gait(ref.spline, tuple(w["gait_rom_scale"])), w["stride_time_s"], ref.toe_off)


def _rms_deviation_deg(t: np.ndarray, q: np.ndarray, phase: np.ndarray, gait: ReferenceGait, t0: float) -> dict:
    """RMS (deg) of gait(phase) - actual over hip and knee, per leg and both, after ``t0``."""
    keep = t >= t0
    out = {}
    sq = []
    for s, side in enumerate(("l", "r")):
        e = gait.angles(phase[keep, s])[:, :2] - q[keep, 3 * s: 3 * s + 2]
        out[side] = float(np.degrees(np.sqrt(np.mean(e**2))))
        sq.append(e**2)
    out["both"] = float(np.degrees(np.sqrt(np.mean(np.concatenate(sq)))))
    return out


@dataclass(frozen=True)
class ExoStudy:
    """``wearers`` simulated wearers, each walked without assist and at every gain of ``gains``."""

    backend: Callable[[WearerConfig, LegSimConfig], object]
    wearers: int = 8
    gains: tuple[float, ...] = (0.5, 1.0, 1.5)
    duration_s: float = 12.0
    skip_s: float = 3.0
    name: ClassVar[str] = "exo"

    def __post_init__(self) -> None:
        if self.wearers < 1:
            raise ValueError("exo study: at least one wearer")
        if not self.gains or not all(math.isfinite(g) and g > 0 for g in self.gains):
            raise ValueError("exo study: assist gains must be > 0 (gain 0, no assist, is always run)")
        if not (self.skip_s >= 0 and self.duration_s >= self.skip_s + 4.0):
            raise ValueError("exo study: duration must exceed the skipped start by at least 4 s")

    def settings(self) -> dict:
        return {"wearers": self.wearers, "gains": list(self.gains), "duration_s": self.duration_s,
                "skip_s": self.skip_s,
                "backend": f"{self.backend.__module__}.{getattr(self.backend, '__qualname__', '?')}"}

    def plan(self, seed: int) -> list[dict]:
        ref = load_reference_gait()
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE40]))  # wearers: from the study seed only
        runs = []
        for w in range(self.wearers):
            wearer = draw_wearer(rng, ref)
            for g in (0.0, *self.gains):
                runs.append({"wearer": w, "gain": g, "person": wearer})
        return runs

    def run(self, params: dict, seed: int) -> dict:
        ref = load_reference_gait()
        w = params["person"]
        own = intended_gait(w, ref)
        with self.backend(wearer_config(w), LegSimConfig(seed=seed)) as sim:
            res = run_walk(sim, self.duration_s, assist_config(float(params["gain"])), reference=ref,
                           skip_s=self.skip_s)
        tr = res.trace
        t0 = tr.t[0] + self.skip_s
        keep = tr.t >= t0
        tau = tr.tau_exo[keep]
        dq = np.gradient(tr.q, tr.t, axis=0)[keep][:, [0, 1, 3, 4]]
        power = tau * dq
        rep = res.report.to_dict()
        strides = sum(rep["n_strides"].values()) / 2.0
        qd = np.degrees(tr.q[keep])
        walked = float(tr.pelvis[keep, 0][-1] - tr.pelvis[keep, 0][0])
        return {
            "symmetry_index": rep["symmetry_index"],
            "step_time_si": rep["step_time_si"],
            "stance_time_si": rep["stance_time_si"],
            "rom_si": rep["rom_si"],
            "cadence_steps_min": rep["cadence_steps_min"],
            "stride_length_m": walked / strides if strides > 0 else None,
            "hip_excursion_deg": {"l": float(np.ptp(qd[:, 0])), "r": float(np.ptp(qd[:, 3]))},
            "knee_peak_deg": {"l": float(qd[:, 1].max()), "r": float(qd[:, 4].max())},
            "deviation_intended_deg": _rms_deviation_deg(tr.t, tr.q, res.wearer_phase, own, t0),
            "deviation_reference_deg": _rms_deviation_deg(tr.t, tr.q, res.wearer_phase, ref, t0),
            "assist_torque_rms_nm": dict(zip(EXO_JOINTS, np.sqrt(np.mean(tau**2, axis=0)).tolist(), strict=True)),
            "assist_torque_peak_nm": float(np.abs(tau).max()) if tau.size else 0.0,
            "assist_power_mean_w": float(np.abs(power).sum(axis=1).mean()) if tau.size else 0.0,
            "assist_power_positive_w": float(np.maximum(power, 0.0).sum(axis=1).mean()) if tau.size else 0.0,
            "wearer_effort_nm": rep["wearer_effort_nm"],
            "controller_fallbacks": res.fallbacks,
        }

    def summarise(self, records: list[RunRecord]) -> dict:
        return {"exo": summarise_exo(records)}

    def write_report(self, out_dir: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
        return write_exo_report(Path(out_dir), summary)

    def headline(self, summary: dict) -> str:
        lines = [f"{'gain':>5s} {'n':>3s} {'SI':>14s} {'dev own gait deg':>17s} {'dev ref deg':>12s} "
                 f"{'torque Nm':>10s} {'power W':>8s} {'helps':>6s}"]
        for g in summary["exo"]["by_gain"]:
            m = g["metrics"]
            lines.append(f"{g['gain']:5.2f} {g['n']:3d} {fmt_mean_sd(m['symmetry_index'], digits=3):>14s} "
                         f"{fmt_mean_sd(m['deviation_intended_deg'], digits=2):>17s} "
                         f"{fmt_mean_sd(m['deviation_reference_deg'], digits=2):>12s} "
                         f"{_m(m['assist_torque_rms_nm']):>10s} {_m(m['assist_power_mean_w']):>8s} "
                         f"{g.get('helps', '-')!s:>6s}")
        return "\n".join(lines)


def _m(d: dict, digits: int = 2) -> str:
    return "-" if d.get("mean") is None else f"{d['mean']:.{digits}f}"


def _flat(result: dict) -> dict:
    """The per-run numbers the summary aggregates (scalars)."""
    return {
        "symmetry_index": result["symmetry_index"],
        "rom_si": result["rom_si"],
        "deviation_intended_deg": result["deviation_intended_deg"]["both"],
        "deviation_reference_deg": result["deviation_reference_deg"]["both"],
        "assist_torque_rms_nm": float(np.sqrt(np.mean(np.square(list(result["assist_torque_rms_nm"].values()))))),
        "assist_power_mean_w": result["assist_power_mean_w"],
        "assist_power_positive_w": result["assist_power_positive_w"],
        "cadence_steps_min": result["cadence_steps_min"],
        "stride_length_m": result["stride_length_m"],
    }


def summarise_exo(records: list[RunRecord]) -> dict:
    """Per gain (mean ± SD, CIs, paired changes vs no assist), per wearer (which gains help), sensitivity."""
    runs: dict[tuple[int, float], dict] = {}
    people: dict[int, dict] = {}
    for r in records:
        people[r.params["wearer"]] = r.params["person"]
        if r.ok and r.result is not None:
            runs[(r.params["wearer"], float(r.params["gain"]))] = _flat(r.result)
    gains = sorted({float(r.params["gain"]) for r in records})
    keys = ("symmetry_index", "rom_si", "deviation_intended_deg", "deviation_reference_deg", "assist_torque_rms_nm",
            "assist_power_mean_w", "assist_power_positive_w", "cadence_steps_min", "stride_length_m")
    by_gain = []
    for g in gains:
        rows = [v for (w, gg), v in runs.items() if gg == g]
        entry = {"gain": g, "n": len(rows), "metrics": {k: describe([x[k] for x in rows]) for k in keys}}
        if g > 0:
            pairs = [(runs[(w, 0.0)], runs[(w, g)]) for w in people if (w, 0.0) in runs and (w, g) in runs]
            entry["change_vs_off"] = {k: describe([b[k] - a[k] for a, b in pairs if a[k] is not None and
                                                   b[k] is not None])
                                      for k in ("symmetry_index", "deviation_intended_deg", "deviation_reference_deg")}
            entry["helps"] = sum(_helps(a, b) for a, b in pairs)
        by_gain.append(entry)
    wearers = []
    for w, person in sorted(people.items()):
        off = runs.get((w, 0.0))
        row = {"wearer": w, "person": person, "off": off, "gains": {}}
        for g in gains:
            if g > 0 and (w, g) in runs and off is not None:
                on = runs[(w, g)]
                row["gains"][str(g)] = {**on, "helps": _helps(off, on)}
        helping = [float(g) for g, v in row["gains"].items() if v["helps"]]
        row["best_gain"] = (min(helping, key=lambda g: row["gains"][str(g)]["symmetry_index"]) if helping else None)
        wearers.append(row)
    # which wearer traits decide whether assist (gain 1 or the middle gain) improves symmetry
    g_mid = gains[len(gains) // 2] if len(gains) > 1 else None
    sens = None
    if g_mid:
        ws = [w for w in people if (w, 0.0) in runs and (w, g_mid) in runs]
        factors = {k: [people[w][k] for w in ws] for k in ("strength_hip", "strength_knee", "spasticity_nm_s",
                                                            "cadence_steps_min", "hip_excursion_deg",
                                                            "knee_peak_swing_deg")}
        sens = {"gain": g_mid, "outcome": "change of the symmetry index with assist (negative = better)",
                **sensitivity(factors, [runs[(w, g_mid)]["symmetry_index"] - runs[(w, 0.0)]["symmetry_index"]
                                        for w in ws])}
    return {"by_gain": by_gain, "wearers": wearers, "sensitivity": sens,
            "help_rule": f"SI lower than without assist and deviation from the intended gait not higher by more "
                         f"than {HELP_TOLERANCE_DEG} deg"}


def _helps(off: dict, on: dict) -> bool:
    return bool(on["symmetry_index"] < off["symmetry_index"]
                and on["deviation_intended_deg"] <= off["deviation_intended_deg"] + HELP_TOLERANCE_DEG)


def _by_gain_section(ex: dict) -> list[str]:
    """One row per assist gain: each metric's mean ± SD, its change against no assist, the wearers it helps."""
    header = ["gain", "walks", "symmetry index", "95% CI", "Δ SI vs off", "deviation from own gait (deg)",
              "Δ own gait", "deviation from reference (deg)", "Δ reference", "assist torque RMS (N m)",
              "assist power |τ·ω| (W)", "positive power (W)", "helps"]
    rows = []
    for g in ex["by_gain"]:
        m = g["metrics"]
        ch = g.get("change_vs_off", {})
        rows.append([f"{g['gain']:g}", g["n"], fmt_mean_sd(m["symmetry_index"], digits=3),
                     fmt_ci(m["symmetry_index"], digits=3), fmt_mean_sd(ch.get("symmetry_index", {}), digits=3),
                     fmt_mean_sd(m["deviation_intended_deg"]), fmt_mean_sd(ch.get("deviation_intended_deg", {})),
                     fmt_mean_sd(m["deviation_reference_deg"]), fmt_mean_sd(ch.get("deviation_reference_deg", {})),
                     fmt_mean_sd(m["assist_torque_rms_nm"]), fmt_mean_sd(m["assist_power_mean_w"]),
                     fmt_mean_sd(m["assist_power_positive_w"]),
                     "-" if g["gain"] == 0 else f"{g['helps']}/{g['n']}"])
    return ["## By assist gain", "", md_table(header, rows), "", f"A gain helps a wearer when: {ex['help_rule']}.", ""]


def _by_wearer_section(ex: dict, gains: list[float]) -> list[str]:
    """One row per wearer: who they are, their symmetry index off and at each of the ``gains`` (> 0)."""
    header = ["wearer", "weak side", "strength hip/knee", "spasticity (N m s/rad)", "cadence", "hip/knee (deg)",
              "SI off", *[f"SI at {g:g}" for g in gains], "best gain"]
    rows = []
    for w in ex["wearers"]:
        p = w["person"]
        off = w["off"]
        cells = []
        for g in gains:
            v = w["gains"].get(str(g))
            cells.append("-" if v is None else f"{v['symmetry_index']:.3f}{' ✓' if v['helps'] else ''}")
        rows.append([w["wearer"], p["weak_side"], f"{p['strength_hip']:.2f}/{p['strength_knee']:.2f}",
                     f"{p['spasticity_nm_s']:.1f}", f"{p['cadence_steps_min']:.0f}",
                     f"{p['hip_excursion_deg']:.0f}/{p['knee_peak_swing_deg']:.0f}",
                     "-" if off is None else f"{off['symmetry_index']:.3f}", *cells,
                     "none" if w["best_gain"] is None else f"{w['best_gain']:g}"])
    return ["## Which gains help which wearer", "", md_table(header, rows), "", "✓ = the gain helps this wearer.", ""]


def _plot_gains(png: Path, ex: dict, gains: list[float]) -> Path:
    """``png``: three panels (symmetry, deviation from own gait, assist power) against the gain,
    one thin line per wearer and the mean in black."""
    from machaon.trials.plots import plt, save_figure

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, key, label in zip(axes, ("symmetry_index", "deviation_intended_deg", "assist_power_mean_w"),
                              ("symmetry index (0 = symmetric)", "deviation from own intended gait (deg)",
                               "assist power |τ·ω| (W)"), strict=True):
        for w in ex["wearers"]:
            xs, ys = [], []
            if w["off"] is not None:
                xs.append(0.0)
                ys.append(w["off"][key] if key in w["off"] else np.nan)
            for g in gains:
                v = w["gains"].get(str(g))
                if v is not None and key in v:
                    xs.append(g)
                    ys.append(v[key])
            ax.plot(xs, ys, "-o", lw=0.8, ms=3, alpha=0.7)
        means = [g["metrics"][key]["mean"] for g in ex["by_gain"]]
        ax.plot([g["gain"] for g in ex["by_gain"]], [np.nan if m is None else m for m in means], "k-s", lw=2,
                label="mean")
        ax.set_xlabel("assist gain (0 = off)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, png)


def write_exo_report(out: Path, summary: dict) -> list[Path]:
    """``report.md`` and ``exo_gains.png`` (metrics per gain, one line per wearer)."""
    ex = summary["exo"]
    gains = [g["gain"] for g in ex["by_gain"] if g["gain"] > 0]
    lines = [f"# Exoskeleton study (seed {summary['seed']})", "",
             f"{summary['runs']['done']} walks ({summary['runs']['errors']} failed): "
             f"{len(ex['wearers'])} simulated wearers, each without assist (gain 0) and at each assist gain. "
             "The controller assists toward the normative reference gait; each wearer intends a gait of their own "
             "(cadence, hip and knee excursions drawn within published normative ranges).", "",
             *_by_gain_section(ex), *_by_wearer_section(ex, gains)]
    sens = ex.get("sensitivity")
    if sens and sens.get("rows"):
        lines += [f"## What decides the benefit (gain {sens['gain']:g})", "",
                  f"Outcome: {sens['outcome']}; n = {sens['n']}, R² of the linear fit = "
                  f"{'-' if sens['r2'] is None else format(sens['r2'], '.2f')}.", "",
                  md_table(["factor", "Spearman ρ", "p", "standardised coefficient"],
                           [[r["factor"], _f(r["spearman_rho"]), _f(r["p_value"], 3), _f(r["std_coef"])]
                            for r in sens["rows"]]), ""]
    png = _plot_gains(out / "exo_gains.png", ex, gains)
    lines += ["![metrics per gain](exo_gains.png)", ""]
    if summary["errors"]:
        lines += ["## Failed runs", "", md_table(["index", "seed", "error"],
                                                   [[e["index"], e["seed"], e["error"]] for e in summary["errors"]])]
    rp = out / "report.md"
    rp.write_text("\n".join(lines), encoding="utf-8")
    return [rp, png]


def _f(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


