"""Public real data that installable packages ship, located without importing those packages.

Each helper reads from an installed distribution and raises ``MissingData`` (a ``LookupError``)
with the reason when the package is not installed; the data are never copied into this
repository. The tests turn ``MissingData`` into a skip (``tests/_realdata.py``).

- ``myo_sim`` (MyoSuite's model library, Apache-2.0): vertebra bone meshes ``lumbar1..5.stl``
  (coarse, 424 triangles each; OpenSim body frame, metres: x anterior, y superior, z right).
- ``gaitkit`` (MIT; data CC-BY 4.0 Fukuchi et al. 2018 and ODC-By PhysioNet gait in Parkinson's
  disease): single overground trials with joint-centre trajectories (mm) and annotated events.
- ``novainstrumentation`` (MIT): 5 s of surface EMG (mV) with the simultaneous force, 1 kHz.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path

import numpy as np


class MissingData(LookupError):
    """A package with public data is not installed (or ships other files)."""


def package_file(dist: str, rel: str) -> Path:
    """Path of ``rel`` inside the installed distribution ``dist`` (``MissingData`` when absent)."""
    try:
        p = Path(str(md.distribution(dist).locate_file(rel)))
    except md.PackageNotFoundError:
        raise MissingData(f"{dist} is not installed (pip install {dist}); its public data are needed") from None
    if not p.is_file():
        raise MissingData(f"{dist} does not ship {rel} in this version")
    return p


def gaitkit_trial(name: str) -> dict:
    """A gaitkit example trial: {'fps', 'markers_mm' {landmark: (N, 3)}, 'hs'/'to' {side: frames}}."""
    d = json.loads(package_file("gaitkit", f"gaitkit/data/example_{name}.json").read_text())
    frames = d["angle_frames"]
    names = frames[0]["landmark_positions"].keys()
    markers = {k: np.array([f["landmark_positions"][k] for f in frames], dtype=float) for k in names}
    gt = d.get("ground_truth") or {}
    return {"fps": float(d["fps"]), "markers_mm": markers, "hs": gt.get("hs_frames") or {},
            "to": gt.get("to_frames") or {}, "source": d["source"]}


# gaitkit landmark -> the Plug-in Gait / CGM name of the same point
GAITKIT_TO_PIG = {
    "left_hip": "LHJC", "right_hip": "RHJC", "left_knee": "LKNE", "right_knee": "RKNE",
    "left_ankle": "LANK", "right_ankle": "RANK", "left_heel": "LHEE", "right_heel": "RHEE",
    "left_toe": "LTOE", "right_toe": "RTOE",
}


def write_gaitkit_c3d(trial: dict, path: Path, extra_analogs: dict | None = None) -> Path:
    """Write a gaitkit trial's joint centres as a C3D (mm, PiG names) with ezc3d."""
    import ezc3d

    labels = [GAITKIT_TO_PIG[k] for k in GAITKIT_TO_PIG if k in trial["markers_mm"]]
    xyz = np.stack([trial["markers_mm"][k] for k in GAITKIT_TO_PIG if k in trial["markers_mm"]], axis=1)
    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [trial["fps"]]
    c["parameters"]["POINT"]["LABELS"]["value"] = labels
    c["parameters"]["POINT"]["UNITS"]["value"] = ["mm"]
    pts = np.ones((4, len(labels), xyz.shape[0]))
    pts[:3] = xyz.transpose(2, 1, 0)
    c["data"]["points"] = pts
    if extra_analogs:
        rate, chans, units = extra_analogs["rate"], extra_analogs["channels"], extra_analogs["units"]
        c["parameters"]["ANALOG"]["RATE"]["value"] = [rate]
        c["parameters"]["ANALOG"]["LABELS"]["value"] = list(chans)
        c.add_parameter("ANALOG", "UNITS", list(units))
        c["data"]["analogs"] = np.stack(list(chans.values()))[None]
    c.write(str(path))
    return path


def virtual_shank_imu(trial: dict, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(thigh inclination (rad), shank sagittal rate (rad/s)) of one side from the joint centres.

    What a thigh orientation estimate and a shank gyroscope would report on this walk: segment
    inclinations in the plane of progression (pelvis velocity) and vertical (+y in gaitkit's
    frames), positive with the distal end forward, differentiated for the rate.
    """
    fs = trial["fps"]
    m = {k: v * 1e-3 for k, v in trial["markers_mm"].items()}
    pel = 0.5 * (m["left_hip"] + m["right_hip"])
    v = np.gradient(pel, 1.0 / fs, axis=0)
    v[:, 1] = 0.0
    prog = v / np.linalg.norm(v, axis=1, keepdims=True)
    up = np.array([0.0, 1.0, 0.0])

    def incl(a: str, b: str) -> np.ndarray:
        d = m[f"{side}_{b}"] - m[f"{side}_{a}"]
        return np.unwrap(np.arctan2(np.einsum("ij,ij->i", d, prog), -(d @ up)))

    return incl("hip", "knee"), np.gradient(incl("knee", "ankle"), 1.0 / fs)


# myo_sim's body frame (x anterior, y superior, z right) -> the CT's LPS frame (x left, y posterior, z up)
OPENSIM_TO_LPS = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def myo_sim_vertebra(level: str, pose: np.ndarray | None = None):
    """The myo_sim lumbar vertebra ``level`` ('L1'..'L5') as a trimesh in millimetres, LPS frame,
    moved by ``pose`` (4x4, mm) if given, as a CT segmentation would place it."""
    import trimesh

    path = package_file("myo-sim", f"myo_sim/models/meshes/lumbar{int(level[1:])}.stl")
    m = trimesh.load(str(path), force="mesh")
    v = (np.asarray(m.vertices) @ OPENSIM_TO_LPS.T) * 1e3
    if pose is not None:
        v = v @ pose[:3, :3].T + pose[:3, 3]
    return trimesh.Trimesh(v, np.asarray(m.faces), process=False)
