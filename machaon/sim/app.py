"""The simulation session behind ``machaon sim``: GUI or headless, one scenario, one control loop.

``SimApp`` builds the operating-room scene around an ``ArmSim``, the Cartesian and joint impedance
controllers and the supervisor from the robot description, and runs the hardware-agnostic
``ControlLoop`` in slices of simulated time. Between slices it handles the user (GUI) or the
schedule (headless): sliders, keys, overlays, snapshots, recording.

GUI controls (PyBullet's own keyboard shortcuts are switched off):

- sliders ``target dx/dy/dz`` (m) and ``target droll/dpitch/dyaw`` (deg) move the target frame
  relative to the home tool pose; touching one leaves the scenario for manual control;
  ``stiffness trans`` (N/m), ``stiffness rot`` (N m/rad), ``damping ratio`` retune the controller.
  Once the sliders come to rest, one INFO line gives their values and the resulting target.
- keys: ``c`` switch controller (Cartesian / joint impedance), ``r`` start/stop recording (MCAP;
  each recording a new file), ``t`` replay the trajectory file (or the scenario's path again),
  ``space`` protective stop, ``h`` hold / resume (resume holds the arm where it stopped), ``x``
  reset the arm and the supervisor, ``q`` quit. Each key logs one INFO line ``key <k>: ...``.
- overlays: target frame, planned path, tool force arrow, workspace box, status line.

The window is a viewer of the physics (see ``ArmSim``): dragging bodies with the mouse there does
not push the simulated arm. Simulated time follows the wall clock; a slow window makes each frame
carry a longer slice of physics rather than slowing the simulation down.

Headless (``gui=False``): the same session in PyBullet DIRECT, with PNG snapshots from a fixed
camera every ``snapshot_every`` seconds of simulated time and an optional MCAP run log.

``live_view``: an observer (``machaon.robot.observers``; the CLI gives a Foxglove live view) that
sees every cycle beside the run log, the workspace box as a scene entity and the target frame
(``target`` on ``/tf``) once per slice. The run log records ``/tf`` of every link too, so the log
and the live view look the same in Foxglove.
"""

from __future__ import annotations

import logging
import math
import os
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pybullet as p

from machaon.control.impedance import CartesianGains, CartesianImpedance, JointImpedance
from machaon.control.supervisor import SafetyConfig, Supervisor, SupervisorState
from machaon.control.trajectory import (
    CartesianTrajectory,
    JointTrajectory,
    TrajectorySequence,
    TrajectoryTracker,
)
from machaon.errors import SimError
from machaon.kinematics import Chain, Dynamics
from machaon.robot.description import DescriptionError, load_description
from machaon.robot.link_frames import LinkFrames
from machaon.robot.loop import ControlLoop
from machaon.robot.observers import Observers
from machaon.robot.runlog import RunLogRecorder
from machaon.robot.topics import FramePose, workspace_box_entity
from machaon.sim.app_gui import GuiControls
from machaon.sim.arm import ArmSim
from machaon.sim.overlays import Overlays
from machaon.sim.scenarios import SCENARIOS, ScenarioError, build_or_scene, load_trajectory
from machaon.sim.scene import Camera

_log = logging.getLogger(__name__)

__all__ = ["SimApp", "SimAppError", "scenario_names", "snapshot_camera"]


class SimAppError(SimError):
    """The session cannot start: unknown robot, tool or scenario, bad trajectory file, no display."""


def scenario_names() -> dict[str, str]:
    return {name: s.doc for name, s in SCENARIOS.items()}


def snapshot_camera(width: int = 800, height: int = 600) -> Camera:
    """A fixed camera looking at the arm and the table from the front-left corner of the room."""
    f = 0.9 * width
    K = np.array([[f, 0.0, width / 2 - 0.5], [0.0, f, height / 2 - 0.5], [0.0, 0.0, 1.0]])
    eye, target = np.array([1.55, -1.25, 1.15]), np.array([0.45, 0.0, 0.35])
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, (0.0, 0.0, 1.0))
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.c_[x, np.cross(z, x), z]
    T[:3, 3] = eye
    return Camera(K, width, height, T, near=0.05, far=8.0)


class SimApp(GuiControls):
    """One simulation session (see module doc). Use as a context manager; ``run(seconds)``."""

    def __init__(
        self,
        robot: str = "machaon_arm",
        tool: str | None = "drill_guide",
        *,
        gui: bool = False,
        scenario: str = "square",
        rate_hz: float = 1000.0,
        record: str | os.PathLike[str] | None = None,
        snapshots: str | os.PathLike[str] | None = None,
        snapshot_every: float = 1.0,
        replay: str | os.PathLike[str] | None = None,
        live_view: object | None = None,
        stats_every: float = 5.0,
    ) -> None:
        if scenario not in SCENARIOS:
            raise SimAppError(f"unknown scenario {scenario!r}; known: {sorted(SCENARIOS)}")
        if not (math.isfinite(rate_hz) and 10.0 <= rate_hz <= 10_000.0):
            raise SimAppError("rate_hz: must be within 10..10000 Hz")
        if not (math.isfinite(snapshot_every) and snapshot_every > 0):
            raise SimAppError("snapshot_every: must be > 0 s")
        if not (math.isfinite(stats_every) and stats_every > 0):
            raise SimAppError("stats_every: must be > 0 s")
        self.stats_every = float(stats_every)  # wall-clock s between two loop-stats log lines in run()
        try:
            desc = load_description(robot)
            if tool is not None:
                desc.tool(tool)
        except DescriptionError as exc:
            raise SimAppError(str(exc)) from None
        self.desc = desc
        self.gui = gui
        self.scenario = SCENARIOS[scenario]
        self.rate_hz = float(rate_hz)
        self.snapshot_dir = None if snapshots is None else Path(snapshots)
        self.snapshot_every = float(snapshot_every)
        self.snapshots_written: list[Path] = []
        self.record_path = None if record is None else Path(record)
        self.replay_path = None if replay is None else Path(replay)
        self.live_view = live_view
        try:
            self.sim = ArmSim(desc, tool=tool, gui=gui, gui_options="--width=1024 --height=768" if gui else "")
        except SimError as exc:
            raise SimAppError(str(exc)) from None
        try:
            self._build(tool)
        except Exception:
            self.sim.close()
            raise

    # ------------------------------------------------------------------ construction

    def _build(self, tool: str | None) -> None:
        desc, sim = self.desc, self.sim
        if self.gui:  # batch the scene set-up: no GUI frame per command
            p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 0, physicsClientId=sim.viewer_client)
            sim.auto_sync = False  # this session syncs the window once per frame
        chain = Chain.from_urdf(desc.urdf_path, desc.base_link, desc.tip_link)
        if tool is not None:
            t = desc.tool(tool)
            chain = chain.with_tool(t.T_flange_tcp)
            dyn = Dynamics(chain, payload_mass=t.mass, payload_com=t.com_tcp, armature=desc.armature)
        else:
            dyn = Dynamics(chain, armature=desc.armature)
        self.chain, self.dyn = chain, dyn
        build_or_scene(sim)
        self.q_home = np.array(desc.q_home)
        self.T_home = chain.fk(self.q_home)
        self.k_default = np.array(desc.cartesian_stiffness)
        self.cart = CartesianImpedance(
            chain, CartesianGains(desc.cartesian_stiffness, desc.cartesian_damping_ratio),
            dynamics=dyn, tau_max=desc.effort_limit,
        )
        self.joint = JointImpedance(
            desc.dof, desc.joint_stiffness, desc.joint_damping_ratio, dynamics=dyn, tau_max=desc.effort_limit
        )
        self.cart.set_target(self.T_home)
        self._set_joint_target(self.q_home)
        # this session refreshes the target once per GUI frame / slice (at most 0.2 s of sim time)
        cfg = SafetyConfig(**desc.safety_kwargs(), target_timeout_s=1.0)
        self.sup = Supervisor(cfg, chain=chain, dynamics=dyn)
        # The target follows the target sliders at a bounded speed, well below the supervisor's
        # tool-speed limit: a slider jump must move the arm, not trip a protective stop.
        v_stop = cfg.tool_speed_max if cfg.tool_speed_max is not None else 0.25
        self.slider_speed = (0.3 * v_stop, 0.4)  # m/s (tool), rad/s (tool rotation; joints in joint mode)
        self._slider_goal: np.ndarray | None = None  # the goal of a slider move in progress
        self.controller_name = "cartesian"
        self.recorder: RunLogRecorder | None = None
        self._recordings = 0  # recordings started in this session
        self.loop = ControlLoop(sim, self.cart, self.sup, rate_hz=self.rate_hz)
        self.link_frames = LinkFrames.from_chain(chain, tool_frame=desc.tool(tool).tcp_link if tool else "tool")
        self._attach_recorders()
        if self.live_view is not None:
            describe = getattr(self.live_view, "describe_robot", None)
            if describe is not None:
                describe(sim.joint_names, self.link_frames)
            self.live_view.record_scene(sim.t, [self._workspace_box()])
        self.tracker: TrajectoryTracker | None = None
        self.trajectory: TrajectorySequence | None = None
        self.overlays = None  # set up with the GUI below; the planned path is drawn then
        planned = self._load_plan()
        if planned is not None:
            self._play(planned)
        self.camera = snapshot_camera()
        self.overlays = Overlays(sim.viewer_client, sim.T_world_base) if self.gui else None
        self._sliders: dict[str, int] = {}
        self._slider_values: dict[str, float] = {}
        self._keys_down: set[int] = set()  # GUI keys seen going down and not yet released
        self._sliders_moved_at: float | None = None  # wall time a slider last moved (until logged)
        self._t_next_snapshot = 0.0
        self._wall_start = None
        if self.gui:
            self._setup_gui()

    def _load_plan(self) -> TrajectorySequence | None:
        if self.replay_path is not None:
            try:
                return load_trajectory(self.replay_path, self.T_home, self.q_home)
            except ScenarioError as exc:
                raise SimAppError(str(exc)) from None
        return self.scenario.build(self.sim, self.T_home)

    # ------------------------------------------------------------------ target sources

    def _path_points(self, traj: TrajectorySequence) -> np.ndarray:
        ts = np.linspace(traj.t0, traj.t_end, max(2, int(traj.duration * 20) + 2))
        pts = []
        for t in ts:
            try:
                pos = traj.sample(t)[0]
            except ValueError:  # a profile sample a rounding error outside [0, 1]: skip that point
                continue
            pts.append(pos[:3, 3] if np.ndim(pos) == 2 else self.chain.fk(pos)[:3, 3])
        return np.array(pts)

    def _play(self, traj: TrajectorySequence) -> None:
        """Follow ``traj`` from the current loop time with the controller its kind needs."""
        joint_kind = isinstance(traj.segments[0], JointTrajectory)
        inner = self.joint if joint_kind else self.cart
        self.controller_name = "joint" if joint_kind else "cartesian"
        self.trajectory = traj
        self._slider_goal = None
        self.tracker = TrajectoryTracker(inner, traj, self.sup)
        self.loop.set_controller(self.tracker)
        if self.overlays is not None:
            self.overlays.planned_path(self._path_points(traj))

    def _set_joint_target(self, q: np.ndarray) -> None:
        self.joint.set_target(q)
        self._q_joint_target = np.array(q, dtype=np.float64)

    def _stop_trajectory(self) -> None:
        """Leave the trajectory; the controller holds the trajectory's pose at this instant."""
        tracker = self.tracker
        if tracker is None:
            return
        traj = tracker.trajectory
        self.tracker = None
        self._slider_goal = None
        if tracker.start is not None:
            t_rel = min(self.sim.t - tracker.start, traj.duration) + traj.t0
            try:
                pos = traj.sample(t_rel)[0]
            except ValueError:  # a profile sample rounded just outside [0, 1]: take the end
                pos = traj.sample(traj.t_end)[0]
            if np.ndim(pos) == 2:
                self.cart.set_target(pos)
            else:
                self._set_joint_target(pos)
        self.loop.set_controller(self.cart if self.controller_name == "cartesian" else self.joint)

    def current_target(self) -> np.ndarray:
        """The tool target pose (base frame) the active controller tracks."""
        if self.controller_name == "cartesian":
            T = self.cart.target
            return self.T_home if T is None else T
        return self.chain.fk(self._q_joint_target)

    def set_target(self, T_base_target: np.ndarray) -> bool:
        """Manual target for the active controller; a NaN/invalid pose is refused and logged."""
        try:
            if self.controller_name == "cartesian":
                self.cart.set_target(T_base_target)
            else:
                res = self.chain.ik(T_base_target, q0=self.sim.read().q, restarts=3)
                if not res.success:
                    _log.warning("target not reachable (IK error %.2g m); keeping the previous one", res.pos_err)
                    return False
                self._set_joint_target(res.q)
        except ValueError as exc:
            _log.error("target refused: %s", exc)
            return False
        self.sup.target_updated()
        return True

    def switch_controller(self) -> str:
        """Cartesian <-> joint impedance, continuing from the current target."""
        T = self.current_target()
        self._stop_trajectory()
        if self.controller_name == "cartesian":
            res = self.chain.ik(T, q0=self.sim.read().q, restarts=3)
            self._set_joint_target(res.q if res.success else self.sim.read().q)
            self.controller_name = "joint"
            self.loop.set_controller(self.joint)
        else:
            self.cart.set_target(T)
            self.controller_name = "cartesian"
            self.loop.set_controller(self.cart)
        _log.info("controller: %s impedance", self.controller_name)
        return self.controller_name

    def toggle_recording(self) -> Path | None:
        """Start (returns the file) or stop (returns None) the MCAP run log."""
        if self.recorder is not None:
            self.loop.recorder = self.live_view
            self.recorder.record_events(self.sup.drain_events())
            self.recorder.record_stats(self.loop.stats())
            self.recorder.close()
            _log.info("recording stopped: %s", self.recorder.path)
            self.recorder = None
            return None
        path = self._next_record_path()
        self.recorder = RunLogRecorder(
            path, joint_names=self.sim.joint_names,
            metadata={"robot": self.desc.name, "tool": str(self.sim.tool), "scenario": self.scenario.name},
            link_frames=self.link_frames,
        )
        self.sup.drain_events()  # supervisor events from before this recording do not belong in it
        self.recorder.record_scene(self.sim.t, [self._workspace_box()])  # as the live view shows it
        self._attach_recorders()
        _log.info("recording to %s", path)
        return path

    def _workspace_box(self) -> object:
        """The supervisor's workspace box as a ``/scene`` entity in the base frame."""
        return workspace_box_entity(self.desc.base_link, self.desc.workspace_min, self.desc.workspace_max)

    def _attach_recorders(self) -> None:
        """The loop's recorder: the run log and the live view, whichever exist."""
        parts = [r for r in (getattr(self, "recorder", None), self.live_view) if r is not None]
        self.loop.recorder = None if not parts else parts[0] if len(parts) == 1 else Observers(*parts)

    def _next_record_path(self) -> Path:
        """``--record FILE`` for the first recording, then FILE_2, FILE_3...; without it a new
        timestamped file in the working directory. A later recording never overwrites an earlier one."""
        self._recordings += 1
        if self.record_path is not None and self._recordings == 1:
            return self.record_path
        base = self.record_path or Path(f"machaon_sim_{datetime.now():%Y%m%d_%H%M%S}.mcap")
        path, i = base, 1
        while path.exists() or (self.record_path is not None and path == self.record_path):
            i += 1
            path = base.with_name(f"{base.stem}_{i}{base.suffix}")
        return path

    def replay(self) -> None:
        """Play the trajectory file again (or the scenario's planned path) from the home pose."""
        try:
            traj = self._load_plan_again()
        except SimAppError as exc:
            _log.error("%s", exc)
            return
        if traj is not None:
            self._play(traj)

    def _load_plan_again(self) -> TrajectorySequence | None:
        if self.replay_path is not None:
            try:
                return load_trajectory(self.replay_path, self.current_target(), self.sim.read().q)
            except ScenarioError as exc:
                raise SimAppError(str(exc)) from None
        if self.trajectory is None:
            return None
        segs = self.trajectory.segments
        return TrajectorySequence(segs)

    def resume(self) -> bool:
        """Hold / protective stop -> RUN, the arm staying where it stopped; False if refused.

        The supervisor held or braked the arm while a playing trajectory (and its target) moved on,
        so resuming it would pull the arm at speed towards a far target, and the tool-speed check
        would stop it again at once. So a resume abandons the trajectory (``t`` replays it) and both
        controllers target the measured pose (the target sliders apply again when one moves).
        Refused (logged by the supervisor) in ESTOP or while a fault is active.
        """
        if self.sup.state is SupervisorState.RUN:
            return True
        if not self.sup.resume():
            return False
        self.tracker = None
        self._slider_goal = None
        q = np.array(self.sim.read().q, dtype=np.float64)
        self._set_joint_target(q)
        self.cart.set_target(self.chain.fk(q))
        self.loop.set_controller(self.cart if self.controller_name == "cartesian" else self.joint)
        self.sup.target_updated()
        return True

    def reset(self) -> None:
        """Arm back to home at rest, targets to home, supervisor back to RUN."""
        self._stop_trajectory()
        self.sim.reset(self.q_home)
        self.cart.set_target(self.T_home)
        self._set_joint_target(self.q_home)
        self.sup.reset()
        self.sup.resume()
        self._slider_goal = None  # home stays the target until a target slider moves again
        self.loop.set_controller(self.cart if self.controller_name == "cartesian" else self.joint)

    def move_target(self, T_base_goal: np.ndarray) -> bool:
        """Leave any trajectory and move the target to ``T_base_goal`` (base frame) smoothly.

        What the target sliders do: a minimum-jerk move from the current target at ``slider_speed``
        (joint impedance: a joint move to the IK solution), fed to the controller every cycle, so a
        slider jump moves the arm instead of tripping the supervisor's tool-speed stop. An invalid
        or unreachable goal is refused (False) and logged; the target stays where it is.
        """
        self._stop_trajectory()  # the target is now where the trajectory was
        v, w = self.slider_speed
        try:
            if self.controller_name == "cartesian":
                seg = CartesianTrajectory(self.current_target(), T_base_goal, v, 4 * v, w_max=w, alpha_max=4 * w)
                inner = self.cart
            else:
                res = self.chain.ik(T_base_goal, q0=self._q_joint_target, restarts=3)
                if not res.success:
                    _log.warning("target not reachable (IK error %.2g m); keeping the previous one", res.pos_err)
                    return False
                seg = JointTrajectory(self._q_joint_target, res.q, w, 4 * w)
                inner = self.joint
        except ValueError as exc:
            _log.error("target refused: %s", exc)
            return False
        self._slider_goal = np.array(T_base_goal, dtype=np.float64)
        self.tracker = TrajectoryTracker(inner, TrajectorySequence([seg]), self.sup)
        self.loop.set_controller(self.tracker)
        return True

    def _draw(self, rtf: float) -> None:
        ov = self.overlays
        st = self.loop.last_state
        ov.target_frame(self.current_target())
        T_tcp = self.sim.T_base_tcp()
        if st is not None and st.wrench_tool is not None:
            ov.tool_force(T_tcp[:3, 3], st.wrench_tool[:3])
        rec = "REC" if self.recorder is not None else "rec off"
        # loop rate: cycles per simulated second, and what that is per wall-clock second right now
        ov.status(
            f"{self.controller_name} impedance | {self.sup.state.value.upper()} | {rec}\n"
            f"loop {self.rate_hz:.0f} Hz ({self.rate_hz * rtf:.0f}/s wall) | RTF {rtf:.2f} | t {self.sim.t:.1f} s"
        )

    # ------------------------------------------------------------------ running

    def snapshot(self) -> Path | None:
        """Write a PNG from the snapshot camera into the snapshot directory (if one was given)."""
        if self.snapshot_dir is None:
            return None
        import cv2

        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        img = self.camera.render(self.sim.client, bgr=True)  # TinyRenderer: same picture in GUI and DIRECT
        path = self.snapshot_dir / f"snapshot_{len(self.snapshots_written):04d}_t{self.sim.t:07.2f}.png"
        if not cv2.imwrite(str(path), img):
            raise SimAppError(f"cannot write {path}")
        self.snapshots_written.append(path)
        return path

    def run(self, seconds: float | None = None) -> str:
        """Run for ``seconds`` of simulated time (None: until the GUI quits); return a summary."""
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise SimAppError("seconds: must be > 0")
        if self.record_path is not None and self.recorder is None:
            self.toggle_recording()
        sim = self.sim
        slice_s = 1.0 / 30.0 if self.gui else 0.1
        t_start, wall_start = sim.t, time.monotonic()
        t_frame = wall_start
        rtf = 0.0
        t_end = math.inf if seconds is None else t_start + seconds
        wall_stats = 0.0
        if self.gui:
            _log.info("GUI session running (scenario %s); keys: c controller, r record, t replay, "
                      "space protective stop, h hold/resume, x reset, q quit", self.scenario.name)
        while sim.t < t_end - 1e-9:
            if self.gui and not self._poll_gui():
                break
            if self.tracker is None:
                self.sup.target_updated()  # holding a target is a fresh target
            if sim.t >= self._t_next_snapshot:
                self.snapshot()
                self._t_next_snapshot += self.snapshot_every
            if self.gui:
                # Keep simulated time in step with the wall clock however slow the window is: a
                # frame that took longer is followed by a longer slice of physics (up to 0.2 s).
                now = time.monotonic()
                slice_s = min(max(now - t_frame, 1.0 / 60.0), 0.2)
                t_frame = now
            n = min(slice_s, t_end - sim.t)
            self.loop.run_for(n)
            if self.live_view is not None or self.recorder is not None:  # the target frame, live and in the log
                target = FramePose(self.desc.base_link, "target", self.current_target())
                for obs in (self.live_view, self.recorder):
                    if obs is not None:
                        obs.record_transforms(sim.t, [target])
            if self.tracker is not None and self.tracker.done(sim.t):
                if self._slider_goal is not None:
                    _log.info("sliders: target reached [%.4f, %.4f, %.4f] m (base)", *self._slider_goal[:3, 3])
                self._stop_trajectory()
            wall = time.monotonic() - wall_start
            rtf = (sim.t - t_start) / wall if wall > 0 else 0.0
            if wall >= wall_stats + self.stats_every:  # a bounded rate, however fast the slices go
                wall_stats = wall
                self._log_loop_stats(rtf)
            if self.gui:
                try:
                    self.sim.sync_viewer()
                    self._draw(rtf)
                except p.error:  # window closed between two calls
                    break
        if self.snapshot_dir is not None and p.isConnected(physicsClientId=sim.client):
            self.snapshot()
        wall = time.monotonic() - wall_start
        rtf = (sim.t - t_start) / wall if wall > 0 else 0.0
        return self._summary(sim.t - t_start, wall, rtf)

    def _log_loop_stats(self, rtf: float) -> None:
        """One INFO line of the loop's timing so far (``run`` writes one per ``stats_every`` wall s)."""
        s = self.loop.stats()
        _log.info("loop: t %.1f s, %d cycles at %.0f Hz, real-time factor %.2f, period p99 %.3f ms, "
                  "%d overruns, supervisor %s", self.sim.t, s.cycles, self.rate_hz, rtf, s.period_p99 * 1e3,
                  s.overruns, self.sup.state.value)

    def _summary(self, sim_s: float, wall_s: float, rtf: float) -> str:
        st = self.loop.last_state
        T = self.sim.T_base_tcp() if p.isConnected(physicsClientId=self.sim.client) else None
        lines = [
            f"[{'GUI' if self.gui else 'headless'}] scenario {self.scenario.name}: "
            f"{sim_s:.2f} s simulated in {wall_s:.2f} s wall "
            f"(real-time factor {rtf:.2f}), {self.loop.cycles} cycles at {self.rate_hz:.0f} Hz",
            f"controller {self.controller_name} impedance, supervisor {self.sup.state.value}, "
            f"{wall_s / max(self.loop.cycles, 1) * 1e6:.0f} us wall per cycle (physics and snapshots included)",
        ]
        if T is not None:
            err = np.linalg.norm(T[:3, 3] - self.current_target()[:3, 3])
            lines.append(f"tool at {np.round(T[:3, 3], 4).tolist()} m (base), {err * 1e3:.2f} mm from the target")
        if st is not None and st.wrench_tool is not None:
            lines.append(f"tool force {np.round(st.wrench_tool[:3], 2).tolist()} N (base frame)")
        for ev in self.sup.events[-5:]:
            lines.append(f"supervisor t={ev.t:.3f}s {ev.from_state.value}->{ev.to_state.value} {ev.code}: {ev.reason}")
        if self.snapshots_written:
            lines.append(f"{len(self.snapshots_written)} snapshots in {self.snapshot_dir.resolve()}")
        if self.recorder is not None:
            lines.append(f"run log {self.recorder.path.resolve()}")
        return "\n".join(lines)

    def close(self) -> None:
        if self.recorder is not None:
            self.toggle_recording()
        self.sim.close()

    def __enter__(self) -> SimApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
