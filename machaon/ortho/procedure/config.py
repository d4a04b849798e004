"""The procedure's settings and what it returns: ``ProcedureConfig``, ``ScrewRun``, ``ProcedureResult``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from machaon.errors import OrthoError
from machaon.ortho import report as rep
from machaon.ortho.approach import ApproachPath
from machaon.ortho.execution import DrilledPath, HoleSample

MM = 1e-3


class ProcedureError(OrthoError, RuntimeError):
    """The procedure cannot go on (unreachable plan, tracking lost, no collision-free approach)."""


@dataclass(frozen=True)
class ProcedureConfig:
    """Settings of a simulated procedure (SI units).

    ``levels``: phantom levels; ``plan_path``: a plan JSON to execute instead of auto-planning;
    ``plan_mode``: ``"auto"`` (clearance-maximising auto-plan) or ``"axis"`` (screws on the
    phantom's ground-truth pedicle axes, faster). ``breathing``: amplitude (m) and frequency (Hz)
    of the patient's motion; ``bump``: a bump of ``bump_m`` (world displacement) during the first
    screw's drilling at ``bump_depth_m``. ``pixel_sigma``: tracker corner noise (px).
    ``fiducial_noise_m``: RMS localisation error of the pointer on a landmark, per axis.
    ``control_hz``/``sim_dt``: control-loop rate and physics step (defaults 500 Hz, 2 ms: the
    impedance gains here are stable at that rate and a run is twice as fast as at 1 kHz).
    ``bone_density``: scale of the bone's thrust coefficients (1 = the phantom's nominal bone);
    ``skive_gain``: how much the drill point slips on an inclined entry cortex (0 = it bites,
    ``machaon.ortho.execution.DrillPhysics``); ``return_home``: move home after the last screw;
    ``tracking_check``: detect both plates in one rendered camera image and compare with the truth.
    With ``calibration_from_images=False`` and ``tracking_check=False`` nothing is rendered (the
    tracker noise model stands in for the camera), as virtual trials run it.
    """

    levels: tuple[str, ...] = ("L3", "L4")
    seed: int = 0
    gui: bool = False
    plan_path: str | None = None
    plan_mode: str = "auto"
    breathing: bool = True
    breathing_amplitude_m: float = 0.003
    breathing_hz: float = 0.25
    bump: bool = True
    bump_m: tuple[float, float, float] = (0.0, 0.003, 0.002)
    bump_depth_m: float = 0.012
    bump_speed_threshold: float = 0.015
    bump_jump_m: float = 0.0015
    camera_hz: float = 50.0
    control_hz: float = 500.0
    pixel_sigma: float = 0.1
    fiducial_noise_m: float = 0.1e-3
    n_surface_points: int = 100
    calibration_poses: int = 12
    calibration_from_images: bool = True
    feed_m_s: float = 4e-3
    standoff_m: float = 0.02
    bit_extension_m: float = 0.08
    planner: str = "auto"
    tolerance_mm: float = 1.0
    tolerance_deg: float = 1.0
    extra_depth_m: dict = field(default_factory=dict)
    screws: tuple[str, ...] | None = None
    sim_dt: float = 2e-3
    bone_density: float = 1.0
    skive_gain: float = 0.0
    return_home: bool = True
    tracking_check: bool = True

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels: at least one")
        if self.plan_mode not in ("auto", "axis"):
            raise ValueError("plan_mode: 'auto' or 'axis'")
        for name in ("camera_hz", "control_hz", "feed_m_s", "standoff_m", "bit_extension_m"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be > 0")
        if self.control_hz % self.camera_hz:
            raise ValueError("control_hz must be a multiple of camera_hz")
        if not (math.isfinite(self.bone_density) and self.bone_density > 0 and 0.0 <= self.skive_gain <= 1.0):
            raise ValueError("bone_density must be > 0 and skive_gain in [0, 1]")


@dataclass
class ScrewTrace:
    """One screw's run, recorded once per camera frame (SI, base frame unless named).

    ``t`` sim time (s); ``s_cmd`` commanded depth along the axis (m, negative above the entry);
    ``depth``/``lateral`` the tip's measured depth along and distance from the axis (m);
    ``force`` the compensated axial force (N); ``patient`` the patient's offset from rest (m,
    world); ``phase`` the controller phase; ``jump`` the navigator's innovation (m).
    ``samples`` is the hole as the simulated drill recorded it (``HoleSample`` per thrust update).
    """

    t: list[float] = field(default_factory=list)
    s_cmd: list[float] = field(default_factory=list)
    depth: list[float] = field(default_factory=list)
    lateral: list[float] = field(default_factory=list)
    force: list[float] = field(default_factory=list)
    patient: list[list[float]] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    jump: list[float] = field(default_factory=list)
    samples: list[HoleSample] = field(default_factory=list)

    def __getitem__(self, name: str) -> list:
        """``trace["depth"]``: the old dict access (``ScrewRun.trace`` was a dict), for one release."""
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)


@dataclass(frozen=True)
class ScrewRun:
    """One executed screw: the report entry, the drilled path, what stopped the drill, and traces."""

    result: rep.ScrewResult
    path: DrilledPath
    stopped_by: str
    pauses: int
    approach: ApproachPath
    approach_collision_free: bool
    trace: ScrewTrace


@dataclass(frozen=True)
class ProcedureResult:
    """Everything the procedure measured (SI); ``report`` is the JSON-ready report (mm, deg, s)."""

    screws: tuple[ScrewRun, ...]
    registration: dict
    calibration: dict
    tracking: dict
    report: dict
    report_dir: Path | None
    tolerance_mm: float
    tolerance_deg: float

    @property
    def all_within_tolerance(self) -> bool:
        return bool(self.screws) and all(
            s.stopped_by == "depth_stop"
            and s.result.entry_error <= self.tolerance_mm * MM
            and s.result.tip_error <= self.tolerance_mm * MM
            and math.degrees(s.result.angle_error) <= self.tolerance_deg
            for s in self.screws
        )

    def summary(self) -> str:
        lines = ["screw   entry_mm  tip_mm  angle_deg  clearance_mm  stopped_by   pauses"]
        for s in self.screws:
            r = s.result
            lines.append(
                f"{r.name:<7} {r.entry_error / MM:8.2f} {r.tip_error / MM:7.2f} {math.degrees(r.angle_error):10.2f}"
                f" {r.min_clearance / MM:13.2f}  {s.stopped_by:<12} {s.pauses}"
            )
        g = self.registration
        lines.append(
            f"registration: FRE {g['fre'] / MM:.3f} mm, TRE predicted {g['tre_predicted'] / MM:.3f} mm, "
            f"TRE at targets {g['tre_measured'] / MM:.3f} mm (max); hand-eye error "
            f"{self.calibration['error_m'] / MM:.2f} mm / {math.degrees(self.calibration['error_rad']):.3f} deg"
        )
        lines.append("all screws within tolerance" if self.all_within_tolerance else "SOME SCREWS OUT OF TOLERANCE")
        return "\n".join(lines)
