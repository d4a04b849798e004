"""``DrillPhysics``: the simulated drill, a physics step hook.

It computes the thrust of the drill in bone from the true tip pose in the true bone frame
(``machaon.ortho.drilling``), applies it to the tool (``ArmSim.apply_external_force``) and
records the hole actually drilled (``HoleSample``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from machaon._validate import finite_array, transform
from machaon.ortho.drilling import DrillBit, ThrustModel
from machaon.ortho.execution.hole import HoleSample

if TYPE_CHECKING:  # the arm is only a type here: importing it loads PyBullet
    from machaon.sim.arm import ArmSim


class DrillPhysics:
    """Physics step hook: thrust of the drill in the (moving) bone, applied to the tool; hole recording.

    ``tip_link``/``T_link_tip``: the drill tip on the arm; ``T_world_image(t)``: the true bone pose;
    ``region_fn``: the anatomy's region codes (image frame); ``bounds``: an optional image-frame box
    around the bone outside which the region is not queried. The thrust is evaluated every
    ``every`` physics steps (held in between), with Gaussian noise ``noise_n``.

    Skiving (off unless ``skive_gain`` > 0 and ``normal_fn`` is given): while the point crosses
    the first ``skive_depth_m`` of bone, a surface inclined to the drill pushes the tip sideways,
    down the slope: the surface's reaction to the thrust has a component across the drill of
    ``thrust * tan(incidence)``, of which ``skive_gain`` (0..1, how much the point slips rather
    than bites) acts on the tool. ``normal_fn`` maps image-frame points to the bone's outward
    unit normals (e.g. ``machaon.ortho.anatomy.sdf_gradient``); the incidence is capped at 60 deg.
    A ``skive_gain`` outside [0, 1] raises ``ValueError``.
    """

    def __init__(
        self,
        sim: ArmSim,
        tip_link: str,
        T_link_tip: np.ndarray,
        T_world_image,
        region_fn,
        model: ThrustModel,
        bit: DrillBit,
        *,
        every: int = 2,
        noise_n: float = 0.2,
        feed_tau_s: float = 0.08,
        rng: np.random.Generator | None = None,
        bounds: np.ndarray | None = None,
        skive_gain: float = 0.0,
        normal_fn=None,
        skive_depth_m: float = 0.0015,
    ) -> None:
        if not (math.isfinite(skive_gain) and 0.0 <= skive_gain <= 1.0 and skive_depth_m >= 0.0):
            raise ValueError("skive_gain must be in [0, 1] and skive_depth_m >= 0")
        self.skive_gain = float(skive_gain)
        self.normal_fn = normal_fn
        self.skive_depth_m = float(skive_depth_m)
        self._s_bone: float | None = None  # depth along the axis where the point first met bone
        self.sim = sim
        self.link = sim.link_index(tip_link)
        self.T_link_tip = transform("T_link_tip", T_link_tip).copy()
        self.T_world_image = T_world_image
        self.region_fn = region_fn
        self.model = model
        self.bit = bit
        self.every = int(every)
        self.noise_n = float(noise_n)
        self.feed_tau_s = float(feed_tau_s)
        # (2, 3) image-frame box around the bone: outside it (plus the drill point) nothing is cut
        self.bounds = None if bounds is None else finite_array("bounds", bounds, (2, 3)).copy()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.spinning = False
        self.recording = False
        self.samples: list[HoleSample] = []
        self.thrust_n = 0.0
        self._k = 0
        self._prev: tuple[float, np.ndarray] | None = None  # (t, tip in the bone frame)
        self._feed = 0.0
        self._f_world = np.zeros(3)
        self._p_world = np.zeros(3)

    def __call__(self) -> None:
        sim = self.sim
        if self._k % self.every == 0:
            t = sim.t
            T_wt = sim.T_world_link(sim.link_names[self.link]) @ self.T_link_tip
            T_wi = self.T_world_image(t)
            T_iw = np.eye(4)
            T_iw[:3, :3] = T_wi[:3, :3].T
            T_iw[:3, 3] = -T_wi[:3, :3].T @ T_wi[:3, 3]
            tip_i = T_iw[:3, :3] @ T_wt[:3, 3] + T_iw[:3, 3]
            axis_i = T_iw[:3, :3] @ T_wt[:3, 2]
            if self._prev is not None and t > self._prev[0]:
                # feed = the tip's velocity relative to the bone, along the drill axis
                dt = t - self._prev[0]
                v = float(axis_i @ (tip_i - self._prev[1])) / dt
                # the cutting law is a very stiff damper (dF/dv ~ 1e4 N s/m); feeding it the raw
                # velocity makes the explicit physics step chatter. A first-order filter (feed_tau_s)
                # turns it into a stiff spring at high frequency, as a real bit engaging bone behaves.
                self._feed += min(1.0, dt / self.feed_tau_s) * (v - self._feed)
            self._prev = (t, tip_i)
            f = 0.0
            near = self.bounds is None or bool(
                np.all(tip_i > self.bounds[0] - 0.005) and np.all(tip_i < self.bounds[1] + 0.005)
            )
            if self.spinning and self._feed > 0 and near:
                f = self.model.thrust(self.region_fn, tip_i, axis_i, self._feed, self.bit)
                if f > 0:
                    f = max(f + self.rng.normal(0.0, self.noise_n), 0.0)
            self.thrust_n = f
            self._f_world = -f * T_wt[:3, 2]
            if f > 0 and self.skive_gain > 0 and self.normal_fn is not None:
                self._f_world = self._f_world + T_wi[:3, :3] @ self._skive(tip_i, axis_i, f)
            self._p_world = T_wt[:3, 3]
            if self.recording:
                self.samples.append(HoleSample(t, tip_i, axis_i, f, self._feed))
        self._k += 1
        if self.thrust_n > 0:
            sim.apply_external_force(self.link, self._f_world.tolist(), self._p_world.tolist())

    def _skive(self, tip_i: np.ndarray, axis_i: np.ndarray, f: float) -> np.ndarray:
        """Lateral force (N, image frame) on the tip at the entry cortex (class docstring)."""
        a = axis_i / np.linalg.norm(axis_i)
        s = float(a @ tip_i)
        if self._s_bone is None:
            self._s_bone = s
        if s - self._s_bone > self.skive_depth_m:
            return np.zeros(3)
        n = np.asarray(self.normal_fn(tip_i[None]), dtype=np.float64).reshape(3)
        across = n - (n @ a) * a
        sin_i = float(np.linalg.norm(across))
        if sin_i < 1e-9:
            return np.zeros(3)
        incidence = min(math.atan2(sin_i, -float(n @ a)), math.radians(60.0))
        return self.skive_gain * f * math.tan(incidence) * across / sin_i

    def start_hole(self) -> None:
        self._s_bone = None
        self.samples = []
        self.recording = True
        self.spinning = True

    def stop_hole(self) -> list[HoleSample]:
        self.recording = False
        self.spinning = False
        self.thrust_n = 0.0
        return list(self.samples)
