"""``machaon trial ortho --screws N [--levels ...] [--noise PROFILE]``: a simulated screw-accuracy trial.

Each run executes the navigated procedure (``machaon.ortho.procedure.run_procedure``) headless
for **one screw** on one randomly chosen level and side of the phantom, under conditions drawn
for that screw from the ``--noise`` profile's ranges:

- tracker noise: Gaussian pixel noise (px, 1 sigma) on every marker corner before ``solvePnP``
  (``Tracker.measure``, per marker plate);
- landmark localisation error of the tracked pointer for paired-point registration (mm RMS per axis);
- breathing amplitude (mm) and rate (breaths/min);
- a patient bump (probability, size in mm, random direction, at a random drill depth);
- hand-eye calibration: the number of robot poses shown to the camera (fewer poses, larger
  error); the resulting camera-to-robot error is measured and reported per screw;
- bone density (scale of the cortical and cancellous thrust) and skiving at the entry (how much
  the drill point slips on an inclined cortex, ``DrillPhysics``).

The screw's plan is the level's ground-truth pedicle axis (``plan_mode="axis"``: the trial
measures execution, not planning). Per screw: entry and tip deviation (mm) and angle (deg) of
the hole actually drilled against the plan, in the true bone frame; the **Gertzbein-Robbins
grade** of a screw of the planned diameter in that hole, measured on the phantom's cortex
(``machaon.ortho.grading``), with the breach direction; what stopped the drill; registration
and hand-eye errors.

**Trial mode** (every ``--screws`` run) keeps what accuracy depends on (the 500 Hz control loop,
PyBullet contact and drilling physics, the tracker's noise model at 50 Hz, registration, the
approach planner) and drops what it does not: camera rendering (the corner-noise model of
``Tracker.measure`` stands in for detection in rendered images, also for the hand-eye poses),
pictures, and the return home after the screw. **Full mode** renders the camera images for the
hand-eye calibration and the tracking check, as ``machaon demo`` does; ``--compare K`` runs K of
the screws again in full mode with the same conditions and procedure seed, and the report
compares the two modes screw by screw.

The summary is a clinical accuracy table beside the TiRobot randomised trial (Han et al.,
J Neurosurg Spine 30:615-622, 2019: 1116 robot-placed screws, deviation 1.5 ± 0.8 mm, 95.3 %
grade A), with 95 % confidence intervals (Student t for means, Wilson for shares) and a
sensitivity table (which drawn condition moves the deviation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from machaon.ortho.anatomy import SIDES, SpineSegment, VertebraParams
from machaon.ortho.grading import GRADES, grade_screw
from machaon.ortho.procedure import ProcedureConfig, run_procedure
from machaon.trials.stats import describe, proportion, sensitivity
from machaon.trials.study import RunRecord, run_seed
from machaon.trials.tables import fmt_ci, fmt_mean_sd, md_table

MM = 1e-3
# L5 is left out by default: with its 26 deg convergence, the right L5 screw points back at the
# robot, which stands on the patient's left in the simulated operating room, and no
# collision-free arm pose reaches its stand-off (``--levels L5`` runs it; those runs fail).
DEFAULT_LEVELS = ("L1", "L2", "L3", "L4")

# Ranges of the drawn conditions, uniform between (low, high). "clinical" is a navigated spine
# case: tracker corner noise of 0.03-0.12 px, which at this camera's distance to the reference
# plate (0.9 m) is 0.13-0.52 mm RMS plate position noise (4.4 mm per px, measured with
# ``Tracker.measure``), the range of optical trackers in surgery (NDI Polaris Vega 0.12 mm,
# Polaris Spectra 0.25 mm RMS volumetric accuracy; Elfring et al., Comput Aided Surg 15:1-12,
# 2010, measured a few tenths of a mm); landmark picking errors of a tenth of a mm to 1 mm;
# ventilated prone breathing of a few mm. "ideal" and "harsh" bracket it. These are the study's
# assumptions, printed in every report.
NOISE_PROFILES: dict[str, dict] = {
    "ideal": {"pixel_sigma_px": (0.01, 0.03), "fiducial_noise_mm": (0.05, 0.1), "breathing_mm": (0.0, 0.5),
              "breathing_per_min": (12.0, 20.0), "bump_probability": 0.0, "bump_mm": (0.0, 0.0),
              "calibration_poses": (12, 16), "bone_density": (0.9, 1.1), "skive_gain": (0.0, 0.1)},
    "clinical": {"pixel_sigma_px": (0.03, 0.12), "fiducial_noise_mm": (0.1, 1.0), "breathing_mm": (0.5, 3.0),
                 "breathing_per_min": (10.0, 20.0), "bump_probability": 0.3, "bump_mm": (1.0, 5.0),
                 "calibration_poses": (6, 16), "bone_density": (0.6, 1.4), "skive_gain": (0.0, 0.6)},
    "harsh": {"pixel_sigma_px": (0.1, 0.3), "fiducial_noise_mm": (0.5, 2.0), "breathing_mm": (2.0, 6.0),
              "breathing_per_min": (10.0, 25.0), "bump_probability": 0.6, "bump_mm": (2.0, 8.0),
              "calibration_poses": (5, 8), "bone_density": (0.4, 1.8), "skive_gain": (0.3, 1.0)},
}
# Han X, Tian W, Liu Y, et al. Safety and accuracy of robot-assisted versus fluoroscopy-assisted
# pedicle screw insertion in thoracolumbar spinal surgery: a prospective randomized controlled
# trial. J Neurosurg Spine 2019;30(5):615-622. Robot-assisted (TiRobot) group.
TIROBOT_RCT = {"study": "Han et al. 2019, J Neurosurg Spine 30:615-622 (TiRobot RCT, robot arm)", "screws": 1116,
               "deviation_mm_mean": 1.5, "deviation_mm_sd": 0.8, "grade_a_share": 0.953}
# Factors of the sensitivity table: (key in the screw's record, label)
FACTORS = (("pixel_sigma_px", "tracker noise (px)"), ("fiducial_noise_mm", "landmark error (mm)"),
           ("breathing_mm", "breathing amplitude (mm)"), ("breathing_per_min", "breathing rate (/min)"),
           ("bump_mm", "bump size (mm)"), ("calibration_poses", "hand-eye poses"),
           ("hand_eye_error_mm", "hand-eye error, measured (mm)"), ("bone_density", "bone density (x nominal)"),
           ("skive_gain", "skiving gain"))


def draw_conditions(rng: np.random.Generator, profile: dict) -> dict:
    """One screw's conditions (JSON-ready, mm / px / per min) from a noise profile's ranges."""
    def u(key: str) -> float:
        lo, hi = profile[key]
        return float(rng.uniform(lo, hi))

    bump = bool(rng.random() < profile["bump_probability"])
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    lo, hi = profile["calibration_poses"]
    return {
        "pixel_sigma_px": u("pixel_sigma_px"),
        "fiducial_noise_mm": u("fiducial_noise_mm"),
        "breathing_mm": u("breathing_mm"),
        "breathing_per_min": u("breathing_per_min"),
        "bump_mm": u("bump_mm") if bump else 0.0,
        "bump_direction": direction.tolist(),
        "bump_depth_mm": float(rng.uniform(5.0, 25.0)),
        "calibration_poses": int(rng.integers(lo, hi + 1)),
        "bone_density": u("bone_density"),
        "skive_gain": u("skive_gain"),
    }


def procedure_config(level: str, side: str, c: dict, seed: int, full: bool) -> ProcedureConfig:
    """The procedure settings of one screw under conditions ``c`` (trial mode, or full mode)."""
    return ProcedureConfig(
        levels=(level,), seed=seed, plan_mode="axis", screws=(f"{level}-{side[0].upper()}",),
        breathing=c["breathing_mm"] > 0.0, breathing_amplitude_m=c["breathing_mm"] * MM,
        breathing_hz=c["breathing_per_min"] / 60.0,
        bump=c["bump_mm"] > 0.0, bump_m=tuple(float(x) * c["bump_mm"] * MM for x in c["bump_direction"]),
        bump_depth_m=c["bump_depth_mm"] * MM, pixel_sigma=c["pixel_sigma_px"],
        fiducial_noise_m=c["fiducial_noise_mm"] * MM, calibration_poses=c["calibration_poses"],
        calibration_from_images=full, tracking_check=full, bone_density=c["bone_density"],
        skive_gain=c["skive_gain"], return_home=full,
    )


@dataclass(frozen=True)
class OrthoStudy:
    """``screws`` trial-mode screws on ``levels`` under ``noise``, plus ``compare`` full-mode repeats."""

    screws: int = 100
    levels: tuple[str, ...] = DEFAULT_LEVELS
    noise: str = "clinical"
    compare: int = 0
    name: ClassVar[str] = "ortho"

    @classmethod
    def create(cls, screws: int = 100, levels: tuple[str, ...] | None = None, noise: str = "clinical",
               compare: int | None = None) -> OrthoStudy:
        """Checked settings; ``compare`` None = 5 % of the screws (rounded down; 10 of 200)."""
        if compare is None:
            compare = int(screws) // 20
        return cls(int(screws), tuple(lv.upper() for lv in (levels or DEFAULT_LEVELS)), noise,
                   min(int(compare), int(screws)))

    def __post_init__(self) -> None:
        if self.screws < 1:
            raise ValueError("ortho study: --screws must be >= 1")
        if self.noise not in NOISE_PROFILES:
            raise ValueError(f"ortho study: unknown noise profile {self.noise!r}; known: {', '.join(NOISE_PROFILES)}")
        if not self.levels:
            raise ValueError("ortho study: at least one level")
        for lv in self.levels:
            VertebraParams.for_level(lv)  # AnatomyError (a ValueError) names an unknown level
        if not 0 <= self.compare <= self.screws:
            raise ValueError("ortho study: --compare must be between 0 and --screws")

    def settings(self) -> dict:
        return {"screws": self.screws, "levels": list(self.levels), "noise": self.noise,
                "noise_ranges": NOISE_PROFILES[self.noise], "compare": self.compare}

    def plan(self, seed: int) -> list[dict]:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x0A7]))  # conditions: study seed only
        prof = NOISE_PROFILES[self.noise]
        runs = []
        for i in range(self.screws):
            level = str(rng.choice(list(self.levels)))
            side = str(rng.choice(list(SIDES)))
            runs.append({"screw": i, "level": level, "side": side, "mode": "trial",
                         "conditions": draw_conditions(rng, prof)})
        # the full-mode repeats: evenly spread screws, same conditions and procedure seed
        for i in np.linspace(0, self.screws - 1, self.compare).round().astype(int) if self.compare else []:
            runs.append({**runs[int(i)], "mode": "full", "procedure_seed": run_seed(seed, int(i))})
        return runs

    def run(self, params: dict, seed: int) -> dict:
        level, side = params["level"], params["side"]
        full = params["mode"] == "full"
        proc_seed = int(params.get("procedure_seed", seed))
        cfg = procedure_config(level, side, params["conditions"], proc_seed, full)
        res = run_procedure(cfg)  # no report directory: no pictures
        sr = res.screws[0]
        r = sr.result
        g = grade_screw(SpineSegment((level,)), level, side, sr.path.entry, sr.path.tip, r.planned.diameter)
        return {
            "name": r.name, "entry_mm": r.entry_error / MM, "tip_mm": r.tip_error / MM,
            "angle_deg": math.degrees(r.angle_error), "depth_error_mm": r.depth_error / MM,
            "lateral_tip_mm": r.lateral_tip_error / MM, "diameter_mm": r.planned.diameter / MM,
            "length_mm": r.planned.length / MM, **g.to_dict(), "stopped_by": sr.stopped_by, "pauses": sr.pauses,
            "registration_tre_mm": res.registration["tre_measured"] / MM,
            "registration_fre_mm": res.registration["fre"] / MM,
            "hand_eye_error_mm": res.calibration["error_m"] / MM,
            "hand_eye_error_deg": math.degrees(res.calibration["error_rad"]),
            "hand_eye_poses": res.calibration["n_poses"], "procedure_seed": proc_seed,
        }

    def summarise(self, records: list[RunRecord]) -> dict:
        return summarise_screws(records)

    def write_report(self, out_dir: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
        return write_ortho_report(Path(out_dir), summary, records)

    def headline(self, summary: dict) -> str:
        return clinical_table_text(summary)


def _screw_entry(r: RunRecord) -> dict:
    """One screw of ``summary.json``: deviations, grade, seed, level/side and the conditions drawn."""
    c = r.params["conditions"]
    return {"index": r.index, "seed": r.result.get("procedure_seed", r.seed), "level": r.params["level"],
            "side": r.params["side"], **{k: r.result[k] for k in (
                "entry_mm", "tip_mm", "angle_deg", "grade", "breach_mm", "breach_direction", "outside_pedicle",
                "anterior_breach_mm", "depth_error_mm", "stopped_by", "pauses", "registration_tre_mm",
                "hand_eye_error_mm", "diameter_mm")},
            "conditions": {k: v for k, v in c.items()}}


def summarise_screws(records: list[RunRecord]) -> dict:
    """``grades``, ``screws``, deviations with CIs, shares, directions, sensitivity, mode comparison."""
    trial = [r for r in records if r.params["mode"] == "trial"]
    ok = [r for r in trial if r.ok and r.result is not None]
    screws = [_screw_entry(r) for r in ok]
    grades = {g: sum(1 for s in screws if s["grade"] == g) for g in GRADES}
    n = len(screws)
    # deviations of screws the robot finished (depth stop); a drill stopped early (breach
    # detector, timeout) left a short hole whose tip is not where a screw's would be
    done = [s for s in screws if s["stopped_by"] == "depth_stop"]
    directions: dict[str, int] = {}
    for s in screws:
        if s["breach_direction"] is not None:
            directions[s["breach_direction"]] = directions.get(s["breach_direction"], 0) + 1
    by_level = {}
    for lv in sorted({s["level"] for s in screws}):
        sub = [s for s in screws if s["level"] == lv]
        by_level[lv] = {"n": len(sub), "grades": {g: sum(1 for s in sub if s["grade"] == g) for g in GRADES},
                        "tip_mm": describe([s["tip_mm"] for s in sub if s["stopped_by"] == "depth_stop"])}
    factors = {k: [(s["conditions"].get(k) if k in s["conditions"] else s.get(k)) for s in screws]
               for k, _ in FACTORS}
    sens = {out: sensitivity({k: [v for v, s in zip(vals, screws, strict=True) if s["stopped_by"] == "depth_stop"]
                              for k, vals in factors.items()}, [s[out] for s in done])
            for out in ("tip_mm", "entry_mm", "angle_deg")}
    return {
        "grades": grades,
        "grade_shares": {g: proportion(grades[g], n) for g in GRADES},
        "grade_a": proportion(grades["A"], n),
        "grade_ab": proportion(grades["A"] + grades["B"], n),
        "completed": len(done),
        "entry_mm": describe([s["entry_mm"] for s in done]),
        "tip_mm": describe([s["tip_mm"] for s in done]),
        "angle_deg": describe([s["angle_deg"] for s in done]),
        "breach_mm": describe([s["breach_mm"] for s in screws if s["breach_mm"] > 0]),
        "breach_directions": directions,
        "stopped_by": {k: sum(1 for s in screws if s["stopped_by"] == k) for k in {s["stopped_by"] for s in screws}},
        # the breach detector stopping the drill: with a bump drawn, and with no breach at all (grade A)
        "breach_stops": {"n": sum(s["stopped_by"] == "breach" for s in screws),
                         "with_bump": sum(s["stopped_by"] == "breach" and s["conditions"]["bump_mm"] > 0
                                          for s in screws),
                         "no_breach": sum(s["stopped_by"] == "breach" and s["grade"] == "A" for s in screws)},
        "by_level": by_level,
        "screws": screws,
        "failed_screws": len(trial) - len(ok),
        "sensitivity": sens,
        "mode_comparison": _compare_modes(records),
        "reference": TIROBOT_RCT,
    }


def _compare_modes(records: list[RunRecord]) -> dict | None:
    """Trial vs full mode on the same screws (same conditions and procedure seed), paired."""
    from scipy import stats as sst

    trial = {r.params["screw"]: r for r in records if r.params["mode"] == "trial" and r.ok}
    full = {r.params["screw"]: r for r in records if r.params["mode"] == "full" and r.ok}
    pairs = [(trial[i].result, full[i].result) for i in sorted(set(trial) & set(full))]
    if not pairs:
        return None
    out: dict = {"n": len(pairs), "metrics": {}}
    for k in ("entry_mm", "tip_mm", "angle_deg", "hand_eye_error_mm"):
        a = np.array([p[0][k] for p in pairs])
        b = np.array([p[1][k] for p in pairs])
        d = b - a
        p_value = None
        if len(d) >= 4 and np.any(d != 0):
            p_value = float(sst.wilcoxon(b, a).pvalue)
        out["metrics"][k] = {"trial": describe(a), "full": describe(b), "full_minus_trial": describe(d),
                             "wilcoxon_p": p_value}
    out["same_grade"] = sum(1 for a, b in pairs if a["grade"] == b["grade"])
    return out


def _pct(p: dict) -> str:
    return "-" if p.get("share") is None else f"{100 * p['share']:.1f} %"


def clinical_table_text(summary: dict) -> str:
    """The headline table for the terminal."""
    n = sum(summary["grades"].values())
    ref = summary["reference"]
    count = f"{n} ({summary['completed']})"
    lines = [f"{'':28s} {'this study (simulated)':>28s} {'TiRobot RCT (Han 2019)':>24s}",
             f"{'screws (completed)':28s} {count:>28s} {ref['screws']:>24d}",
             f"{'entry deviation mm':28s} {fmt_mean_sd(summary['entry_mm']):>28s} {'':>24s}",
             f"{'tip deviation mm':28s} {fmt_mean_sd(summary['tip_mm']):>28s} "
             f"{ref['deviation_mm_mean']:.1f} ± {ref['deviation_mm_sd']:.1f}".rstrip(),
             f"{'angle deg':28s} {fmt_mean_sd(summary['angle_deg']):>28s}",
             f"{'grade A':28s} {_pct(summary['grade_a']) + ' ' + fmt_ci(summary['grade_a'], 100, 1):>28s} "
             f"{100 * ref['grade_a_share']:>22.1f} %",
             f"{'grade A+B':28s} {_pct(summary['grade_ab']) + ' ' + fmt_ci(summary['grade_ab'], 100, 1):>28s}",
             "grades " + "  ".join(f"{g}: {summary['grades'][g]}" for g in GRADES)]
    return "\n".join(lines)


def _accuracy_sections(s: dict) -> list[str]:
    """The report's head: accuracy beside the TiRobot RCT, the grades, and the grades by level."""
    ref = s["reference"]
    n = sum(s["grades"].values())
    settings = s["settings"]
    return [f"# Pedicle-screw accuracy: {n} simulated screws (seed {s['seed']})", "",
            f"Levels {', '.join(settings['levels'])}, both sides; conditions drawn per screw from the "
            f"`{settings['noise']}` profile (ranges below); screws planned on the pedicle axis; trial mode "
            "(no rendering; the tracker's corner-noise model stands in for the camera). "
            f"Runs that ended in an error (listed below): {s['failed_screws']}.", "",
            "## Accuracy beside the TiRobot randomised trial", "",
            md_table(["", "this study (simulated)", "95 % CI", ref["study"]], [
                ["screws (completed by the depth stop)", f"{n} ({s['completed']})", "", ref["screws"]],
                ["entry deviation (mm), mean ± SD", fmt_mean_sd(s["entry_mm"]), fmt_ci(s["entry_mm"]), ""],
                ["tip deviation (mm), mean ± SD", fmt_mean_sd(s["tip_mm"]), fmt_ci(s["tip_mm"]),
                 f"{ref['deviation_mm_mean']:.1f} ± {ref['deviation_mm_sd']:.1f}"],
                ["angle (deg), mean ± SD", fmt_mean_sd(s["angle_deg"]), fmt_ci(s["angle_deg"]), ""],
                ["tip deviation, 95th percentile / max (mm)",
                 f"{_num(s['tip_mm'].get('p95'))} / {_num(s['tip_mm'].get('max'))}", "", ""],
                ["Gertzbein-Robbins grade A", _pct(s["grade_a"]), fmt_ci(s["grade_a"], 100, 1),
                 f"{100 * ref['grade_a_share']:.1f} %"],
                ["grade A + B (clinically acceptable)", _pct(s["grade_ab"]), fmt_ci(s["grade_ab"], 100, 1), ""],
            ]), "",
            "The RCT's deviation is the distance between planned and achieved screw positions on "
            "post-operative CT; ours are measured on the hole drilled in the true bone frame, over the screws "
            "the robot finished (a drill stopped early by the breach detector or a timeout left a short hole; "
            "those screws are graded on what was drilled).", "",
            "## Gertzbein-Robbins grades", "",
            md_table(["grade", "definition", "screws", "share", "95 % CI (Wilson)"], [
                [g, d, s["grades"][g], _pct(s["grade_shares"][g]), fmt_ci(s["grade_shares"][g], 100, 1)]
                for g, d in zip(GRADES, ("inside the pedicle", "breach < 2 mm", "2 mm ≤ breach < 4 mm",
                                         "4 mm ≤ breach < 6 mm", "breach ≥ 6 mm or outside the pedicle"),
                                strict=True)]), "",
            "Breach directions: " + (", ".join(f"{k} {v}" for k, v in sorted(s["breach_directions"].items()))
                                     or "none") + f"; breach size {fmt_mean_sd(s['breach_mm'])} mm when breached. "
            "What stopped the drill: " + ", ".join(f"{k} {v}" for k, v in sorted(s["stopped_by"].items())) + ". "
            f"Of the {s['breach_stops']['n']} stops by the breach detector, {s['breach_stops']['with_bump']} came "
            f"with a patient bump and {s['breach_stops']['no_breach']} with no breach at all (grade A): false "
            "alarms, the thrust falling as the bone moved away from the drill.", "",
            "## By level", "",
            md_table(["level", "screws", *GRADES, "tip deviation (mm)"],
                     [[lv, v["n"], *[v["grades"][g] for g in GRADES], fmt_mean_sd(v["tip_mm"])]
                      for lv, v in s["by_level"].items()]), ""]


def _sensitivity_section(sens: dict) -> list[str]:
    """Which drawn conditions the tip deviation follows (Spearman and standardised regression)."""
    labels = dict(FACTORS)
    return ["## Which conditions matter (sensitivity of the tip deviation)", "",
            f"Spearman's rank correlation of each drawn condition with the tip deviation, and the standardised "
            f"coefficients of a linear regression on all of them (R² = {_num(sens['r2'])}, n = {sens['n']}).", "",
            md_table(["condition", "Spearman ρ", "p", "standardised coefficient"],
                     [[labels[r["factor"]], _num(r["spearman_rho"]), _num(r["p_value"], 3), _num(r["std_coef"])]
                      for r in sens["rows"]]), ""]


def _mode_comparison_section(mc: dict, records: list[RunRecord]) -> list[str]:
    """Trial mode against full mode on the same screws, with each mode's wall time per screw."""
    lines = ["## Trial mode against full mode", "",
             f"{mc['n']} screws run in both modes with the same conditions and procedure seed (full mode: "
             "hand-eye calibration from rendered camera images, as `machaon demo`). Same grade in "
             f"{mc['same_grade']} of {mc['n']}.", "",
             md_table(["", "trial mode", "full mode", "full − trial (paired)", "Wilcoxon p"],
                      [[k, fmt_mean_sd(v["trial"]), fmt_mean_sd(v["full"]), fmt_mean_sd(v["full_minus_trial"]),
                        _num(v["wilcoxon_p"], 3)] for k, v in mc["metrics"].items()]), ""]
    t_trial = [r.elapsed_s for r in records if r.ok and r.params["mode"] == "trial"]
    t_full = [r.elapsed_s for r in records if r.ok and r.params["mode"] == "full"]
    if t_trial and t_full:
        lines += [f"Wall time per screw on its worker: trial mode {np.mean(t_trial):.1f} s, full mode "
                  f"{np.mean(t_full):.1f} s (this run; machine load varies).", ""]
    return lines


def _ortho_figures(out: Path, s: dict, screws: list[dict]) -> list[Path]:
    """``ortho_deviations.png``, ``ortho_grades.png`` and (when a condition correlates at all)
    ``ortho_sensitivity.png`` in ``out``, over the ``screws`` the depth stop finished."""
    from machaon.trials.plots import histogram, plt, save_figure

    ref = s["reference"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    histogram(axes[0], [x["entry_mm"] for x in screws], "entry deviation (mm)")
    histogram(axes[1], [x["tip_mm"] for x in screws], "tip deviation (mm)", ref=ref["deviation_mm_mean"],
              ref_label=f"TiRobot RCT mean {ref['deviation_mm_mean']} mm")
    histogram(axes[2], [x["angle_deg"] for x in screws], "angle (deg)")
    paths = [save_figure(fig, out / "ortho_deviations.png")]
    fig, ax = plt.subplots(figsize=(6, 4))
    shares = [100 * (s["grade_shares"][g]["share"] or 0.0) for g in GRADES]
    ax.bar(GRADES, shares, color=["C2", "C8", "C1", "C3", "C3"])
    ax.axhline(100 * ref["grade_a_share"], color="k", ls="--", lw=1, label="TiRobot RCT grade A")
    ax.set_ylabel("screws (%)")
    ax.set_title("Gertzbein-Robbins grades")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "ortho_grades.png"))
    labels = dict(FACTORS)
    top = [r["factor"] for r in s["sensitivity"]["tip_mm"]["rows"] if r["spearman_rho"] is not None][:3]
    if top:
        fig, axes = plt.subplots(1, len(top), figsize=(5 * len(top), 4), squeeze=False)
        for ax, f in zip(axes[0], top, strict=True):
            xs = [(x["conditions"].get(f) if f in x["conditions"] else x.get(f)) for x in screws]
            ax.scatter(xs, [x["tip_mm"] for x in screws], s=8, alpha=0.6)
            ax.set_xlabel(labels[f])
            ax.set_ylabel("tip deviation (mm)")
        paths.append(save_figure(fig, out / "ortho_sensitivity.png"))
    return paths


def write_ortho_report(out: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
    """``report.md`` (a clinical accuracy table) and ``ortho_deviations.png``, ``ortho_grades.png``,
    ``ortho_sensitivity.png``."""
    s = summary
    lines = _accuracy_sections(s) + _sensitivity_section(s["sensitivity"]["tip_mm"])
    if s["mode_comparison"]:
        lines += _mode_comparison_section(s["mode_comparison"], records)
    lines += ["## Conditions drawn (uniform between low and high)", "",
              md_table(["condition", "range"], [[k, v] for k, v in s["settings"]["noise_ranges"].items()]), ""]
    if s["errors"]:
        lines += ["## Failed runs", "", md_table(["index", "seed", "level/side", "error"],
                                                   [[e["index"], e["seed"],
                                                     f"{e['params']['level']}/{e['params']['side']}", e["error"]]
                                                    for e in s["errors"]]), ""]
    paths = _ortho_figures(out, s, [x for x in s["screws"] if x["stopped_by"] == "depth_stop"])
    lines += [f"![deviations]({paths[0].name})", "", f"![grades]({paths[1].name})", ""]
    if len(paths) > 2:
        lines += [f"![sensitivity]({paths[2].name})", ""]
    rp = out / "report.md"
    rp.write_text("\n".join(lines), encoding="utf-8")
    return [rp, *paths]


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"
