"""Gait-lab files (C3D via ezc3d, or CSV) read into one ``GaitTrial``: markers, angles, force plates,
EMG, IMU and the file's own events, in SI units and seconds from the first frame.

C3D: markers are the POINT channels (POINT:UNITS mm or m; a negative residual or an exact
(0, 0, 0) marks a missing sample, kept as NaN); the labels listed in POINT:ANGLES are joint
angles (degrees in the file, e.g. Plug-in Gait's LKneeAngles, x = flexion); force plates come from
the FORCE_PLATFORM group through ezc3d's own force-platform extraction (force in N and centre of
pressure in the global frame); analog channels named like an EMG channel (``EMG*``, the exo
board's names, or any label with "EMG") are EMG, scaled by ANALOG:UNITS (V, mV, uV); analog
channels ``<sensor>_GX..AZ`` are IMU channels (layout of ``machaon.exo.imu``); EMG larger than
surface EMG can be in its declared unit is read in the unit its amplitude implies, with a note
(a unit off by 1000, or an amplifier gain left in, are common in real files); EVENT holds the
file's annotated events ("Foot Strike"/"Foot Off" with context Left/Right).

CSV (one header row, one row per sample of the fastest stream, empty cells where a slower stream
has no sample): a time column ``time_s`` / ``time`` / ``t`` (s); markers ``<NAME>_X/_Y/_Z`` in mm;
joint angles ``<Side><Joint>Angles_X/_Y/_Z`` in degrees; force plates ``FP<n>_FX/_FY/_FZ`` in N
(optionally ``FP<n>_COPX/_COPY/_COPZ`` in mm); EMG columns as above, whose unit a CSV cannot
declare (inferred from the amplitude, see ``machaon.exo.emg_signals``); IMU ``<sensor>_gx .. _az``
(rad/s, m/s^2: Machaon's own recording CSV reads as a gait trial too).

Real-file quirks handled here: gaps in marker trajectories up to ``MAX_GAP_S`` are filled by
cubic interpolation (as gait-lab software does); longer gaps stay NaN and whoever needs that
marker reports them. Units are checked against body size: markers whose spread is that of a
body only after multiplying or dividing by 1000 raise ``GaitFileError`` naming the factor, and so
do NaN/Inf in force-plate, EMG or IMU samples. Every error is a ``GaitFileError`` (a
``MachaonError`` and ``ValueError``) with a message that says what to fix.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

from machaon.errors import ExoError
from machaon.exo.frames import EMG_CHANNELS
from machaon.exo.recording import _ACC_UNIT, _EMG_UNIT, _GYRO_UNIT, _IMU_SUFFIX

log = logging.getLogger(__name__)

MAX_GAP_S = 0.1  # longest marker gap filled by interpolation (s)
_LENGTH_UNIT = {"mm": 1e-3, "m": 1.0, "cm": 1e-2}
# A lower-limb marker set spans 0.2-3 m; a factor-1000 unit error lands far outside.
_BODY_SPAN_M = (0.15, 3.5)


class GaitFileError(ExoError, ValueError):
    """A gait-lab file cannot be used: unreadable, wrong units, missing channels, NaN samples."""


@dataclass(frozen=True)
class ForcePlate:
    """One force plate: ground reaction force (K, 3) N and centre of pressure (K, 3) m, global frame."""

    label: str
    force_n: np.ndarray
    cop_m: np.ndarray
    rate_hz: float


@dataclass(frozen=True)
class FileEvent:
    """An event annotated in the file: side 'left'/'right', 'heel_strike'/'toe_off', s from the first frame."""

    side: str
    event: str
    time_s: float


@dataclass(frozen=True)
class GaitTrial:
    """Everything Machaon uses from a gait-lab file, SI units, time 0 = the first frame.

    ``markers_m`` (N, 3) per label at ``point_rate_hz`` (NaN where missing after gap filling);
    ``angles_rad`` (N, 3) per label; ``emg_v`` per channel at ``analog_rate_hz`` (V);
    ``imu`` per sensor (M, 6) [gx, gy, gz (rad/s), ax, ay, az (m/s^2)] at ``imu_rate_hz``.
    ``notes`` records what was inferred or repaired (units, filled gaps), for reports.
    """

    path: str
    point_rate_hz: float
    n_frames: int
    markers_m: dict[str, np.ndarray]
    angles_rad: dict[str, np.ndarray]
    analog_rate_hz: float
    emg_v: dict[str, np.ndarray]
    force_plates: tuple[ForcePlate, ...]
    imu: dict[str, np.ndarray]
    imu_rate_hz: float
    file_events: tuple[FileEvent, ...]
    notes: tuple[str, ...] = field(default=())
    emg_units: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Length of the trial (s) from its longest stream."""
        out = 0.0
        if self.n_frames and self.point_rate_hz > 0:
            out = self.n_frames / self.point_rate_hz
        for x in self.emg_v.values():
            out = max(out, len(x) / self.analog_rate_hz)
        for x in self.imu.values():
            out = max(out, len(x) / self.imu_rate_hz)
        return out

    def marker(self, name: str) -> np.ndarray | None:
        """Trajectory (N, 3) m of marker ``name`` (case-insensitive), or None."""
        key = _find(self.markers_m, name)
        return None if key is None else self.markers_m[key]

    def angle(self, name: str) -> np.ndarray | None:
        """Angle trajectory (N, 3) rad of ``name`` (case-insensitive), or None."""
        key = _find(self.angles_rad, name)
        return None if key is None else self.angles_rad[key]


def _find(d: dict[str, np.ndarray], name: str) -> str | None:
    up = name.upper()
    for k in d:
        if k.upper() == up:
            return k
    # labels prefixed by a subject name ("Subject:LHEE") as Vicon writes them
    for k in d:
        if k.upper().rsplit(":", 1)[-1] == up:
            return k
    return None


def is_emg_label(label: str) -> bool:
    """True for analog/CSV labels that name an EMG channel."""
    return label in EMG_CHANNELS or "EMG" in label.upper()  # EMG1, Voltage.EMG3, L_TA_EMG, emg_vl ...


def fill_gaps(x: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    """Fill interior NaN runs of at most ``max_gap`` samples in ``x`` (N, C) by a cubic spline.

    Returns (filled copy, number of samples filled). Leading/trailing NaN and longer gaps stay NaN.
    """
    out = np.array(x, dtype=np.float64, copy=True)
    bad = ~np.isfinite(out).all(axis=1)
    if not bad.any() or bad.all():
        return out, 0
    good = np.flatnonzero(~bad)
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    spline = CubicSpline(good, out[good], axis=0) if good.size >= 4 else None
    filled = 0
    for a, b in zip(starts, stops, strict=True):
        if a == 0 or b == len(out) or b - a > max_gap:
            continue
        idx = np.arange(a, b)
        if spline is not None:
            out[idx] = spline(idx)
        else:
            for c in range(out.shape[1]):
                out[idx, c] = np.interp(idx, good, out[good, c])
        filled += b - a
    return out, filled


def _check_marker_scale(markers: dict[str, np.ndarray], path: object, unit: str) -> None:
    """Raise when the marker cloud has the size of a body only after a factor of 1000."""
    if len(markers) < 2:
        return
    stack = np.stack(list(markers.values()), axis=1)  # (N, M, 3)
    spans = []
    for frame in stack[:: max(1, len(stack) // 50)]:
        ok = frame[np.isfinite(frame).all(axis=1)]
        if len(ok) >= 2:
            spans.append(float(np.max(np.linalg.norm(ok[:, None] - ok[None], axis=2))))
    if not spans:
        return
    span = float(np.median(spans))
    lo, hi = _BODY_SPAN_M
    if lo <= span * 1e3 <= hi:
        raise GaitFileError(
            f"{path}: markers span only {span * 1e3:.3g} mm although POINT units say {unit!r}: the "
            "coordinates look like metres written as millimetres (a factor of 1000); fix the units")
    if lo <= span * 1e-3 <= hi:
        raise GaitFileError(
            f"{path}: markers span {span:.3g} m although the units say {unit!r}: the coordinates look "
            "like millimetres written as metres (a factor of 1000); fix the units")
    if not lo <= span <= hi:
        raise GaitFileError(f"{path}: markers span {span:.3g} m, not the size of a body; check the units")


def _finalise_markers(
    raw: dict[str, np.ndarray], rate: float, path: object, unit: str, notes: list[str]
) -> dict[str, np.ndarray]:
    _check_marker_scale(raw, path, unit)
    out = {}
    max_gap = max(1, int(round(MAX_GAP_S * rate)))
    for name, x in raw.items():
        filled, n = fill_gaps(x, max_gap)
        if n:
            notes.append(f"marker {name}: {n} missing frame(s) filled by cubic interpolation")
        out[name] = filled
    return out


def _require_finite(kind: str, label: str, x: np.ndarray, rate: float, path: object) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
        raise GaitFileError(
            f"{path}: {kind} {label} has {rows.size} NaN/Inf sample(s) from {rows[0] / rate:.3f} s to "
            f"{rows[-1] / rate:.3f} s; re-export the trial without the dropped frames")


# -- C3D -----------------------------------------------------------------------------------------


def _labels(group: dict, key: str = "LABELS") -> list[str]:
    out: list[str] = []
    for k in (key, *(f"{key}{i}" for i in range(2, 10))):
        if k in group:
            out += [str(s).strip() for s in group[k]["value"]]
    return out


def _param(params: dict, group: str, name: str, default: object = None) -> object:
    try:
        return params[group][name]["value"]
    except (KeyError, TypeError):
        return default


def _c3d_events(params: dict, first_frame: int, rate: float) -> list[FileEvent]:
    ev = params.get("EVENT")
    if not ev or "TIMES" not in ev:
        return []
    times = np.asarray(ev["TIMES"]["value"], dtype=np.float64)
    labels = [str(s).strip().lower() for s in ev.get("LABELS", {}).get("value", [])]
    contexts = [str(s).strip().lower() for s in ev.get("CONTEXTS", {}).get("value", [])]
    if times.ndim != 2 or times.shape[0] != 2:
        return []
    t = 60.0 * times[0] + times[1] - first_frame / rate
    out = []
    for i, (lab, ctx) in enumerate(zip(labels, contexts, strict=False)):
        kind = ("heel_strike" if ("strike" in lab or "contact" in lab) else
                "toe_off" if ("off" in lab) else None)
        side = "left" if ctx.startswith("l") else "right" if ctx.startswith("r") else None
        if kind and side and i < len(t) and math.isfinite(t[i]):
            out.append(FileEvent(side, kind, float(t[i])))
    return sorted(out, key=lambda e: e.time_s)


def _c3d_plates(path: str, analog_rate: float) -> list[ForcePlate]:
    import ezc3d

    try:
        c = ezc3d.c3d(path, extract_forceplat_data=True)
    except Exception as exc:  # ezc3d refuses FORCE_PLATFORM groups it cannot interpret
        log.warning("%s: force plates not readable (%s); ignoring them", path, exc)
        return []
    plates = []
    for i, pf in enumerate(c["data"].get("platform", [])):
        unit_f = str(pf["unit_force"]).strip().lower() or "n"
        unit_p = str(pf["unit_position"]).strip().lower() or "mm"
        scale_f = {"n": 1.0, "kn": 1e3}.get(unit_f)
        scale_p = _LENGTH_UNIT.get(unit_p)
        if scale_f is None or scale_p is None:
            raise GaitFileError(f"{path}: force plate {i + 1}: unsupported units {unit_f!r}/{unit_p!r}")
        force = np.asarray(pf["force"], dtype=np.float64).T * scale_f
        cop = np.asarray(pf["center_of_pressure"], dtype=np.float64).T * scale_p
        _require_finite("force plate", str(i + 1), force, analog_rate, path)
        plates.append(ForcePlate(f"FP{i + 1}", force, np.nan_to_num(cop), analog_rate))
    return plates


@dataclass(frozen=True)
class _PointStream:
    """The marker stream of a file: rate (Hz), frame count, markers (N, 3) m, angles (N, 3) rad."""

    rate_hz: float
    n_frames: int
    markers_m: dict[str, np.ndarray]
    angles_rad: dict[str, np.ndarray]


def _c3d_points(c: dict, path: str, notes: list[str]) -> _PointStream:
    """POINT channels of an ezc3d file: markers (gap-filled, SI) and the labels of POINT:ANGLES.
    Raises ``GaitFileError`` on unknown units or a missing frame rate."""
    params = c["parameters"]
    point_rate = float(np.asarray(_param(params, "POINT", "RATE", [0.0])).ravel()[0])
    labels = _labels(params.get("POINT", {}))
    angle_labels = set(_labels(params.get("POINT", {}), "ANGLES"))
    pts = np.asarray(c["data"]["points"], dtype=np.float64)  # (4, P, N)
    res = np.asarray(c["data"]["meta_points"]["residuals"], dtype=np.float64)  # (1, P, N)
    n_frames = pts.shape[2] if pts.ndim == 3 else 0
    unit = str(np.asarray(_param(params, "POINT", "UNITS", ["mm"])).ravel()[0]).strip().lower() or "mm"
    if unit not in _LENGTH_UNIT:
        raise GaitFileError(f"{path}: unsupported POINT:UNITS {unit!r} (know mm, cm, m)")
    if n_frames and point_rate <= 0:
        raise GaitFileError(f"{path}: POINT:RATE is {point_rate}; the file has no usable frame rate")
    markers: dict[str, np.ndarray] = {}
    angles: dict[str, np.ndarray] = {}
    for i, lab in enumerate(labels[: pts.shape[1] if pts.ndim == 3 else 0]):
        xyz = pts[:3, i, :].T.copy()
        if lab in angle_labels:
            angles[lab] = np.radians(xyz)
            continue
        missing = (res[0, i, :] < 0) | np.all(xyz == 0.0, axis=1) | ~np.isfinite(xyz).all(axis=1)
        xyz[missing] = np.nan
        if not missing.all():
            markers[lab] = xyz * _LENGTH_UNIT[unit]
    return _PointStream(point_rate, n_frames, _finalise_markers(markers, point_rate, path, unit, notes), angles)


def _c3d_emg(lab: str, x: np.ndarray, u: str, rate: float, path: str, notes: list[str]) -> tuple[np.ndarray, str]:
    """One EMG channel in volts and the unit it was read in: the declared ``u`` (V, mV, uV), or the
    unit its amplitude implies when it is too large for surface EMG in ``u`` (noted). Raises
    ``GaitFileError`` on an unknown unit or NaN samples."""
    from machaon.exo.emg_signals import EMGSignalError, check_declared_units, infer_emg_scale

    scale = _EMG_UNIT.get(u.strip().lower())
    if scale is None:
        raise GaitFileError(f"{path}: EMG channel {lab}: unsupported unit {u!r} (know V, mV, uV)")
    _require_finite("EMG channel", lab, x, rate, path)
    v = x * scale
    try:
        check_declared_units(lab, v, u)
    except EMGSignalError:
        # larger than surface EMG can be: the unit is off by 1000 or the amplifier's gain was
        # left in; take the unit the amplitude implies (envelopes are compared in shape)
        try:
            extra, implied = infer_emg_scale(v)
        except EMGSignalError as exc:
            raise GaitFileError(f"{path}: EMG {lab}: {exc}") from None
        notes.append(f"EMG {lab}: too large for surface EMG in {u!r}; read as {implied} "
                     "(wrong unit, or the amplifier gain not removed)")
        return v * extra, implied
    return v, u


def _c3d_imu(sensor: str, a_labels: list[str], a_units: list[str], data: np.ndarray, a_rate: float,
             path: str) -> np.ndarray:
    """IMU ``sensor`` (upper case) from the analog channels: (M, 6) gyro rad/s then accel m/s^2.
    Raises ``GaitFileError`` on a missing channel, an unknown unit or NaN samples."""
    upper = [lab.upper() for lab in a_labels]
    cols = []
    for suf in _IMU_SUFFIX:
        lab = f"{sensor}_{suf.upper()}"
        if lab not in upper:
            raise GaitFileError(f"{path}: IMU {sensor.lower()} lacks channel {lab}")
        j = upper.index(lab)
        table = _GYRO_UNIT if suf[0] == "g" else _ACC_UNIT
        u = (a_units[j] if j < len(a_units) else "").strip().lower()
        if u not in table:
            raise GaitFileError(f"{path}: channel {a_labels[j]}: unsupported unit {u!r} (know {sorted(table)})")
        cols.append(data[j] * table[u])
    arr = np.stack(cols, axis=1)
    _require_finite("IMU", sensor.lower(), arr, a_rate, path)
    return arr


def read_c3d_trial(path: str | Path) -> GaitTrial:
    """Read a C3D gait trial with ezc3d (layout in the module docstring). Raises ``GaitFileError``."""
    import ezc3d

    path = str(path)
    try:
        c = ezc3d.c3d(path)
    except Exception as exc:  # ezc3d raises RuntimeError/IOError for bad files
        raise GaitFileError(f"{path}: not a readable C3D file ({exc})") from None
    params = c["parameters"]
    notes: list[str] = []
    points = _c3d_points(c, path, notes)
    analog = params.get("ANALOG", {})
    a_labels = _labels(analog)
    a_units = [str(s).strip() for s in analog.get("UNITS", {}).get("value", [])] or ["V"] * len(a_labels)
    a_rate = float(np.asarray(_param(params, "ANALOG", "RATE", [0.0])).ravel()[0]) if a_labels else 0.0
    data = np.asarray(c["data"]["analogs"], dtype=np.float64)
    data = data[0] if data.ndim == 3 else np.zeros((0, 0))
    emg, emg_units = {}, {}
    for i, lab in enumerate(a_labels[: data.shape[0]]):
        if is_emg_label(lab):
            u = a_units[i] if i < len(a_units) else ""
            emg[lab], emg_units[lab] = _c3d_emg(lab, data[i], u, a_rate, path, notes)
    sensors = sorted({u.rsplit("_", 1)[0] for u in (lab.upper() for lab in a_labels) if u.endswith("_GX")})
    imu = {s.lower(): _c3d_imu(s, a_labels, a_units, data, a_rate, path) for s in sensors}
    plates = _c3d_plates(path, a_rate) if "FORCE_PLATFORM" in params and a_rate > 0 else []
    first = int(c["header"]["points"]["first_frame"])
    events = _c3d_events(params, first, points.rate_hz) if points.rate_hz > 0 else []
    return GaitTrial(path, points.rate_hz, points.n_frames, points.markers_m, points.angles_rad, a_rate, emg,
                     tuple(plates), imu, a_rate, tuple(events), tuple(notes), emg_units)


# -- CSV -----------------------------------------------------------------------------------------

_AXIS = re.compile(r"^(?P<name>.+)_(?P<axis>[XYZ])$")
_FP = re.compile(r"^FP(?P<n>\d+)_(?P<q>FX|FY|FZ|COPX|COPY|COPZ)$", re.IGNORECASE)


def _stream(col: list[str], t: np.ndarray, label: str, path: object) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) of the non-empty cells of one CSV column."""
    rows = [i for i, v in enumerate(col) if v.strip() != ""]
    try:
        vals = np.array([float(col[i]) for i in rows])
    except ValueError as exc:
        raise GaitFileError(f"{path}: column {label}: non-numeric value ({exc})") from None
    return t[rows], vals


def _rate(t: np.ndarray, label: str, path: object) -> float:
    if t.size < 2:
        raise GaitFileError(f"{path}: column {label} has fewer than 2 samples")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise GaitFileError(f"{path}: time is not increasing for column {label}")
    return 1.0 / float(np.median(dt))


@dataclass(frozen=True)
class _CsvTable:
    """A CSV trial's cells: ``cols[i][row]`` is the text of column ``header[i]`` (rows padded to
    the header's width), ``t_s`` the time column from 0 (s), ``tcol`` its index."""

    header: list[str]
    cols: list[tuple[str, ...]]
    tcol: int
    t_s: np.ndarray


@dataclass(frozen=True)
class _CsvColumns:
    """Which columns hold what: XYZ groups (name -> axis -> column), force plates (n -> quantity
    -> column), EMG columns, IMU sensors (name -> suffix -> column)."""

    xyz: dict[str, dict[str, int]]
    plates: dict[int, dict[str, int]]
    emg: list[int]
    imu: dict[str, dict[str, int]]


def _read_csv_table(path: str) -> _CsvTable:
    """The header, columns and time of a CSV trial. Raises ``GaitFileError`` on fewer than two
    samples, no time column, or a time column that is not numeric, finite and increasing."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3 or not rows[0]:
        raise GaitFileError(f"{path}: expected a header row and at least 2 samples")
    header = [h.strip() for h in rows[0]]
    tcol = next((i for i, h in enumerate(header) if h.lower() in ("time_s", "time", "t")), None)
    if tcol is None:
        raise GaitFileError(f"{path}: no time column (time_s, time or t)")
    body = [r + [""] * (len(header) - len(r)) for r in rows[1:] if any(c.strip() for c in r)]
    cols = list(zip(*body, strict=False))
    try:
        t_all = np.array([float(v) for v in cols[tcol]])
    except ValueError as exc:
        raise GaitFileError(f"{path}: time column: non-numeric value ({exc})") from None
    if not np.isfinite(t_all).all() or np.any(np.diff(t_all) <= 0):
        raise GaitFileError(f"{path}: the time column must be finite and increasing")
    return _CsvTable(header, cols, tcol, t_all - t_all[0])


def _classify_csv_columns(table: _CsvTable, notes: list[str]) -> _CsvColumns:
    """Sort the columns by their names (module docstring); an unknown name is noted and ignored."""
    out = _CsvColumns({}, {}, [], {})
    for i, h in enumerate(table.header):
        if i == table.tcol or not h:
            continue
        if (m := _FP.match(h)) is not None:
            out.plates.setdefault(int(m["n"]), {})[m["q"].upper()] = i
        elif is_emg_label(h):
            out.emg.append(i)
        elif "_" in h and h.rsplit("_", 1)[1] in _IMU_SUFFIX:
            out.imu.setdefault(h.rsplit("_", 1)[0], {})[h.rsplit("_", 1)[1]] = i
        elif (m := _AXIS.match(h)) is not None:
            out.xyz.setdefault(m["name"], {})[m["axis"]] = i
        else:
            notes.append(f"column {h}: not a marker, angle, force, EMG or IMU channel; ignored")
    return out


def _csv_points(table: _CsvTable, xyz: dict[str, dict[str, int]], path: str, notes: list[str]) -> _PointStream:
    """Markers (mm in the file) and ``*Angles`` (deg) from the XYZ column groups; every row is a
    frame and empty cells are gaps. Raises ``GaitFileError`` on a missing axis or a non-number."""
    markers, angles = {}, {}
    point_rate, n_frames = 0.0, 0
    cols, n_rows = table.cols, len(table.t_s)
    for name, idx in xyz.items():
        if set(idx) != {"X", "Y", "Z"}:
            raise GaitFileError(f"{path}: {name} needs _X, _Y and _Z columns")
        try:
            v = np.array([[float(cols[idx[a]][r]) if cols[idx[a]][r].strip() else np.nan for a in "XYZ"]
                          for r in range(n_rows)])
        except ValueError as exc:
            raise GaitFileError(f"{path}: {name}: non-numeric value ({exc})") from None
        if name.lower().endswith("angles"):
            angles[name] = np.radians(v)
        else:
            markers[name] = v * 1e-3
    if markers or angles:
        # every row is a frame of the marker stream; empty cells are gaps (NaN)
        point_rate = _rate(table.t_s, "time", path)
        n_frames = n_rows
    markers = _finalise_markers(markers, point_rate, path, "mm", notes) if markers else {}
    return _PointStream(point_rate, n_frames, markers, angles)


def _csv_imu(table: _CsvTable, sensor: str, idx: dict[str, int], rate: float, path: str) -> tuple[np.ndarray, float]:
    """IMU ``sensor`` (M, 6) from its six columns and the IMU rate (``rate``, or this sensor's when 0)."""
    if set(idx) != set(_IMU_SUFFIX):
        raise GaitFileError(f"{path}: IMU {sensor} needs columns {[f'{sensor}_{x}' for x in _IMU_SUFFIX]}")
    streams = [_stream(table.cols[idx[x]], table.t_s, f"{sensor}_{x}", path) for x in _IMU_SUFFIX]
    rate = rate or _rate(streams[0][0], f"{sensor}_gx", path)
    arr = np.stack([v for _, v in streams], axis=1)
    _require_finite("IMU", sensor, arr, rate, path)
    return arr, rate


def _csv_force_plate(table: _CsvTable, n: int, idx: dict[str, int], path: str) -> ForcePlate:
    """Force plate ``FP<n>``: force (N) and, when its columns are there, centre of pressure (mm in
    the file; 0 without). Raises ``GaitFileError`` on a missing force axis or NaN samples."""
    if not {"FX", "FY", "FZ"} <= set(idx):
        raise GaitFileError(f"{path}: force plate FP{n} needs FP{n}_FX, _FY and _FZ")
    cols, t_all = table.cols, table.t_s
    t, fx = _stream(cols[idx["FX"]], t_all, f"FP{n}_FX", path)
    f = np.stack([fx] + [_stream(cols[idx[q]], t_all, f"FP{n}_{q}", path)[1] for q in ("FY", "FZ")], axis=1)
    rate = _rate(t, f"FP{n}_FX", path)
    _require_finite("force plate", f"FP{n}", f, rate, path)
    if {"COPX", "COPY", "COPZ"} <= set(idx):
        cop = np.stack([_stream(cols[idx[q]], t_all, f"FP{n}_{q}", path)[1] for q in ("COPX", "COPY", "COPZ")],
                       axis=1) * 1e-3
    else:
        cop = np.full_like(f, np.nan)
    return ForcePlate(f"FP{n}", f, np.nan_to_num(cop), rate)


def read_csv_trial(path: str | Path) -> GaitTrial:
    """Read a CSV gait trial (layout in the module docstring). Raises ``GaitFileError``."""
    from machaon.exo.emg_signals import infer_emg_scale

    path = str(path)
    table = _read_csv_table(path)
    notes: list[str] = []
    columns = _classify_csv_columns(table, notes)
    points = _csv_points(table, columns.xyz, path, notes)
    emg, emg_units, a_rate = {}, {}, 0.0
    for i in columns.emg:
        label = table.header[i]
        t, v = _stream(table.cols[i], table.t_s, label, path)
        a_rate = a_rate or _rate(t, label, path)
        _require_finite("EMG channel", label, v, a_rate, path)
        scale, unit = infer_emg_scale(v)
        emg[label] = v * scale
        emg_units[label] = unit
        notes.append(f"EMG {label}: CSV declares no unit; amplitude says {unit}")
    imu, imu_rate = {}, 0.0
    for s, idx in columns.imu.items():
        imu[s], imu_rate = _csv_imu(table, s, idx, imu_rate, path)
    fps = [_csv_force_plate(table, n, idx, path) for n, idx in sorted(columns.plates.items())]
    a_rate = a_rate or (fps[0].rate_hz if fps else 0.0)
    return GaitTrial(path, points.rate_hz, points.n_frames, points.markers_m, points.angles_rad, a_rate, emg,
                     tuple(fps), imu, imu_rate, (), tuple(notes), emg_units)


def read_gait_file(path: str | Path) -> GaitTrial:
    """Read a ``.c3d`` or ``.csv`` gait trial by extension. Raises ``GaitFileError``."""
    p = Path(path)
    if not p.is_file():
        raise GaitFileError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".c3d":
        return read_c3d_trial(p)
    if suffix == ".csv":
        return read_csv_trial(p)
    raise GaitFileError(f"{p}: unknown gait file type {suffix!r} (expected .c3d or .csv)")


__all__ = [
    "MAX_GAP_S",
    "FileEvent",
    "ForcePlate",
    "GaitFileError",
    "GaitTrial",
    "fill_gaps",
    "is_emg_label",
    "read_c3d_trial",
    "read_csv_trial",
    "read_gait_file",
]
