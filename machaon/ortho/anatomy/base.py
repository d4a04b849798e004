"""What every bone model is: the ``Anatomy`` protocol, ``Region`` codes, ``PedicleAxis``, shared checks.

All quantities in the image frame, metres (see ``machaon.ortho.anatomy``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import trimesh

from machaon._validate import finite_array
from machaon.errors import OrthoError

MM = 1e-3  # metres per millimetre: the one place mm enter this module (presets and mesh files)

SIDES = ("left", "right")


class Region(enum.IntEnum):
    """What a point is in. Codes are stable (they go into arrays and files)."""

    OUTSIDE = 0
    CORTICAL = 1
    CANCELLOUS = 2
    CANAL = 3


class AnatomyError(OrthoError, ValueError):
    """An anatomy model was asked something it cannot answer (unknown level, bad mesh, ...)."""


@dataclass(frozen=True)
class PedicleAxis:
    """Ground-truth pedicle axis of one level and side, image frame, metres.

    ``entry`` is where the axis leaves the bone posteriorly (the anatomical entry point);
    ``direction`` is the unit vector from entry towards the body (anterior); ``isthmus`` is the
    axis point at the canal's mid-depth (inside the pedicle); ``chord_length`` is the distance
    along the axis from ``entry`` to where it leaves the body anteriorly; ``semi_width`` and
    ``semi_height`` are the pedicle's elliptic cross-section semi-axes (transverse, cranio-caudal).
    """

    level: str
    side: str
    entry: np.ndarray
    direction: np.ndarray
    isthmus: np.ndarray
    chord_length: float
    semi_width: float
    semi_height: float
    convergence: float


@runtime_checkable
class Anatomy(Protocol):
    """What planning, registration and execution need from a bone model (image frame, metres)."""

    cortical_thickness: float

    @property
    def levels(self) -> tuple[str, ...]: ...

    def sdf(self, points: np.ndarray) -> np.ndarray: ...

    def canal_sdf(self, points: np.ndarray) -> np.ndarray: ...

    def region(self, points: np.ndarray) -> np.ndarray: ...

    def mesh(self, spacing: float = 1e-3) -> trimesh.Trimesh: ...

    def bounds(self) -> np.ndarray: ...

    def level_frame(self, level: str) -> np.ndarray: ...

    def pedicle_axis(self, level: str, side: str) -> PedicleAxis | None: ...


def _points(points: object, name: str = "points") -> tuple[np.ndarray, tuple[int, ...]]:
    """(N, 3) float64 view of ``points`` (any leading shape ending in 3) and the leading shape."""
    arr = np.asarray(points, dtype=np.float64) if not isinstance(points, np.ndarray) else points
    if arr.ndim == 0 or arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (..., 3), got {np.shape(arr)}")
    lead = arr.shape[:-1]
    flat = finite_array(name, arr.reshape(-1, 3), (None, 3))
    return flat, lead


def region_from_sdf(d_bone: np.ndarray, d_canal: np.ndarray, cortical_thickness: float) -> np.ndarray:
    """Region codes from bone and canal signed distances (int8 array)."""
    out = np.full(d_bone.shape, Region.OUTSIDE, dtype=np.int8)
    out[d_bone <= 0.0] = Region.CORTICAL
    out[d_bone < -cortical_thickness] = Region.CANCELLOUS
    out[(d_canal < 0.0) & (d_bone > 0.0)] = Region.CANAL
    return out
