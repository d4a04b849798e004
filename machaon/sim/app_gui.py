"""The GUI side of ``machaon sim`` (``SimApp``'s keys and sliders): set-up of the PyBullet window's
sliders and overlays, polling of keys and sliders between loop slices, and what each key does.

``GuiControls`` is a mixin of ``SimApp``: its methods use the session's arm, controllers,
supervisor and overlays (the GUI controls are listed in ``machaon.sim.app``'s docstring).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pybullet as p

from machaon.control.impedance import CartesianGains
from machaon.control.supervisor import SupervisorState

_log = logging.getLogger("machaon.sim.app")  # one logger for the session: the GUI tests read its key lines

# Keys (PyBullet key codes are the ASCII codes for printable keys).
_KEYS = {ord("c"): "controller", ord("r"): "record", ord("t"): "replay", ord(" "): "stop",
         ord("h"): "hold", ord("x"): "reset", ord("q"): "quit"}
_KEY_NAMES = {action: ("space" if code == ord(" ") else chr(code)) for code, action in _KEYS.items()}


class GuiControls:
    """Keys and sliders of the PyBullet window (a mixin of ``SimApp``)."""

    def _setup_gui(self) -> None:
        cid = self.sim.viewer_client
        p.configureDebugVisualizer(p.COV_ENABLE_SHADOWS, 0, physicsClientId=cid)
        p.configureDebugVisualizer(p.COV_ENABLE_KEYBOARD_SHORTCUTS, 0, physicsClientId=cid)
        for preview in (p.COV_ENABLE_RGB_BUFFER_PREVIEW, p.COV_ENABLE_DEPTH_BUFFER_PREVIEW,
                        p.COV_ENABLE_SEGMENTATION_MARK_PREVIEW):
            p.configureDebugVisualizer(preview, 0, physicsClientId=cid)
        p.configureDebugVisualizer(p.COV_ENABLE_GUI, 1, physicsClientId=cid)
        p.resetDebugVisualizerCamera(1.7, 40.0, -28.0, [0.45, 0.0, 0.35], physicsClientId=cid)
        k = self.k_default
        specs = [
            ("target dx (m)", -0.15, 0.15, 0.0), ("target dy (m)", -0.15, 0.15, 0.0),
            ("target dz (m)", -0.15, 0.15, 0.0), ("target droll (deg)", -45.0, 45.0, 0.0),
            ("target dpitch (deg)", -45.0, 45.0, 0.0), ("target dyaw (deg)", -90.0, 90.0, 0.0),
            ("stiffness trans (N/m)", 50.0, 3000.0, float(k[:3].mean())),
            ("stiffness rot (N m/rad)", 2.0, 150.0, float(k[3:].mean())),
            ("damping ratio", 0.1, 1.5, float(np.mean(self.desc.cartesian_damping_ratio))),
        ]
        for name, lo, hi, v in specs:
            self._sliders[name] = p.addUserDebugParameter(name, lo, hi, v, physicsClientId=cid)
            self._slider_values[name] = v
        self.overlays.workspace_box(self.desc.workspace_min, self.desc.workspace_max)
        self.overlays.target_frame(self.T_home)
        if self.trajectory is not None:
            self.overlays.planned_path(self._path_points(self.trajectory))
        p.configureDebugVisualizer(p.COV_ENABLE_RENDERING, 1, physicsClientId=cid)

    def handle_key(self, action: str) -> bool:
        """Do what a GUI key asks (``action`` is a value of ``_KEYS``); False for quit.

        Each action logs one ``key <name>: ...`` line (INFO) saying what happened, so a person at the
        terminal (and the GUI tests) can follow the session. An unknown action raises ValueError.
        """
        key = _KEY_NAMES.get(action)
        if key is None:
            raise ValueError(f"action: unknown GUI key action {action!r}; known: {sorted(_KEY_NAMES)}")
        if action == "quit":
            _log.info("key %s: quit", key)
            return False
        if action == "controller":
            _log.info("key %s: controller switched to %s impedance", key, self.switch_controller())
        elif action == "record":
            path = self.recorder.path if self.recorder is not None else None
            started = self.toggle_recording()
            if started is not None:
                _log.info("key %s: recording started: %s", key, started)
            else:
                _log.info("key %s: recording stopped: %s", key, path)
        elif action == "replay":
            self.replay()
            if self.tracker is not None:
                _log.info("key %s: replaying the trajectory (%.2f s, %s impedance)", key,
                          self.trajectory.duration, self.controller_name)
            else:
                _log.info("key %s: nothing to replay", key)
        elif action == "stop":
            self.sup.protective_stop("operator pressed the stop key")
            _log.info("key %s: protective stop (supervisor %s)", key, self.sup.state.value)
        elif action == "hold":
            if self.sup.state is SupervisorState.RUN:
                self.sup.hold("operator")
                _log.info("key %s: hold (supervisor %s)", key, self.sup.state.value)
            else:
                ok = self.resume()
                _log.info("key %s: resume %s (supervisor %s)", key, "accepted" if ok else "refused",
                          self.sup.state.value)
        elif action == "reset":
            self.reset()
            _log.info("key %s: reset: arm at home, supervisor %s", key, self.sup.state.value)
        return True

    def _poll_gui(self) -> bool:
        """Handle keys and sliders; False when the user asked to quit or closed the window."""
        cid = self.sim.viewer_client
        if not self.sim.viewer_alive():
            return False
        try:
            keys = p.getKeyboardEvents(physicsClientId=cid)
        except p.error:
            return False
        for code, state in keys.items():
            if code not in _KEYS:
                continue
            # A quick tap on a busy machine can reach PyBullet as a bare release: the GUI thread
            # overwrites the unsent press with the release. A release of a key not seen going down
            # is that lost press.
            pressed = bool(state & p.KEY_WAS_TRIGGERED)
            if not pressed and state & p.KEY_WAS_RELEASED and code not in self._keys_down:
                pressed = True
            if state & p.KEY_WAS_RELEASED:
                self._keys_down.discard(code)
            elif pressed:
                self._keys_down.add(code)
            if pressed and not self.handle_key(_KEYS[code]):
                return False
        vals = {n: p.readUserDebugParameter(i, physicsClientId=cid) for n, i in self._sliders.items()}
        changed = {n for n, v in vals.items() if abs(v - self._slider_values[n]) > 1e-9}
        self._slider_values = vals
        if changed & {"stiffness trans (N/m)", "stiffness rot (N m/rad)", "damping ratio"}:
            k = np.array([vals["stiffness trans (N/m)"]] * 3 + [vals["stiffness rot (N m/rad)"]] * 3)
            self.cart.set_gains(CartesianGains(k, vals["damping ratio"]))
        target_moved = any(n.startswith("target") for n in changed)
        if target_moved:
            self.move_target(self._slider_target(vals))
        now = time.monotonic()
        if changed:
            self._sliders_moved_at = now
        elif self._sliders_moved_at is not None and now - self._sliders_moved_at >= 0.3:
            self._sliders_moved_at = None  # the sliders came to rest: say where they are, once
            self._log_sliders(vals)
        return True

    def _slider_target(self, vals: dict[str, float]) -> np.ndarray:
        """The tool target (base frame) the target sliders give: an offset from the home tool pose."""
        from scipy.spatial.transform import Rotation

        T = self.T_home.copy()
        T[:3, 3] += (vals["target dx (m)"], vals["target dy (m)"], vals["target dz (m)"])
        d_rpy = [vals["target droll (deg)"], vals["target dpitch (deg)"], vals["target dyaw (deg)"]]
        T[:3, :3] = Rotation.from_euler("xyz", d_rpy, degrees=True).as_matrix() @ self.T_home[:3, :3]
        return T

    def _log_sliders(self, vals: dict[str, float]) -> None:
        pos = self._slider_target(vals)[:3, 3]
        _log.info(
            "sliders: target offset (%.3f, %.3f, %.3f) m, (%.1f, %.1f, %.1f) deg; %s target goes to "
            "[%.4f, %.4f, %.4f] m (base); Cartesian stiffness %.0f N/m, %.1f N m/rad, damping ratio %.2f",
            vals["target dx (m)"], vals["target dy (m)"], vals["target dz (m)"], vals["target droll (deg)"],
            vals["target dpitch (deg)"], vals["target dyaw (deg)"], self.controller_name, *pos,
            vals["stiffness trans (N/m)"], vals["stiffness rot (N m/rad)"], vals["damping ratio"],
        )
