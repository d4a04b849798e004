"""Kinematics benchmark: Machaon's Cython core beside pinocchio's Python API, TRAC-IK and ikpy.

One run, one arm (the project's machaon_arm), one set of random in-limit configurations and the
reachable poses they give. Run: ``python -m benchmarks.kinematics [--poses N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings

import numpy as np
import pinocchio as pin
from scipy.spatial.transform import Rotation

from benchmarks._common import table, time_calls, time_per_call, us
from machaon.kinematics import Chain, log3
from machaon.robot.description import load_description


def _pose_ok(chain: Chain, q: np.ndarray, T: np.ndarray, tol: float = 1e-5) -> bool:
    A = chain.fk(q)
    return bool(np.linalg.norm(A[:3, 3] - T[:3, 3]) <= tol and np.linalg.norm(log3(T[:3, :3] @ A[:3, :3].T)) <= tol)


def _ik_stats(name: str, solve, chain: Chain, poses: list[np.ndarray]) -> list[object]:
    times, ok = [], 0
    for i, T in enumerate(poses):
        t0 = time.perf_counter()
        q = solve(T, i)
        times.append(time.perf_counter() - t0)
        ok += q is not None and _pose_ok(chain, q, T)
    t = np.array(times)
    return [name, f"{100.0 * ok / len(poses):.1f}%", us(np.median(t)), us(np.percentile(t, 99)), len(poses)]


@contextlib.contextmanager
def _quiet_stderr():
    """KDL prints a warning per solver construction from C++; keep the table readable."""
    sys.stdout.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--poses", type=int, default=1000, help="IK poses for Machaon and TRAC-IK")
    ap.add_argument("--ikpy-poses", type=int, default=100, help="IK poses for ikpy (slow)")
    args = ap.parse_args()

    desc = load_description("machaon_arm")
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    rng = np.random.default_rng(0)
    Q = chain.random_q(rng, args.poses)
    poses = [chain.fk(q) for q in Q]
    q = Q[0]

    model = pin.buildModelFromUrdf(str(desc.urdf_path))
    data = model.createData()
    fid = model.getFrameId(desc.tip_link)

    T_out, J_out = np.empty((4, 4)), np.empty((6, chain.dof))
    fk, jac, fkj = chain.fk, chain.jacobian, chain.fk_jacobian
    ours = {
        "fk": time_per_call(lambda: fk(q, T_out)),
        "jacobian": time_per_call(lambda: jac(q, J_out)),
        "fk_jacobian": time_per_call(lambda: fkj(q, T_out, J_out)),
    }

    def pin_fk():
        pin.framesForwardKinematics(model, data, q)
        return data.oMf[fid].homogeneous

    def pin_jac():
        return pin.computeFrameJacobian(model, data, q, fid, pin.LOCAL_WORLD_ALIGNED)

    def pin_fk_jac():
        J = pin.computeFrameJacobian(model, data, q, fid, pin.LOCAL_WORLD_ALIGNED)
        pin.updateFramePlacement(model, data, fid)
        return data.oMf[fid].homogeneous, J

    theirs = {"fk": time_per_call(pin_fk), "jacobian": time_per_call(pin_jac), "fk_jacobian": time_per_call(pin_fk_jac)}
    # Same results, checked before timing is trusted.
    T_ref, J_ref = pin_fk_jac()
    assert np.allclose(chain.fk(q), T_ref, atol=1e-10) and np.allclose(chain.jacobian(q), J_ref, atol=1e-10)

    N = 100_000
    Qb = chain.random_q(rng, N)
    out_b = np.empty((N, 4, 4))
    tb = min(time_calls(lambda: chain.fk_batch(Qb, out=out_b), repeat=5, warmup=1))

    def pin_batch():
        for qq in Qb[:5000]:
            pin.framesForwardKinematics(model, data, qq)
            data.oMf[fid].homogeneous  # noqa: B018 (the read is part of the work)

    tpb = min(time_calls(pin_batch, repeat=3, warmup=1)) / 5000

    rows = []
    for k in ("fk", "jacobian", "fk_jacobian"):
        a, b = np.median(ours[k]), np.median(theirs[k])
        rows.append([k, us(a), us(b), f"{b / a:.1f}x"])
    rows.append(["fk_batch (per configuration)", f"{tb / N * 1e6:.3f}", f"{tpb * 1e6:.3f}", f"{tpb / (tb / N):.1f}x"])
    print(f"arm: {desc.name} ({chain.dof} joints), python {sys.version.split()[0]}, pinocchio {pin.__version__}")
    print(table(["call (median, us)", "machaon", "pinocchio (Python API)", "speed-up"], rows))
    print(f"fk_batch throughput: {N / tb / 1e6:.2f} M configurations/s")
    print()

    ik_rows = []
    ik_rows.append(_ik_stats("machaon Chain.ik",
                             lambda T, i: (lambda r: r.q if r.success else None)(chain.ik(T, seed=i)), chain, poses))
    try:
        import pytracik

        with _quiet_stderr():
            solver = pytracik.TRAC_IK(desc.base_link, desc.tip_link, desc.urdf_path.read_text(), 0.005, 1e-6,
                                      pytracik.SolveType.Speed)

        def tracik(T, i):
            x, y, z = T[:3, 3]
            qx, qy, qz, qw = Rotation.from_matrix(T[:3, :3]).as_quat()
            r = pytracik.ik(solver, chain.home(), x, y, z, qx, qy, qz, qw)
            return np.asarray(r[1:]) if r[0] >= 0 and len(r) == chain.dof + 1 else None

        ik_rows.append(_ik_stats("TRAC-IK (pytracik, Speed, 5 ms)", tracik, chain, poses))
    except ImportError:
        ik_rows.append(["TRAC-IK (pytracik)", "not installed", "", "", 0])
    try:
        import ikpy.chain

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ik_chain = ikpy.chain.Chain.from_urdf_file(str(desc.urdf_path), base_elements=[desc.base_link])
        mask = [lk.joint_type != "fixed" for lk in ik_chain.links]

        def ikpy_solve(T, i):
            full = np.zeros(len(ik_chain.links))
            full[mask] = chain.home()
            sol = ik_chain.inverse_kinematics_frame(T, initial_position=full, orientation_mode="all")
            return np.asarray(sol)[mask]

        ik_rows.append(_ik_stats("ikpy", ikpy_solve, chain, poses[: args.ikpy_poses]))
    except ImportError:
        ik_rows.append(["ikpy", "not installed", "", "", 0])
    base = float(ik_rows[0][2])
    for r in ik_rows:
        r.append(f"{float(r[2]) / base:.1f}x" if r[2] else "")
    print("IK on reachable poses (success = pose within 1e-5 m and 1e-5 rad):")
    print(table(["solver", "success", "median us", "p99 us", "poses", "median time vs machaon"], ik_rows))


if __name__ == "__main__":
    main()
