"""``machaon kin``: forward kinematics, Jacobian and inverse kinematics of a URDF arm.

Degrees and millimetres on the command line and in the printout; SI inside (converted here).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pinocchio as pin

from machaon.cli._common import command, usage_errors
from machaon.errors import UsageError
from machaon.kinematics import Chain
from machaon.robot.description import load_description

_MAX_DEG = 1e4  # joint values beyond ~28 turns (or 10 m of travel) are a typo, not a pose
_MAX_MM = 1e6  # positions beyond 1 km likewise


def _finite(name: str, values: object, limit: float) -> np.ndarray:
    """``values`` as floats; ``UsageError`` unless all are finite and within +-``limit``."""
    a = np.asarray(values, dtype=np.float64)
    if not np.isfinite(a).all():
        raise UsageError(f"{name}: values must be finite numbers")
    if (np.abs(a) > limit).any():
        raise UsageError(f"{name}: values must be within +-{limit:g}")
    return a


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kin", help="FK, Jacobian and IK of an arm: fk, ik, axis (five-DOF); degrees, mm at the edges",
                       description="Kinematics of the project's arm or any URDF. Examples:\n"
                       "  machaon kin fk --q-deg 0 20 70 0 90 0\n"
                       "  machaon kin ik --xyz-mm 500 0 300 --rpy-deg 180 0 0\n"
                       "  machaon kin axis --point-mm 550 50 250 --axis 0 0 -1 --tool drill_guide\n"
                       "  machaon kin --urdf model.urdf --base base_link --tip tool0 fk --q-deg 0 0 0 0 0 0",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="machaon_arm", help="robot description name or TOML path (default machaon_arm)")
    p.add_argument("--urdf", help="use this URDF instead of a description (needs --base and --tip)")
    p.add_argument("--base", help="base link of the chain (with --urdf)")
    p.add_argument("--tip", help="tip link of the chain (with --urdf)")
    p.add_argument("--tool", help="tool of the description whose TCP is the tip (e.g. drill_guide)")
    ks = p.add_subparsers(dest="kin_command", metavar="ACTION", required=True)
    fk = ks.add_parser("fk", help="pose, Jacobian, manipulability at joint values")
    fk.add_argument("--q-deg", type=float, nargs="+", help="joint values in degrees (mm for prismatic); default home")
    fk.set_defaults(func=_fk)
    ik = ks.add_parser("ik", help="joint values for a tool pose")
    ik.add_argument("--xyz-mm", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"))
    ik.add_argument("--rpy-deg", type=float, nargs=3, default=(180.0, 0.0, 0.0), metavar=("R", "P", "Y"),
                    help="roll pitch yaw of the tool in the base frame (default 180 0 0: pointing down)")
    ik.add_argument("--q0-deg", type=float, nargs="+", help="start / preferred joint values (default home)")
    ik.add_argument("--seed", type=int, default=0)
    ik.set_defaults(func=_ik)
    ax = ks.add_parser("axis", help="five-DOF IK: tool origin on a point, tool z along an axis")
    ax.add_argument("--point-mm", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"))
    ax.add_argument("--axis", type=float, nargs=3, required=True, metavar=("AX", "AY", "AZ"))
    ax.add_argument("--q0-deg", type=float, nargs="+")
    ax.set_defaults(func=_axis)


def _chain(args: argparse.Namespace) -> tuple[Chain, np.ndarray]:
    if args.urdf:
        if not (args.base and args.tip):
            raise UsageError("--urdf needs --base and --tip")
        with usage_errors(ValueError, OSError, context=f"--urdf {args.urdf}"):
            chain = Chain.from_urdf(args.urdf, args.base, args.tip)
        return chain, chain.home()
    desc = load_description(args.robot)
    chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
    if args.tool:
        chain = chain.with_tool(desc.T_flange_tool(args.tool))
    return chain, np.asarray(desc.q_home, dtype=np.float64)


def _joint_values(chain: Chain, values: list[float] | None, default: np.ndarray, what: str) -> np.ndarray:
    if values is None:
        return default.copy()
    if len(values) != chain.dof:
        raise UsageError(f"{what} needs {chain.dof} values, got {len(values)}")
    return _to_si(chain, _finite(what, values, _MAX_DEG))


def _to_si(chain: Chain, values: np.ndarray) -> np.ndarray:
    """Command-line joint values to SI: degrees -> rad, mm -> m for prismatic joints."""
    return np.where(chain.prismatic, values * 1e-3, np.radians(values))


def _print_pose(T: np.ndarray) -> None:
    rpy = np.degrees(pin.rpy.matrixToRpy(T[:3, :3]))
    print(f"position_mm  {T[0, 3] * 1e3:10.3f} {T[1, 3] * 1e3:10.3f} {T[2, 3] * 1e3:10.3f}")
    print(f"rpy_deg      {rpy[0]:10.4f} {rpy[1]:10.4f} {rpy[2]:10.4f}")
    print("T_base_tip (m):")
    for row in T:
        print("  " + " ".join(f"{v:11.6f}" for v in row))


@command
def _fk(args: argparse.Namespace) -> int:
    chain, home = _chain(args)
    q = _joint_values(chain, args.q_deg, home, "--q-deg")
    T, J = chain.fk_jacobian(q)
    print(f"chain        {chain.base_link} -> {chain.tip_link} ({chain.dof} joints: {', '.join(chain.joint_names)})")
    print("q_deg        " + " ".join(f"{v:9.3f}" for v in np.degrees(q)))
    _print_pose(T)
    print("Jacobian [v (m/s per rad); w (rad/s per rad)], base frame, at the tip:")
    for label, row in zip(("vx", "vy", "vz", "wx", "wy", "wz"), J, strict=True):
        print(f"  {label} " + " ".join(f"{v:9.5f}" for v in row))
    print(f"manipulability   {chain.manipulability(q):.6g}")
    print(f"condition_number {chain.condition_number(q):.6g}")
    return 0


def _report(chain: Chain, r) -> int:
    print(f"success      {r.success}")
    print("q_deg        " + " ".join(f"{v:9.4f}" for v in np.degrees(r.q)))
    print(f"pos_err_mm   {r.pos_err * 1e3:.3g}")
    print(f"rot_err_deg  {math.degrees(r.rot_err):.3g}")
    print(f"iterations   {r.iterations}")
    if r.success:
        _print_pose(chain.fk(r.q))
    return 0 if r.success else 1


@command
def _ik(args: argparse.Namespace) -> int:
    chain, home = _chain(args)
    T = np.eye(4)
    T[:3, :3] = pin.rpy.rpyToMatrix(*np.radians(_finite("--rpy-deg", args.rpy_deg, _MAX_DEG)))
    T[:3, 3] = _finite("--xyz-mm", args.xyz_mm, _MAX_MM) * 1e-3
    q0 = _joint_values(chain, args.q0_deg, home, "--q0-deg")
    return _report(chain, chain.ik(T, q0, seed=args.seed))


@command
def _axis(args: argparse.Namespace) -> int:
    chain, home = _chain(args)
    q0 = _joint_values(chain, args.q0_deg, home, "--q0-deg")
    point = _finite("--point-mm", args.point_mm, _MAX_MM) * 1e-3
    axis = _finite("--axis", args.axis, _MAX_MM)
    if np.linalg.norm(axis) < 1e-9:
        raise UsageError("--axis: must be a non-zero direction, e.g. 0 0 -1")
    return _report(chain, chain.ik_axis(point, axis, q0))
