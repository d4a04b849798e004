"""Gait events (heel strike, toe off per side) from a gait-lab trial: force plates, markers or IMUs.

``detect_events(trial)`` uses the best source the file has, in the order a gait lab trusts them:

1. **Force plates**: a contact is where the ground reaction force exceeds ``contact_threshold_n``
   (20 N); its start is a heel strike, its end a toe off. The foot on the plate is the one whose
   heel (or ankle/toe) marker is nearest the centre of pressure at mid-contact; without foot
   markers a plate cannot tell the side and is not used. Steps that miss the plates get their
   events from the markers (source ``force_plates+markers``).
2. **Markers** (Plug-in Gait names: LASI, RASI, LPSI, RPSI or SACR, or hip centres LHJC/RHJC, for
   the pelvis; LHEE, LTOE, LANK and R counterparts for the feet), after Zeni et al. (2008): heel
   strike where the heel is farthest in front of the pelvis, toe off where the toe is farthest
   behind it, along the progression direction. The vertical is the lab axis along which the
   pelvis sits highest above the feet; the progression direction is the pelvis's horizontal
   velocity (overground) or, when the pelvis stays in place (treadmill), its PSIS-to-ASIS axis.
3. **IMU gyroscopes** on the shanks (or feet), sensor names ending in ``_l``/``_r``: the
   Aminian/Salarian detector of ``machaon.exo.imu.detect_gait_events`` on the sagittal rate
   (``-gyr_y`` in Machaon's mounting).

Times are seconds from the first frame. Events are written as ``events.csv`` with exactly the
columns ``side,event,time_s`` (``left``/``right``, ``heel_strike``/``toe_off``), sorted by time.
A trial with none of the three (or markers with long gaps where they are needed) raises
``GaitFileError`` saying what is missing.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from machaon.exo.gaitfile import GaitFileError, GaitTrial
from machaon.exo.imu import detect_gait_events, sagittal_rate

log = logging.getLogger(__name__)

SIDES = ("left", "right")
EVENT_KINDS = ("heel_strike", "toe_off")
CSV_COLUMNS = ("side", "event", "time_s")
PELVIS_MARKERS = ("LASI", "RASI", "LPSI", "RPSI", "SACR", "LHJC", "RHJC")
MARKER_LOWPASS_HZ = 6.0
MERGE_WINDOW_S = 0.15


@dataclass(frozen=True)
class GaitEvent:
    """One event: side, kind, time (s from the first frame) and the source that found it."""

    side: str
    event: str
    time_s: float
    source: str


@dataclass(frozen=True)
class EventDetection:
    """All events of a trial (time order), the source used and notes on how."""

    events: tuple[GaitEvent, ...]
    source: str
    notes: tuple[str, ...]

    def times(self, side: str, event: str) -> np.ndarray:
        """Times (s) of one side's events of one kind, increasing."""
        return np.array(sorted(e.time_s for e in self.events if e.side == side and e.event == event))

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: {k: int(self.times(s, k).size) for k in EVENT_KINDS} for s in SIDES}


def lowpass_zero_phase(x: np.ndarray, fs: float, fc: float) -> np.ndarray:
    """4th-order Butterworth low-pass at ``fc`` Hz, forwards and backwards (no lag), along axis 0."""
    if x.shape[0] < 16 or fc >= 0.45 * fs:
        return x
    sos = signal.butter(4, fc, fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0)


def _side_marker(trial: GaitTrial, side: str, names: Iterable[str]) -> tuple[str, np.ndarray] | None:
    prefix = "L" if side == "left" else "R"
    for n in names:
        m = trial.marker(prefix + n)
        if m is not None:
            return prefix + n, m
    return None


def _valid_window(arrays: dict[str, np.ndarray], path: str, rate: float) -> slice:
    """Frames where every array is finite; interior gaps (longer than the filled ones) raise."""
    ok = np.ones(len(next(iter(arrays.values()))), dtype=bool)
    for a in arrays.values():
        ok &= np.isfinite(a).all(axis=1)
    if not ok.any():
        raise GaitFileError(f"{path}: markers {sorted(arrays)} are never all visible together")
    idx = np.flatnonzero(ok)
    a, b = int(idx[0]), int(idx[-1]) + 1
    if not ok[a:b].all():
        for name, arr in arrays.items():
            bad = np.flatnonzero(~np.isfinite(arr[a:b]).all(axis=1))
            if bad.size:
                raise GaitFileError(
                    f"{path}: marker {name} is missing from {(a + bad[0]) / rate:.2f} s to "
                    f"{(a + bad[-1]) / rate:.2f} s (a gap longer than can be filled); fill it in the "
                    "lab software or crop the trial")
    return slice(a, b)


@dataclass(frozen=True)
class LabAxes:
    """Unit vertical (up) axis and per-frame unit progression direction (N, 3), lab frame."""

    up: np.ndarray
    progression: np.ndarray
    treadmill: bool


def lab_axes(trial: GaitTrial, pelvis: np.ndarray, feet: np.ndarray, window: slice) -> LabAxes:
    """Vertical and progression directions from the pelvis (and the feet below it), see module doc."""
    rel = np.nanmean(pelvis[window] - feet[window], axis=0)
    k = int(np.argmax(np.abs(rel)))
    up = np.zeros(3)
    up[k] = math.copysign(1.0, rel[k])
    fs = trial.point_rate_hz
    p = lowpass_zero_phase(pelvis[window], fs, 2.0)
    v = np.gradient(p, 1.0 / fs, axis=0)
    v_h = v - np.outer(v @ up, up)
    speed = np.linalg.norm(v_h, axis=1)
    if np.median(speed) > 0.15:
        prog = v_h / np.maximum(speed, 1e-9)[:, None]
        slow = speed < 0.1  # standing still or turning: keep the last good heading
        for i in np.flatnonzero(slow):
            prog[i] = prog[i - 1] if i > 0 else prog[np.argmax(~slow)]
        return LabAxes(up, prog, False)
    asis = [trial.marker(n) for n in ("LASI", "RASI")]
    back = [trial.marker(n) for n in ("LPSI", "RPSI", "SACR")]
    asis = [m for m in asis if m is not None]
    back = [m for m in back if m is not None]
    if not asis or not back:
        raise GaitFileError(
            f"{trial.path}: the pelvis does not travel (treadmill?) and the file lacks LASI/RASI with "
            "LPSI/RPSI/SACR, so the walking direction cannot be found")
    fwd = np.mean(asis, axis=0)[window] - np.mean(back, axis=0)[window]
    fwd = fwd - np.outer(fwd @ up, up)
    n = np.linalg.norm(fwd, axis=1, keepdims=True)
    return LabAxes(up, fwd / np.maximum(n, 1e-9), True)


def _peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """Indices of the gait-cycle maxima of x (one per stride)."""
    rng = float(np.percentile(x, 95) - np.percentile(x, 5))
    if rng <= 0:
        return np.zeros(0, dtype=int)
    idx, _ = signal.find_peaks(x, distance=max(1, int(0.45 * fs)), prominence=0.3 * rng)
    return idx


def events_from_markers(trial: GaitTrial) -> tuple[list[GaitEvent], list[str]]:
    """Zeni et al. heel strikes and toe offs from pelvis and foot markers (see module doc)."""
    notes: list[str] = []
    pel = {n: m for n in PELVIS_MARKERS if (m := trial.marker(n)) is not None}
    if not pel:
        raise GaitFileError(f"{trial.path}: missing pelvis markers: none of {', '.join(PELVIS_MARKERS)}")
    feet: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
    for side in SIDES:
        hs = _side_marker(trial, side, ("HEE", "ANK", "TOE"))
        to = _side_marker(trial, side, ("TOE", "ANK", "HEE"))
        if hs is not None and to is not None:
            feet[side] = {"heel_strike": hs, "toe_off": to}
            if hs[0][1:] != "HEE" or to[0][1:] != "TOE":
                notes.append(f"{side}: heel strike from {hs[0]}, toe off from {to[0]} (HEE/TOE missing)")
    if not feet:
        raise GaitFileError(f"{trial.path}: missing markers: no foot markers (LHEE/LTOE/LANK, RHEE/RTOE/RANK)")
    needed = {**pel, **{m[0]: m[1] for f in feet.values() for m in f.values()}}
    window = _valid_window(needed, trial.path, trial.point_rate_hz)
    if window.stop - window.start < trial.point_rate_hz:
        raise GaitFileError(f"{trial.path}: less than 1 s with all needed markers visible")
    if window.start > 0 or window.stop < trial.n_frames:
        notes.append(f"markers visible together from {window.start / trial.point_rate_hz:.2f} s to "
                     f"{window.stop / trial.point_rate_hz:.2f} s; events searched there")
    fs = trial.point_rate_hz
    pelvis = np.mean(list(pel.values()), axis=0)
    foot_mean = np.mean([m[1] for f in feet.values() for m in f.values()], axis=0)
    axes = lab_axes(trial, pelvis, foot_mean, window)
    p = lowpass_zero_phase(pelvis[window], fs, MARKER_LOWPASS_HZ)
    out: list[GaitEvent] = []
    for side, f in feet.items():
        for kind, (_name, m) in f.items():
            rel = np.einsum("ij,ij->i", lowpass_zero_phase(m[window], fs, MARKER_LOWPASS_HZ) - p, axes.progression)
            idx = _peaks(rel if kind == "heel_strike" else -rel, fs)
            out += [GaitEvent(side, kind, float((window.start + i) / fs), "markers") for i in idx]
    notes.append("progression from the " + ("pelvis axis (treadmill)" if axes.treadmill else "pelvis velocity"))
    return out, notes


def events_from_force_plates(
    trial: GaitTrial, contact_threshold_n: float = 20.0
) -> tuple[list[GaitEvent], list[str]]:
    """Contacts on the force plates, each assigned to the foot whose marker is nearest the CoP."""
    notes: list[str] = []
    out: list[GaitEvent] = []
    feet = {s: m[1] for s in SIDES if (m := _side_marker(trial, s, ("HEE", "ANK", "TOE"))) is not None}
    for fp in trial.force_plates:
        mag = np.linalg.norm(fp.force_n, axis=1)
        on = mag > contact_threshold_n
        edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        for a, b in zip(starts, stops, strict=True):
            dur = (b - a) / fp.rate_hz
            if dur < 0.1:
                continue
            if dur > 2.0:
                notes.append(f"{fp.label}: contact of {dur:.1f} s (standing or both feet); not used")
                continue
            if not feet or trial.point_rate_hz <= 0:
                notes.append(f"{fp.label}: contact at {a / fp.rate_hz:.2f} s but no foot markers to tell the side")
                continue
            mid = (a + b) // 2
            frame = min(trial.n_frames - 1, int(round(mid / fp.rate_hz * trial.point_rate_hz)))
            cop = fp.cop_m[mid]
            dist = {}
            for s, m in feet.items():
                if np.isfinite(m[frame]).all():
                    dist[s] = float(np.linalg.norm(m[frame] - cop))
            if not dist:
                continue
            side = min(dist, key=dist.get)
            if dist[side] > 0.4:
                notes.append(f"{fp.label}: no foot within 40 cm of the centre of pressure at {mid / fp.rate_hz:.2f} s")
                continue
            if a > 0:
                out.append(GaitEvent(side, "heel_strike", float(a / fp.rate_hz), "force_plates"))
            if b < len(on):
                out.append(GaitEvent(side, "toe_off", float(b / fp.rate_hz), "force_plates"))
    return out, notes


def events_from_imu(trial: GaitTrial) -> tuple[list[GaitEvent], list[str]]:
    """Heel strikes / toe offs from shank (else foot) gyroscopes named ``*_l``/``*_r``."""
    out: list[GaitEvent] = []
    notes: list[str] = []
    for side, suffixes in (("left", ("_l", "_left")), ("right", ("_r", "_right"))):
        for segment in ("shank", "foot"):
            name = next((s for s in trial.imu if segment in s and s.endswith(suffixes)), None)
            if name is None:
                continue
            omega = sagittal_rate(trial.imu[name][:, :3])
            ev = detect_gait_events(omega, trial.imu_rate_hz)
            out += [GaitEvent(side, "heel_strike", float(t), "imu") for t in ev.heel_strike]
            out += [GaitEvent(side, "toe_off", float(t), "imu") for t in ev.toe_off]
            notes.append(f"{side}: events from the {name} gyroscope")
            break
    return out, notes


def _merge(primary: list[GaitEvent], secondary: list[GaitEvent], window_s: float) -> list[GaitEvent]:
    """``primary`` plus the ``secondary`` events that no primary event of the same side/kind covers."""
    keep = list(primary)
    for e in secondary:
        if not any(p.side == e.side and p.event == e.event and abs(p.time_s - e.time_s) < window_s for p in primary):
            keep.append(e)
    return keep


def detect_events(trial: GaitTrial, source: str = "auto") -> EventDetection:
    """Events from the best source the trial has (``source`` 'auto', or force 'force_plates',
    'markers' or 'imu'). Raises ``GaitFileError`` when the source gives no event."""
    notes: list[str] = []
    has_markers = any(trial.marker(n) is not None for n in PELVIS_MARKERS)
    order = {"auto": ("force_plates", "markers", "imu")}.get(source, (source,))
    if order[0] not in ("force_plates", "markers", "imu"):
        raise ValueError(f"source: expected auto, force_plates, markers or imu, got {source!r}")
    errors: list[str] = []
    for src in order:
        try:
            if src == "force_plates":
                if not trial.force_plates:
                    errors.append("no force plates")
                    continue
                ev, n = events_from_force_plates(trial)
                notes += n
                used = "force_plates"
                if ev and has_markers:
                    mk, n2 = events_from_markers(trial)
                    merged = _merge(ev, mk, MERGE_WINDOW_S)
                    if len(merged) > len(ev):
                        notes += n2
                        used = "force_plates+markers"
                    ev = merged
            elif src == "markers":
                if not has_markers:
                    errors.append("no pelvis markers")
                    continue
                ev, n = events_from_markers(trial)
                notes += n
                used = "markers"
            else:
                if not trial.imu:
                    errors.append("no IMU channels")
                    continue
                ev, n = events_from_imu(trial)
                notes += n
                used = "imu"
        except GaitFileError as exc:
            if source != "auto":
                raise
            errors.append(str(exc))
            continue
        if ev:
            ev = sorted(ev, key=lambda e: (e.time_s, e.side, e.event))
            return EventDetection(tuple(ev), used, tuple(notes))
        errors.append(f"{src}: no gait event found")
    raise GaitFileError(f"{trial.path}: no gait events: " + "; ".join(errors))


def write_events_csv(path: str | Path, events: Iterable[GaitEvent]) -> None:
    """Write ``side,event,time_s`` rows (times to 0.1 ms), in time order."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for e in sorted(events, key=lambda e: (e.time_s, e.side, e.event)):
            w.writerow((e.side, e.event, f"{e.time_s:.4f}"))


def read_events_csv(path: str | Path) -> list[GaitEvent]:
    """Read an ``events.csv`` back (source 'file'); ``GaitFileError`` if the columns are not ours."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or tuple(rows[0]) != CSV_COLUMNS:
        raise GaitFileError(f"{path}: expected the header {','.join(CSV_COLUMNS)}")
    out = []
    for r in rows[1:]:
        if len(r) != 3 or r[0] not in SIDES or r[1] not in EVENT_KINDS:
            raise GaitFileError(f"{path}: bad row {r}")
        out.append(GaitEvent(r[0], r[1], float(r[2]), "file"))
    return out


def match_events(
    detected: np.ndarray, reference: np.ndarray, tolerance_s: float = 0.15
) -> tuple[np.ndarray, int, int]:
    """One-to-one matching of detected to reference event times (nearest first, within tolerance).

    Returns (errors detected - reference (s) of the matched pairs, unmatched detected,
    unmatched reference). Used to validate a detector against events annotated by others.
    """
    det = np.sort(np.asarray(detected, float))
    ref = np.sort(np.asarray(reference, float))
    pairs = sorted(((abs(d - r), i, j) for i, d in enumerate(det) for j, r in enumerate(ref)
                    if abs(d - r) <= tolerance_s))
    used_d, used_r, err = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            err.append(det[i] - ref[j])
    return np.array(err), det.size - len(used_d), ref.size - len(used_r)


def agreement(detection: EventDetection, reference: Iterable[object], tolerance_s: float = 0.15) -> dict:
    """Timing of the detected events against reference events (objects with side, event, time_s):
    per kind, the matched count, mean and mean absolute error (ms) and the unmatched counts."""
    ref = list(reference)
    out = {}
    for kind in EVENT_KINDS:
        errs, extra, missed = [], 0, 0
        for side in SIDES:
            r = np.array([e.time_s for e in ref if e.side == side and e.event == kind])
            err, x, m = match_events(detection.times(side, kind), r, tolerance_s)
            errs += list(err)
            extra, missed = extra + x, missed + m
        e = np.array(errs) * 1e3
        out[kind] = {"matched": int(e.size), "mean_error_ms": float(e.mean()) if e.size else None,
                     "mean_abs_error_ms": float(np.abs(e).mean()) if e.size else None,
                     "unmatched_detected": extra, "unmatched_reference": missed}
    return out


__all__ = [
    "agreement",
    "CSV_COLUMNS",
    "EVENT_KINDS",
    "SIDES",
    "EventDetection",
    "GaitEvent",
    "LabAxes",
    "detect_events",
    "events_from_force_plates",
    "events_from_imu",
    "events_from_markers",
    "lab_axes",
    "lowpass_zero_phase",
    "match_events",
    "read_events_csv",
    "write_events_csv",
]
