"""Validation on public real data that installable packages ship: the numbers the README states.

1. **Pedicle screws on real vertebra shapes** (MyoSuite's ``myo_sim``, Apache-2.0: the lumbar
   vertebrae L1-L5 of the OpenSim lumbar spine model, 424 triangles each): every level planned
   as shipped (millimetres, LPS), at ``--poses`` random poses (axial rotation up to 15 deg, tilts
   up to 10 deg, as vertebrae lie in a CT), subdivided to ~100k triangles (dense), and from a
   label map of the whole L1-L5 stack (0.8 mm voxels, marching cubes). Per screw: breach,
   clearance to the cortex and to the canal, tip margin to the anterior cortex, diameter.
2. **Gait events** against events annotated by others (gaitkit's example trials: Parkinson's
   disease, PhysioNet via figshare, ODC-By; healthy adult, Fukuchi et al. 2018, CC-BY 4.0):
   the marker detector (``machaon exo events`` on the trial written as a C3D) and the assist
   controller's IMU gait-phase estimator on the shank rate the joint centres imply; error =
   detected - annotated (ms), one-to-one matches within 150 ms.
3. **EMG envelope against force** (novainstrumentation's 5 s surface EMG with the simultaneous
   force, 1 kHz): Pearson r of the controller's causal envelope with the force at the best lag.

Run: ``python -m benchmarks.realdata`` (a few minutes; ``--poses 1`` for a quick run).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from benchmarks._common import table
from benchmarks._realdata import (
    MissingData,
    gaitkit_trial,
    myo_sim_vertebra,
    package_file,
    virtual_shank_imu,
    write_gaitkit_c3d,
)

MM = 1e-3
LEVELS = ("L1", "L2", "L3", "L4", "L5")


def _screw_rows(label: str, reports: list, seconds: float, n_levels: int) -> list[object]:
    cortex = np.array([r.cortex_clearance for r in reports]) / MM
    canal = np.array([r.canal_clearance for r in reports]) / MM
    tip = np.array([r.tip_to_anterior_cortex for r in reports]) / MM
    dia = np.array([r.diameter for r in reports]) / MM
    breaches = sum(r.breach is not None for r in reports)
    return [label, len(reports), breaches, sum(r.ok for r in reports), f"{cortex.min():.2f} / {np.median(cortex):.2f}",
            f"{canal.min():.2f}", f"{tip.min():.1f}", f"{dia.min():.1f}-{dia.max():.1f}",
            f"{seconds / n_levels:.1f}"]


def bench_screws(poses: int, seed: int = 0) -> str:
    from machaon.ortho.labelmap import write_labelmap
    from machaon.ortho.mesh_anatomy import fill_voxels
    from machaon.ortho.mesh_planning import plan_labelmap, plan_mesh_files

    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        files = []
        for i, lv in enumerate(LEVELS):
            m = myo_sim_vertebra(lv)
            m.apply_translation([0.0, 0.0, -35.0 * i])
            m.export(d / f"{lv}.stl")
            files.append(d / f"{lv}.stl")
        t0 = time.perf_counter()
        mp = plan_mesh_files(files)
        rows.append(_screw_rows("L1-L5 as shipped (coarse)", list(mp.reports), time.perf_counter() - t0, 5))
        reports, t_all = [], 0.0
        for _ in range(poses):
            for lv in LEVELS:
                T = np.eye(4)
                T[:3, :3] = Rotation.from_euler(
                    "xyz", [rng.uniform(-10, 10), rng.uniform(-10, 10), rng.uniform(-15, 15)], degrees=True).as_matrix()
                T[:3, 3] = rng.uniform(-100, 100, 3)
                myo_sim_vertebra(lv, T).export(d / f"{lv}.stl")
                t0 = time.perf_counter()
                reports += list(plan_mesh_files([d / f"{lv}.stl"]).reports)
                t_all += time.perf_counter() - t0
        if poses:
            rows.append(_screw_rows(f"L1-L5 at {poses} random pose(s) each", reports, t_all, 5 * poses))
        reports, t_all = [], 0.0
        for lv in LEVELS:
            myo_sim_vertebra(lv).subdivide_to_size(0.6).export(d / f"{lv}.stl")
            t0 = time.perf_counter()
            reports += list(plan_mesh_files([d / f"{lv}.stl"]).reports)
            t_all += time.perf_counter() - t0
        rows.append(_screw_rows("L1-L5 dense (~190k triangles each)", reports, t_all, 5))
        meshes = [myo_sim_vertebra(lv) for lv in LEVELS]
        for i, m in enumerate(meshes):
            m.apply_translation([0.0, 0.0, -35.0 * i])
        vols = []
        for m in meshes:
            B, org = fill_voxels(m, 0.8)
            vols.append((B, org))
        lo = np.min([o for _, o in vols], axis=0)
        shape = np.max([np.array(B.shape) + np.round((o - lo) / 0.8).astype(int) for B, o in vols], axis=0)
        vol = np.zeros(tuple(shape), dtype=np.int16)
        for i, (B, o) in enumerate(vols):
            off = np.round((o - lo) / 0.8).astype(int)
            sl = tuple(slice(off[a], off[a] + B.shape[a]) for a in range(3))
            vol[sl][B] = 20 + i  # TotalSegmentator's vertebrae_L1.. numbering style
        affine = np.array([[-0.8, 0, 0, -lo[0]], [0, -0.8, 0, -lo[1]], [0, 0, 0.8, lo[2]], [0, 0, 0, 1.0]])
        write_labelmap(d / "seg.nii.gz", vol, affine)
        t0 = time.perf_counter()
        mp = plan_labelmap(d / "seg.nii.gz", {lv: 20 + i for i, lv in enumerate(LEVELS)})
        rows.append(_screw_rows("L1-L5 label map, 0.8 mm voxels", list(mp.reports), time.perf_counter() - t0, 5))
    return table(["vertebrae", "screws", "breaches", "ok", "cortex clearance min / median mm", "canal min mm",
                  "tip margin min mm", "diameters mm", "s per level"], rows)


def _event_errors(trial: dict, detected: dict) -> dict:
    from machaon.exo.events import match_events

    out = {}
    for kind, key in (("heel_strike", "hs"), ("toe_off", "to")):
        errs, missed, extra = [], 0, 0
        for side in ("left", "right"):
            ref = np.array(trial[key][side], float) / trial["fps"]
            e, x, m = match_events(np.asarray(detected[(side, kind)]), ref, 0.15)
            errs += list(e * 1e3)
            missed, extra = missed + m, extra + x
        out[kind] = (np.array(errs), missed, extra)
    return out


def _fmt(e: np.ndarray) -> str:
    if not e.size:
        return "-"
    return f"{e.mean():+.0f} ± {e.std():.0f} (mean abs {np.abs(e).mean():.0f}, max {np.abs(e).max():.0f})"


def bench_events() -> str:
    from machaon.cli.main import main
    from machaon.exo.imu import GaitPhaseEstimator

    rows = []
    for name in ("parkinson", "healthy"):
        tr = gaitkit_trial(name)
        with tempfile.TemporaryDirectory() as d:
            path = write_gaitkit_c3d(tr, Path(d) / f"{name}.c3d")
            main(["exo", "events", str(path), "--out", str(Path(d) / "ev")])
            rows_csv = list(csv.DictReader(open(Path(d) / "ev" / "events.csv")))
        det = {(s, k): [float(r["time_s"]) for r in rows_csv if r["side"] == s and r["event"] == k]
               for s in ("left", "right") for k in ("heel_strike", "toe_off")}
        imu = {}
        for side in ("left", "right"):
            thigh, omega = virtual_shank_imu(tr, side)
            est = GaitPhaseEstimator()
            for i in range(len(omega)):
                est.update(float(thigh[i]), float(omega[i]), i / tr["fps"])
            imu[(side, "heel_strike")], imu[(side, "toe_off")] = est.heel_strikes, est.toe_offs
        n_ref = sum(len(tr[k][s]) for k in ("hs", "to") for s in ("left", "right"))
        for method, d_ in (("markers (Zeni)", det), ("IMU gait-phase estimator", imu)):
            e = _event_errors(tr, d_)
            matched = sum(v[0].size for v in e.values())
            rows.append([name, method, f"{matched}/{n_ref}", _fmt(e["heel_strike"][0]), _fmt(e["toe_off"][0])])
    return table(["trial", "detector", "matched", "heel strike error ms", "toe off error ms"], rows)


def bench_emg_force() -> str:
    from machaon.exo.emg_signals import envelope_force_agreement, infer_emg_scale

    emg = np.loadtxt(package_file("novainstrumentation", "novainstrumentation/data/emg.txt"))
    force = np.loadtxt(package_file("novainstrumentation", "novainstrumentation/data/force.txt"))
    fs = 1.0 / float(np.median(np.diff(emg[0])))
    scale, unit = infer_emg_scale(emg[1])
    a = envelope_force_agreement(emg[1] * scale, force[1], fs)
    return table(["recording", "unit found", "r (best lag)", "lag ms", "r^2", "r at zero lag"],
                 [["novainstrumentation emg.txt + force.txt, 1 kHz, 5 s", unit, f"{a.r:.3f}",
                   f"{a.lag_s * 1e3:.0f}", f"{a.r_squared_linear:.3f}", f"{a.r_zero_lag:.3f}"]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poses", type=int, default=4, help="random poses per vertebra (default 4)")
    args = ap.parse_args()
    for title, fn in (("Pedicle screws on real vertebra shapes", lambda: bench_screws(args.poses)),
                      ("Gait events against annotated events", bench_events),
                      ("EMG envelope against force", bench_emg_force)):
        print(f"\n{title}\n")
        try:
            print(fn())
        except MissingData as exc:
            print(f"skipped: {exc}")


if __name__ == "__main__":
    main()
