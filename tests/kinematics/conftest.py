"""Arms for the kinematics tests: the project's arm and three other arms that are available offline."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pybullet_data
import pytest

from machaon.kinematics import Chain

_DATA = Path(pybullet_data.getDataPath())
_ROOT = Path(__file__).resolve().parents[2]


def erd_urdf(relpath: str) -> Path:
    """A robot file of the installed example-robot-data distribution, e.g. ``ur_description/urdf/ur5_robot.urdf``."""
    try:
        files = metadata.files("example-robot-data") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if str(f).endswith("example-robot-data/robots/" + relpath):
            return Path(f.locate())
    raise FileNotFoundError(f"example-robot-data's {relpath} is not installed (pip install example-robot-data)")


def _ur5() -> Path:
    return erd_urdf("ur_description/urdf/ur5_robot.urdf")


ARMS = {
    "machaon_arm": (_ROOT / "machaon/robot/descriptions/machaon_arm.urdf", "base_link", "flange"),
    "xarm6": (_DATA / "xarm/xarm6_robot.urdf", "link_base", "link6"),
    "kuka_iiwa": (_DATA / "kuka_iiwa/model.urdf", "lbr_iiwa_link_0", "lbr_iiwa_link_7"),
    "ur5": (None, "base_link", "tool0"),
    "mixed_joints": (Path(__file__).parent / "data/mixed_joints.urdf", "base", "tip"),
}


def arm_spec(name: str) -> tuple[Path, str, str]:
    path, base, tip = ARMS[name]
    return (_ur5() if path is None else path), base, tip


@pytest.fixture(scope="session", params=list(ARMS))
def arm(request) -> tuple[str, Chain]:
    path, base, tip = arm_spec(request.param)
    return request.param, Chain.from_urdf(path, base, tip)
