"""A synthetic gait-lab trial with known events, written as C3D (ezc3d) or CSV for the tests.

Kinematics: the pelvis moves along +x at ``speed`` m/s (z up, lab frame in mm as labs write it);
each foot is planted during stance and travels one stride length during swing on a minimum-jerk
profile, the left heel striking at ``t0 + k * stride``, the right half a stride later, toe off at
``stance`` of the stride after each heel strike. Markers carry Plug-in Gait names. Optional force
plates (type 2, channels Fx..Mz in N / N mm) lie under chosen steps; EMG channels are noise bursts
in the stance of their side; shank IMUs see the shank's sagittal rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _int_parameter(c: object, group: str, name: str, values: list[int], shape: list[int]) -> None:
    """An INT parameter (ezc3d's add_parameter stores integer arrays as floats)."""
    import ezc3d

    param = ezc3d.ezc3d.Parameter(name, "")
    param.set(ezc3d.ezc3d.VecInt([int(v) for v in values]), [int(s) for s in shape])
    c["parameters"].add_parameter(group, param)


def _mj(tau: np.ndarray) -> np.ndarray:
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10 - 15 * tau + 6 * tau * tau)


@dataclass
class SynthWalk:
    duration: float = 6.0
    rate: float = 100.0
    analog_rate: float = 1000.0
    stride: float = 1.1
    stance: float = 0.6
    speed: float = 1.2
    t0: float = 0.35
    seed: int = 0
    events: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t = np.arange(int(self.duration * self.rate)) / self.rate
        self.ta = np.arange(int(self.duration * self.analog_rate)) / self.analog_rate
        for side, off in (("left", 0.0), ("right", 0.5)):
            hs = self.t0 + (np.arange(-2, 12) + off) * self.stride
            self.events[(side, "heel_strike")] = hs[(hs > 0.05) & (hs < self.duration - 0.05)]
            to = hs + self.stance * self.stride
            self.events[(side, "toe_off")] = to[(to > 0.05) & (to < self.duration - 0.05)]

    def foot_x(self, side: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(heel x along progression, swing fraction or -1 in stance) at times t, m."""
        off = 0.0 if side == "left" else 0.5
        L = self.speed * self.stride
        k = np.floor((t - self.t0) / self.stride - off)  # index of the last heel strike
        t_hs = self.t0 + (k + off) * self.stride
        since = t - t_hs
        land = self.speed * (t_hs - self.t0) + 0.1  # where the foot landed at that heel strike
        swing_start = self.stance * self.stride
        tau = (since - swing_start) / ((1 - self.stance) * self.stride)
        x = np.where(since < swing_start, land, land + L * _mj(tau))
        return x, np.where(since < swing_start, -1.0, tau)

    def markers_m(self) -> dict[str, np.ndarray]:
        t = self.t
        pel_x = self.speed * (t - self.t0) + 0.1
        out = {}
        for p, y in (("L", 0.12), ("R", -0.12)):
            out[p + "ASI"] = np.stack([pel_x + 0.12, np.full_like(t, y), np.full_like(t, 0.95)], axis=1)
            out[p + "PSI"] = np.stack([pel_x - 0.05, np.full_like(t, 0.4 * y), np.full_like(t, 1.0)], axis=1)
        for side, p, y in (("left", "L", 0.1), ("right", "R", -0.1)):
            hx, tau = self.foot_x(side, t)
            lift = np.where(tau >= 0, 0.12 * np.sin(math.pi * np.clip(tau, 0, 1)), 0.0)
            out[p + "HEE"] = np.stack([hx, np.full_like(t, y), 0.03 + lift], axis=1)
            out[p + "TOE"] = np.stack([hx + 0.2, np.full_like(t, y), 0.03 + 0.6 * lift], axis=1)
            out[p + "ANK"] = np.stack([hx + 0.05, np.full_like(t, y + 0.03 * np.sign(y)), 0.08 + lift], axis=1)
            hip = np.stack([pel_x, np.full_like(t, y), np.full_like(t, 0.9)], axis=1)
            ank = out[p + "ANK"]
            mid = 0.5 * (hip + ank)
            d = np.linalg.norm(hip - ank, axis=1)
            bend = np.sqrt(np.maximum(0.0, 0.43**2 - (0.5 * d) ** 2))  # thigh/shank 0.43 m: knee forward
            out[p + "KNE"] = mid + np.stack([bend, np.zeros_like(t), np.zeros_like(t)], axis=1)
        return out

    def shank_rate(self, side: str, t: np.ndarray) -> np.ndarray:
        """Sagittal angular rate (rad/s) of the shank (Machaon's normative gait, phase 0 = heel strike)."""
        from machaon.exo.reference import load_reference_gait

        ref = load_reference_gait()
        off = 0.0 if side == "left" else 0.5
        phase = ((t - self.t0) / self.stride - off) % 1.0
        a = np.array([ref.angles(p) for p in phase])
        alpha = a[:, 0] - a[:, 1]  # shank inclination = thigh - knee flexion
        return np.gradient(alpha, t)

    def emg_v(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        out = {}
        for side, lab in (("left", "VL_L"), ("right", "VL_R")):
            _, tau = self.foot_x(side, self.ta)
            act = np.where(tau < 0, 1.0, 0.1)
            out[lab] = 2e-4 * act * rng.standard_normal(self.ta.size)
        return out

    def plates(self, steps: list[tuple[str, int]]) -> list[dict]:
        """Force plates under ``(side, k)`` = the k-th heel strike of that side; contact force (N)."""
        out = []
        for side, k in steps:
            hs = self.events[(side, "heel_strike")][k]
            to = hs + self.stance * self.stride
            x, _ = self.foot_x(side, np.array([hs + 0.01]))
            f = np.where((self.ta >= hs) & (self.ta < to), 700.0 * np.sin(math.pi * (self.ta - hs) / (to - hs)), 0.0)
            out.append({"centre_m": np.array([x[0] + 0.1, 0.1 if side == "left" else -0.1, 0.0]), "fz": f,
                        "hs": hs, "to": to, "side": side})
        return out

    def write_c3d(self, path: Path, *, markers: bool = True, plate_steps: list | None = None,
                  emg: bool = True, emg_unit: str = "mV", imu: bool = False, drop: tuple = (),
                  scale_mm: float = 1000.0, nan_frames: tuple = (), angles: bool = False) -> Path:
        import ezc3d

        c = ezc3d.c3d()
        m = self.markers_m() if markers else {"PELVIS": np.zeros((self.t.size, 3))}
        m = {k: v for k, v in m.items() if k not in drop}
        labels = list(m)
        angle_labels = []
        if angles:  # Plug-in Gait style outputs: x = flexion (deg), a sine per joint and side
            for p_, off in (("L", 0.0), ("R", 0.5)):
                for j, amp in (("Hip", 20.0), ("Knee", 30.0), ("Ankle", 10.0)):
                    ph = 2 * np.pi * ((self.t - self.t0) / self.stride - off)
                    m[f"{p_}{j}Angles"] = np.stack([amp * np.sin(ph) / scale_mm, 0 * ph, 0 * ph], axis=1)
                    angle_labels.append(f"{p_}{j}Angles")
            labels = list(m)
        pts = np.ones((4, len(labels), self.t.size))
        for i, k in enumerate(labels):
            pts[:3, i, :] = (m[k] * scale_mm).T
        for name, a, b in nan_frames:
            i = labels.index(name)
            pts[:3, i, a:b] = np.nan
        c["parameters"]["POINT"]["RATE"]["value"] = [self.rate]
        c["parameters"]["POINT"]["LABELS"]["value"] = labels
        c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
        if angle_labels:
            c.add_parameter("POINT", "ANGLES", angle_labels)
        c["data"]["points"] = pts
        chans, units = {}, []
        if emg:
            k = {"V": 1.0, "mV": 1e3, "uV": 1e6}[emg_unit]
            for lab, x in self.emg_v().items():
                chans[lab] = x * k
                units.append(emg_unit)
        if imu:
            for side, s in (("left", "SHANK_L"), ("right", "SHANK_R")):
                w = self.shank_rate(side, self.ta)
                for suf, v in zip(("GX", "GY", "GZ", "AX", "AY", "AZ"),
                                  (0 * w, -w, 0 * w, 0 * w, 0 * w, 9.81 + 0 * w), strict=True):
                    chans[f"{s}_{suf}"] = v
                    units.append("rad/s" if suf[0] == "G" else "m/s^2")
        plates = self.plates(plate_steps or [])
        for j, fp in enumerate(plates):
            for q in ("Fx", "Fy", "Fz", "Mx", "My", "Mz"):
                # the plate measures the action on it: -Fz of the ground reaction; moments put the CoP
                # at the plate centre
                chans[f"{q}{j + 1}"] = -fp["fz"] if q == "Fz" else np.zeros_like(fp["fz"])
                units.append("N" if q[0] == "F" else "Nmm")
        if chans:
            c["parameters"]["ANALOG"]["RATE"]["value"] = [self.analog_rate]
            c["parameters"]["ANALOG"]["LABELS"]["value"] = list(chans)
            c.add_parameter("ANALOG", "UNITS", units)
            ratio = int(self.analog_rate / self.rate)
            c["data"]["analogs"] = np.stack(list(chans.values()))[None, :, : self.t.size * ratio]
        if plates:
            first = len(chans) - 6 * len(plates)
            c.add_parameter("FORCE_PLATFORM", "USED", int(len(plates)))
            _int_parameter(c, "FORCE_PLATFORM", "TYPE", [2] * len(plates), [len(plates)])
            ch = [first + 6 * j + q + 1 for j in range(len(plates)) for q in range(6)]  # column-major 6 x n
            _int_parameter(c, "FORCE_PLATFORM", "CHANNEL", ch, [6, len(plates)])
            corners = np.zeros((3, 4, len(plates)))
            for j, fp in enumerate(plates):
                cx, cy = fp["centre_m"][:2] * 1000
                corners[:, :, j] = np.array([[cx + 200, cy + 300, 0], [cx - 200, cy + 300, 0],
                                             [cx - 200, cy - 300, 0], [cx + 200, cy - 300, 0]]).T
            c.add_parameter("FORCE_PLATFORM", "CORNERS", corners)
            c.add_parameter("FORCE_PLATFORM", "ORIGIN", np.zeros((3, len(plates))))
        c.write(str(path))
        return path
