"""The bench suite's report (``BenchReport``, its ``Check``s) and its directory: ``report.json``,
``report.md``, PNG plots, and the ``identified.toml`` of a run with dynamics identification
(``machaon.hardware.bench`` runs the suite)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["BenchReport", "Check", "write_bench_report"]

# checks are logged under the bench suite's name, as before
log = logging.getLogger("machaon.hardware.bench")


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    dxl_id: int | None = None


@dataclass
class BenchReport:
    options: dict
    checks: list[Check] = field(default_factory=list)
    scan: dict = field(default_factory=dict)
    servos: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    interrupted: bool = False
    plots: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    identification: dict = field(default_factory=dict)
    identified_toml: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks) and not self.interrupted

    def check(self, name: str, passed: bool, detail: str, dxl_id: int | None = None) -> None:
        self.checks.append(Check(name, bool(passed), detail, dxl_id))
        (log.info if passed else log.warning)("%s %s%s: %s", "PASS" if passed else "FAIL", name,
                                              f" [{dxl_id}]" if dxl_id is not None else "", detail)


def write_bench_report(report: BenchReport, out_dir: str | Path) -> Path:
    """Write ``report.json``, ``report.md`` and PNG plots into ``out_dir``; returns the directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    lat = report.latency
    if lat.get("samples_cycle"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.hist(np.array(lat["samples_single"]) * 1e3, bins=50, alpha=0.7, label="single read (4 B)")
        ax.hist(np.array(lat["samples_cycle"]) * 1e3, bins=50, alpha=0.7, label="sync read + sync write cycle")
        ax.axvline(lat["wire_cycle_s"] * 1e3, color="k", ls="--", label="wire-time bound (cycle)")
        ax.set_xlabel("round trip (ms)")
        ax.set_ylabel("count")
        ax.legend()
        ax.set_title(f"latency; achievable loop rate {lat['achievable_rate_hz']:.0f} Hz")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=100)
        plt.close(fig)
        plots.append("latency.png")
    for kind, key, unit in (("position", "pos_rad", "rad"), ("current", "current_a", "A")):
        runs = {i: s[kind] for i, s in report.steps.items() if kind in s}
        if not runs:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for i, run in runs.items():
            r = run["out"] if kind == "position" else run
            y = np.array(r[key])
            y0 = r["from_rad"] if kind == "position" else 0.0
            ax.plot(r["t"], y - y0, label=f"id {i}")
        target = (next(iter(runs.values()))["out"]["to_rad"] - next(iter(runs.values()))["out"]["from_rad"]
                  if kind == "position" else next(iter(runs.values()))["target_a"])
        ax.axhline(target, color="k", ls="--", label="step")
        ax.set_xlabel("t (s)")
        ax.set_ylabel(f"{kind} change ({unit})")
        ax.legend(fontsize=7)
        ax.set_title(f"{kind} step response")
        fig.tight_layout()
        fig.savefig(out / f"{kind}_step.png", dpi=100)
        plt.close(fig)
        plots.append(f"{kind}_step.png")
    report.plots = plots
    data = asdict(report)
    data.pop("identified_toml")
    data["passed"] = report.passed
    if report.identified_toml:
        (out / "identified.toml").write_text(report.identified_toml)
    (out / "report.json").write_text(json.dumps(data, indent=1, default=_json_default))
    (out / "report.md").write_text(_markdown(report))
    return out


def _json_default(o: object) -> object:
    if isinstance(o, float | np.floating):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    return str(o)


def _markdown(r: BenchReport) -> str:
    o = r.options
    lines = [f"# Servo bench report: {'PASS' if r.passed else 'FAIL'}", "",
             f"Port `{o['port']}`, {o['baudrate']} baud, ids {list(o['ids'])}"
             f"{' (dry run: nothing moved)' if o['dry_run'] else ''}.", ""]
    if r.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in r.warnings] + [""]
    lines += ["## Checks", "", "| check | id | result | detail |", "| --- | --- | --- | --- |"]
    for c in r.checks:
        lines.append(f"| {c.name} | {'' if c.dxl_id is None else c.dxl_id} | {'PASS' if c.passed else 'FAIL'} "
                     f"| {c.detail} |")
    if r.servos:
        lines += ["", "## Servos", "", "| id | model | firmware | mode | temp (C) | voltage (V) | hw error |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for i, s in r.servos.items():
            lines.append(f"| {i} | {s['model']} | {s['firmware']} | {s['operating_mode']} | "
                         f"{s['present_temperature']} | {s['present_input_voltage'] / 10:.1f} | "
                         f"{s['hardware_error_status']} |")
    if r.latency:
        lat = r.latency
        lines += ["", "## Latency", "",
                  f"Single read p50 {lat['single_read_s'].get('p50', 0) * 1e3:.3f} ms, "
                  f"p99 {lat['single_read_s'].get('p99', 0) * 1e3:.3f} ms; cycle (sync read + sync write) "
                  f"p50 {lat['cycle_s'].get('p50', 0) * 1e3:.3f} ms, p99 {lat['cycle_s'].get('p99', 0) * 1e3:.3f} ms "
                  f"(wire bound {lat['wire_cycle_s'] * 1e3:.3f} ms); achievable loop rate "
                  f"{lat['achievable_rate_hz']:.0f} Hz."]
    if r.steps:
        lines += ["", "## Step responses", "", "| id | kind | rise (ms) | overshoot (%) | steady-state error |",
                  "| --- | --- | --- | --- | --- |"]
        for i, s in r.steps.items():
            if "position" in s:
                m = s["position"]["out"]["metrics"]
                lines.append(f"| {i} | position | {m['rise_time_s'] * 1e3:.1f} | {m['overshoot_pct']:.1f} | "
                             f"{m['steady_state_error']:+.4f} rad |")
            if "current" in s:
                m = s["current"]["metrics"]
                lines.append(f"| {i} | current | {m['rise_time_s'] * 1e3:.1f} | {m['overshoot_pct']:.1f} | "
                             f"{m['steady_state_error'] * 1e3:+.1f} mA |")
    if r.identification:
        lines += ["", f"## Dynamics identification ({r.identification['robot']})", "",
                  "Written to `identified.toml` (load it with `--hw-config`). Model error: RMS of measured minus "
                  "model torque over the sweeps; gravity error: over the held poses.", "",
                  "| joint | id | kt (N m/A) | datasheet | kt from | Coulomb (N m) | viscous (N m s/rad) | "
                  "model error (N m, %) | gravity error (N m, %) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, j in r.identification["joints"].items():
            g = j.get("gravity_error_nm")
            gp = j.get("gravity_error_pct")
            gtxt = "" if g is None else f"{g:.3f}" + ("" if gp is None else f" ({gp:.1f} %)")
            lines.append(f"| {name} | {j['id']} | {j['kt_nm_per_a']:.3f} | {j['kt_datasheet']:.3f} | {j['kt_from']} | "
                         f"{j['coulomb_nm']:.3f} | {j['viscous_nms_rad']:.3f} | {j['rms_error_nm']:.3f} "
                         f"({j['rms_error_pct']:.1f} %) | {gtxt} |")
    for p in r.plots:
        lines += ["", f"![{p}]({p})"]
    lines += ["", "## Plan", ""] + [f"- {s}" for s in r.plan]
    return "\n".join(lines) + "\n"
