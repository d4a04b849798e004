"""Recordings of EMG + IMU: CSV and C3D (gait-lab files, via ezc3d) readers/writers and a replay source.

A ``Recording`` holds EMG (volts) at ``emg_rate_hz`` and IMU samples (SI, sensor frames, layout
of ``machaon.exo.imu``) at ``imu_rate_hz``, with channel labels.

CSV layout (one file, one row per EMG sample): a header row ``t,<emg labels...>,<imu columns...>``
where the IMU columns are ``<sensor>_gx,_gy,_gz,_ax,_ay,_az``; IMU columns are empty on rows
without an IMU sample. EMG is in volts, gyro rad/s, accel m/s^2 (SI in our own files).

C3D: EMG are analog channels whose label matches an EMG name (``EMG_CHANNELS`` or any label
starting with ``EMG``), scaled by their ANALOG:UNITS (V, mV or uV accepted); IMU channels, if
present, are analog channels named ``<sensor>_GX`` ... ``<sensor>_AZ`` (deg/s or rad/s, m/s^2 or
g per UNITS), brought down to at most 200 Hz by block averaging. Units are converted here only.

Bad files raise ``RecordingError`` with the reason (missing columns, non-numeric data, NaN).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from machaon.errors import ExoError
from machaon.exo.frames import EMG_CHANNELS, IMU_SENSORS
from machaon.exo.sensors import SensorBatch

log = logging.getLogger(__name__)

IMU_MAX_RATE_HZ = 200.0
_IMU_SUFFIX = ("gx", "gy", "gz", "ax", "ay", "az")
_EMG_UNIT = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6}
_GYRO_UNIT = {"rad/s": 1.0, "deg/s": math.pi / 180.0, "dps": math.pi / 180.0}
_ACC_UNIT = {"m/s^2": 1.0, "m/s2": 1.0, "m/s/s": 1.0, "g": 9.80665}


class RecordingError(ExoError, ValueError):
    """A recording file could not be read (format, missing channels, NaN)."""


@dataclass(frozen=True)
class Recording:
    """EMG (N, C) V at ``emg_rate_hz``; IMU (K, M, 6) SI at ``imu_rate_hz`` (K may be 0)."""

    emg_v: np.ndarray
    emg_rate_hz: float
    emg_labels: tuple[str, ...]
    imu: np.ndarray
    imu_rate_hz: float
    imu_labels: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.emg_v.shape[0] / self.emg_rate_hz


def write_csv(path: str | Path, rec: Recording) -> None:
    """Write ``rec`` as CSV (layout in the module docstring). IMU rate must divide the EMG rate."""
    k = rec.emg_rate_hz / rec.imu_rate_hz if rec.imu.shape[0] else 1
    if abs(k - round(k)) > 1e-9:
        raise ValueError("CSV needs an EMG rate that is a whole multiple of the IMU rate")
    k = int(round(k))
    header = ["t", *rec.emg_labels] + [f"{s}_{c}" for s in rec.imu_labels for c in _IMU_SUFFIX]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(rec.emg_v.shape[0]):
            row = [f"{i / rec.emg_rate_hz:.6f}", *(repr(float(v)) for v in rec.emg_v[i])]
            j = i // k
            if i % k == 0 and j < rec.imu.shape[0]:
                row += [repr(float(v)) for v in rec.imu[j].ravel()]
            else:
                row += [""] * (6 * len(rec.imu_labels))
            w.writerow(row)


def read_csv(path: str | Path) -> Recording:
    """Read a CSV recording (layout in the module docstring). Raises ``RecordingError``."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3 or not rows[0] or rows[0][0] != "t":
        raise RecordingError(f"{path}: expected a header starting with 't' and at least 2 samples")
    header = rows[0]
    imu_cols = [h for h in header[1:] if h.rsplit("_", 1)[-1] in _IMU_SUFFIX and "_" in h]
    emg_labels = tuple(h for h in header[1:] if h not in imu_cols)
    sensors = tuple(dict.fromkeys(h.rsplit("_", 1)[0] for h in imu_cols))
    if not emg_labels:
        raise RecordingError(f"{path}: no EMG columns")
    try:
        t = np.array([float(r[0]) for r in rows[1:]])
        emg = np.array([[float(v) for v in r[1 : 1 + len(emg_labels)]] for r in rows[1:]])
        imu_rows = [(i, r[1 + len(emg_labels) :]) for i, r in enumerate(rows[1:]) if len(r) > 1 + len(emg_labels)]
        imu_rows = [(i, v) for i, v in imu_rows if v and v[0] != ""]
        if sensors:
            imu = np.array([[float(x) for x in v] for _, v in imu_rows]).reshape(-1, len(sensors), 6)
        else:
            imu, imu_rows = np.zeros((0, 0, 6)), []
    except (ValueError, IndexError) as exc:
        raise RecordingError(f"{path}: non-numeric or missing value ({exc})") from None
    if not (np.isfinite(emg).all() and np.isfinite(imu).all()):
        raise RecordingError(f"{path}: contains NaN or Inf")
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise RecordingError(f"{path}: time column is not increasing")
    fs = 1.0 / float(np.median(dt))
    imu_rate = fs / (imu_rows[1][0] - imu_rows[0][0]) if len(imu_rows) > 1 else 0.0
    return Recording(emg, fs, emg_labels, imu, imu_rate, sensors)


def _unit_scale(table: dict[str, float], unit: str, label: str, path: str | Path) -> float:
    key = unit.strip().lower()
    if key not in table:
        raise RecordingError(f"{path}: channel {label}: unsupported unit {unit!r} (know {sorted(table)})")
    return table[key]


def read_c3d(path: str | Path) -> Recording:
    """Read analog EMG (and IMU channels, if any) from a C3D file with ezc3d. Raises ``RecordingError``."""
    import ezc3d  # local: only replay needs it

    try:
        c = ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises plain RuntimeError/IOError for bad files
        raise RecordingError(f"{path}: not a readable C3D file ({exc})") from None
    analog = c["parameters"]["ANALOG"]
    labels = [s.strip() for s in analog["LABELS"]["value"]]
    units = [s.strip() for s in analog["UNITS"]["value"]] if "UNITS" in analog else ["V"] * len(labels)
    rate = float(np.asarray(analog["RATE"]["value"]).ravel()[0])
    data = np.asarray(c["data"]["analogs"], dtype=np.float64)[0]  # (channels, samples)
    if data.shape[0] != len(labels) or rate <= 0:
        raise RecordingError(f"{path}: analog labels/rate do not match the data")
    emg_idx = [i for i, lab in enumerate(labels) if lab in EMG_CHANNELS or lab.upper().startswith("EMG")]
    if not emg_idx:
        raise RecordingError(f"{path}: no EMG analog channel (labels: {labels})")
    emg = np.stack([data[i] * _unit_scale(_EMG_UNIT, units[i], labels[i], path) for i in emg_idx], axis=1)
    sensors = [s for s in IMU_SENSORS if f"{s.upper()}_GX" in [lab.upper() for lab in labels]]
    upper = [lab.upper() for lab in labels]
    imu_list = []
    for s in sensors:
        cols = []
        for suf in _IMU_SUFFIX:
            lab = f"{s.upper()}_{suf.upper()}"
            if lab not in upper:
                raise RecordingError(f"{path}: IMU {s} lacks channel {lab}")
            i = upper.index(lab)
            table = _GYRO_UNIT if suf[0] == "g" else _ACC_UNIT
            cols.append(data[i] * _unit_scale(table, units[i], labels[i], path))
        imu_list.append(np.stack(cols, axis=1))
    imu = np.stack(imu_list, axis=1) if imu_list else np.zeros((0, 0, 6))
    if not (np.isfinite(emg).all() and np.isfinite(imu).all()):
        raise RecordingError(f"{path}: contains NaN or Inf")
    # C3D keeps IMU channels at the analog (EMG) rate; bring them back to an IMU rate of at most
    # IMU_MAX_RATE_HZ by averaging blocks of k samples (anti-aliasing and decimation in one).
    imu_rate = rate if imu_list else 0.0
    k = int(rate // IMU_MAX_RATE_HZ) if imu_list else 1
    if k > 1:
        n = imu.shape[0] // k
        imu = imu[: n * k].reshape(n, k, *imu.shape[1:]).mean(axis=1)
        imu_rate = rate / k
    return Recording(emg, rate, tuple(labels[i] for i in emg_idx), imu, imu_rate, tuple(sensors))


def write_c3d(path: str | Path, rec: Recording, point_rate_hz: float = 100.0) -> None:
    """Write ``rec`` as a C3D with EMG (V) and IMU (rad/s, m/s^2) analog channels, via ezc3d.

    The IMU must be at the EMG rate or divide it (it is held sample-and-hold up to the analog rate).
    """
    import ezc3d

    n = rec.emg_v.shape[0]
    chans = [rec.emg_v[:, i] for i in range(rec.emg_v.shape[1])]
    labels = list(rec.emg_labels)
    units = ["V"] * len(labels)
    if rec.imu.shape[0]:
        k = int(round(rec.emg_rate_hz / rec.imu_rate_hz))
        up = np.repeat(rec.imu, k, axis=0)[:n]
        if up.shape[0] < n:
            raise ValueError("IMU data shorter than EMG data")
        for j, s in enumerate(rec.imu_labels):
            for c, suf in enumerate(_IMU_SUFFIX):
                chans.append(up[:, j, c])
                labels.append(f"{s.upper()}_{suf.upper()}")
                units.append("rad/s" if suf[0] == "g" else "m/s^2")
    ratio = int(round(rec.emg_rate_hz / point_rate_hz))
    n_frames = n // ratio
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [point_rate_hz]
    c["parameters"]["POINT"]["LABELS"]["value"] = ["PELVIS"]
    c["parameters"]["ANALOG"]["RATE"]["value"] = [rec.emg_rate_hz]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = labels
    c.add_parameter("ANALOG", "UNITS", units)
    c["data"]["points"] = np.zeros((4, 1, n_frames))
    c["data"]["points"][3] = 1.0
    c["data"]["analogs"] = np.stack(chans)[None, :, : n_frames * ratio]
    c.write(str(path))


def read_recording(path: str | Path) -> Recording:
    """Read a ``.csv`` or ``.c3d`` recording by extension. Raises ``RecordingError``."""
    p = Path(path)
    if not p.exists():
        raise RecordingError(f"{p}: no such file")
    if p.suffix.lower() == ".c3d":
        return read_c3d(p)
    if p.suffix.lower() == ".csv":
        return read_csv(p)
    raise RecordingError(f"{p}: unknown recording type (expected .csv or .c3d)")


class RecordingSource:
    """Replays a ``Recording`` as a sensor source: ``advance(t)`` then ``poll()`` gives samples up to t (s)."""

    def __init__(self, rec: Recording) -> None:
        self.rec = rec
        self._t = 0.0
        self._i_emg = 0
        self._i_imu = 0

    def advance(self, t: float) -> None:
        self._t = max(self._t, t)

    @property
    def finished(self) -> bool:
        return self._i_emg >= self.rec.emg_v.shape[0]

    def poll(self) -> SensorBatch:
        r = self.rec
        j = min(r.emg_v.shape[0], int(math.floor(self._t * r.emg_rate_hz + 1e-9)) + 1)
        t_emg = np.arange(self._i_emg, j) / r.emg_rate_hz
        emg = r.emg_v[self._i_emg : j]
        self._i_emg = max(self._i_emg, j)
        if r.imu.shape[0] and r.imu_rate_hz > 0:
            k = min(r.imu.shape[0], int(math.floor(self._t * r.imu_rate_hz + 1e-9)) + 1)
            t_imu = np.arange(self._i_imu, k) / r.imu_rate_hz
            imu = r.imu[self._i_imu : k]
            self._i_imu = max(self._i_imu, k)
        else:
            t_imu, imu = np.zeros(0), np.zeros((0, max(1, len(r.imu_labels)), 6))
        return SensorBatch(t_emg, emg, t_imu, imu)
