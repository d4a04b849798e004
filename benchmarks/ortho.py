"""Orthopedic benchmark: auto-planning, registration and the approach planner, beside peer libraries.

- auto-plan of a 5-level lumbar segment (10 screws), and the plan check per screw;
- registration: paired-point (ours: Umeyama SVD; peer: ``trimesh.registration.procrustes``) and
  surface refinement (ours: point-to-plane ICP; peer: ``trimesh.registration.icp``, point-to-point),
  with the accuracy each reaches on the same noisy digitised points (true TRE at the screw targets);
- approach planning in the real PyBullet scene (collision checks through ``machaon.sim``): OMPL's
  RRT-Connect (the ``ompl`` package) vs our RRT-Connect, on the procedure's own query and on a
  harder one with an obstacle on the straight joint path between home and the stand-off.

Run: ``python -m benchmarks.ortho [--repeat N]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from benchmarks._common import table
from machaon.ortho import registration as reg
from machaon.ortho.anatomy import SpineSegment, surface_samples
from machaon.ortho.approach import check_path, ompl_available, plan_approach
from machaon.ortho.planning import auto_plan, check_plan

MM = 1e-3


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f}"


def _ratio(ours: float, peer: float | None) -> str:
    return "-" if peer is None or ours <= 0 else f"{peer / ours:.2f}x"


def bench_planning(rows: list[list[object]]) -> SpineSegment:
    seg = SpineSegment(("L1", "L2", "L3", "L4", "L5"))
    t0 = time.perf_counter()
    plan = auto_plan(seg)
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    checks = [check_plan(seg, s) for s in plan]
    t_check = (time.perf_counter() - t0) / len(plan)
    rows.append(["auto-plan 5 levels (10 screws)", _ms(t_plan), "-", "-",
                 f"min clearance {min(c.min_clearance for c in checks) / MM:.2f} mm, {len(plan)} screws"])
    rows.append(["plan check (per screw)", _ms(t_check), "-", "-", f"breaches: {sum(c.breach for c in checks)}"])
    return seg


def bench_registration(rows: list[list[object]], seg: SpineSegment, repeat: int) -> None:
    import trimesh

    from machaon.ortho.procedure import landmarks

    rng = np.random.default_rng(0)
    T_true = np.eye(4)
    T_true[:3, :3] = trimesh.transformations.rotation_matrix(0.4, [0.3, 0.5, 0.8])[:3, :3]
    T_true[:3, 3] = (0.05, -0.12, 0.3)
    fid = landmarks(seg)
    plan = auto_plan(SpineSegment(("L3",)))  # targets for the TRE
    targets = np.array([s.target for s in plan])
    # image -> reference: digitised landmarks with 0.1 mm (per axis) localisation noise
    fid_ref = fid @ T_true[:3, :3].T + T_true[:3, 3] + rng.normal(0, 0.1 * MM, fid.shape)
    ours, peer = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = reg.register_paired(fid, fid_ref)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        M, _, _ = trimesh.registration.procrustes(fid, fid_ref, reflection=False, scale=False)
        peer.append(time.perf_counter() - t0)
    e_ours = reg.target_registration_error(r.T_dst_src, T_true, targets).max()
    e_peer = reg.target_registration_error(M, T_true, targets).max()
    rows.append([f"paired-point ({len(fid)} landmarks)", _ms(np.median(ours)), _ms(np.median(peer)),
                 _ratio(np.median(ours), np.median(peer)),
                 f"TRE ours {e_ours / MM:.3f} mm, trimesh {e_peer / MM:.3f} mm"])
    # ICP: 60 posterior surface points, start from a 2 mm / 2 deg perturbed paired result
    lo, hi = seg.bounds()
    cut = lo[1] + 0.55 * (hi[1] - lo[1])
    surf, _ = surface_samples(seg, 60, seed=1, spacing=2e-3, mask_fn=lambda P: P[:, 1] > cut)
    model_p, model_n = surface_samples(seg, 20000, seed=2, spacing=2e-3, mask_fn=lambda P: P[:, 1] > cut - 0.005)
    surf_ref = surf @ T_true[:3, :3].T + T_true[:3, 3] + rng.normal(0, 0.1 * MM, surf.shape)
    T_init_ref_image = T_true.copy()
    T_init_ref_image[:3, 3] += (0.002, -0.001, 0.001)
    T_init = np.linalg.inv(T_init_ref_image)  # image <- ref
    ours, peer = [], []
    for _ in range(max(3, repeat // 20)):
        t0 = time.perf_counter()
        icp = reg.icp_point_to_plane(surf_ref, model_p, model_n, T_init)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        M, _, _ = trimesh.registration.icp(surf_ref, model_p, initial=T_init, threshold=1e-9, max_iterations=60,
                                           reflection=False, scale=False)
        peer.append(time.perf_counter() - t0)
    e_ours = reg.target_registration_error(np.linalg.inv(icp.T_dst_src), T_true, targets).max()
    e_peer = reg.target_registration_error(np.linalg.inv(M), T_true, targets).max()
    rows.append(["ICP (60 points, 20k model samples)", _ms(np.median(ours)), _ms(np.median(peer)),
                 _ratio(np.median(ours), np.median(peer)),
                 f"TRE ours (point-to-plane) {e_ours / MM:.3f} mm, trimesh (point-to-point) {e_peer / MM:.3f} mm"])


def bench_approach(rows: list[list[object]], repeat: int) -> None:
    from machaon.ortho.procedure import ProcedureConfig, ProcedureWorld
    from machaon.ortho.procedure.screw import standoff_ik

    cfg = ProcedureConfig(levels=("L3", "L4"), plan_mode="axis")
    anatomy = SpineSegment(cfg.levels)
    w = ProcedureWorld(cfg, anatomy, lambda msg: None)
    try:
        ax = anatomy.pedicle_axis("L3", "left")
        T = w.T_world_image0
        e, a = T[:3, :3] @ ax.entry + T[:3, 3], T[:3, :3] @ ax.direction
        q_goal = standoff_ik(w, e - cfg.standoff_m * a, a, w.q_home)
        lo, hi = np.array(w.chain.lower), np.array(w.chain.upper)
        n_checks = [0]

        def valid(q: np.ndarray) -> bool:
            n_checks[0] += 1
            return not w.checker.in_collision(q, margin=0.01)

        t0 = time.perf_counter()
        for _ in range(200):
            valid(w.q_home)
        t_check = (time.perf_counter() - t0) / 200
        rows.append(["collision check (PyBullet, 1 config)", _ms(t_check), "-", "-",
                     "arm+tool vs table, torso, spine mesh"])
        queries = [("approach home -> stand-off", w.q_home, q_goal)]
        # a harder query: an obstacle (e.g. a retractor handle, 4 cm cube) right on the straight
        # joint-space path between home and the stand-off
        box = np.eye(4)
        box[:3, 3] = (0.33, 0.0, 0.41)
        w.sim.scene.add_box("retractor", (0.04, 0.04, 0.04), box, rgba=(0.3, 0.3, 0.35, 1.0))
        if check_path(np.array([w.q_home, q_goal]), valid, lo, hi, 0.03):
            raise RuntimeError("benchmark scene: the obstacle does not block the straight path")
        queries.append(("approach around an obstacle", w.q_home, q_goal))
        planners = ["rrtconnect"] + (["ompl"] if ompl_available() else [])
        for name, q0, q1 in queries:
            res = {}
            for planner in planners:
                times, lengths, oks = [], [], []
                for k in range(repeat):
                    path = plan_approach(q0, q1, valid, lo, hi, planner=planner, seed=k, resolution_rad=0.03)
                    times.append(path.plan_time_s)
                    lengths.append(path.length_rad)
                    oks.append(check_path(path.waypoints, valid, lo, hi, 0.03))
                res[planner] = (float(np.median(times)), float(np.median(lengths)), all(oks))
            ours = res["rrtconnect"]
            peer = res.get("ompl")
            note = f"path {ours[1]:.2f} rad (ours)"
            if peer:
                note += f", {peer[1]:.2f} rad (OMPL)"
            note += f"; all verified collision-free: {ours[2] and (peer is None or peer[2])}"
            rows.append([name, _ms(ours[0]), "-" if peer is None else _ms(peer[0]),
                         _ratio(ours[0], None if peer is None else peer[0]), note])
    finally:
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=20, help="repetitions for registration and planning timings")
    args = ap.parse_args()
    rows: list[list[object]] = []
    seg = bench_planning(rows)
    bench_registration(rows, seg, args.repeat)
    bench_approach(rows, max(3, args.repeat // 4))
    print(table(["task", "ours ms", "peer ms", "peer/ours", "notes"], rows))
    print("peers: trimesh.registration (procrustes, icp); OMPL RRTConnect (ompl "
          f"{'installed' if ompl_available() else 'NOT installed'}). Times are medians; ratio > 1: ours faster.")
    if not math.isfinite(sum(float(r[1]) for r in rows)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
