"""Operator scripts: timed master-handle trajectories and button events, for reproducible runs.

A script is JSON (configuration is data)::

    {"name": "square", "rate_hz": 100,
     "keyframes": [
        {"t": 0.0, "p": [0, 0, 0], "clutch": false},
        {"t": 0.2, "clutch": true, "motion_scale": 2.0},
        {"t": 1.2, "p": [0.02, 0, 0]},
        {"t": 3.0, "estop": true}
     ]}

``t`` in s from the start; ``p`` the master handle position in the operator frame (m),
linearly interpolated between keyframes that give it; ``quat`` (x, y, z, w) likewise
(normalised linear interpolation); ``clutch``, ``mode`` ("follow"/"hold"), ``speed_scale``,
``motion_scale`` hold until changed; ``estop``/``reset`` are one-shot events at their time.
Bad input (unknown keys, non-monotonic times, non-finite numbers) raises ``ScriptError``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.errors import TeleopError
from machaon.teleop.messages import OperatorMode

_KEYS = {"t", "p", "quat", "clutch", "mode", "speed_scale", "motion_scale", "estop", "reset"}


class ScriptError(TeleopError, ValueError):
    """An operator script is malformed."""


@dataclass(frozen=True)
class OperatorSample:
    """What the operator does at one instant (operator frame, SI)."""

    p: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    clutch: bool
    mode: OperatorMode
    speed_scale: float
    motion_scale: float
    estop: bool
    reset: bool


@dataclass(frozen=True)
class OperatorScript:
    name: str
    rate_hz: float
    keyframes: tuple[dict, ...]

    @property
    def duration(self) -> float:
        return float(self.keyframes[-1]["t"])

    @classmethod
    def from_dict(cls, d: dict) -> OperatorScript:
        if not isinstance(d, dict) or "keyframes" not in d:
            raise ScriptError("a script needs a 'keyframes' list")
        kfs = d["keyframes"]
        if not isinstance(kfs, list) or not kfs:
            raise ScriptError("keyframes: must be a non-empty list")
        t_prev = -math.inf
        clean = []
        for i, k in enumerate(kfs):
            if not isinstance(k, dict) or "t" not in k:
                raise ScriptError(f"keyframe {i}: needs a 't'")
            bad = set(k) - _KEYS
            if bad:
                raise ScriptError(f"keyframe {i}: unknown keys {sorted(bad)}")
            t = k["t"]
            if not isinstance(t, int | float) or not math.isfinite(t) or t < t_prev:
                raise ScriptError(f"keyframe {i}: t must be finite and non-decreasing")
            t_prev = t
            for key, n in (("p", 3), ("quat", 4)):
                if key in k:
                    a = np.asarray(k[key], dtype=float)
                    if a.shape != (n,) or not np.isfinite(a).all():
                        raise ScriptError(f"keyframe {i}: {key} must be {n} finite numbers")
            if "mode" in k and k["mode"] not in ("follow", "hold"):
                raise ScriptError(f"keyframe {i}: mode must be 'follow' or 'hold'")
            for key in ("speed_scale", "motion_scale"):
                if key in k and not (isinstance(k[key], int | float) and math.isfinite(k[key])):
                    raise ScriptError(f"keyframe {i}: {key} must be a finite number")
            clean.append(dict(k))
        rate = float(d.get("rate_hz", 100.0))
        if not (math.isfinite(rate) and 0 < rate <= 1000):
            raise ScriptError("rate_hz: must be in (0, 1000]")
        return cls(str(d.get("name", "script")), rate, tuple(clean))

    @classmethod
    def load(cls, path: str | Path) -> OperatorScript:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{path}: {exc}") from None
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        return {"name": self.name, "rate_hz": self.rate_hz, "keyframes": [dict(k) for k in self.keyframes]}

    def _interp(self, key: str, t: float, default: tuple) -> tuple:
        ks = [k for k in self.keyframes if key in k]
        if not ks:
            return default
        if t <= ks[0]["t"]:
            return tuple(float(x) for x in ks[0][key])
        for a, b in zip(ks, ks[1:], strict=False):
            if a["t"] <= t <= b["t"]:
                s = 0.0 if b["t"] == a["t"] else (t - a["t"]) / (b["t"] - a["t"])
                v = (1 - s) * np.asarray(a[key], float) + s * np.asarray(b[key], float)
                return tuple(float(x) for x in v)
        return tuple(float(x) for x in ks[-1][key])

    def _held(self, key: str, t: float, default: object) -> object:
        v = default
        for k in self.keyframes:
            if k["t"] > t:
                break
            if key in k:
                v = k[key]
        return v

    def sample(self, t: float, t_prev: float = -math.inf) -> OperatorSample:
        """The operator's input at ``t``; one-shot events fire if their time is in (t_prev, t]."""
        q = np.asarray(self._interp("quat", t, (0.0, 0.0, 0.0, 1.0)))
        q = q / np.linalg.norm(q)
        events = [k for k in self.keyframes if t_prev < k["t"] <= t]
        return OperatorSample(
            self._interp("p", t, (0.0, 0.0, 0.0)),  # type: ignore[arg-type]
            tuple(float(x) for x in q),  # type: ignore[arg-type]
            bool(self._held("clutch", t, False)),
            OperatorMode.FOLLOW if self._held("mode", t, "follow") == "follow" else OperatorMode.HOLD,
            float(self._held("speed_scale", t, 1.0)),
            float(self._held("motion_scale", t, 1.0)),
            any(k.get("estop", False) for k in events),
            any(k.get("reset", False) for k in events),
        )


def trace_square(side_m: float = 0.04, period_s: float = 4.0, motion_scale: float = 1.0) -> OperatorScript:
    """Trace a square of ``side_m`` (robot-side size) in the operator's x-y plane, then hold."""
    s = side_m * motion_scale
    leg = period_s / 4
    t0 = 0.3
    pts = [(0, 0, 0), (s, 0, 0), (s, s, 0), (0, s, 0), (0, 0, 0)]
    kfs: list[dict] = [{"t": 0.0, "p": [0, 0, 0], "clutch": False, "motion_scale": motion_scale},
                       {"t": 0.1, "clutch": True}, {"t": t0, "p": [0, 0, 0]}]
    kfs += [{"t": t0 + (i + 1) * leg, "p": list(p)} for i, p in enumerate(pts[1:])]
    kfs.append({"t": t0 + period_s + 1.0, "p": [0, 0, 0]})
    return OperatorScript.from_dict({"name": "trace_square", "rate_hz": 100, "keyframes": kfs})


def hold_point(offset_m: float = 0.03, hold_s: float = 2.0, step_s: float = 0.5) -> OperatorScript:
    """Step the master by ``offset_m`` along x in ``step_s`` and hold it there for ``hold_s``."""
    t1 = 0.3 + step_s
    kfs = [{"t": 0.0, "p": [0, 0, 0], "clutch": False}, {"t": 0.1, "clutch": True},
           {"t": 0.3, "p": [0, 0, 0]}, {"t": t1, "p": [offset_m, 0, 0]}, {"t": t1 + hold_s, "p": [offset_m, 0, 0]}]
    return OperatorScript.from_dict({"name": "hold_point", "rate_hz": 100, "keyframes": kfs})
