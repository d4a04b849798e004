"""``machaon trial teleop``: the scripted operator tasks over link profiles x operator speeds x seeds.

Each run is one task (``square`` or ``hold``, ``machaon.teleop.sweep.task_script``) at one
operator speed through one link profile with one link seed: the real protocol over the
in-process simulated link, the ``TeleopController`` and supervisor on the simulated arm in
simulated time (``machaon.teleop.sweep.run_profile``). For every (task, speed) the plan also
holds one run with no link at all (``zero_delay``: commands and states arrive in the cycle they
are sent), the baseline of the arm's own behaviour.

Per run (mm, ms, s): the distance from the ideal point at the same instant (``rms_error_mm``,
``max_error_mm``, as ``teleop sweep`` always reported), and separately the geometric deviation
from the ideal path (``path_dev_rms_mm``, ``path_dev_max_mm``) and the time lag behind it
(``lag_ms``) (``machaon.teleop.path_metrics``); overshoot, completion time, HOLDs, time not in
RUN, commands dropped, packets lost, the measured RTT. The summary gives each (task, speed,
profile) group's mean ± SD with 95 % CIs and the **link share**: the part of the group's mean
path deviation, lag and same-instant error that the link adds over the zero-delay run of the
same task and speed, ``(x - x_zero) / x``.

The backend is given by the caller (``backend(description) -> Backend``, the CLI passes the
PyBullet ``ArmSim`` in DIRECT mode): this layer does not pick backends by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from machaon.robot.description import load_description
from machaon.teleop.profiles import LinkProfile
from machaon.teleop.robot_setup import robot_model
from machaon.teleop.sweep import ProfileResult, SweepReport, run_profile, task_script
from machaon.trials.stats import describe
from machaon.trials.study import RunRecord
from machaon.trials.tables import fmt_ci, fmt_mean_sd, md_table

TASKS = ("square", "hold")
ZERO_DELAY = LinkProfile("zero_delay", delay_s=0.0,
                         description="no link: commands and states arrive in the control cycle they are sent")
METRICS = ("rtt_p50_ms", "rms_error_mm", "max_error_mm", "path_dev_rms_mm", "path_dev_max_mm", "lag_ms",
           "overshoot_mm", "completion_s", "holds", "time_not_run_s", "commands_dropped", "packets_lost")
SHARED = ("path_dev_rms_mm", "lag_ms", "rms_error_mm")


@dataclass(frozen=True)
class TeleopStudy:
    """Tasks x operator speeds x (zero-delay baseline + profiles x ``seeds`` link seeds).

    ``backend(description)`` builds the simulated arm (simulated clock). ``trace_hz`` is the
    rate of the decimated tool trace kept in each run's result (for plots).
    """

    profiles: tuple[LinkProfile, ...]
    backend: Callable[[object], object]
    tasks: tuple[str, ...] = ("square",)
    speeds: tuple[float, ...] = (1.0,)
    seeds: int = 3
    rate_hz: float = 1000.0
    trace_hz: float = 50.0
    name: ClassVar[str] = "teleop"

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ValueError("teleop study: at least one link profile")
        names = [p.name for p in self.profiles]
        if len(set(names)) != len(names) or ZERO_DELAY.name in names:
            raise ValueError(f"teleop study: profile names must be unique and not {ZERO_DELAY.name!r}")
        bad = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or bad:
            raise ValueError(f"teleop study: tasks must be among {TASKS}, got {list(self.tasks)}")
        if not self.speeds or not all(math.isfinite(s) and s > 0 for s in self.speeds):
            raise ValueError("teleop study: operator speeds must be > 0")
        if self.seeds < 1 or not (self.rate_hz > 0 and self.trace_hz > 0):
            raise ValueError("teleop study: seeds >= 1, rate_hz and trace_hz > 0")

    def settings(self) -> dict:
        return {"tasks": list(self.tasks), "speeds": list(self.speeds), "seeds": self.seeds, "rate_hz": self.rate_hz,
                "profiles": [asdict(p) for p in self.profiles],
                "backend": f"{self.backend.__module__}.{getattr(self.backend, '__qualname__', '?')}"}

    def plan(self, seed: int) -> list[dict]:
        runs = []
        for task in self.tasks:
            for speed in self.speeds:
                runs.append({"task": task, "speed": speed, "profile": asdict(ZERO_DELAY), "replicate": 0})
                for prof in self.profiles:
                    for rep in range(self.seeds):
                        runs.append({"task": task, "speed": speed, "profile": asdict(prof), "replicate": rep})
        return runs

    def run(self, params: dict, seed: int) -> dict:
        profile = LinkProfile(**params["profile"])
        script = task_script(params["task"], float(params["speed"]))
        model = robot_model(load_description("machaon_arm"))
        res, tr = run_profile(profile, script, self.backend, model=model, seed=seed, rate_hz=self.rate_hz)
        k = max(1, int(round(self.rate_hz / self.trace_hz)))
        trace = {"t_s": tr.t[::k], "actual_mm": tr.p_actual[::k] * 1e3, "ideal_mm": tr.p_ideal[::k] * 1e3}
        return {**asdict(res), "trace": trace}

    def summarise(self, records: list[RunRecord]) -> dict:
        return {"teleop": summarise_groups(records)}

    def write_report(self, out_dir: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
        return write_teleop_report(Path(out_dir), summary, records)

    def headline(self, summary: dict) -> str:
        return headline_table(summary["teleop"]["groups"])


def _key(params: dict) -> tuple[str, float, str]:
    return params["task"], float(params["speed"]), params["profile"]["name"]


def summarise_groups(records: list[RunRecord]) -> dict:
    """Per (task, speed, profile): n, each metric's ``describe``, and the link share vs zero delay."""
    groups: dict[tuple, list[dict]] = {}
    order: list[tuple] = []
    for r in records:
        k = _key(r.params)
        if k not in groups:
            groups[k] = []
            order.append(k)
        if r.ok and r.result is not None:
            groups[k].append(r.result)
    out = []
    for k in order:
        rows = groups[k]
        metrics = {m: describe([np.nan if row.get(m) is None else row[m] for row in rows]) for m in METRICS}
        completed = sum(1 for row in rows if row.get("completion_s") is not None)
        out.append({"task": k[0], "speed": k[1], "profile": k[2], "n": len(rows), "completed": completed,
                    "metrics": metrics})
    base = {(g["task"], g["speed"]): g for g in out if g["profile"] == ZERO_DELAY.name}
    for g in out:
        b = base.get((g["task"], g["speed"]))
        share = {}
        for m in SHARED:
            x = g["metrics"][m]["mean"]
            x0 = None if b is None else b["metrics"][m]["mean"]
            share[m] = None if (x is None or x0 is None or x <= 0) else (x - x0) / x
        g["link_share"] = share
    return {
        "groups": out,
        "definitions": {
            "rms_error_mm": "RMS distance from the ideal point at the same instant, during the task",
            "path_dev_rms_mm": "RMS distance from the ideal path (nearest point, any time), task + settling",
            "lag_ms": "delay that best aligns the tool trajectory with the ideal one",
            "link_share": "(x - x_zero_delay) / x for the group's mean x: the part of x the link adds",
        },
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def headline_table(groups: list[dict]) -> str:
    """A fixed-width table of the groups' means (terminal)."""
    head = (f"{'task':7s} {'speed':>5s} {'profile':18s} {'n':>3s} {'rtt ms':>7s} {'err mm':>7s} {'path mm':>8s} "
            f"{'lag ms':>7s} {'link%path':>9s} {'link%lag':>8s} {'holds':>5s}")
    lines = [head, "-" * len(head)]
    for g in groups:
        m = g["metrics"]

        def v(name: str, fmt: str = "7.2f", m: dict = m) -> str:
            x = m[name]["mean"]
            return format(x, fmt) if x is not None else "-".rjust(int(fmt.split(".")[0]))

        lines.append(f"{g['task']:7s} {g['speed']:5.2f} {g['profile']:18s} {g['n']:3d} {v('rtt_p50_ms', '7.1f')} "
                     f"{v('rms_error_mm')} {v('path_dev_rms_mm', '8.3f')} {v('lag_ms', '7.1f')} "
                     f"{_pct(g['link_share']['path_dev_rms_mm']):>9s} {_pct(g['link_share']['lag_ms']):>8s} "
                     f"{v('holds', '5.1f')}")
    return "\n".join(lines)


def write_teleop_report(out: Path, summary: dict, records: list[RunRecord]) -> list[Path]:
    """``report.md`` and ``teleop_metrics.png`` / ``teleop_paths.png`` in ``out``."""
    from machaon.trials.plots import plt

    groups = summary["teleop"]["groups"]
    paths = []
    lines = [f"# Teleoperation study (seed {summary['seed']})", "",
             f"{summary['runs']['done']} runs ({summary['runs']['errors']} failed). Each group: one task at one "
             "operator speed through one link profile, over link seeds. `zero_delay` is the same task with no "
             "link (the arm's own behaviour).", "",
             "Same-instant error mixes path and time; the path deviation and the lag separate them. Link share = "
             "the part of the group's mean that the link adds over the zero-delay run: (x - x₀) / x.", ""]
    header = ["task", "speed", "profile", "n", "RTT ms", "same-instant error RMS mm", "path deviation RMS mm",
              "path deviation 95% CI", "lag ms", "lag 95% CI", "link share: path", "link share: lag",
              "overshoot mm", "done s", "HOLDs", "completed"]
    rows = []
    for g in groups:
        m = g["metrics"]
        rows.append([g["task"], f"{g['speed']:.2f}", g["profile"], g["n"], fmt_mean_sd(m["rtt_p50_ms"], digits=1),
                     fmt_mean_sd(m["rms_error_mm"]), fmt_mean_sd(m["path_dev_rms_mm"], digits=3),
                     fmt_ci(m["path_dev_rms_mm"], digits=3), fmt_mean_sd(m["lag_ms"], digits=1),
                     fmt_ci(m["lag_ms"], digits=1), _pct(g["link_share"]["path_dev_rms_mm"]),
                     _pct(g["link_share"]["lag_ms"]), fmt_mean_sd(m["overshoot_mm"]),
                     fmt_mean_sd(m["completion_s"]), fmt_mean_sd(m["holds"], digits=1),
                     f"{g['completed']}/{g['n']}"])
    lines += [md_table(header, rows), ""]
    if summary["errors"]:
        failed = [[e["index"], e["seed"], e["error"]] for e in summary["errors"]]
        lines += ["## Failed runs", "", md_table(["index", "seed", "error"], failed), ""]

    # metrics per profile, one panel per metric, a line per (task, speed)
    keys = sorted({(g["task"], g["speed"]) for g in groups})
    profiles = list(dict.fromkeys(g["profile"] for g in groups))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    for ax, (metric, label) in zip(axes, (("path_dev_rms_mm", "path deviation RMS (mm)"), ("lag_ms", "lag (ms)"),
                                           ("rms_error_mm", "same-instant error RMS (mm)")), strict=True):
        for k in keys:
            ys = [next((g["metrics"][metric]["mean"] for g in groups
                        if (g["task"], g["speed"]) == k and g["profile"] == p), None) for p in profiles]
            ax.plot(range(len(profiles)), [np.nan if y is None else y for y in ys], "o-", label=f"{k[0]} x{k[1]:g}")
        ax.set_xticks(range(len(profiles)), profiles, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    p = out / "teleop_metrics.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    lines += ["![metrics per profile](teleop_metrics.png)", ""]

    p = plot_paths(out / "teleop_paths.png", records)
    if p is not None:
        paths.append(p)
        lines += ["![tool paths](teleop_paths.png)", ""]
    lines += ["Definitions: " + "; ".join(f"`{k}`: {v}" for k, v in summary["teleop"]["definitions"].items()), ""]
    rp = out / "report.md"
    rp.write_text("\n".join(lines), encoding="utf-8")
    return [rp, *paths]


def plot_paths(path: Path, records: list[RunRecord]) -> Path | None:
    """The first replicate of every profile for the first (task, speed): tool path (square) or x(t) (hold)."""
    from machaon.trials.plots import plt

    ok = [r for r in records if r.ok and r.result and r.result.get("trace") and r.params.get("replicate", 0) == 0]
    if not ok:
        return None
    first = (ok[0].params["task"], float(ok[0].params["speed"]))
    sel = [r for r in ok if (r.params["task"], float(r.params["speed"])) == first]
    fig, ax = plt.subplots(figsize=(7, 6))
    tr0 = sel[0].result["trace"]
    ideal = np.asarray(tr0["ideal_mm"])
    t0 = np.asarray(tr0["t_s"])
    if first[0] == "square":
        ax.plot(ideal[:, 0], ideal[:, 1], "k--", lw=2, label="ideal path")
    else:
        ax.plot(t0, ideal[:, 0] - ideal[0, 0], "k--", lw=2, label="ideal")
    for r in sel:
        tr = r.result["trace"]
        a = np.asarray(tr["actual_mm"])
        if first[0] == "square":
            ax.plot(a[:, 0], a[:, 1], lw=1, label=r.params["profile"]["name"])
        else:
            ax.plot(np.asarray(tr["t_s"]), a[:, 0] - ideal[0, 0], lw=1, label=r.params["profile"]["name"])
    if first[0] == "square":
        ax.set_xlabel("x base (mm)")
        ax.set_ylabel("y base (mm)")
        ax.axis("equal")
    else:
        ax.set_xlabel("time since task start (s)")
        ax.set_ylabel("x displacement (mm)")
    ax.set_title(f"task '{first[0]}', operator speed x{first[1]:g}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_sweep(profiles: list[LinkProfile], backend: Callable[[object], object], *, task: str = "square",
              out_dir: str | Path = "teleop_sweep", seed: int = 0, rate_hz: float = 1000.0,
              workers: int | None = None, address: str | None = None, progress: bool = True) -> SweepReport:
    """``machaon teleop sweep``: the teleop study with one task, nominal speed and one seed per profile.

    Runs on Ray like any study (into ``out_dir``, resuming what is already there), then writes
    the sweep's own ``sweep.json`` (``task``, ``seed``, ``rate_hz``, ``results``: one entry per
    profile, plus the zero-delay baseline and the link shares) and ``sweep.png``.
    """
    from machaon.trials.engine import run_study
    from machaon.trials.store import write_json_atomic

    study = TeleopStudy(tuple(profiles), backend, tasks=(task,), speeds=(1.0,), seeds=1, rate_hz=rate_hz)
    res = run_study(study, out_dir, seed=seed, workers=workers, address=address, resume=True, progress=progress)
    names = {f.name for f in fields(ProfileResult)}
    by_profile = {r.params["profile"]["name"]: r for r in res.records if r.ok}
    results = [ProfileResult(**{k: v for k, v in by_profile[p.name].result.items() if k in names})
               for p in profiles if p.name in by_profile]
    base = by_profile.get(ZERO_DELAY.name)
    groups = {g["profile"]: g for g in res.summary["teleop"]["groups"]}
    out = Path(out_dir)
    write_json_atomic(out / "sweep.json", {
        "task": task, "seed": seed, "rate_hz": rate_hz,
        "results": [asdict(r) for r in results],
        "zero_delay": None if base is None else {k: v for k, v in base.result.items() if k in names},
        "link_share": {p.name: groups[p.name]["link_share"] for p in profiles if p.name in groups},
        "errors": res.summary["errors"],
    })
    _plot_sweep(out / "sweep.png", task, [by_profile[n] for n in [ZERO_DELAY.name, *[p.name for p in profiles]]
                                          if n in by_profile])
    return SweepReport(task, tuple(results), out)


def _plot_sweep(path: Path, task: str, records: list[RunRecord]) -> None:
    """Tool path (or x(t) for ``hold``) and the same-instant distance from the ideal over time, per profile."""
    from machaon.trials.plots import plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    for n, r in enumerate(records):
        tr = r.result["trace"]
        t, a, i = np.asarray(tr["t_s"]), np.asarray(tr["actual_mm"]), np.asarray(tr["ideal_mm"])
        name = r.params["profile"]["name"]
        if n == 0:
            if task == "square":
                ax1.plot(i[:, 0], i[:, 1], "k--", lw=2, label="ideal")
            else:
                ax1.plot(t, i[:, 0] - i[0, 0], "k--", lw=2, label="ideal")
        style = {"color": "0.5", "lw": 2.5, "alpha": 0.6} if name == ZERO_DELAY.name else {"lw": 1}
        if task == "square":
            ax1.plot(a[:, 0], a[:, 1], label=name, **style)
        else:
            ax1.plot(t, a[:, 0] - i[0, 0], label=name, **style)
        ax2.plot(t, np.maximum(np.linalg.norm(a - i, axis=1), 1e-3), label=name, **style)
    if task == "square":
        ax1.set_xlabel("x base (mm)")
        ax1.set_ylabel("y base (mm)")
        ax1.axis("equal")
    else:
        ax1.set_xlabel("time since task start (s)")
        ax1.set_ylabel("x displacement (mm)")
    ax1.set_title(f"tool path, task '{task}'")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("time since task start (s)")
    ax2.set_ylabel("distance from the ideal point at the same instant (mm)")
    ax2.set_yscale("log")
    ax2.set_title("same-instant tracking error")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
