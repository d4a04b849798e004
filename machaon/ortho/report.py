"""Per-screw outcome of a procedure: errors against the plan, achieved clearance, report files.

``evaluate_screw`` compares the achieved path (the drilled entry and tip, image frame, m) with
the planned screw and checks the achieved screw against the anatomy. ``make_report`` collects
the screws, the registration figures and timings into a JSON-ready dict (mm, degrees, seconds:
this is a file for people); ``write_report`` writes ``DIR/report.json`` and PNG pictures of
planned vs achieved paths (matplotlib, Agg); ``render_pictures`` re-draws them from a report
alone (the report stores the anatomy description and both paths).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from machaon._validate import finite_array
from machaon.errors import OrthoError
from machaon.ortho.anatomy import MM, Anatomy, AnatomyError, SpineSegment
from machaon.ortho.planning import PlanError, ScrewPlan, check_plan

log = logging.getLogger(__name__)

REPORT_FORMAT = "machaon.ortho.report"
REPORT_VERSION = 1


class ReportError(OrthoError, ValueError):
    """A report is malformed or cannot be written/read."""


@dataclass(frozen=True)
class ScrewResult:
    """Outcome of one screw (SI, image frame).

    Errors: ``entry_error`` / ``tip_error`` are 3-D distances between achieved and planned entry
    and tip (m); ``angle_error`` the angle between the achieved and planned directions (rad);
    ``depth_error`` the achieved depth along the planned axis minus the planned length (m,
    positive = too deep); ``lateral_tip_error`` the tip's distance from the planned axis line (m).
    ``min_clearance``/``canal_clearance``/``breach``/``breach_location`` come from ``check_plan``
    on the achieved screw (with the planned diameter); ``planned_min_clearance`` on the plan.
    ``times`` are named durations in seconds (e.g. 'align', 'drill').
    """

    planned: ScrewPlan
    achieved_entry: np.ndarray
    achieved_tip: np.ndarray
    entry_error: float
    tip_error: float
    angle_error: float
    depth_error: float
    lateral_tip_error: float
    min_clearance: float
    canal_clearance: float
    planned_min_clearance: float
    breach: bool
    breach_location: str | None
    times: Mapping[str, float] = field(default_factory=dict)
    stopped_by: str | None = None

    @property
    def name(self) -> str:
        return self.planned.name

    def to_dict(self) -> dict:
        """JSON-ready dict: mm, degrees, seconds."""
        return {
            "name": self.planned.name,
            "level": self.planned.level,
            "side": self.planned.side,
            "entry_error_mm": self.entry_error / MM,
            "tip_error_mm": self.tip_error / MM,
            "angle_error_deg": math.degrees(self.angle_error),
            "depth_error_mm": self.depth_error / MM,
            "lateral_tip_error_mm": self.lateral_tip_error / MM,
            "min_clearance_mm": _finite_or_none(self.min_clearance / MM),
            "canal_clearance_mm": _finite_or_none(self.canal_clearance / MM),
            "planned_min_clearance_mm": _finite_or_none(self.planned_min_clearance / MM),
            "breach": self.breach,
            "breach_location": self.breach_location,
            "stopped_by": self.stopped_by,
            "times_s": dict(self.times),
            "planned": self.planned.to_dict(),
            "achieved": {
                "entry_mm": (self.achieved_entry / MM).tolist(),
                "tip_mm": (self.achieved_tip / MM).tolist(),
            },
        }


def _fmt(entry: dict, key: str) -> str:
    v = entry.get(key)
    return "n/a" if not isinstance(v, (int, float)) else f"{v:.2f}"


def _finite_or_none(x: float) -> float | None:
    """JSON has no infinity: a clearance that does not apply (nothing drilled, no canal) is null."""
    return float(x) if math.isfinite(x) else None


def screw_errors(planned: ScrewPlan, achieved_entry: np.ndarray, achieved_tip: np.ndarray) -> dict[str, float]:
    """Entry, tip, angle, depth and lateral tip errors (m, rad) of an achieved path vs the plan.

    Raises ``ValueError`` for non-finite points or an achieved path shorter than 1e-6 m.
    """
    e = finite_array("achieved_entry", achieved_entry, (3,))
    t = finite_array("achieved_tip", achieved_tip, (3,))
    v = t - e
    n = float(np.linalg.norm(v))
    if n < 1e-6:
        raise ValueError("achieved_tip: coincides with achieved_entry")
    d = planned.direction
    cosang = float(np.clip(np.dot(v / n, d), -1.0, 1.0))
    rel = t - planned.entry
    along = float(np.dot(rel, d))
    lateral = float(np.linalg.norm(rel - along * d))
    return {
        "entry_error": float(np.linalg.norm(e - planned.entry)),
        "tip_error": float(np.linalg.norm(t - planned.target)),
        "angle_error": math.acos(cosang),
        "depth_error": along - planned.length,
        "lateral_tip_error": lateral,
    }


def evaluate_screw(
    anatomy: Anatomy,
    planned: ScrewPlan,
    achieved_entry: np.ndarray,
    achieved_tip: np.ndarray,
    times: Mapping[str, float] | None = None,
    stopped_by: str | None = None,
) -> ScrewResult:
    """Errors of the achieved path plus clearance/breach of the achieved screw (planned diameter)."""
    err = screw_errors(planned, achieved_entry, achieved_tip)
    e = np.array(achieved_entry, dtype=float)
    t = np.array(achieved_tip, dtype=float)
    plan_check = check_plan(anatomy, planned)
    if np.linalg.norm(t - e) >= 1 * MM:
        achieved = ScrewPlan(planned.name, planned.level, planned.side, e, t, planned.diameter)
        c = check_plan(anatomy, achieved)
        min_c, canal_c, breach, loc = c.min_clearance, c.canal_clearance, c.breach, c.breach_location
    else:  # the drill barely entered: nothing inside the bone to check beyond the entry zone
        min_c, canal_c, breach, loc = math.inf, math.inf, False, None
    for k, v in (times or {}).items():
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"times[{k!r}]: not a finite number of seconds")
    return ScrewResult(
        planned,
        e,
        t,
        err["entry_error"],
        err["tip_error"],
        err["angle_error"],
        err["depth_error"],
        err["lateral_tip_error"],
        min_c,
        canal_c,
        plan_check.min_clearance,
        breach,
        loc,
        dict(times or {}),
        stopped_by,
    )


def make_report(
    results: Sequence[ScrewResult],
    registration: Mapping[str, float] | None = None,
    anatomy: Anatomy | None = None,
    times: Mapping[str, float] | None = None,
    meta: Mapping[str, object] | None = None,
) -> dict:
    """The JSON-ready report: ``screws`` (``ScrewResult.to_dict``), ``registration``, ``summary``.

    ``registration`` holds SI values keyed e.g. 'fre', 'tre_predicted', 'icp_rms' (m) — they are
    written with an ``_mm`` suffix; other keys are copied as they are. ``anatomy`` is stored via
    its ``to_dict`` (if it has one) so that pictures can be re-drawn from the report alone.
    """
    screws = [r.to_dict() for r in results]
    reg: dict[str, object] = {}
    for k, v in (registration or {}).items():
        if isinstance(v, (int, float)) and k in ("fre", "tre", "tre_predicted", "tre_measured", "icp_rms", "fle"):
            reg[f"{k}_mm"] = float(v) / MM
        else:
            reg[k] = v
    summary = {}
    if results:
        summary = {
            "n_screws": len(results),
            "max_entry_error_mm": max(r.entry_error for r in results) / MM,
            "max_tip_error_mm": max(r.tip_error for r in results) / MM,
            "max_angle_error_deg": math.degrees(max(r.angle_error for r in results)),
            "min_clearance_mm": _finite_or_none(min(r.min_clearance for r in results) / MM),
            "any_breach": any(r.breach for r in results),
        }
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "units": {"length": "mm", "angle": "deg", "time": "s"},
        "screws": screws,
        "registration": reg,
        "summary": summary,
        "times_s": dict(times or {}),
        "anatomy": anatomy.to_dict() if anatomy is not None and hasattr(anatomy, "to_dict") else None,
        "meta": dict(meta or {}),
    }


def _json_default(o: object) -> object:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_report(directory: str | Path, report: dict, anatomy: Anatomy | None = None, pictures: bool = True) -> Path:
    """Write ``DIR/report.json`` (and PNG pictures unless ``pictures`` is False); returns the JSON path."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        path = d / "report.json"
        path.write_text(json.dumps(report, indent=2, default=_json_default, allow_nan=False))
    except (OSError, ValueError) as exc:  # ValueError: a NaN/inf that JSON cannot hold
        raise ReportError(f"{directory}: cannot write report ({exc})") from None
    if pictures:
        render_pictures(d, report, anatomy)
    return path


def load_report(directory: str | Path) -> dict:
    """Read ``DIR/report.json`` (``ReportError`` if missing or malformed)."""
    path = Path(directory) / "report.json"
    try:
        rep = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read report ({exc})") from None
    if not isinstance(rep, dict) or rep.get("format") != REPORT_FORMAT or not isinstance(rep.get("screws"), list):
        raise ReportError(f"{path}: not a {REPORT_FORMAT} document")
    return rep


def _paths_from_report(entry: dict) -> tuple[ScrewPlan, np.ndarray, np.ndarray]:
    try:
        planned = ScrewPlan.from_dict(entry["planned"])
        e = np.asarray(entry["achieved"]["entry_mm"], float) * MM
        t = np.asarray(entry["achieved"]["tip_mm"], float) * MM
    except (KeyError, TypeError, PlanError) as exc:
        raise ReportError(f"report screw {entry.get('name')!r}: malformed ({exc})") from None
    return planned, e, t


def _slice_plane(anatomy: Anatomy, screw: ScrewPlan, up_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal in-plane axes (u along the planned screw, v across it, towards ``up_local``)."""
    T = anatomy.level_frame(screw.level)
    u = screw.direction
    w = T[:3, :3] @ up_local
    v = w - np.dot(w, u) * u
    if np.linalg.norm(v) < 1e-6:
        v = np.cross(u, [0.0, 0.0, 1.0])
    return u, v / np.linalg.norm(v)


def render_pictures(directory: str | Path, report: dict, anatomy: Anatomy | None = None) -> list[Path]:
    """PNG per screw (two slices through the planned axis: transverse and sagittal) with the bone
    (cancellous grey, cortical dark), the canal, the planned screw (outline) and the achieved path,
    plus one axial overview per level (``level_<L>.png``) with all its screws.

    The anatomy is rebuilt from ``report['anatomy']`` when not given (``ReportError`` if neither).
    Returns the written paths.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if anatomy is None:
        anatomy = _anatomy_of(report)
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for entry in report["screws"]:
        planned, ae, at = _paths_from_report(entry)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), dpi=110)
        for ax, (title, up) in zip(
            axes, (("transverse", np.array([1.0, 0.0, 0.0])), ("sagittal", np.array([0.0, 0.0, 1.0]))), strict=True
        ):
            _draw_slice(ax, anatomy, planned, ae, at, up)
            ax.set_title(f"{planned.name} {title}")
        axes[0].legend(loc="upper right", fontsize=7)

        fig.suptitle(
            f"{planned.name}: entry {_fmt(entry, 'entry_error_mm')} mm, tip {_fmt(entry, 'tip_error_mm')} mm, "
            f"angle {_fmt(entry, 'angle_error_deg')} deg, clearance {_fmt(entry, 'min_clearance_mm')} mm"
        )
        fig.tight_layout()
        path = out_dir / f"screw_{planned.name}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    written.extend(_render_overviews(out_dir, report, anatomy, plt))
    return written


def _anatomy_of(report: dict) -> Anatomy:
    """The phantom a report was made on, rebuilt from ``report['anatomy']`` (``ReportError`` if absent)."""
    if not report.get("anatomy"):
        raise ReportError("report has no anatomy description; pass the anatomy to draw pictures")
    try:
        return SpineSegment.from_dict(report["anatomy"])
    except AnatomyError as exc:
        raise ReportError(str(exc)) from None


def _draw_slice(ax, anatomy: Anatomy, planned: ScrewPlan, achieved_entry: np.ndarray, achieved_tip: np.ndarray,
                up: np.ndarray) -> None:
    """One slice through the planned axis (``up``: the slice's across direction in the vertebra):
    cancellous bone grey, cortex dark, the canal pink, the planned screw outlined, the achieved path."""
    half = 12.0 * MM
    u, v = _slice_plane(anatomy, planned, up)
    s = np.linspace(-8 * MM, planned.length + 8 * MM, 200)
    r = np.linspace(-half, half, 97)
    S, Rr = np.meshgrid(s, r)
    P = planned.entry + S[..., None] * u + Rr[..., None] * v
    d = anatomy.sdf(P)
    dc = anatomy.canal_sdf(P)
    ax.contourf(
        S / MM, Rr / MM, d, levels=[-1.0, -anatomy.cortical_thickness, 0.0], colors=["#d9d2c3", "#8c7f68"]
    )
    ax.contour(S / MM, Rr / MM, d, levels=[0.0], colors="k", linewidths=0.8)
    if np.isfinite(dc).any() and (dc < 0).any():
        ax.contourf(S / MM, Rr / MM, dc, levels=[-1.0, 0.0], colors=["#f2b8b8"])
    rad = planned.radius / MM
    L = planned.length / MM
    ax.plot([0, L, L, 0, 0], [-rad, -rad, rad, rad, -rad], color="tab:blue", lw=1.2, label="planned")
    pa = np.array([[np.dot(p - planned.entry, u), np.dot(p - planned.entry, v)]
                   for p in (achieved_entry, achieved_tip)]) / MM
    ax.plot(pa[:, 0], pa[:, 1], color="tab:red", lw=1.6, marker="o", ms=3, label="achieved")
    ax.set_aspect("equal")
    ax.set_xlabel("along planned axis (mm)")
    ax.set_ylabel("across (mm)")


def _render_overviews(out_dir: Path, report: dict, anatomy: Anatomy, plt) -> list[Path]:
    """One axial view per level (the post-operative CT slice): the vertebra's transverse plane
    through the pedicles, with every screw of that level projected on it (planned and achieved)."""
    by_level: dict[str, list[tuple[ScrewPlan, np.ndarray, np.ndarray]]] = {}
    for entry in report["screws"]:
        planned, ae, at = _paths_from_report(entry)
        by_level.setdefault(planned.level, []).append((planned, ae, at))
    written = []
    for level, screws in by_level.items():
        try:
            T = anatomy.level_frame(level)
        except AnatomyError:
            continue
        R, o = T[:3, :3], T[:3, 3]
        # the slice height: mean height of the planned screws in the vertebra frame
        z0 = float(np.mean([(R.T @ (p.entry - o))[2] for p, _, _ in screws]))
        xs = np.linspace(-45 * MM, 45 * MM, 271)
        ys = np.linspace(-25 * MM, 60 * MM, 256)
        X, Y = np.meshgrid(xs, ys)
        P = o + (np.stack([X, Y, np.full_like(X, z0)], axis=-1) @ R.T)
        d = anatomy.sdf(P)
        dc = anatomy.canal_sdf(P)
        fig, ax = plt.subplots(figsize=(6, 5.6), dpi=110)
        ax.contourf(X / MM, Y / MM, d, levels=[-1.0, -anatomy.cortical_thickness, 0.0], colors=["#d9d2c3", "#8c7f68"])
        ax.contour(X / MM, Y / MM, d, levels=[0.0], colors="k", linewidths=0.8)
        if np.isfinite(dc).any() and (dc < 0).any():
            ax.contourf(X / MM, Y / MM, dc, levels=[-1.0, 0.0], colors=["#f2b8b8"])
        for i, (planned, ae, at) in enumerate(screws):
            pe, pt = (R.T @ (planned.entry - o)) / MM, (R.T @ (planned.target - o)) / MM
            qe, qt = (R.T @ (ae - o)) / MM, (R.T @ (at - o)) / MM
            n = np.array([-(pt - pe)[1], (pt - pe)[0]])
            n = n / max(np.linalg.norm(n), 1e-12) * planned.radius / MM
            outline = np.array([pe[:2] + n, pt[:2] + n, pt[:2] - n, pe[:2] - n, pe[:2] + n])
            ax.plot(outline[:, 0], outline[:, 1], color="tab:blue", lw=1.0, label="planned" if i == 0 else None)
            ax.plot([qe[0], qt[0]], [qe[1], qt[1]], color="tab:red", lw=1.6, label="achieved" if i == 0 else None)
        ax.set_aspect("equal")
        ax.invert_xaxis()  # radiological convention: patient's left on the image right
        ax.set_xlabel("x (mm, patient left ->)")
        ax.set_ylabel("y (mm, posterior)")
        ax.set_title(f"{level}: axial slice through the pedicles (z = {z0 / MM:.1f} mm)")
        ax.legend(loc="lower right", fontsize=7)
        fig.tight_layout()
        path = out_dir / f"level_{level}.png"
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


__all__ = [
    "REPORT_FORMAT",
    "ReportError",
    "ScrewResult",
    "screw_errors",
    "evaluate_screw",
    "make_report",
    "write_report",
    "load_report",
    "render_pictures",
]
