"""Forward kinematics, Jacobian and inverse kinematics on any URDF.

    python examples/kinematics_any_urdf.py
    python examples/kinematics_any_urdf.py --urdf my_robot.urdf --base base_link --tip tool0

Without ``--urdf`` it uses the project's six-joint arm. pinocchio parses the file; the Cython
core evaluates the chain. Poses are ``T_base_tip`` (4x4, metres), joint values in radians.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import machaon
from machaon.kinematics import Chain

ARM = Path(machaon.__file__).parent / "robot" / "descriptions" / "machaon_arm.urdf"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--urdf", default=str(ARM), help="a URDF file (default: the project's arm)")
    ap.add_argument("--base", default="base_link", help="the chain's base link")
    ap.add_argument("--tip", default="flange", help="the chain's tip link")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random joint configuration")
    args = ap.parse_args()

    chain = Chain.from_urdf(args.urdf, args.base, args.tip)
    print(f"{Path(args.urdf).name}: {chain.dof} joints {', '.join(chain.joint_names)}")

    # a random configuration inside the joint limits
    rng = np.random.default_rng(args.seed)
    lo = np.where(np.isfinite(chain.lower), chain.lower, -np.pi)
    hi = np.where(np.isfinite(chain.upper), chain.upper, np.pi)
    q = rng.uniform(lo, hi)

    T = chain.fk(q)  # pose of the tip in the base frame
    J = chain.jacobian(q)  # 6 x dof, [linear; angular], base frame, at the tip
    print("q (deg)      ", np.round(np.degrees(q), 1))
    print("tip xyz (mm) ", np.round(T[:3, 3] * 1e3, 2))
    print("Jacobian rank", np.linalg.matrix_rank(J))

    # solve back for that pose, starting from the middle of the limits
    res = chain.ik(T)
    print(f"IK success {res.success}: position error {res.pos_err * 1e3:.2e} mm, "
          f"rotation error {np.degrees(res.rot_err):.2e} deg")
    assert res.success and np.allclose(chain.fk(res.q), T, atol=1e-6)


if __name__ == "__main__":
    main()
