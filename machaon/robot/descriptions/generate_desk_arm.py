"""Generate ``desk.urdf``: a desk-scale six-DOF arm built from Dynamixel X-series servos.

The arm a bench engineer can build from catalogue parts: three XM540-W270 (shoulder pan,
shoulder lift, elbow) and three XM430-W350 (forearm roll, wrist pitch, wrist roll) on aluminium
tubes and brackets, with printed (PLA) horn adapters. Every link is a union of primitives whose
masses, centres of mass and inertias are computed with pinocchio's ``Inertia`` algebra (the
primitives and the URDF writer are ``generate_machaon_arm.py``'s); the servo housings are boxes
of the datasheet's outer dimensions carrying the datasheet's mass, so the numbers in the URDF are
derived, not chosen.

Datasheet figures (ROBOTIS e-Manual, https://emanual.robotis.com/docs/en/dxl/x/):

========== ======= =================== ============== ============================ =============
model      mass    W x H x D (mm)      gear ratio     stall torque (12 V)          no-load speed
========== ======= =================== ============== ============================ =============
XM540-W270 165 g   33.5 x 58.5 x 44    272.5 : 1      10.6 N m at 4.4 A (2.409 N m/A)  30 rpm
XM430-W350  82 g   28.5 x 46.5 x 34    353.5 : 1       4.1 N m at 2.3 A (1.78 N m/A)   46 rpm
========== ======= =================== ============== ============================ =============

The output axis of an X-series servo runs through its depth D, 11.25 mm (XM430) / 12.5 mm
(XM540) from the top end of its height H, so a housing's centre sits off the joint axis; the
boxes below are placed that way.

Geometry (zero pose points straight up; m): shoulder-lift axis 0.110 above the desk, upper arm
0.200, elbow to wrist-pitch axis 0.203 (forearm roll in between), wrist pitch to flange 0.082;
reach from the shoulder-lift axis to the flange 0.485 m. Joint limits stay inside one servo turn
(position mode covers 0..4095 ticks = +-180 deg around the mounting zero).

Run ``python machaon/robot/descriptions/generate_desk_arm.py`` to rewrite ``desk.urdf``;
``tests/robot/test_desk_arm.py`` checks the committed file equals this output.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _primitives() -> object:
    """``generate_machaon_arm`` (the shape primitives and URDF writer), loaded from beside this file."""
    name = "machaon_generate_machaon_arm"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "generate_machaon_arm.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


_g = _primitives()
Box, Cyl, Joint, ALUMINIUM = _g.Box, _g.Cyl, _g.Joint, _g.ALUMINIUM
PLA = 1240.0  # printed horn adapters and covers, kg/m^3


@dataclass(frozen=True)
class ServoSpec:
    """Datasheet figures of one servo model (e-Manual): mass (kg), housing W x H x D (m), axis offset
    from the top end of H (m), stall torque (N m) and stall current (A) at 12 V, gear ratio."""

    name: str
    mass: float
    width: float
    height: float
    depth: float
    axis_from_top: float
    stall_torque_nm: float
    stall_current_a: float
    gear_ratio: float

    @property
    def density(self) -> float:
        return self.mass / (self.width * self.height * self.depth)


XM540_W270 = ServoSpec("XM540-W270", 0.165, 0.0335, 0.0585, 0.044, 0.0125, 10.6, 4.4, 272.5)
XM430_W350 = ServoSpec("XM430-W350", 0.082, 0.0285, 0.0465, 0.034, 0.01125, 4.1, 2.3, 353.5)


def housing(s: ServoSpec, axis: str, axis_z: float, along: str) -> object:
    """The servo's housing as a box of its datasheet size and mass, its output axis along ``axis``
    ("y" or "z") through (0, 0, axis_z); the housing extends from the axis along -``along``
    ("z": below the axis; "y": towards -y)."""
    off = s.height / 2.0 - s.axis_from_top
    if axis == "y":  # D along y, H along z (hanging below the axis)
        return Box((s.width, s.depth, s.height), s.density, (0.0, 0.0, axis_z - off), color="dark")
    # axis along z: D along z, H along y (the housing sits below the horn face at axis_z)
    return Box((s.width, s.height, s.depth), s.density, (0.0, -off, axis_z - s.depth / 2.0), color="dark")


def _tube(r_out: float, wall: float, z0: float, z1: float) -> object:
    return Cyl(r_out, z1 - z0, ALUMINIUM, (0.0, 0.0, 0.5 * (z0 + z1)), r_inner=r_out - wall, color="grey")


DESK_LINKS: dict[str, list] = {
    "base_link": [
        Box((0.14, 0.14, 0.006), ALUMINIUM, (0.0, 0.0, 0.003), color="grey"),  # desk clamp plate
        housing(XM540_W270, "z", 0.050, "z"),  # J1 shoulder pan, horn up at 50 mm
    ],
    "shoulder_link": [
        Cyl(0.02, 0.005, PLA, (0.0, 0.0, 0.0025), color="white"),  # horn adapter
        Box((0.045, 0.050, 0.003), ALUMINIUM, (0.0, 0.0, 0.0065), color="grey"),  # bracket floor
        Box((0.040, 0.003, 0.050), ALUMINIUM, (0.0, 0.0265, 0.033), color="grey"),  # side plates
        Box((0.040, 0.003, 0.050), ALUMINIUM, (0.0, -0.0265, 0.033), color="grey"),
        housing(XM540_W270, "y", 0.060, "z"),  # J2 shoulder lift, axis 60 mm above J1's horn
    ],
    "upper_arm_link": [
        Box((0.030, 0.003, 0.045), ALUMINIUM, (0.0, 0.0265, 0.0125), color="grey"),  # horn bracket
        Box((0.030, 0.003, 0.045), ALUMINIUM, (0.0, -0.0265, 0.0125), color="grey"),
        _tube(0.012, 0.0015, 0.035, 0.160),  # 24 x 1.5 mm tube
        housing(XM540_W270, "y", 0.200, "z"),  # J3 elbow
    ],
    "elbow_link": [
        Box((0.030, 0.003, 0.040), ALUMINIUM, (0.0, 0.0265, 0.010), color="grey"),  # horn bracket
        Box((0.030, 0.003, 0.040), ALUMINIUM, (0.0, -0.0265, 0.010), color="grey"),
        Box((0.040, 0.056, 0.004), ALUMINIUM, (0.0, 0.0, 0.032), color="grey"),  # bracket floor
        housing(XM430_W350, "z", 0.072, "z"),  # J4 forearm roll, horn up at 72 mm
    ],
    "forearm_link": [
        Cyl(0.016, 0.006, PLA, (0.0, 0.0, 0.003), color="white"),  # horn adapter
        _tube(0.011, 0.0015, 0.006, 0.085),  # 22 x 1.5 mm tube
        housing(XM430_W350, "y", 0.125, "z"),  # J5 wrist pitch
    ],
    "wrist_link": [
        Box((0.026, 0.0025, 0.038), ALUMINIUM, (0.0, 0.020, 0.009), color="grey"),  # horn bracket
        Box((0.026, 0.0025, 0.038), ALUMINIUM, (0.0, -0.020, 0.009), color="grey"),
        Box((0.034, 0.0425, 0.003), ALUMINIUM, (0.0, 0.0, 0.0295), color="grey"),  # bracket floor
        housing(XM430_W350, "z", 0.066, "z"),  # J6 wrist roll, horn up at 66 mm
    ],
    "wrist_roll_link": [
        Cyl(0.016, 0.006, PLA, (0.0, 0.0, 0.003), color="white"),  # horn adapter
        Cyl(0.025, 0.004, ALUMINIUM, (0.0, 0.0, 0.010), color="grey"),  # tool plate
    ],
    # Tool flange frame on the tool plate's face; a rated payload is carried by the TOML, not here.
    "flange": [Cyl(0.025, 0.002, ALUMINIUM, (0.0, 0.0, -0.001), color="grey")],
}

_V540 = 2.0 * math.pi * 30.0 / 60.0  # no-load speed at 12 V, rad/s
_V430 = 2.0 * math.pi * 46.0 / 60.0
_J = Joint
# name, parent, child, origin, axis, lower/upper deg, velocity rad/s, effort N m (the stall torque),
# damping, friction (0: the servos' own gear friction comes from the servo model / identification)
DESK_JOINTS: list = [
    _J("shoulder_pan", "base_link", "shoulder_link", (0, 0, 0.050), (0, 0, 1), -170, 170, _V540, 10.6),
    _J("shoulder_lift", "shoulder_link", "upper_arm_link", (0, 0, 0.060), (0, 1, 0), -115, 115, _V540, 10.6),
    _J("elbow", "upper_arm_link", "elbow_link", (0, 0, 0.200), (0, 1, 0), -140, 140, _V540, 10.6),
    _J("forearm_roll", "elbow_link", "forearm_link", (0, 0, 0.078), (0, 0, 1), -170, 170, _V430, 4.1),
    _J("wrist_pitch", "forearm_link", "wrist_link", (0, 0, 0.125), (0, 1, 0), -120, 120, _V430, 4.1),
    _J("wrist_roll", "wrist_link", "wrist_roll_link", (0, 0, 0.070), (0, 0, 1), -170, 170, _V430, 4.1),
    _J("flange_joint", "wrist_roll_link", "flange", (0, 0, 0.012)),
]

_HEADER = "Generated by generate_desk_arm.py from primitive shapes and servo datasheets; edit that script."


def build_urdfs() -> dict[str, str]:
    """Return {file name: URDF text} for the desk arm."""
    # principal inertia axes: the offset servo housings give products of inertia, which PyBullet
    # would drop from a URDF tensor
    return {"desk.urdf": _g._robot_xml("desk", DESK_LINKS, DESK_JOINTS, _HEADER, principal=True)}


def main(out_dir: str | None = None) -> int:
    out = Path(out_dir) if out_dir else _HERE
    for fname, text in build_urdfs().items():
        (out / fname).write_text(text)
        print(f"wrote {out / fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
