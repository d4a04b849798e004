"""Reference gait: normative hip/knee/ankle angles over the gait cycle, as periodic cubic splines.

Read from the ``[reference_gait]`` table of a robot TOML (degrees and % of cycle there; radians
and phase in [0, 1) here, converted in ``load_reference_gait`` only). Phase 0 is heel strike.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

DESCRIPTIONS = Path(__file__).resolve().parent.parent / "robot" / "descriptions"
DEFAULT_TOML = DESCRIPTIONS / "exo_legs.toml"


@dataclass(frozen=True)
class ReferenceGait:
    """Joint angle curves (rad) of one leg over a stride; ``stride_time_s`` the nominal stride time.

    ``angles(phase)`` returns (..., 3) [hip, knee, ankle] in rad; ``rates(phase, stride_time_s)``
    the time derivatives (rad/s) for a given stride time. ``phase`` is wrapped into [0, 1).
    """

    spline: CubicSpline
    stride_time_s: float
    toe_off: float

    def angles(self, phase: float | np.ndarray) -> np.ndarray:
        return self.spline(np.mod(phase, 1.0))

    def rates(self, phase: float | np.ndarray, stride_time_s: float | None = None) -> np.ndarray:
        T = self.stride_time_s if stride_time_s is None else stride_time_s
        return self.spline(np.mod(phase, 1.0), 1) / T

    def hip_harmonic(self) -> complex:
        """First Fourier coefficient ``A1 - i B1`` of the hip curve: hip ~ Re[c e^(i 2 pi phase)] + ..."""
        ph = np.arange(512) / 512.0
        hip = self.angles(ph)[:, 0]
        return complex(2.0 * np.mean(hip * np.exp(-2j * np.pi * ph)))

    def accelerations(self, phase: float | np.ndarray, stride_time_s: float | None = None) -> np.ndarray:
        T = self.stride_time_s if stride_time_s is None else stride_time_s
        return self.spline(np.mod(phase, 1.0), 2) / (T * T)


def load_reference_gait(path: str | Path | None = None) -> ReferenceGait:
    """Load ``[reference_gait]`` from a robot TOML (default: ``exo_legs.toml``).

    Raises ``ValueError`` when the table is missing, the arrays differ in length, the phase does
    not run from 0 to 100 % increasing, or the curve does not close (last point == first).
    """
    p = Path(path) if path is not None else DEFAULT_TOML
    with open(p, "rb") as f:
        data = tomllib.load(f)
    try:
        g = data["reference_gait"]
        pct = np.asarray(g["phase_pct"], dtype=np.float64)
        curves = np.stack([np.asarray(g[k], dtype=np.float64) for k in ("hip_deg", "knee_deg", "ankle_deg")], axis=1)
        stride = float(g["stride_time_s"])
        toe_off = float(g["toe_off_pct"]) / 100.0
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{p}: bad [reference_gait] table ({exc})") from None
    if curves.shape[0] != pct.size or pct[0] != 0.0 or pct[-1] != 100.0 or np.any(np.diff(pct) <= 0):
        raise ValueError(f"{p}: phase_pct must rise from 0 to 100 with one angle per point")
    if not np.allclose(curves[0], curves[-1]):
        raise ValueError(f"{p}: reference gait does not close (first and last angles differ)")
    if not (stride > 0 and 0 < toe_off < 1 and np.isfinite(curves).all()):
        raise ValueError(f"{p}: stride_time_s must be > 0, toe_off_pct in (0, 100), angles finite")
    spline = CubicSpline(pct / 100.0, np.deg2rad(curves), bc_type="periodic", axis=0)
    return ReferenceGait(spline, stride, toe_off)
