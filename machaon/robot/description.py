"""Robot descriptions: a URDF for the mechanism plus a TOML file for its setup.

``load_description("machaon_arm")`` reads ``descriptions/machaon_arm.toml`` next to this module;
``load_description(path)`` reads any TOML of the same layout, or a bare URDF (any serial arm, e.g.
one from ``pybullet_data``), in which case the chain runs from the URDF's root link to its deepest
link and limits, home pose (zeros clipped into the limits) and gains get defaults.

Units: everything in a ``RobotDescription`` is SI (rad, rad/s, N m, m). The TOML holds degrees for
angles, because people edit it; the conversion happens in this module only (``_deg``).

Bad input: a missing file, an unknown name, a TOML whose joints, links or limits do not match its
URDF, or a tool whose TCP offset in the TOML disagrees with its URDF raises ``DescriptionError``.
"""

from __future__ import annotations

import math
import os
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pinocchio as pin

from machaon.errors import RobotError

DESCRIPTIONS_DIR = Path(__file__).resolve().parent / "descriptions"

__all__ = [
    "DESCRIPTIONS_DIR",
    "DescriptionError",
    "RobotDescription",
    "ToolDescription",
    "load_description",
]


class DescriptionError(RobotError, ValueError):
    """A robot description (URDF or TOML) is missing, malformed or inconsistent."""


def _deg(values: object, name: str) -> np.ndarray:
    """Degrees (from a file meant for people) to rad: the one conversion point of this module."""
    return np.radians(_floats(values, name))


def _floats(values: object, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DescriptionError(f"{name}: not a list of numbers ({exc})") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if n is not None and arr.shape != (n,):
        raise DescriptionError(f"{name}: expected {n} values, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DescriptionError(f"{name}: contains NaN or Inf")
    return arr


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _transform(xyz: object, rpy_rad: object) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = pin.rpy.rpyToMatrix(*np.asarray(rpy_rad, dtype=np.float64))
    T[:3, 3] = np.asarray(xyz, dtype=np.float64)
    return T


@dataclass(frozen=True, eq=False)
class ToolDescription:
    """A tool mounted on the flange.

    ``T_flange_tcp`` (4x4, m) is the tool centre point in the flange frame, read from the tool's URDF
    (transform from ``mount_link`` to ``tcp_link``). ``mass`` (kg), ``com_flange`` (m, flange
    frame) and ``inertia_com`` (kg m^2 about the COM, flange axes) are the tool's rigid-body data
    summed over its links, for payload compensation.
    """

    name: str
    urdf_path: Path
    mount_link: str
    tcp_link: str
    T_flange_tcp: np.ndarray
    mass: float
    com_flange: np.ndarray
    inertia_com: np.ndarray

    @property
    def com_tcp(self) -> np.ndarray:
        """Centre of mass in the TCP frame (m), e.g. for ``Dynamics(payload_com=...)``."""
        T = self.T_flange_tcp
        return T[:3, :3].T @ (self.com_flange - T[:3, 3])


@dataclass(frozen=True, eq=False)
class RobotDescription:
    """A serial arm: its URDF, chain ends, limits, home pose, default gains and tools (SI units).

    Arrays are read-only, one entry per joint in ``joint_names`` order. ``workspace_min/max`` bound
    the tool centre point in the base frame (m). Cartesian stiffness is ``[kx ky kz krx kry krz]``
    (N/m, N m/rad); damping is given as a ratio of critical damping. ``hold_*``/``brake_damping``
    (N m/rad, N m s/rad) and ``tool_speed_max`` (m/s) are the supervisor's safe-stop settings.
    ``armature`` (kg m^2, per joint) is the reflected rotor inertia of each joint's drive (rotor
    inertia times gear ratio squared), which the URDF cannot carry; zeros when not given.
    """

    name: str
    urdf_path: Path
    base_link: str
    tip_link: str
    joint_names: tuple[str, ...]
    q_home: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    velocity_limit: np.ndarray
    effort_limit: np.ndarray
    joint_stiffness: np.ndarray
    joint_damping_ratio: float
    cartesian_stiffness: np.ndarray
    cartesian_damping_ratio: float
    workspace_min: np.ndarray
    workspace_max: np.ndarray
    joint_damping: np.ndarray
    joint_friction: np.ndarray
    T_world_base: np.ndarray
    hold_stiffness: np.ndarray
    hold_damping: np.ndarray
    brake_damping: np.ndarray
    tool_speed_max: float
    tools: Mapping[str, ToolDescription] = field(default_factory=dict)
    armature: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.armature is None:
            object.__setattr__(self, "armature", _readonly(np.zeros(len(self.joint_names))))

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def safety_kwargs(self, *, workspace: bool = True) -> dict[str, object]:
        """Keyword arguments for ``machaon.control.supervisor.SafetyConfig`` from this description.

        Joint position limits, torque saturation, the tool-speed limit, the workspace box (unless
        ``workspace=False``) and the per-joint hold/brake gains. Use these gains rather than the
        supervisor's generic defaults: a light wrist joint is unstable at 1 kHz with a large
        damping gain (see ``[safety]`` in the TOML).
        """
        kw: dict[str, object] = {
            "q_min": np.array(self.lower),
            "q_max": np.array(self.upper),
            "tau_max": np.array(self.effort_limit),
            "tool_speed_max": self.tool_speed_max,
            "hold_stiffness": np.array(self.hold_stiffness),
            "hold_damping": np.array(self.hold_damping),
            "brake_damping": np.array(self.brake_damping),
        }
        if workspace:
            kw["workspace_min"] = np.array(self.workspace_min)
            kw["workspace_max"] = np.array(self.workspace_max)
        return kw

    def tool(self, tool_name: str) -> ToolDescription:
        """The tool called ``tool_name``; ``DescriptionError`` listing the known tools otherwise."""
        try:
            return self.tools[tool_name]
        except KeyError:
            raise DescriptionError(
                f"{self.name}: no tool {tool_name!r}; known tools: {sorted(self.tools)}"
            ) from None

    def T_flange_tool(self, tool_name: str) -> np.ndarray:
        """Pose of the tool centre point in the flange frame (4x4, m), a fresh writable copy."""
        return np.array(self.tool(tool_name).T_flange_tcp)

    def urdf_with_tool(self, tool_name: str | None) -> str:
        """URDF text of the arm with ``tool_name`` fixed to the tip link (arm only for ``None``).

        The tool's links and joints are appended and joined to ``tip_link`` by a fixed joint
        ``<tip>_to_<tool>`` at the identity. Relative mesh file names are made absolute so the
        text can be written anywhere.
        """
        arm = _parse_xml(self.urdf_path)
        _absolutize_meshes(arm, self.urdf_path.parent)
        if tool_name is not None:
            tool = self.tool(tool_name)
            troot = _parse_xml(tool.urdf_path)
            _absolutize_meshes(troot, tool.urdf_path.parent)
            arm_links = {el.get("name") for el in arm.findall("link")}
            for el in list(troot):
                if el.tag in ("link", "joint"):
                    if el.tag == "link" and el.get("name") in arm_links:
                        raise DescriptionError(
                            f"tool {tool_name}: link {el.get('name')!r} clashes with the arm"
                        )
                    arm.append(el)
                elif el.tag == "material" and arm.find(f"material[@name='{el.get('name')}']") is None:
                    arm.insert(0, el)
            j = ET.SubElement(arm, "joint", name=f"{self.tip_link}_to_{tool.name}", type="fixed")
            ET.SubElement(j, "parent", link=self.tip_link)
            ET.SubElement(j, "child", link=tool.mount_link)
            ET.SubElement(j, "origin", xyz="0 0 0", rpy="0 0 0")
        return ET.tostring(arm, encoding="unicode")


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DescriptionError(f"{path}: cannot read URDF ({exc})") from None


def _absolutize_meshes(root: ET.Element, base_dir: Path) -> None:
    for mesh in root.iter("mesh"):
        fn = mesh.get("filename", "")
        if fn and "://" not in fn and not os.path.isabs(fn):
            mesh.set("filename", str((base_dir / fn).resolve()))


def _build_model(urdf_path: Path) -> pin.Model:
    if not urdf_path.is_file():
        raise DescriptionError(f"URDF not found: {urdf_path}")
    try:
        return pin.buildModelFromUrdf(str(urdf_path))
    except (RuntimeError, ValueError) as exc:
        raise DescriptionError(f"{urdf_path}: pinocchio cannot parse it ({exc})") from None


def _chain_joints(model: pin.Model, base_link: str, tip_link: str) -> list[int]:
    """Pinocchio joint ids of the movable joints between base_link and tip_link, base first."""
    for link in (base_link, tip_link):
        if not model.existFrame(link):
            raise DescriptionError(f"{model.name}: no link {link!r}")
    tip_joint = model.frames[model.getFrameId(tip_link)].parentJoint
    base_joint = model.frames[model.getFrameId(base_link)].parentJoint
    ids = []
    j = tip_joint
    while j != base_joint:
        if j == 0:
            raise DescriptionError(f"{model.name}: {tip_link!r} is not below {base_link!r}")
        ids.append(j)
        j = model.parents[j]
    return ids[::-1]


def _load_tool(spec: Mapping, base_dir: Path) -> ToolDescription:
    try:
        name = str(spec["name"])
        urdf = base_dir / str(spec["urdf"])
        mount, tcp = str(spec["mount_link"]), str(spec["tcp_link"])
    except KeyError as exc:
        raise DescriptionError(f"tool entry is missing {exc}") from None
    model = _build_model(urdf)
    data = model.createData()
    pin.framesForwardKinematics(model, data, np.zeros(model.nq))
    for link in (mount, tcp):
        if not model.existFrame(link):
            raise DescriptionError(f"tool {name}: no link {link!r} in {urdf.name}")
    T_w_mount = data.oMf[model.getFrameId(mount)].homogeneous
    T_w_tcp = data.oMf[model.getFrameId(tcp)].homogeneous
    T_flange_tcp = np.linalg.solve(T_w_mount, T_w_tcp)
    if "tcp_xyz_m" in spec or "tcp_rpy_deg" in spec:
        T_cfg = _transform(
            _floats(spec.get("tcp_xyz_m", [0, 0, 0]), f"tool {name} tcp_xyz_m", 3),
            _deg(spec.get("tcp_rpy_deg", [0, 0, 0]), f"tool {name} tcp_rpy_deg"),
        )
        if not np.allclose(T_cfg, T_flange_tcp, atol=1e-9):
            raise DescriptionError(f"tool {name}: TCP in the TOML disagrees with {urdf.name}")
    # All links of a tool hang on fixed joints, so pinocchio lumps them into the universe body,
    # expressed in the URDF root frame; re-express it in the mount (= flange) frame.
    inert = pin.SE3(T_w_mount).actInv(model.inertias[0])
    return ToolDescription(
        name=name,
        urdf_path=urdf,
        mount_link=mount,
        tcp_link=tcp,
        T_flange_tcp=_readonly(T_flange_tcp),
        mass=float(inert.mass),
        com_flange=_readonly(inert.lever),
        inertia_com=_readonly(inert.inertia),
    )


def _toml_gains(gains: dict, n: int) -> dict[str, object]:
    """``RobotDescription`` fields of the ``[gains]`` table: joint (N m/rad) and Cartesian (N/m,
    N m/rad) stiffness and damping ratios, with the defaults where a key is absent."""
    gj, gc = gains.get("joint", {}), gains.get("cartesian", {})
    k_joint = _floats(gj.get("stiffness_nm_rad", [100.0] * n), "gains.joint.stiffness_nm_rad", n)
    k_cart = np.concatenate(
        [
            _floats(gc.get("stiffness_translational_n_m", [1000.0] * 3), "stiffness_translational_n_m", 3),
            _floats(gc.get("stiffness_rotational_nm_rad", [50.0] * 3), "stiffness_rotational_nm_rad", 3),
        ]
    )
    return {"joint_stiffness": _readonly(k_joint), "joint_damping_ratio": float(gj.get("damping_ratio", 0.7)),
            "cartesian_stiffness": _readonly(k_cart), "cartesian_damping_ratio": float(gc.get("damping_ratio", 0.7))}


def _toml_workspace(path: Path, ws: dict) -> dict[str, object]:
    """``RobotDescription`` fields of the ``[workspace]`` box (base frame, m); min must be below max."""
    ws_min = _floats(ws.get("min_m", [-2.0, -2.0, -2.0]), "workspace.min_m", 3)
    ws_max = _floats(ws.get("max_m", [2.0, 2.0, 2.0]), "workspace.max_m", 3)
    if (ws_min >= ws_max).any():
        raise DescriptionError(f"{path}: workspace min must be below max")
    return {"workspace_min": _readonly(ws_min), "workspace_max": _readonly(ws_max)}


def _toml_simulation(path: Path, sim: dict, n: int) -> dict[str, object]:
    """``RobotDescription`` fields of the ``[simulation]`` table: joint damping, friction and
    armature (SI, armature >= 0) and the base pose in the world (m, degrees in the file)."""
    damping = _floats(sim.get("joint_damping_nms_rad", [0.0] * n), "simulation.joint_damping_nms_rad", n)
    friction = _floats(sim.get("joint_friction_nm", [0.0] * n), "simulation.joint_friction_nm", n)
    armature = _floats(sim.get("armature_kgm2", [0.0] * n), "simulation.armature_kgm2", n)
    if (armature < 0).any():
        raise DescriptionError(f"{path}: simulation.armature_kgm2 must be >= 0")
    T_world_base = _transform(
        _floats(sim.get("base_xyz_m", [0.0, 0.0, 0.0]), "simulation.base_xyz_m", 3),
        _deg(sim.get("base_rpy_deg", [0.0, 0.0, 0.0]), "simulation.base_rpy_deg"),
    )
    return {"joint_damping": _readonly(damping), "joint_friction": _readonly(friction),
            "armature": _readonly(armature), "T_world_base": _readonly(T_world_base)}


def _toml_safety(saf: dict, n: int) -> dict[str, object]:
    """``RobotDescription`` fields of the ``[safety]`` table: hold and brake gains (SI) and the
    tool speed limit (m/s)."""
    hold_k = _floats(saf.get("hold_stiffness_nm_rad", [100.0] * n), "safety.hold_stiffness_nm_rad", n)
    hold_d = _floats(saf.get("hold_damping_nms_rad", [10.0] * n), "safety.hold_damping_nms_rad", n)
    brake_d = _floats(saf.get("brake_damping_nms_rad", [5.0] * n), "safety.brake_damping_nms_rad", n)
    v_tool = float(_floats(saf.get("tool_speed_max_m_s", 0.25), "safety.tool_speed_max_m_s", 1)[0])
    return {"hold_stiffness": _readonly(hold_k), "hold_damping": _readonly(hold_d),
            "brake_damping": _readonly(brake_d), "tool_speed_max": v_tool}


def _from_toml(path: Path) -> RobotDescription:
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DescriptionError(f"{path}: cannot read TOML ({exc})") from None
    base_dir = path.parent
    try:
        robot = cfg["robot"]
        urdf = base_dir / robot["urdf"]
        base_link, tip_link = str(robot["base_link"]), str(robot["tip_link"])
        names = tuple(str(n) for n in robot["joint_names"])
    except KeyError as exc:
        raise DescriptionError(f"{path}: missing key {exc}") from None
    n = len(names)
    hard = _urdf_limits(path, urdf, base_link, tip_link, names)
    lower, upper, vel, eff = _toml_limits(path, cfg.get("limits", {}), hard)

    q_home = _deg(robot.get("home_deg", [0.0] * n), "robot.home_deg")
    if q_home.shape != (n,) or (q_home < lower).any() or (q_home > upper).any():
        raise DescriptionError(f"{path}: home pose must have {n} values within the limits")

    sections = {**_toml_gains(cfg.get("gains", {}), n), **_toml_workspace(path, cfg.get("workspace", {})),
                **_toml_simulation(path, cfg.get("simulation", {}), n), **_toml_safety(cfg.get("safety", {}), n)}
    tools = {}
    for spec in cfg.get("tools", []):
        tool = _load_tool(spec, base_dir)
        tools[tool.name] = tool
    return RobotDescription(
        name=str(robot.get("name", path.stem)),
        urdf_path=urdf.resolve(),
        base_link=base_link,
        tip_link=tip_link,
        joint_names=names,
        q_home=_readonly(q_home),
        lower=_readonly(lower),
        upper=_readonly(upper),
        velocity_limit=_readonly(vel),
        effort_limit=_readonly(eff),
        tools=MappingProxyType(tools),
        **sections,
    )


def _urdf_limits(path: Path, urdf: Path, base_link: str, tip_link: str,
                 names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The URDF's (lower, upper, velocity, effort) limits of the chain's joints, which must be
    ``names`` in order (``DescriptionError`` otherwise)."""
    model = _build_model(urdf)
    ids = _chain_joints(model, base_link, tip_link)
    chain_names = tuple(model.names[j] for j in ids)
    if chain_names != names:
        raise DescriptionError(f"{path}: joint_names {names} differ from the URDF chain {chain_names}")
    idx_q = [model.joints[j].idx_q for j in ids]
    return (model.lowerPositionLimit[idx_q], model.upperPositionLimit[idx_q], model.velocityLimit[idx_q],
            model.effortLimit[idx_q])


def _toml_limits(path: Path, lim: dict, hard: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """(lower, upper, velocity, effort) in SI from the TOML's ``[limits]`` (degrees, N m): each
    defaults to the URDF's ``hard`` limit and may only narrow it."""
    hard_lo, hard_hi, hard_v, hard_e = hard
    n = len(hard_lo)
    lower = _deg(lim["lower_deg"], "limits.lower_deg") if "lower_deg" in lim else hard_lo.copy()
    upper = _deg(lim["upper_deg"], "limits.upper_deg") if "upper_deg" in lim else hard_hi.copy()
    vel = _deg(lim["velocity_deg_s"], "limits.velocity_deg_s") if "velocity_deg_s" in lim else hard_v.copy()
    eff = _floats(lim["effort_nm"], "limits.effort_nm") if "effort_nm" in lim else hard_e.copy()
    for nm, arr in (("lower", lower), ("upper", upper), ("velocity", vel), ("effort", eff)):
        if arr.shape != (n,):
            raise DescriptionError(f"{path}: limits.{nm} needs {n} values")
    tol = 1e-9
    if (lower < hard_lo - tol).any() or (upper > hard_hi + tol).any() or (lower >= upper).any():
        raise DescriptionError(f"{path}: position limits must lie within the URDF's and lower < upper")
    if (vel > hard_v + tol).any() or (eff > hard_e + tol).any() or (vel <= 0).any() or (eff <= 0).any():
        raise DescriptionError(f"{path}: velocity/effort limits must be positive and within the URDF's")
    return lower, upper, vel, eff


def _from_urdf(path: Path) -> RobotDescription:
    """A description with defaults for a bare URDF: root link to the deepest movable-chain link."""
    model = _build_model(path)
    if model.nq != model.nv or model.nq == 0:
        raise DescriptionError(f"{path}: needs 1-DOF joints only, got nq={model.nq} nv={model.nv}")
    # Deepest body frame: the one whose parent joint has the longest path to the root.
    depth = [0] * model.njoints
    for j in range(1, model.njoints):
        depth[j] = depth[model.parents[j]] + 1
    bodies = [f for f in model.frames if f.type == pin.FrameType.BODY]
    root = bodies[0].name
    tip = max(bodies, key=lambda f: (depth[f.parentJoint], model.getFrameId(f.name))).name
    ids = _chain_joints(model, root, tip)
    idx_q = [model.joints[j].idx_q for j in ids]
    lo = model.lowerPositionLimit[idx_q].copy()
    hi = model.upperPositionLimit[idx_q].copy()
    n = len(ids)
    vel = model.velocityLimit[idx_q].copy()
    eff = model.effortLimit[idx_q].copy()
    vel[~(vel > 0)] = math.pi
    eff[~(eff > 0)] = 100.0
    finite = np.isfinite(lo) & np.isfinite(hi)
    q_home = np.where(finite, np.clip(0.0, lo, hi), 0.0)
    return RobotDescription(
        name=model.name or path.stem,
        urdf_path=path.resolve(),
        base_link=root,
        tip_link=tip,
        joint_names=tuple(model.names[j] for j in ids),
        q_home=_readonly(q_home),
        lower=_readonly(lo),
        upper=_readonly(hi),
        velocity_limit=_readonly(vel),
        effort_limit=_readonly(eff),
        joint_stiffness=_readonly(np.full(n, 100.0)),
        joint_damping_ratio=0.7,
        cartesian_stiffness=_readonly(np.array([1000.0, 1000.0, 1000.0, 50.0, 50.0, 50.0])),
        cartesian_damping_ratio=0.7,
        workspace_min=_readonly(np.full(3, -2.0)),
        workspace_max=_readonly(np.full(3, 2.0)),
        joint_damping=_readonly(np.zeros(n)),
        joint_friction=_readonly(np.zeros(n)),
        T_world_base=_readonly(np.eye(4)),
        hold_stiffness=_readonly(np.full(n, 100.0)),
        hold_damping=_readonly(np.full(n, 10.0)),
        brake_damping=_readonly(np.full(n, 5.0)),
        tool_speed_max=0.25,
        tools=MappingProxyType({}),
    )


def load_description(name_or_path: str | os.PathLike[str]) -> RobotDescription:
    """Load a robot description by name (``"machaon_arm"``) or from a ``.toml`` or ``.urdf`` path.

    A name is looked up as ``<name>.toml`` in ``DESCRIPTIONS_DIR``. Raises ``DescriptionError``
    for an unknown name, a missing file or an inconsistent description.
    """
    s = os.fspath(name_or_path)
    path = Path(s)
    if path.suffix.lower() not in (".toml", ".urdf"):
        path = DESCRIPTIONS_DIR / f"{s}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in DESCRIPTIONS_DIR.glob("*.toml"))
            raise DescriptionError(f"unknown robot {s!r}; known: {known}, or give a .toml/.urdf path")
    if not path.is_file():
        raise DescriptionError(f"file not found: {path}")
    return _from_toml(path) if path.suffix.lower() == ".toml" else _from_urdf(path)
