"""Kinematics and dynamics benchmark: the chain's public calls beside pinocchio's Python API, IK beside TRAC-IK.

Per-call rows, on the project's arm (machaon_arm) and on example-robot-data's UR10: each call as a
user makes it (``chain.fk_jacobian(q)``, checks included, results allocated; and with ``out=``)
beside the same result from pinocchio's Python API on the same configuration, checked equal
first. Medians of blocks of calls, wall time (ratios) and this thread's CPU time (less disturbed
on a shared machine). Targets of issue #11 are printed as rows with their verdicts.

IK: ``--poses`` (default 10 000) reachable poses from random in-limit configurations of
machaon_arm, tolerance 1e-5 m / 1e-5 rad; success rate and median for ``Chain.ik`` and TRAC-IK
(pytracik, Speed, 5 ms) on the same poses, ikpy on the first ``--ikpy-poses``.
Run: ``python -m benchmarks.kinematics [--poses N] [--ikpy-poses M]``.
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

from benchmarks._common import erd_urdf, per_call, pin_model, table, time_calls, us
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
    return [name, f"{100.0 * ok / len(poses):.2f}%", us(np.median(t)), us(np.percentile(t, 99)), len(poses)]


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


class _Pin:
    """pinocchio's Python API on the chain's model (all joints of these arms are on the chain)."""

    def __init__(self, chain: Chain) -> None:
        self.model, self.data, self.fid = pin_model(chain)

    def fk_jacobian(self, q):
        J = pin.computeFrameJacobian(self.model, self.data, q, self.fid, pin.LOCAL_WORLD_ALIGNED)
        pin.updateFramePlacement(self.model, self.data, self.fid)
        return self.data.oMf[self.fid].homogeneous, J

    def fk(self, q):
        pin.framesForwardKinematics(self.model, self.data, q)
        return self.data.oMf[self.fid].homogeneous

    def jacobian(self, q):
        return pin.computeFrameJacobian(self.model, self.data, q, self.fid, pin.LOCAL_WORLD_ALIGNED)

    def gravity(self, q):
        return pin.computeGeneralizedGravity(self.model, self.data, q)

    def rnea(self, q, dq, ddq):
        return pin.rnea(self.model, self.data, q, dq, ddq)

    def crba(self, q):
        return pin.crba(self.model, self.data, q)  # upper triangle only (ours fills the whole matrix)

    def coriolis(self, q, dq):
        nle = pin.nonLinearEffects(self.model, self.data, q, dq)
        return nle - pin.computeGeneralizedGravity(self.model, self.data, q)


def per_call_rows(name: str, chain: Chain) -> list[list[object]]:
    rng = np.random.default_rng(0)
    q = chain.random_q(rng)
    dq, ddq = rng.normal(size=chain.dof), rng.normal(size=chain.dof)
    ref = _Pin(chain)
    # Same results first (the kernels' frames equal pinocchio's for these URDF-root-based arms).
    T, J = chain.fk_jacobian(q)
    Tp, Jp = ref.fk_jacobian(q)
    assert np.allclose(T, Tp, atol=1e-10) and np.allclose(J, Jp, atol=1e-10)
    assert np.allclose(chain.rnea(q, dq, ddq), ref.rnea(q, dq, ddq), rtol=1e-9, atol=1e-9)
    assert np.allclose(chain.gravity_torque(q), ref.gravity(q), rtol=1e-9, atol=1e-9)
    assert np.allclose(np.triu(chain.mass_matrix(q)), np.triu(ref.crba(q)), rtol=1e-9, atol=1e-9)
    assert np.allclose(chain.coriolis_torque(q, dq), ref.coriolis(q, dq), rtol=1e-9, atol=1e-9)
    n = chain.dof
    T_out, J_out, v_out, M_out = np.empty((4, 4)), np.empty((6, n)), np.empty(n), np.empty((n, n))
    cases = [
        ("fk(q)", lambda: chain.fk(q), lambda: ref.fk(q), None),
        ("fk(q, out=)", lambda: chain.fk(q, T_out), lambda: ref.fk(q), None),
        ("jacobian(q)", lambda: chain.jacobian(q), lambda: ref.jacobian(q), None),
        ("fk_jacobian(q)", lambda: chain.fk_jacobian(q), lambda: ref.fk_jacobian(q), (0.5, 4.0)),
        ("fk_jacobian(q, T_out, J_out)", lambda: chain.fk_jacobian(q, T_out, J_out), lambda: ref.fk_jacobian(q),
         (0.25, None)),
        ("gravity_torque(q) vs computeGeneralizedGravity", lambda: chain.gravity_torque(q), lambda: ref.gravity(q),
         (None, 5.0)),
        ("gravity_torque(q, out=)", lambda: chain.gravity_torque(q, v_out), lambda: ref.gravity(q), None),
        ("rnea(q, dq, ddq) vs rnea", lambda: chain.rnea(q, dq, ddq), lambda: ref.rnea(q, dq, ddq), None),
        ("mass_matrix(q) vs crba (upper triangle)", lambda: chain.mass_matrix(q), lambda: ref.crba(q), None),
        ("mass_matrix(q, out=)", lambda: chain.mass_matrix(q, M_out), lambda: ref.crba(q), None),
        ("coriolis_torque(q, dq) vs nonLinearEffects - gravity", lambda: chain.coriolis_torque(q, dq),
         lambda: ref.coriolis(q, dq), None),
    ]
    rows = []
    for label, ours, theirs, target in cases:
        (a_w, a_c), (b_w, b_c) = per_call(ours), per_call(theirs)
        verdict = ""
        if target is not None:
            max_us, min_ratio = target
            parts = []
            if max_us is not None:
                parts.append(f"<= {max_us} us: {'met' if a_w * 1e6 <= max_us else 'NOT met'}")
            if min_ratio is not None:
                ratio = min(b_w / a_w, b_c / a_c)
                parts.append(f">= {min_ratio:g}x: {'met' if ratio >= min_ratio else 'NOT met'}")
            verdict = "; ".join(parts)
        rows.append([name, label, us(a_w), us(a_c), us(b_w), us(b_c), f"{b_w / a_w:.1f}x ({b_c / a_c:.1f}x)", verdict])
    return rows


def batch_row(chain: Chain) -> list[object]:
    rng = np.random.default_rng(1)
    N = 100_000
    Qb = chain.random_q(rng, N)
    out_b = np.empty((N, 4, 4))
    tb = min(time_calls(lambda: chain.fk_batch(Qb, out=out_b), repeat=5, warmup=1)) / N
    ref = _Pin(chain)

    def pin_batch():
        for qq in Qb[:5000]:
            ref.fk(qq)

    tpb = min(time_calls(pin_batch, repeat=3, warmup=1)) / 5000
    return [f"fk_batch, per configuration ({1 / tb / 1e6:.2f} M/s)", f"{tb * 1e6:.3f}", f"{tpb * 1e6:.3f}",
            f"{tpb / tb:.1f}x"]


def ik_rows(chain: Chain, desc, n_poses: int, n_ikpy: int) -> list[list[object]]:
    rng = np.random.default_rng(0)
    poses = [chain.fk(q) for q in chain.random_q(rng, n_poses)]
    rows = [_ik_stats("machaon Chain.ik (LM, restarts)",
                      lambda T, i: (lambda r: r.q if r.success else None)(chain.ik(T, seed=i)), chain, poses)]
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

        rows.append(_ik_stats("TRAC-IK (pytracik, Speed, 5 ms)", tracik, chain, poses))
    except ImportError:
        rows.append(["TRAC-IK (pytracik)", "not installed", "", "", 0])
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

        rows.append(_ik_stats("ikpy", ikpy_solve, chain, poses[:n_ikpy]))
    except ImportError:
        rows.append(["ikpy", "not installed", "", "", 0])
    base = float(rows[0][2])
    for r in rows:
        r.append(f"{float(r[2]) / base:.1f}x" if r[2] else "")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--poses", type=int, default=10_000, help="IK poses for Machaon and TRAC-IK")
    ap.add_argument("--ikpy-poses", type=int, default=100, help="IK poses for ikpy (slow)")
    args = ap.parse_args()

    desc = load_description("machaon_arm")
    arm = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    ur10 = Chain.from_urdf(erd_urdf("ur_description/urdf/ur10_robot.urdf"), "base_link", "tool0")
    print(f"python {sys.version.split()[0]}, pinocchio {pin.__version__}, numpy {np.__version__}")
    rows = per_call_rows("machaon_arm", arm) + per_call_rows("UR10", ur10)
    print(table(["arm", "call (median us)", "machaon wall", "machaon CPU", "pinocchio wall", "pinocchio CPU",
                 "pinocchio / machaon, wall (CPU)", "issue #11 target"], rows))
    print("A ratio target is judged on the smaller of the wall and CPU ratios; a time target on the wall median.")
    print()
    print(table(["batch (machaon_arm)", "machaon us", "pinocchio us", "speed-up"], [batch_row(arm)]))
    print()
    ik = ik_rows(arm, desc, args.poses, args.ikpy_poses)
    print(f"IK on {args.poses} reachable poses of machaon_arm (success = pose within 1e-5 m and 1e-5 rad):")
    print(table(["solver", "success", "median us", "p99 us", "poses", "median time vs machaon"], ik))
    rate = float(ik[0][1].rstrip("%"))
    print(f"target: success >= 99.9% -> {'met' if rate >= 99.9 else 'NOT met'} ({rate:.2f}%)")


if __name__ == "__main__":
    main()
