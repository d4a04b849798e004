"""Generate ``machaon_arm.urdf`` and the tool URDFs from primitive link shapes.

Every link is a union of primitives (hollow aluminium tubes, actuator housings as solid
cylinders, steel tubes for the tools). Masses, centres of mass and inertia tensors are computed
from those shapes and their materials with pinocchio's ``Inertia`` algebra (hollow tube = outer
cylinder minus bore), so the numbers in the URDF are derived, not chosen. The same primitives are
written as visual and collision geometry, so no mesh files are needed.

Run ``python machaon/robot/descriptions/generate_machaon_arm.py`` to rewrite the URDF files next
to this script; ``tests/sim/test_description.py`` checks the committed files equal this output.

Arm geometry (zero pose points straight up; all lengths in m):
shoulder height 0.34 above the base plate, upper arm 0.36, forearm 0.36 (elbow to wrist centre),
wrist centre to flange 0.13, so the reach from the shoulder axis to the flange is 0.85 m. Joints 4,
5 and 6 intersect at the wrist centre (spherical wrist).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pinocchio as pin

# Densities, kg/m^3.
ALUMINIUM = 2700.0
STAINLESS = 8000.0
# An actuator module (frameless motor, strain-wave gear, brake, encoder, aluminium housing) is
# modelled as a solid cylinder; its mass per volume is lower than steel because of the air gaps.
# 2300 kg/m^3 puts a 130 mm x 140 mm shoulder module at 4.3 kg, in line with catalogue units.
ACTUATOR = 2300.0
PLASTIC = 1200.0  # drill handpiece shell (PEEK/PPSU)

_ROT_Y = (math.pi / 2.0, 0.0, 0.0)  # URDF cylinders run along z; this turns one to run along y


@dataclass(frozen=True)
class Cyl:
    """A cylinder (solid if ``r_inner`` is 0) along its local z, placed at xyz/rpy in the link."""

    radius: float
    length: float
    density: float
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    r_inner: float = 0.0
    color: str = "grey"

    def inertia(self) -> pin.Inertia:
        def solid(r: float) -> pin.Inertia:
            return pin.Inertia.FromCylinder(self.density * math.pi * r * r * self.length, r, self.length)

        inert = solid(self.radius)
        if self.r_inner > 0.0:
            inert = inert - solid(self.r_inner)
        return _placement(self.xyz, self.rpy).act(inert)

    def geometry(self) -> str:
        return f'<cylinder radius="{_f(self.radius)}" length="{_f(self.length)}"/>'


@dataclass(frozen=True)
class Box:
    """A solid box with edge lengths ``size`` placed at xyz/rpy in the link."""

    size: tuple[float, float, float]
    density: float
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    color: str = "grey"

    def inertia(self) -> pin.Inertia:
        x, y, z = self.size
        return _placement(self.xyz, self.rpy).act(pin.Inertia.FromBox(self.density * x * y * z, x, y, z))

    def geometry(self) -> str:
        return f'<box size="{_f(self.size[0])} {_f(self.size[1])} {_f(self.size[2])}"/>'


Shape = Cyl | Box

COLORS = {
    "grey": (0.75, 0.77, 0.80, 1.0),
    "dark": (0.22, 0.24, 0.27, 1.0),
    "blue": (0.16, 0.40, 0.72, 1.0),
    "steel": (0.85, 0.85, 0.88, 1.0),
    "white": (0.95, 0.95, 0.95, 1.0),
}


def _placement(xyz: tuple[float, float, float], rpy: tuple[float, float, float]) -> pin.SE3:
    return pin.SE3(pin.rpy.rpyToMatrix(*rpy), np.asarray(xyz, dtype=np.float64))


def _f(x: float) -> str:
    s = f"{x:.9g}"
    return "0" if s == "-0" else s


def _v(xs: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(_f(float(x)) for x in xs)


def link_inertia(shapes: list[Shape]) -> pin.Inertia:
    total = pin.Inertia.Zero()
    for s in shapes:
        total = total + s.inertia()
    return total


def principal_axes(Ic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, I_diag): ``Ic = R diag(I_diag) R^T`` with R a proper rotation as close to the identity as
    the axes allow (eigenvectors matched to the link axes they are nearest, signs made positive)."""
    w, V = np.linalg.eigh(Ic)
    order = [int(np.argmax(np.abs(V[k]))) for k in range(3)]  # the eigenvector nearest link axis k
    if sorted(order) == [0, 1, 2]:  # (ties of a symmetric body: keep eigh's order)
        V, w = V[:, order], w[order]
    V = V * np.sign(np.where(np.diag(V) == 0, 1.0, np.diag(V)))
    if np.linalg.det(V) < 0:
        V[:, 2] = -V[:, 2]
    return V, w


def _link_xml(name: str, shapes: list[Shape], principal: bool = False) -> str:
    inert = link_inertia(shapes)
    c = inert.lever
    # Inertia about the centre of mass, in link axes (URDF <inertial> with rpy = 0); or, with
    # ``principal``, in its principal axes (rpy of those axes, diagonal tensor): PyBullet reads only
    # the diagonal of a URDF inertia, so a link with products of inertia needs its principal frame.
    Ic = inert.inertia
    rpy = np.zeros(3)
    if principal and np.abs(Ic - np.diag(np.diag(Ic))).max() > 1e-12 * np.trace(Ic):
        R, w = principal_axes(Ic)
        rpy = pin.rpy.matrixToRpy(R)
        Ic = np.diag(w)
    lines = [f'  <link name="{name}">']
    lines.append("    <inertial>")
    lines.append(f'      <origin xyz="{_v(c)}" rpy="{_v(rpy)}"/>')
    lines.append(f'      <mass value="{_f(inert.mass)}"/>')
    lines.append(
        f'      <inertia ixx="{_f(Ic[0, 0])}" ixy="{_f(Ic[0, 1])}" ixz="{_f(Ic[0, 2])}" '
        f'iyy="{_f(Ic[1, 1])}" iyz="{_f(Ic[1, 2])}" izz="{_f(Ic[2, 2])}"/>'
    )
    lines.append("    </inertial>")
    for s in shapes:
        origin = f'<origin xyz="{_v(s.xyz)}" rpy="{_v(s.rpy)}"/>'
        lines.append("    <visual>")
        lines.append(f"      {origin}")
        lines.append(f"      <geometry>{s.geometry()}</geometry>")
        lines.append(f'      <material name="{s.color}"><color rgba="{_v(COLORS[s.color])}"/></material>')
        lines.append("    </visual>")
    for s in shapes:
        lines.append("    <collision>")
        lines.append(f'      <origin xyz="{_v(s.xyz)}" rpy="{_v(s.rpy)}"/>')
        lines.append(f"      <geometry>{s.geometry()}</geometry>")
        lines.append("    </collision>")
    lines.append("  </link>")
    return "\n".join(lines)


@dataclass(frozen=True)
class Joint:
    name: str
    parent: str
    child: str
    xyz: tuple[float, float, float]
    axis: tuple[float, float, float] | None = None  # None: fixed
    lower_deg: float = 0.0
    upper_deg: float = 0.0
    velocity: float = 0.0  # rad/s
    effort: float = 0.0  # N m
    damping: float = 0.0  # N m s/rad
    friction: float = 0.0  # N m

    def xml(self) -> str:
        kind = "fixed" if self.axis is None else "revolute"
        lines = [f'  <joint name="{self.name}" type="{kind}">']
        lines.append(f'    <parent link="{self.parent}"/>')
        lines.append(f'    <child link="{self.child}"/>')
        lines.append(f'    <origin xyz="{_v(self.xyz)}" rpy="0 0 0"/>')
        if self.axis is not None:
            lines.append(f'    <axis xyz="{_v(self.axis)}"/>')
            lines.append(
                f'    <limit lower="{_f(math.radians(self.lower_deg))}" '
                f'upper="{_f(math.radians(self.upper_deg))}" '
                f'velocity="{_f(self.velocity)}" effort="{_f(self.effort)}"/>'
            )
            lines.append(f'    <dynamics damping="{_f(self.damping)}" friction="{_f(self.friction)}"/>')
        lines.append("  </joint>")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The arm

ARM_LINKS: dict[str, list[Shape]] = {
    "base_link": [
        Cyl(0.10, 0.012, ALUMINIUM, (0, 0, 0.006), color="dark"),  # base plate
        Cyl(0.075, 0.108, ALUMINIUM, (0, 0, 0.066), r_inner=0.067, color="dark"),  # pedestal tube
        Cyl(0.065, 0.10, ACTUATOR, (0, 0, 0.07), color="dark"),  # joint 1 module
    ],
    "shoulder_link": [
        Cyl(0.065, 0.155, ALUMINIUM, (0, 0, 0.0775), r_inner=0.057),  # column
        Cyl(0.065, 0.14, ACTUATOR, (0, 0, 0.22), _ROT_Y, color="blue"),  # joint 2 module
    ],
    "upper_arm_link": [
        Cyl(0.05, 0.24, ALUMINIUM, (0, 0, 0.185), r_inner=0.044),  # upper arm tube 0.065..0.305
        Cyl(0.055, 0.12, ACTUATOR, (0, 0, 0.36), _ROT_Y, color="blue"),  # joint 3 module
    ],
    "elbow_link": [
        Cyl(0.045, 0.035, ALUMINIUM, (0, 0, 0.0725), r_inner=0.04),  # 0.055..0.09
        Cyl(0.045, 0.07, ACTUATOR, (0, 0, 0.125), color="blue"),  # joint 4 module 0.09..0.16
    ],
    "forearm_link": [
        Cyl(0.042, 0.16, ALUMINIUM, (0, 0, 0.08), r_inner=0.037),  # forearm tube 0..0.16
        Cyl(0.04, 0.09, ACTUATOR, (0, 0, 0.20), _ROT_Y, color="blue"),  # joint 5 module
    ],
    "wrist_link": [
        Cyl(0.035, 0.06, ACTUATOR, (0, 0, 0.07), color="blue"),  # joint 6 module 0.04..0.10
    ],
    "wrist_roll_link": [
        Cyl(0.04, 0.022, ALUMINIUM, (0, 0, 0.011), color="grey"),  # joint 6 output 0..0.022
    ],
    # ISO 9409-1-50-4-M6 mounting plate just below the flange face (the flange frame).
    "flange": [
        Cyl(0.0315, 0.008, ALUMINIUM, (0, 0, -0.004), color="dark"),
    ],
}

# name, parent, child, origin, axis, lower/upper deg, velocity rad/s, effort N m, damping, friction
_J = Joint
ARM_JOINTS: list[Joint] = [
    _J("shoulder_pan", "base_link", "shoulder_link", (0, 0, 0.12), (0, 0, 1), -170, 170, 1.6, 150, 0.8),
    _J("shoulder_lift", "shoulder_link", "upper_arm_link", (0, 0, 0.22), (0, 1, 0), -120, 120, 1.6, 150, 0.8),
    _J("elbow", "upper_arm_link", "elbow_link", (0, 0, 0.36), (0, 1, 0), -150, 150, 2.0, 80, 0.5),
    _J("forearm_roll", "elbow_link", "forearm_link", (0, 0, 0.16), (0, 0, 1), -170, 170, 2.6, 30, 0.2),
    _J("wrist_pitch", "forearm_link", "wrist_link", (0, 0, 0.20), (0, 1, 0), -120, 120, 2.6, 30, 0.2),
    _J("wrist_roll", "wrist_link", "wrist_roll_link", (0, 0, 0.10), (0, 0, 1), -175, 175, 3.0, 15, 0.1),
    _J("flange_joint", "wrist_roll_link", "flange", (0, 0, 0.03)),
]


# ---------------------------------------------------------------------------------------------
# Tools. The root link's frame is the flange frame once mounted.

DRILL_GUIDE_LINKS: dict[str, list[Shape]] = {
    "drill_guide_mount": [
        Cyl(0.0315, 0.015, ALUMINIUM, (0, 0, 0.0075), color="grey"),  # adapter plate
        Cyl(0.014, 0.03, ALUMINIUM, (0, 0, 0.03), color="grey"),  # tube holder
        # Stainless guide tube, 5.0 mm bore for a 4.5 mm drill; exits 0.165 m from the flange.
        Cyl(0.006, 0.12, STAINLESS, (0, 0, 0.105), r_inner=0.0025, color="steel"),
    ],
    "guide_tcp": [],
}
DRILL_GUIDE_JOINTS = [Joint("guide_tcp_joint", "drill_guide_mount", "guide_tcp", (0, 0, 0.165))]

DRILL_LINKS: dict[str, list[Shape]] = {
    "drill_mount": [
        Cyl(0.0315, 0.012, ALUMINIUM, (0, 0, 0.006), color="grey"),  # adapter plate
        Box((0.09, 0.04, 0.015), ALUMINIUM, (0.03, 0, 0.0195), color="grey"),  # bracket to the side
        Cyl(0.022, 0.13, PLASTIC, (0.06, 0, 0.092), color="white"),  # handpiece shell
        Cyl(0.016, 0.11, STAINLESS, (0.06, 0, 0.092), color="steel"),  # motor and gear train
        Cyl(0.009, 0.025, STAINLESS, (0.06, 0, 0.1695), color="steel"),  # chuck
        Cyl(0.00225, 0.07, STAINLESS, (0.06, 0, 0.217), color="steel"),  # 4.5 mm drill bit
    ],
    "drill_tip": [],
}
DRILL_JOINTS = [Joint("drill_tip_joint", "drill_mount", "drill_tip", (0.06, 0, 0.252))]


def _massless_link(name: str) -> str:
    # A TCP frame: a tiny inertia so that simulators that need one stay well conditioned.
    return (
        f'  <link name="{name}">\n    <inertial>\n      <origin xyz="0 0 0" rpy="0 0 0"/>\n'
        '      <mass value="1e-06"/>\n'
        '      <inertia ixx="1e-12" ixy="0" ixz="0" iyy="1e-12" iyz="0" izz="1e-12"/>\n'
        "    </inertial>\n  </link>"
    )


def _robot_xml(name: str, links: dict[str, list[Shape]], joints: list[Joint], comment: str,
               principal: bool = False) -> str:
    parts = ['<?xml version="1.0"?>', f"<!-- {comment} -->", f'<robot name="{name}">']
    for lname, shapes in links.items():
        parts.append(_link_xml(lname, shapes, principal) if shapes else _massless_link(lname))
    for j in joints:
        parts.append(j.xml())
    parts.append("</robot>")
    return "\n".join(parts) + "\n"


_HEADER = "Generated by generate_machaon_arm.py from primitive shapes; edit that script, not this file."


def build_urdfs() -> dict[str, str]:
    """Return {file name: URDF text} for the arm and its tools."""
    return {
        "machaon_arm.urdf": _robot_xml("machaon_arm", ARM_LINKS, ARM_JOINTS, _HEADER),
        "machaon_drill_guide.urdf": _robot_xml(
            "machaon_drill_guide", DRILL_GUIDE_LINKS, DRILL_GUIDE_JOINTS, _HEADER
        ),
        "machaon_drill.urdf": _robot_xml("machaon_drill", DRILL_LINKS, DRILL_JOINTS, _HEADER),
    }


def main(out_dir: str | None = None) -> int:
    out = Path(out_dir) if out_dir else Path(__file__).resolve().parent
    for fname, text in build_urdfs().items():
        (out / fname).write_text(text)
        print(f"wrote {out / fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
