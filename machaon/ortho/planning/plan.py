"""Plan data: ``ScrewPlan`` (one straight trajectory) and ``Plan`` (several), their JSON files (mm).

Image frame, metres inside; files in millimetres. Malformed input raises ``PlanError`` (a
``ValueError``) naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from machaon._validate import finite_array
from machaon.errors import OrthoError
from machaon.ortho.anatomy import MM, SIDES, AnatomyError, SpineSegment

PLAN_FORMAT = "machaon.ortho.plan"
PLAN_VERSION = 1
#: standard pedicle-screw diameters, m
STANDARD_DIAMETERS = tuple(d * MM for d in (3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5))


class PlanError(OrthoError, ValueError):
    """A plan, a screw or a plan file is invalid."""


@dataclass(frozen=True)
class ScrewPlan:
    """One straight screw / guide-pin trajectory, image frame, metres.

    ``entry`` is where the screw enters the bone, ``target`` where its tip ends; ``diameter`` is
    the screw's outer diameter. ``length`` and ``direction`` (unit, entry -> target) are derived.
    """

    name: str
    level: str
    side: str
    entry: np.ndarray
    target: np.ndarray
    diameter: float

    def __post_init__(self) -> None:
        entry = _vec(f"{self.name}.entry", self.entry)
        target = _vec(f"{self.name}.target", self.target)
        object.__setattr__(self, "entry", entry)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "level", str(self.level).upper())
        if self.side not in SIDES:
            raise PlanError(f"{self.name}.side: expected 'left' or 'right', got {self.side!r}")
        if not (isinstance(self.diameter, (int, float)) and math.isfinite(self.diameter) and self.diameter > 0):
            raise PlanError(f"{self.name}.diameter: must be a positive length in m, got {self.diameter!r}")
        if not 0.5 * MM <= self.diameter <= 20 * MM:
            raise PlanError(f"{self.name}.diameter: {self.diameter} m is outside 0.5..20 mm (units must be m)")
        if np.linalg.norm(target - entry) < 1 * MM:
            raise PlanError(f"{self.name}: entry and target closer than 1 mm")

    @property
    def length(self) -> float:
        """Distance from entry to tip, m."""
        return float(np.linalg.norm(self.target - self.entry))

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from entry to target (image frame)."""
        d = self.target - self.entry
        return d / np.linalg.norm(d)

    @property
    def radius(self) -> float:
        return 0.5 * self.diameter

    def point_at(self, s: float | np.ndarray) -> np.ndarray:
        """Point(s) at distance ``s`` (m) from the entry along the axis."""
        s = np.asarray(s, dtype=float)
        return self.entry + s[..., None] * self.direction

    def with_length(self, length: float) -> ScrewPlan:
        """Same entry and direction, new length (m)."""
        return ScrewPlan(
            self.name, self.level, self.side, self.entry, self.entry + length * self.direction, self.diameter
        )

    def to_dict(self) -> dict:
        """JSON-ready dict in mm."""
        return {
            "name": self.name,
            "level": self.level,
            "side": self.side,
            "entry_mm": (self.entry / MM).tolist(),
            "target_mm": (self.target / MM).tolist(),
            "diameter_mm": self.diameter / MM,
            "length_mm": self.length / MM,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ScrewPlan:
        """Inverse of ``to_dict`` (``length_mm`` is checked against entry/target to 0.01 mm).

        Any malformed field raises ``PlanError`` naming it.
        """
        if not isinstance(d, dict):
            raise PlanError("screw: expected an object")
        for key in ("name", "level", "side"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise PlanError(f"screw: {key!r} must be a non-empty string")
        name = d["name"]

        def number(key: str) -> float:
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise PlanError(f"{name}: {key!r} must be a finite number, got {v!r}")
            return float(v)

        def point(key: str) -> np.ndarray:
            v = d.get(key)
            if (
                not isinstance(v, list)
                or len(v) != 3
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            ):
                raise PlanError(f"{name}: {key!r} must be a list of 3 numbers (mm), got {v!r}")
            return np.asarray(v, dtype=float) * MM

        s = cls(name, d["level"], d["side"], point("entry_mm"), point("target_mm"), number("diameter_mm") * MM)
        if "length_mm" in d:
            length = number("length_mm")
            if abs(length - s.length / MM) > 0.01:
                raise PlanError(f"{name}: length_mm {length} disagrees with entry/target ({s.length / MM:.3f})")
        return s


def _vec(name: str, v: object) -> np.ndarray:
    try:
        out = finite_array(name, v, (3,)).copy()
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Plan:
    """A multi-level plan: screws (unique names) plus an optional anatomy description.

    ``anatomy`` is a JSON-ready description (e.g. ``SpineSegment.to_dict()``) so that a plan
    file is enough to rebuild the phantom it was made on; ``meta`` holds free-form notes.
    """

    screws: tuple[ScrewPlan, ...]
    anatomy: dict | None = field(default=None, compare=False)
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "screws", tuple(self.screws))
        names = [s.name for s in self.screws]
        if len(set(names)) != len(names):
            raise PlanError(f"plan: duplicate screw names in {names}")
        for s in self.screws:
            if not isinstance(s, ScrewPlan):
                raise PlanError("plan: screws must be ScrewPlan objects")

    def __len__(self) -> int:
        return len(self.screws)

    def __iter__(self):
        return iter(self.screws)

    def screw(self, name: str) -> ScrewPlan:
        for s in self.screws:
            if s.name == name:
                return s
        raise PlanError(f"plan: no screw named {name!r}")

    @property
    def levels(self) -> tuple[str, ...]:
        out: list[str] = []
        for s in self.screws:
            if s.level not in out:
                out.append(s.level)
        return tuple(out)

    def to_dict(self) -> dict:
        return {
            "format": PLAN_FORMAT,
            "version": PLAN_VERSION,
            "units": "mm",
            "frame": "image",
            "screws": [s.to_dict() for s in self.screws],
            "anatomy": self.anatomy,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Plan:
        if not isinstance(d, dict) or d.get("format") != PLAN_FORMAT:
            raise PlanError(f"plan: not a {PLAN_FORMAT} document")
        if d.get("version") != PLAN_VERSION:
            raise PlanError(f"plan: unsupported version {d.get('version')!r}")
        if d.get("units") != "mm":
            raise PlanError(f"plan: units must be 'mm', got {d.get('units')!r}")
        screws = d.get("screws")
        if not isinstance(screws, list):
            raise PlanError("plan: 'screws' must be a list")
        anatomy = d.get("anatomy")
        if anatomy is not None and not isinstance(anatomy, dict):
            raise PlanError("plan: 'anatomy' must be an object or null")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise PlanError("plan: 'meta' must be an object")
        return cls(tuple(ScrewPlan.from_dict(s) for s in screws), anatomy, dict(meta))

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON (mm)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan JSON file (``PlanError`` if unreadable or malformed)."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: cannot read plan ({exc})") from None
        return cls.from_dict(d)

    def build_anatomy(self) -> SpineSegment:
        """Rebuild the phantom this plan was made on (``PlanError`` if the plan has none)."""
        if not self.anatomy:
            raise PlanError("plan: no anatomy description stored")
        try:
            return SpineSegment.from_dict(self.anatomy)
        except AnatomyError as exc:
            raise PlanError(str(exc)) from None
