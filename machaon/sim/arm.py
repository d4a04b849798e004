"""``ArmSim``: a six-DOF (or any serial) arm in PyBullet, behind the ``Backend`` protocol.

Each ``ArmSim`` owns its own PyBullet physics client (always ``p.DIRECT``) and passes its id to
every call, so several simulations coexist in one process; nothing uses PyBullet's default client.
With ``gui=True`` a second client (``p.GUI``, ``viewer_client``) shows a visual copy of the arm and
the scene, synced at frame rate: a call into a GUI client waits for the GUI thread, which a 1 kHz
loop cannot afford, and the physics stays identical to a headless run. Debug drawing, sliders and
keys belong to ``viewer_client``. Physics runs at a fixed step (1 kHz by default). Its ``clock``
(a ``SimClock``) steps the physics in ``wait_until(t)``, so the hardware-agnostic ``ControlLoop``
drives it unchanged.

Frames and units: joint values in rad, rad/s, N m. The arm's base frame sits at ``T_world_base``
in the PyBullet world. ``JointState.wrench_tool`` is the wrench that the environment exerts on
the tool, ``[f; m]`` in N and N m, expressed in the base frame and referred to the tool centre
point (the flange when no tool is mounted). It comes from a PyBullet joint force/torque sensor
on the joint that carries the flange, with the static weight of the flange and tool removed (as
a real F/T sensor's gravity compensation does); inertial forces of an accelerating tool remain.

Command modes: TORQUE (the default velocity motors are switched off, so the command is the only
actuation besides the configured viscous damping and Coulomb friction), POSITION (PyBullet's
position motors with gains ``kp``/``kd`` and the effort limits, plus an optional torque
feed-forward) and VELOCITY. Commanded torques are saturated at the effort limits, as real drives
do; ``JointState.tau`` reports what was applied.

Determinism: the same commands give bit-identical states (with or without the window). With
``realtime=True`` (the default with a GUI) the clock paces simulated time to the wall clock.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as p

from machaon._validate import finite_array, transform
from machaon.errors import SimError
from machaon.kinematics import Chain
from machaon.kinematics.so3 import quat_from_matrix, transform_from_pq
from machaon.robot.description import RobotDescription, load_description
from machaon.sim._arm_io import ArmCore, ArmIO, SimClockCore
from machaon.sim.scene import Scene
from machaon.types import CommandMode, DeviceFault, JointCommand

_log = logging.getLogger(__name__)

__all__ = ["ArmSim", "Contact", "SimClock", "SimSnapshot", "SimError"]


def _one_visual_per_link(urdf_text: str) -> str:
    """The URDF with every extra visual of a link moved to a child link on a fixed joint.

    PyBullet's OpenGL window draws a link in a single colour; splitting the visuals lets the
    window show each part in its own colour. Only used for the viewer's copy of the arm.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(urdf_text)
    for link in list(root.findall("link")):
        visuals = link.findall("visual")
        for k, vis in enumerate(visuals[1:], start=1):
            link.remove(vis)
            name = f"{link.get('name')}__visual{k}"
            child = ET.SubElement(root, "link", name=name)
            child.append(vis)
            inertial = ET.SubElement(child, "inertial")
            ET.SubElement(inertial, "mass", value="0.001")
            ET.SubElement(inertial, "inertia", ixx="1e-9", ixy="0", ixz="0", iyy="1e-9", iyz="0", izz="1e-9")
            joint = ET.SubElement(root, "joint", name=f"{name}_joint", type="fixed")
            ET.SubElement(joint, "parent", link=link.get("name"))
            ET.SubElement(joint, "child", link=name)
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class Contact:
    """A contact between the arm (or tool) and another body, world frame.

    ``normal_force`` (N, >= 0) acts along ``normal_world``, which points from the other body
    towards the arm; ``distance`` (m) is negative for penetration.
    """

    arm_link: str
    other_body: int
    other_link: int
    p_world: np.ndarray
    normal_world: np.ndarray
    normal_force: float
    distance: float


@dataclass(frozen=True)
class SimSnapshot:
    """A saved simulation state (see ``ArmSim.save`` / ``restore``)."""

    state_id: int
    t: float
    steps: int
    cmd: JointCommand


class SimClock(SimClockCore):
    """The simulation's clock: ``now()`` is simulated time; ``wait_until(t)`` steps the physics.

    Time advances in whole physics steps: ``wait_until(t)`` steps until ``now() >= t`` (to within
    a nanosecond, so that a 1 kHz loop does exactly one step per period). With pacing on, it also
    sleeps so simulated time does not run ahead of the wall clock (times ``rate``).
    A non-finite ``t`` raises ``ValueError``; a ``t`` in the past returns at once.
    ``now`` and ``wait_until`` are compiled (``machaon.sim._arm_io.SimClockCore``).
    """

    def __init__(self, sim: ArmSim) -> None:
        self._sim = sim
        self.realtime = False
        self.rate = 1.0
        self._wall0: float | None = None
        self._sim0 = 0.0

    def resync(self) -> None:
        """Restart real-time pacing from the current instant (after a pause or restore)."""
        self._wall0 = None


class ArmSim(ArmCore):
    """A PyBullet arm implementing ``Backend`` (see module docstring). Use as a context manager.

    ``description``: a ``RobotDescription`` or anything ``load_description`` accepts.
    ``tool``: name of a tool in the description, fixed to the flange (None: bare flange).
    ``gui``: open a PyBullet GUI window (needs a display) that mirrors the physics, which always
    runs in its own DIRECT client; the clock syncs the window about 30 times a wall-clock second
    (``auto_sync``; ``sync_viewer()`` to do it yourself). ``realtime`` defaults to ``gui``.
    ``q0``: initial joint positions (default: the description's home pose).
    ``joint_damping`` (N m s/rad) / ``joint_friction`` (N m): per joint, default from the description.
    ``kp``/``kd``: PyBullet position-motor gains used in POSITION mode.
    ``ft_sensor``: enable the flange force/torque sensor (costs a little per step).

    >>> import numpy as np
    >>> from machaon.types import JointCommand
    >>> with ArmSim("machaon_arm") as sim:         # headless (PyBullet DIRECT), sim time from 0
    ...     q0 = sim.read().q
    ...     sim.write(JointCommand.torque(np.zeros(sim.dof)))   # motors limp: the arm falls
    ...     sim.clock.wait_until(0.05)                          # steps the physics 50 ms
    ...     state = sim.read()
    >>> sim.dof, round(state.t, 3), bool(np.linalg.norm(state.q - q0) > 1e-3)
    (6, 0.05, True)
    """

    def __init__(
        self,
        description: RobotDescription | str | os.PathLike[str] = "machaon_arm",
        *,
        tool: str | None = None,
        gui: bool = False,
        realtime: bool | None = None,
        dt: float = 1e-3,
        q0: np.ndarray | None = None,
        gravity: float = 9.81,
        joint_damping: np.ndarray | None = None,
        joint_friction: np.ndarray | None = None,
        kp: float = 0.3,
        kd: float = 1.0,
        T_world_base: np.ndarray | None = None,
        ft_sensor: bool = True,
        solver_iterations: int = 50,
        gui_options: str = "",
    ) -> None:
        self.desc = description if isinstance(description, RobotDescription) else load_description(description)
        if not (math.isfinite(dt) and 0 < dt <= 0.01):
            raise ValueError(f"dt: must be in (0, 0.01] s, got {dt!r}")
        self.dt = float(dt)
        n = self._n = self.desc.dof  # fixed for the life of the sim (read/write use it every cycle)
        self._tool = None if tool is None else self.desc.tool(tool)
        self._client = -1
        self._tmpdir = tempfile.TemporaryDirectory(prefix="machaon_sim_")
        self._closed = False
        self._snapshots: list[int] = []
        self.gui = bool(gui)
        self._viewer = -1
        self.viewer_body = -1
        self._client = p.connect(p.DIRECT)
        if self._client < 0:
            self._tmpdir.cleanup()
            raise SimError("PyBullet could not start a DIRECT physics client")
        try:
            if gui:
                self._open_viewer(gui_options)
            self._configure_physics(solver_iterations, gravity)
            self._load_arm(tool, T_world_base)
            self._configure_joints(joint_damping, joint_friction)
            self.kp, self.kd = float(kp), float(kd)
            self._effort = np.array(self.desc.effort_limit, dtype=np.float64)
            q_init = np.array(self.desc.q_home) if q0 is None else finite_array("q0", q0, (n,))
            self._init_ft_sensor(ft_sensor)
            self._init_run_state()
            self.reset(q_init)
        except Exception:
            self.close()
            raise
        self._init_clock_and_scene(realtime)

    # ------------------------------------------------------------------ construction steps

    def _open_viewer(self, gui_options: str) -> None:
        """Open the GUI client that mirrors the physics (rendering off until the arm is loaded).

        The physics always runs in DIRECT; the window is a second client. Every call into a GUI
        client waits for the GUI thread (tens of ms with software OpenGL), which a 1 kHz loop
        cannot afford; the viewer is synced at frame rate. ``SimError`` without a display."""
        self._viewer = p.connect(p.GUI, options=gui_options)
        if self._viewer < 0:
            raise SimError("PyBullet could not open the GUI (is there a display? try xvfb-run)")
        p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0, physicsClientId=self._viewer)

    def _configure_physics(self, solver_iterations: int, gravity: float) -> None:
        """Reset the physics client: fixed step ``dt``, deterministic solver, gravity (m/s^2, a
        magnitude along world -z; ``ValueError`` unless finite and >= 0)."""
        cid = self._client
        p.resetSimulation(physicsClientId=cid)
        p.setPhysicsEngineParameter(
            fixedTimeStep=self.dt,
            numSolverIterations=int(solver_iterations),
            numSubSteps=0,
            deterministicOverlappingPairs=1,
            physicsClientId=cid,
        )
        if not (math.isfinite(gravity) and gravity >= 0):
            raise ValueError(f"gravity: must be a finite magnitude >= 0 m/s^2, got {gravity!r}")
        self.gravity = float(gravity)
        p.setGravity(0.0, 0.0, -self.gravity, physicsClientId=cid)

    def _load_arm(self, tool: str | None, T_world_base: np.ndarray | None) -> None:
        """Load the description's URDF (with ``tool`` on the flange) as a fixed-base body at
        ``T_world_base`` (4x4, world frame, m; default the description's), index its joints and
        links, and load the viewer's copy (one visual per link) when there is a window."""
        urdf = Path(self._tmpdir.name) / f"{self.desc.name}_{tool or 'bare'}.urdf"
        self._urdf_text = self.desc.urdf_with_tool(tool)
        urdf.write_text(self._urdf_text)
        T_wb = (
            np.array(self.desc.T_world_base)
            if T_world_base is None
            else transform("T_world_base", T_world_base)
        )
        self.T_world_base = T_wb
        flags = p.URDF_USE_INERTIA_FROM_FILE
        self.body = p.loadURDF(
            str(urdf),
            basePosition=T_wb[:3, 3].tolist(),
            baseOrientation=quat_from_matrix(T_wb[:3, :3]),
            useFixedBase=True,
            flags=flags,
            physicsClientId=self._client,
        )
        if self._viewer >= 0:
            vurdf = Path(self._tmpdir.name) / "viewer.urdf"
            vurdf.write_text(_one_visual_per_link(urdf.read_text()))
            self.viewer_body = p.loadURDF(
                str(vurdf), basePosition=T_wb[:3, 3].tolist(),
                baseOrientation=quat_from_matrix(T_wb[:3, :3]), useFixedBase=True,
                physicsClientId=self._viewer,
            )
        self._init_indices()
        if self._viewer >= 0:
            names = {p.getJointInfo(self.viewer_body, j, physicsClientId=self._viewer)[1].decode(): j
                     for j in range(p.getNumJoints(self.viewer_body, physicsClientId=self._viewer))}
            self._viewer_jidx = [names[n] for n in self.desc.joint_names]

    def _configure_joints(self, joint_damping: np.ndarray | None, joint_friction: np.ndarray | None) -> None:
        """Viscous damping (N m s/rad) and Coulomb friction (N m) per joint (``_per_joint``), no
        link damping, and the description's armature (kg m^2)."""
        cid = self._client
        self._damping = self._per_joint("joint_damping", joint_damping, self.desc.joint_damping)
        self._friction = self._per_joint("joint_friction", joint_friction, self.desc.joint_friction)
        for j in range(-1, p.getNumJoints(self.body, physicsClientId=cid)):
            # PyBullet adds 0.04 linear/angular damping to every link by default; the model has none.
            p.changeDynamics(self.body, j, linearDamping=0.0, angularDamping=0.0, physicsClientId=cid)
        for i, j in enumerate(self._jidx):
            p.changeDynamics(self.body, j, jointDamping=float(self._damping[i]), physicsClientId=cid)
        self._armature = np.zeros(self._n)
        self._has_armature = False
        self._arm_dyn = None
        self.add_armature(self.desc.armature)

    def _init_ft_sensor(self, ft_sensor: bool) -> None:
        """Enable the flange F/T sensor (when asked), measure the payload below it and the TCP
        offset (m, sensor frame), and build the compiled read/write (``_make_io``)."""
        self._ft = bool(ft_sensor)
        if self._ft:
            p.enableJointForceTorqueSensor(self.body, self._sensor_joint, True, physicsClientId=self._client)
        self._payload_mass, self._payload_com_sensor = self._payload_below_sensor()
        # The tool hangs on fixed joints below the sensor: the TCP is a constant offset from it.
        self._p_tcp_sensor = np.linalg.solve(
            self._sensor_frame_world(), self._link_frame_world(self._tcp)
        )[:3, 3].copy()
        self._R_base_world = np.ascontiguousarray(self.T_world_base[:3, :3].T)
        # One getJointStates call per read (plus the F/T joint only when the sensor is on).
        self._read_idx = [*self._jidx, self._sensor_joint] if self._ft else list(self._jidx)
        self._io = self._make_io()

    def _init_run_state(self) -> None:
        """Time, step count, the last command (zero torque), faults, hooks and external forces."""
        n = self._n
        self._tau_buf = np.zeros(n)  # the applied torque, rewritten in place by each torque write
        self._t = 0.0
        self._steps = 0
        self._cmd = JointCommand.torque(np.zeros(n))
        self._tau_applied = np.zeros(n)
        self._motor_mode: CommandMode | None = None
        self._faults: list[DeviceFault] = []
        self._step_hooks: list = []
        self._post_step_hooks: list = []
        self._ext_forces: dict[str, tuple[int, np.ndarray]] = {}

    def _init_clock_and_scene(self, realtime: bool | None) -> None:
        """The ``SimClock`` (paced to the wall clock when ``realtime``, default: with a window), the
        ``Scene``, and the first viewer sync, after which the window renders."""
        self.clock = SimClock(self)
        self.clock.realtime = self.gui if realtime is None else bool(realtime)
        self.scene = Scene(self._client, self, viewer=self._viewer if self._viewer >= 0 else None)
        self.viewer_sync_period = 1.0 / 30.0  # s of wall time between automatic viewer syncs
        self.auto_sync = self.gui
        self._last_sync = -math.inf
        if self.gui:
            self.sync_viewer()
            p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1, physicsClientId=self._viewer)

    # ------------------------------------------------------------------ setup helpers

    def _per_joint(self, name: str, value: np.ndarray | None, default: np.ndarray) -> np.ndarray:
        if value is None:
            return np.array(default, dtype=np.float64)
        arr = np.atleast_1d(finite_array(name, value))
        if arr.shape == (1,):
            arr = np.full(self.desc.dof, arr[0])
        if arr.shape != (self.desc.dof,) or (arr < 0).any():
            raise ValueError(f"{name}: expected {self.desc.dof} values >= 0")
        return arr

    def add_armature(self, armature_kgm2: np.ndarray | float) -> None:
        """Add reflected rotor inertia (kg m^2, scalar or per joint, >= 0) to the joints, exactly:
        in torque mode each physics step applies the torque that makes PyBullet move as the arm
        with its drives' armature would (``machaon.sim.armature``); the joints' Coulomb friction is
        then a smooth model in the same solve. Position and velocity modes run PyBullet's motors
        unchanged. The description's ``armature`` is added at construction."""
        extra = np.broadcast_to(np.asarray(armature_kgm2, dtype=np.float64), (self._n,))
        if not np.isfinite(extra).all() or (extra < 0).any():
            raise ValueError("armature_kgm2: must be finite and >= 0")
        self._armature = self._armature + extra
        self._has_armature = bool((self._armature > 0).any())
        if self._has_armature and self._arm_dyn is None:
            from machaon.sim.armature import ArmatureDynamics

            self._arm_dyn = ArmatureDynamics(self._urdf_text, self.desc.joint_names, self.T_world_base[:3, :3],
                                             self.gravity)

    def _armature_torque(self, tau: np.ndarray) -> list[float]:
        """The torque to apply this step so that PyBullet moves as if the joints had the armature."""
        sts = p.getJointStates(self.body, self._jidx, physicsClientId=self._client)
        q = np.array([s[0] for s in sts])
        dq = np.array([s[1] for s in sts])
        forces = {name: f for name, (_, f) in self._ext_forces.items()}
        return self._arm_dyn.torque(q, dq, tau, self._armature, self._damping, self._friction, forces)

    def set_external_force(self, link_name: str, force_world: np.ndarray | None) -> None:
        """Push on a link of the arm with ``force_world`` (N, world frame) at the link's frame origin,
        every physics step until it is set to None. ValueError for an unknown link or a bad force."""
        link = self._link_index.get(link_name)
        if link is None or link < 0:
            raise ValueError(f"link_name: no movable link {link_name!r} on the arm")
        if force_world is None:
            self._ext_forces.pop(link_name, None)
            return
        self._ext_forces[link_name] = (link, finite_array("force_world", force_world, (3,)).copy())

    def _apply_external_forces(self) -> None:
        cid, body = self._client, self.body
        for link, f in self._ext_forces.values():
            pos = p.getLinkState(body, link, physicsClientId=cid)[4]
            p.applyExternalForce(body, link, f.tolist(), pos, p.WORLD_FRAME, physicsClientId=cid)

    def _init_indices(self) -> None:
        cid = self._client
        by_joint, by_link = {}, {}
        self.link_names: dict[int, str] = {-1: p.getBodyInfo(self.body, physicsClientId=cid)[0].decode()}
        for j in range(p.getNumJoints(self.body, physicsClientId=cid)):
            info = p.getJointInfo(self.body, j, physicsClientId=cid)
            by_joint[info[1].decode()] = j
            by_link[info[12].decode()] = j
            self.link_names[j] = info[12].decode()
        self._link_index = by_link
        self._link_index[self.link_names[-1]] = -1
        try:
            self._jidx = [by_joint[name] for name in self.desc.joint_names]
        except KeyError as exc:
            raise SimError(f"joint {exc} of the description is not in the URDF PyBullet loaded") from None
        if self.desc.tip_link not in by_link:
            raise SimError(f"tip link {self.desc.tip_link!r} not found")
        self._tip = by_link[self.desc.tip_link]
        self._tcp = by_link[self._tool.tcp_link] if self._tool is not None else self._tip
        # The F/T sensor sits on the joint whose child is the tip link (the flange's mounting joint).
        self._sensor_joint = self._tip
        self._arm_links = set(self.link_names)

    def _make_io(self) -> ArmIO:
        """The compiled read/write of this arm. With the F/T sensor, the sensor frame's orientation
        comes from the chain base_link -> tip_link's forward kinematics, anchored to PyBullet's
        frames here once (the base is fixed; the sensor's inertial frame is fixed in its link)."""
        if not self._ft:
            return ArmIO(self._n, self._effort, False)
        chain = Chain.from_urdf(self.desc.urdf_path, self.desc.base_link, self.desc.tip_link)
        if chain.joint_names != tuple(self.desc.joint_names):
            raise SimError(f"the F/T sensor needs the joints of {self.desc.base_link} -> {self.desc.tip_link}")
        q = np.array([s[0] for s in p.getJointStates(self.body, self._jidx, physicsClientId=self._client)])
        R_world_link = self._link_frame_world(self._sensor_joint)[:3, :3]
        R_world_sensor = self._sensor_frame_world()[:3, :3]
        return ArmIO(
            self._n, self._effort, True, chain,
            R_world_base=R_world_link @ chain.fk(q)[:3, :3].T,
            R_link_sensor=R_world_link.T @ R_world_sensor,
            payload_mass=self._payload_mass, com_sensor=self._payload_com_sensor, gravity=self.gravity,
            p_tcp_sensor=self._p_tcp_sensor, R_base_world=self._R_base_world,
        )

    def _payload_below_sensor(self) -> tuple[float, np.ndarray]:
        """Mass (kg) and centre of mass (m, sensor frame: see ``_sensor_frame_world``) below the sensor."""
        cid = self._client
        below = [self._sensor_joint]
        for j in range(self._sensor_joint + 1, p.getNumJoints(self.body, physicsClientId=cid)):
            if p.getJointInfo(self.body, j, physicsClientId=cid)[16] in below:
                below.append(j)
        states = p.getLinkStates(self.body, below, computeForwardKinematics=True, physicsClientId=cid)
        T_w_s = self._sensor_frame_world()
        m_tot, mc = 0.0, np.zeros(3)
        for j, st in zip(below, states, strict=True):
            m = p.getDynamicsInfo(self.body, j, physicsClientId=cid)[0]
            c_world = np.asarray(st[0])  # link COM (inertial frame origin), world
            m_tot += m
            mc += m * c_world
        c_world = mc / m_tot if m_tot > 0 else T_w_s[:3, 3]
        c_s = T_w_s[:3, :3].T @ (c_world - T_w_s[:3, 3])
        return m_tot, c_s

    # ------------------------------------------------------------------ Backend protocol

    @property
    def dof(self) -> int:
        return self.desc.dof

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.desc.joint_names

    @property
    def client(self) -> int:
        """This simulation's PyBullet physics client id (pass it as ``physicsClientId``)."""
        self._check_open()
        return self._client

    @property
    def viewer_client(self) -> int | None:
        """The GUI window's PyBullet client (debug items, sliders, keys), or None without a GUI."""
        return self._viewer if self._viewer >= 0 else None

    def viewer_alive(self) -> bool:
        """True while the GUI window is open (always False without a GUI)."""
        return self._viewer >= 0 and not self._closed and p.isConnected(physicsClientId=self._viewer)

    def sync_viewer(self) -> None:
        """Copy the arm's joint positions and moving scene objects into the GUI window.

        A no-op without a GUI or once the window was closed. About ten PyBullet calls.
        """
        if not self.viewer_alive():
            return
        self._last_sync = time.monotonic()
        sts = p.getJointStates(self.body, self._jidx, physicsClientId=self._client)
        try:
            p.resetJointStatesMultiDof(
                self.viewer_body, self._viewer_jidx, [[s[0]] for s in sts], physicsClientId=self._viewer
            )
            self.scene.sync_viewer()
        except p.error:  # the user closed the window
            pass

    @property
    def t(self) -> float:
        """Simulated time (s) since construction."""
        return self._t

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def tool(self) -> str | None:
        return None if self._tool is None else self._tool.name

    def _check_open(self) -> None:
        if self._closed:
            raise SimError("ArmSim is closed")

    # ``read``, ``write`` and ``step`` are compiled (``ArmCore`` in ``machaon/sim/_arm_io.pyx``): the
    # per-cycle calls. ``write`` takes this full path for every command but a torque command while
    # the motors are already in torque mode.
    def _write_python(self, cmd: JointCommand) -> None:
        """``write(cmd)`` in full: checks, the held command and the motors' mode (see ``ArmCore.write``)."""
        n = self._n
        if not isinstance(cmd, JointCommand):
            raise ValueError(f"cmd: expected a JointCommand, got {type(cmd).__name__}")
        if cmd.mode is CommandMode.TORQUE:
            # Checked (ValueError naming cmd.tau) and saturated at the effort limits, as drives do.
            sat = self._io.torque(cmd.tau, self._tau_buf)
            if self._motor_mode is CommandMode.TORQUE:
                self._tau_applied = sat  # fast path: motors already off
                return
            self._cmd = JointCommand(CommandMode.TORQUE, tau=sat.copy(), info=cmd.info)
        elif cmd.mode is CommandMode.POSITION:
            q = finite_array("cmd.q", cmd.q, (n,))
            dq = None if cmd.dq is None else finite_array("cmd.dq", cmd.dq, (n,))
            tau = None if cmd.tau is None else finite_array("cmd.tau", cmd.tau, (n,))
            self._cmd = JointCommand(CommandMode.POSITION, q=q, dq=dq, tau=tau, info=cmd.info)
        elif cmd.mode is CommandMode.VELOCITY:
            dq = finite_array("cmd.dq", cmd.dq, (n,))
            self._cmd = JointCommand(CommandMode.VELOCITY, dq=dq, info=cmd.info)
        else:  # pragma: no cover - enum is closed
            raise ValueError(f"cmd.mode: unsupported {cmd.mode!r}")
        self._apply_motors()

    def close(self) -> None:
        """Disconnect the physics client and delete temporary files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        scene = getattr(self, "scene", None)
        if scene is not None:
            scene.close()
        for cid in (self._viewer, self._client):
            if cid >= 0:
                try:
                    p.disconnect(physicsClientId=cid)
                except p.error:  # already gone (GUI window closed by the user)
                    pass
        self._tmpdir.cleanup()

    def __enter__(self) -> ArmSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close() must not leak a physics server
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ stepping

    def _apply_motors(self) -> None:
        cid, body, idx = self._client, self.body, self._jidx
        cmd = self._cmd
        if cmd.mode is CommandMode.TORQUE:
            if self._motor_mode is not CommandMode.TORQUE:
                # Velocity motors with zero target act as Coulomb friction up to `force`; 0 switches them
                # off. With armature the friction is in the armature solve instead (see add_armature).
                friction = [0.0] * self.dof if self._has_armature else self._friction.tolist()
                p.setJointMotorControlArray(
                    body, idx, p.VELOCITY_CONTROL, targetVelocities=[0.0] * self.dof,
                    forces=friction, physicsClientId=cid,
                )
                self._motor_mode = CommandMode.TORQUE
            self._tau_applied = cmd.tau
        elif cmd.mode is CommandMode.POSITION:
            kw = {} if cmd.dq is None else {"targetVelocities": cmd.dq.tolist()}
            p.setJointMotorControlArray(
                body, idx, p.POSITION_CONTROL, targetPositions=cmd.q.tolist(),
                forces=self._effort.tolist(), positionGains=[self.kp] * self.dof,
                velocityGains=[self.kd] * self.dof, physicsClientId=cid, **kw,
            )
            self._motor_mode = CommandMode.POSITION
            self._tau_applied = np.zeros(self.dof) if cmd.tau is None else cmd.tau
        else:
            p.setJointMotorControlArray(
                body, idx, p.VELOCITY_CONTROL, targetVelocities=cmd.dq.tolist(),
                forces=self._effort.tolist(), physicsClientId=cid,
            )
            self._motor_mode = CommandMode.VELOCITY
            self._tau_applied = np.zeros(self.dof)

    def add_step_hook(self, fn: Callable[[], None], *, after: bool = False) -> None:
        """Call ``fn()`` before (or with ``after=True`` after) every physics step.

        Before: external forces (PyBullet clears them each step). After: kinematic attachments.
        """
        (self._post_step_hooks if after else self._step_hooks).append(fn)

    def remove_step_hook(self, fn: Callable[[], None]) -> None:
        for hooks in (self._step_hooks, self._post_step_hooks):
            if fn in hooks:
                hooks.remove(fn)

    def apply_external_force(self, link: int, f_world_n: list[float], p_world: list[float]) -> None:
        """Push link ``link`` (PyBullet index) with force ``f_world_n`` (N, world) at point ``p_world`` (m).

        PyBullet clears external forces after every step: call it from a step hook (before the
        step) to keep pushing. Plain lists, unchecked: it runs at the physics rate.
        """
        p.applyExternalForce(self.body, link, f_world_n, p_world, p.WORLD_FRAME, physicsClientId=self._client)

    def reset(self, q: np.ndarray | None = None, dq: np.ndarray | None = None) -> None:
        """Teleport the joints to ``q`` (default home) with velocity ``dq`` (default 0); zero torque."""
        self._check_open()
        n = self.dof
        q = np.array(self.desc.q_home) if q is None else finite_array("q", q, (n,))
        dq = np.zeros(n) if dq is None else finite_array("dq", dq, (n,))
        for i, j in enumerate(self._jidx):
            p.resetJointState(self.body, j, float(q[i]), float(dq[i]), physicsClientId=self._client)
        self._cmd = JointCommand.torque(np.zeros(n))
        self._motor_mode = None
        self._apply_motors()

    # ------------------------------------------------------------------ save / restore

    def save(self) -> SimSnapshot:
        """Snapshot of the physics state, time and held command (in memory, this client only)."""
        self._check_open()
        sid = p.saveState(physicsClientId=self._client)
        self._snapshots.append(sid)
        cmd = self._cmd
        if cmd.mode is CommandMode.TORQUE:  # the fast write path keeps only the applied torque
            cmd = JointCommand.torque(np.array(self._tau_applied))
        return SimSnapshot(state_id=sid, t=self._t, steps=self._steps, cmd=cmd)

    def restore(self, snap: SimSnapshot) -> None:
        """Return to ``snap`` exactly: joint states, contacts cache, time and the held command."""
        self._check_open()
        if snap.state_id not in self._snapshots:
            raise ValueError("snap: not a snapshot of this simulation (or already released)")
        p.restoreState(stateId=snap.state_id, physicsClientId=self._client)
        self._steps, self._t = snap.steps, snap.t
        self._cmd = snap.cmd
        self._motor_mode = None
        self._apply_motors()
        self.clock.resync()

    def release(self, snap: SimSnapshot) -> None:
        """Free a snapshot's memory in the physics server."""
        if snap.state_id in self._snapshots:
            self._snapshots.remove(snap.state_id)
            p.removeState(snap.state_id, physicsClientId=self._client)

    # ------------------------------------------------------------------ frames and sensors

    def _link_frame_world(self, link: int) -> np.ndarray:
        if link == -1:
            pos, orn = p.getBasePositionAndOrientation(self.body, physicsClientId=self._client)
            return transform_from_pq(pos, orn)
        st = p.getLinkState(self.body, link, computeForwardKinematics=True, physicsClientId=self._client)
        return transform_from_pq(st[4], st[5])  # URDF link frame (not the inertial frame)

    def _sensor_frame_world(self) -> np.ndarray:
        """World pose of the frame PyBullet reports the sensor wrench in: the child's inertial frame."""
        st = p.getLinkState(self.body, self._sensor_joint, computeForwardKinematics=True,
                            physicsClientId=self._client)
        return transform_from_pq(st[0], st[1])

    def link_index(self, link_name: str) -> int:
        """PyBullet link index of a link of the arm (-1 for the base); ``KeyError`` if unknown."""
        return self._link_index[link_name]

    def T_world_link(self, link_name: str) -> np.ndarray:
        """Pose (4x4, m) of a URDF link frame of the arm in the world, from PyBullet's kinematics."""
        self._check_open()
        return self._link_frame_world(self._link_index[link_name])

    def T_base_link(self, link_name: str) -> np.ndarray:
        """Pose of a link frame in the arm's base frame."""
        return np.linalg.solve(self.T_world_base, self.T_world_link(link_name))

    def T_base_tcp(self) -> np.ndarray:
        """Pose of the tool centre point (the flange without a tool) in the base frame."""
        return np.linalg.solve(self.T_world_base, self._link_frame_world(self._tcp))

    @property
    def joint_indices(self) -> list[int]:
        """PyBullet joint indices of the controlled joints, in ``joint_names`` order."""
        return list(self._jidx)

    @property
    def tcp_link(self) -> str:
        return self.link_names[self._tcp]

    @property
    def payload(self) -> tuple[float, np.ndarray]:
        """Mass (kg) and COM (m, in the tip link's inertial frame) carried by the F/T sensor: flange + tool."""
        return self._payload_mass, self._payload_com_sensor.copy()

    def sensor_wrench_raw(self) -> np.ndarray:
        """The F/T sensor's raw reading ``[Fx Fy Fz Mx My Mz]`` as PyBullet reports it (joint frame)."""
        self._check_open()
        return np.asarray(
            p.getJointState(self.body, self._sensor_joint, physicsClientId=self._client)[2], dtype=np.float64
        )

    def contacts(self) -> list[Contact]:
        """Current contacts of any arm or tool link with other bodies (after the last step)."""
        self._check_open()
        out = []
        for c in self._arm_contacts():
            out.append(
                Contact(
                    arm_link=self.link_names[c[3]],
                    other_body=c[2],
                    other_link=c[4],
                    p_world=np.asarray(c[5], dtype=np.float64),
                    normal_world=np.asarray(c[7], dtype=np.float64),
                    normal_force=float(c[9]),
                    distance=float(c[8]),
                )
            )
        return out

    def _arm_contacts(self) -> list[tuple]:
        """Contact points with the arm as body A (normal from the other body towards the arm)."""
        res = []
        for c in p.getContactPoints(physicsClientId=self._client):
            a, b = c[1], c[2]
            if (a == self.body) == (b == self.body):
                continue  # not involving the arm, or a self-contact
            if a == self.body:
                res.append(c)
            else:  # swap A and B; PyBullet's normal points from B to A
                neg = tuple(-x for x in c[7])
                res.append((c[0], b, a, c[4], c[3], c[6], c[5], neg, c[8], c[9],
                            c[10], tuple(-x for x in c[11]), c[12], tuple(-x for x in c[13])))
        return res

    def contact_wrench(self) -> np.ndarray:
        """Sum of contact normal and friction forces on the arm and tool, ``[f; m]`` base frame, at the TCP."""
        self._check_open()
        p_tcp = self._link_frame_world(self._tcp)[:3, 3]
        f = np.zeros(3)
        m = np.zeros(3)
        for c in self._arm_contacts():
            # the normal points from the other body to the arm: the force on the arm is along it
            fc = c[9] * np.asarray(c[7]) + c[10] * np.asarray(c[11]) + c[12] * np.asarray(c[13])
            f += fc
            m += np.cross(np.asarray(c[5]) - p_tcp, fc)
        R_bw = self.T_world_base[:3, :3].T
        return np.concatenate([R_bw @ f, R_bw @ m])

    def inject_fault(self, fault: DeviceFault) -> None:
        """Report ``fault`` in the next ``read()`` (for testing how the loop and supervisor react)."""
        self._faults.append(fault)
